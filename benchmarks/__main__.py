"""``python -m benchmarks --mode quick`` (``make bench``): the side-by-side comparison, ``benchmarks.speed.compare``."""

from benchmarks.speed.compare import main

if __name__ == "__main__":
    main()

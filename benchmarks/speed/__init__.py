"""`make bench`: edgeft against the textbook alternatives, each in its own process (``python -m benchmarks.speed.compare``)."""

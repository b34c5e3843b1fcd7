"""``python -m example_data [--into FOLDER] [--no-onnx]``: write the small files the README's commands read."""

from __future__ import annotations

import argparse

from example_data.files import write_examples


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m example_data", description=__doc__)
    parser.add_argument("--into", default=".", help="the folder the files go to (default: the current one)")
    parser.add_argument("--no-onnx", action="store_true", help="leave out minilm/model.onnx (its export needs optimum)")
    args = parser.parse_args()
    for path in write_examples(args.into, with_onnx=not args.no_onnx):
        print(path)


if __name__ == "__main__":
    main()

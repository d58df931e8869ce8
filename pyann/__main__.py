"""python -m pyann <command>: the same as the `pyann` console command (pyann.cli)."""
import sys

from .cli import build_parser, main  # noqa: F401  (build_parser: for tests and docs)

if __name__ == "__main__":
    sys.exit(main(prog="python -m pyann"))

"""``python -m pyann.data fetch NAME`` / ``info``, kept as an alias of ``pyann data fetch NAME`` /
``pyann data info`` (pyann.cli.data), where the commands moved. ``--root`` still works, as the
old spelling of ``--data-root``."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from ..cli import main as pyann_main
    argv = list(sys.argv[1:] if argv is None else argv)
    print("note: `python -m pyann.data` moved: run `pyann data " + (argv[0] if argv else "{fetch,info}")
          + " ...` (or `python -m pyann data ...`)", file=sys.stderr)
    try:
        return pyann_main(["data", *argv], prog="pyann")
    except SystemExit as exc:   # the old entry point returned its status
        return exc.code if isinstance(exc.code, int) else 1


if __name__ == "__main__":
    sys.exit(main())

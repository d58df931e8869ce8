"""pyann <command>: every study, recipe and data command of pyann (also `python -m pyann`).

  pyann train --model mlp5 --dataset mnist --epochs 20 --out runs/mlp5-mnist
  pyann relu-study --dataset mnist --epochs 20 --out runs/relu-study-mnist
  pyann prune-study --model fcn2 --out runs/prune-study-fcn2
  pyann substitution-study --preset cpu --out runs/substitution-study-cpu
  pyann cnn3-mnist --out runs/cnn3-mnist
  pyann wrn-cifar10 --minutes 60 --out runs/wrn16-2-cifar10
  pyann report --out runs/cnn3-mnist
  pyann data fetch mnist        pyann data info

`pyann COMMAND --help` lists a command's options with their defaults. The benchmarks are
`python -m bench` (run from a checkout). A user error (missing dataset, bad argument,
unwritable folder, refused resume, diverged training) prints one line naming it and exits
non-zero; -v shows the traceback.
"""
from __future__ import annotations

import argparse
import sys

from .common import HelpFormatter, verbose_parent

EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


def build_parser(prog: str = "pyann") -> argparse.ArgumentParser:
    from .. import __version__
    from ..relu_prediction.cli import add_relu_study_parser
    from ..pruning.cli import add_prune_study_parser
    from ..substitution.cli import add_substitution_study_parser
    from . import data, recipes, train
    parents = [verbose_parent()]
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0].split(": ", 1)[1],
                                     epilog="\n\n".join(__doc__.split("\n\n")[1:]), parents=parents,
                                     formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"pyann {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    train.add_parser(sub, parents)
    add_relu_study_parser(sub, parents=parents, formatter_class=HelpFormatter)
    add_prune_study_parser(sub, parents=parents, formatter_class=HelpFormatter)
    add_substitution_study_parser(sub, parents=parents, formatter_class=HelpFormatter)
    recipes.add_parsers(sub, parents)
    data.add_parser(sub, parents)
    return parser


def user_errors() -> tuple:
    """The exceptions that are the user's to fix (a message, not a bug): printed as one line."""
    from ..data import DatasetError
    from ..outputs import OutputFolderError
    from ..train import ResumeMismatchError, TrainingDivergedError
    from .recipes import CommandError
    return (DatasetError, OutputFolderError, ResumeMismatchError, TrainingDivergedError, CommandError,
            ValueError, OSError)


def run_command(parser: argparse.ArgumentParser, args, what: str) -> int:
    """args.func(args); a user error becomes one line on stderr and SystemExit with a non-zero
    status: 2 for an unusable argument (an output folder that cannot be written), 1 otherwise,
    130 for Ctrl-C. With args.verbose the exception propagates (the traceback)."""
    from ..outputs import OutputFolderError
    verbose = getattr(args, "verbose", False)
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        if verbose:
            raise
        parser.exit(EXIT_INTERRUPTED, f"{what}: interrupted\n")
    except user_errors() as exc:
        if verbose:
            raise
        status = EXIT_USAGE if isinstance(exc, OutputFolderError) else EXIT_ERROR
        parser.exit(status, f"{what}: error: {error_text(exc)}\n")


def error_text(exc: BaseException) -> str:
    """The exception's message on one line; a DatasetNotFoundError keeps its list of the
    places looked in and the fixes, one per line under it."""
    from ..data import DatasetNotFoundError
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, DatasetNotFoundError):
        return text
    return " ".join(line.strip() for line in text.splitlines())


def main(argv=None, prog: str = "pyann") -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    what = f"{prog} {args.command}" + (f" {args.data_command}" if getattr(args, "data_command", None) else "")
    return run_command(parser, args, what)


def console_main() -> None:
    """The `pyann` console script (setup.py entry point)."""
    sys.exit(main())

"""What every pyann command line shares: the help formatter (defaults shown), the -v flag, the
data flags (--data-root, --offline) and the header line saying where a run's data came from."""
from __future__ import annotations

import argparse
import contextlib
import os


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown in --help (not for flags, nor for options whose default is None: their
    help says what happens without them); descriptions keep their line breaks."""

    def _format_action(self, action):
        if (action.help is None and action.option_strings and action.default is not None
                and action.default is not False and action.default is not argparse.SUPPRESS):
            action.help = "(default: %(default)s)"   # an option without help still shows its default
        return super()._format_action(action)

    def _get_help_string(self, action):
        if action.default is None or action.default is False or isinstance(action, argparse._VersionAction):
            return action.help
        return super()._get_help_string(action)


def verbose_parent() -> argparse.ArgumentParser:
    """-v / --verbose, accepted before or after the subcommand (default SUPPRESS, so a
    subcommand's parser does not overwrite a -v given before it)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="on an error, show the full traceback (and more detail where a command has it)")
    return parent


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """--data-root and --offline, the same on every command that reads a dataset."""
    parser.add_argument("--data-root", default=None, metavar="DIR",
                        help="folder holding mnist/, fashion-mnist/, cifar-10/ (it must exist); default: "
                             "search $PYANN_DATA, the user cache, ../shared/datasets beside the checkout, "
                             "/usr/share/datasets, then download")
    parser.add_argument("--offline", action="store_true",
                        help="never download a missing dataset (also: PYANN_OFFLINE=1)")


def prepare_data(name: str, args, allow_unofficial: bool = False):
    """Find the dataset the run will read (downloading it, md5-checked, with a progress bar on a
    terminal, unless --offline / $PYANN_OFFLINE) and print the header line saying where it came
    from. Returns the Located; the run's own loader then finds the same files."""
    from ..data import describe_source, locate, offline
    with offline_mode(args):
        found = locate(name, getattr(args, "data_root", None), download=not offline(),
                       allow_unofficial=allow_unofficial)
    print(describe_source(found), flush=True)
    return found


@contextlib.contextmanager
def offline_mode(args):
    """--offline as $PYANN_OFFLINE=1 for the duration (restored after), so that the library
    never downloads and its not-found message says offline mode was asked for."""
    if not getattr(args, "offline", False):
        yield
        return
    old = os.environ.get("PYANN_OFFLINE")
    os.environ["PYANN_OFFLINE"] = "1"
    try:
        yield
    finally:
        if old is None:
            del os.environ["PYANN_OFFLINE"]
        else:
            os.environ["PYANN_OFFLINE"] = old

"""Command line: ``python -m pyann.data fetch NAME [--root DIR]`` and ``python -m pyann.data info``.

``fetch`` finds the dataset or downloads it from the official mirrors, checks every md5 and
prints where the files are; ``info`` lists every dataset, where it was found and whether its
files are the official ones. Failures print the error (which lists the locations tried) and
exit with status 1.
"""

from __future__ import annotations

import argparse
import sys

from .checksums import file_md5
from .errors import DatasetError
from .resolution import Located, locate
from .registry import DATASETS, get_spec


def _describe(found: Located) -> list[str]:
    spec = found.spec
    status = "official" if found.official else "UNOFFICIAL"
    lines = [f"{spec.name}: {status}, {found.variant.name}, found via {found.source}: "
             f"{found.source_path}"]
    by_role = {f.role: f for f in found.variant.files}
    for role, path in found.paths.items():
        expected = by_role[role].md5
        actual = file_md5(path)
        if expected is None:
            check = f"md5 {actual} (no official md5 known)"
        elif actual == expected:
            check = f"md5 {actual} ok"
        else:
            check = f"md5 {actual} MISMATCH (official {expected})"
        mark = " (downloaded)" if path in found.downloaded else ""
        lines.append(f"    {path}{mark}: {check}")
    return lines


def _cmd_fetch(args) -> int:
    from .loaders import fetch

    found = fetch(args.name, args.root, allow_unofficial=args.allow_unofficial)
    print("\n".join(_describe(found)))
    return 0


def _cmd_info(args) -> int:
    for name in DATASETS:
        try:
            # Report unofficial copies too: info describes what is there, it loads nothing.
            found = locate(name, args.root, allow_unofficial=True)
        except DatasetError as exc:
            first_line = str(exc).splitlines()[0]
            print(f"{name}: not available ({first_line})")
            if args.verbose:
                print("\n".join("    " + ln for ln in str(exc).splitlines()[1:]))
            continue
        lines = _describe(found)
        if args.verbose:
            print("\n".join(lines))
        else:
            print("\n".join([lines[0]] + [f"    note: {n}" for n in found.notes]))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pyann.data",
                                     description="Find, download and check pyann's datasets.")
    sub = parser.add_subparsers(dest="command", required=True)
    p_fetch = sub.add_parser("fetch", help="find or download a dataset and check its md5")
    p_fetch.add_argument("name", help=f"one of: {', '.join(DATASETS)}")
    p_fetch.add_argument("--root", help="data root to look in first and to download into")
    p_fetch.add_argument("--allow-unofficial", action="store_true",
                         help="accept files whose md5 is not the official one")
    p_info = sub.add_parser("info", help="list every dataset, where it is and whether it is official")
    p_info.add_argument("--root", help="data root to look in first")
    p_info.add_argument("-v", "--verbose", action="store_true",
                        help="show each file's md5, and every location tried")
    args = parser.parse_args(argv)
    try:
        if args.command == "fetch":
            get_spec(args.name)  # an unknown name fails before any search
            return _cmd_fetch(args)
        return _cmd_info(args)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""`pyann data fetch NAME` and `pyann data info`: find, download and check the datasets.

``fetch`` finds the dataset or downloads it from the official mirrors (md5-checked, with a
progress bar on a terminal), and prints where the files are; ``info`` lists every dataset, where
it was found and whether its files are the official ones.
"""
from __future__ import annotations

import argparse

from .common import HelpFormatter


def _describe(found) -> list:
    from ..data.checksums import file_md5
    spec = found.spec
    status = "official" if found.official else "UNOFFICIAL"
    lines = [f"{spec.name}: {status}, {found.variant.name}, found via {found.source}: {found.source_path}"]
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


def cmd_fetch(args) -> int:
    from ..data import fetch, get_spec, locate
    from .common import offline_mode
    get_spec(args.name)   # an unknown name fails before any search
    with offline_mode(args):   # offline: only look; else look, then download (into --data-root, created
        found = fetch(args.name, args.data_root, allow_unofficial=args.allow_unofficial)   # if missing, or the cache)
    print("\n".join(_describe(found)))
    return 0


def cmd_info(args) -> int:
    from ..data import DATASETS, DatasetError, locate
    verbose = getattr(args, "verbose", False)
    for name in DATASETS:
        try:
            # report unofficial copies too: info describes what is there, it loads nothing
            found = locate(name, args.data_root, allow_unofficial=True)
        except DatasetError as exc:
            if args.data_root is not None and "does not exist" in str(exc):
                raise
            print(f"{name}: not available ({str(exc).splitlines()[0]})")
            if verbose:
                print("\n".join("    " + ln for ln in str(exc).splitlines()[1:]))
            continue
        lines = _describe(found)
        print("\n".join(lines if verbose else [lines[0]] + [f"    note: {n}" for n in found.notes]))
    return 0


def add_parser(sub, parents) -> None:
    from ..data import DATASETS
    p = sub.add_parser("data", parents=parents, formatter_class=HelpFormatter,
                       help="datasets: fetch (find or download, md5-checked) and info (where each one is)",
                       description=__doc__)
    data_sub = p.add_subparsers(dest="data_command", required=True, metavar="{fetch,info}")

    def root_args(q, what):
        q.add_argument("--data-root", default=None, metavar="DIR", help=what)
        q.add_argument("--root", dest="data_root", help=argparse.SUPPRESS)   # the old flag's name

    f = data_sub.add_parser("fetch", parents=parents, formatter_class=HelpFormatter,
                            help="find or download a dataset and check its md5")
    f.add_argument("name", metavar="NAME", help=f"one of: {', '.join(DATASETS)}")
    root_args(f, "data root to look in first and to download into (created if missing)")
    f.add_argument("--offline", action="store_true", help="only look, never download (also: PYANN_OFFLINE=1)")
    f.add_argument("--allow-unofficial", action="store_true",
                   help="accept files whose md5 is not the official one")
    f.set_defaults(func=cmd_fetch)

    i = data_sub.add_parser("info", parents=parents, formatter_class=HelpFormatter,
                            help="list every dataset, where it is and whether it is official (-v: each file's "
                                 "md5 and every location tried)")
    root_args(i, "data root to look in first (it must exist)")
    i.set_defaults(func=cmd_info)

"""python -m bench [NAME] [options]: run one benchmark, print its table and write its JSON.

NAME is one of the benchmarks below (`all` runs each in turn); without NAME the ReLU-prediction
benchmark runs, the project's main job. `python -m bench NAME --help` lists a benchmark's
options with their defaults. A user error (missing dataset, bad argument, unwritable folder)
prints one line and exits non-zero; -v shows the traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from pyann.cli import run_command
from pyann.cli.common import HelpFormatter, verbose_parent
from pyann.outputs import OutputFolderError, writable_folder

# name -> (module, one-line description). Modules expose add_arguments(parser) and run(args), and
# optionally QUICK: the option values of --quick (a tiny run).
BENCHMARKS = {
    "relu": ("bench.relu", "ReLU prediction: dense, masked, zero-skipping, combined mlp5 inference, 10,000 images"),
    "kernels": ("bench.kernels", "dense C kernels vs NumPy, batched and one sample at a time"),
    "train": ("bench.train", "training step images/s, pyann vs PyTorch CPU: cnn3 and WRN-16-2"),
    "prune": ("bench.prune", "pruned fcn2, mlp5 and cnn3: sparse, 4x1-blocked and sparse x zero-skipping kernels vs dense and peers, and a density sweep"),
}
DEFAULT = "relu"


def overview() -> str:
    width = max(map(len, BENCHMARKS))
    lines = [__doc__.strip(), "", "benchmarks:"]
    lines += [f"  {name:<{width}}  {description}" + (" (default)" if name == DEFAULT else "")
              for name, (_, description) in BENCHMARKS.items()]
    lines += [f"  {'all':<{width}}  each of them in turn", "",
              "examples:", "  python -m bench                  the main benchmark (relu)",
              "  python -m bench --quick          a tiny relu run that checks the setup in about a minute",
              "  python -m bench kernels --out DIR", "  python -m bench relu --help"]
    return "\n".join(lines)


def build_parser(name: str) -> argparse.ArgumentParser:
    module_name, description = BENCHMARKS[name]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"python -m bench {name}", description=description,
                                     parents=[verbose_parent()], formatter_class=HelpFormatter)
    module.add_arguments(parser)
    return parser


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help", "help"):
        print(overview())
        text = build_parser(DEFAULT).format_help()
        print(f"\npython -m bench [{DEFAULT}] " + text[text.index("options:"):].rstrip())
        return 0
    name = argv.pop(0) if argv and not argv[0].startswith("-") else DEFAULT
    if name == "all":
        for each in BENCHMARKS:
            print(f"\n=== bench {each} ===", flush=True)
            main([each, *argv])
        return 0
    if name not in BENCHMARKS:
        print(f"python -m bench: error: unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)} or all",
              file=sys.stderr)
        return 2
    module = importlib.import_module(BENCHMARKS[name][0])
    parser = build_parser(name)
    args = parser.parse_args(argv)
    if getattr(args, "quick", False):   # --quick's values, where the option was left at its default
        types = {a.dest: a.type for a in parser._actions}
        for key, value in getattr(module, "QUICK", {}).items():
            default = parser.get_default(key)
            if isinstance(default, str) and types.get(key) is not None:
                default = types[key](default)   # as argparse converted it
            if getattr(args, key) == default:
                setattr(args, key, value)
    # the folders the benchmark will write, proved writable before any timing or training
    folders = ([args.out] if getattr(args, "out", None) else []) + \
              ([Path(args.json).parent] if getattr(args, "json", None) else [])
    for folder in folders:
        try:
            writable_folder(folder)
        except OutputFolderError as exc:
            parser.error(str(exc))
    args.func = module.run
    run_command(parser, args, parser.prog)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""python -m bench [NAME] [options]: run one benchmark, print its table and write its JSON.

NAME is one of BENCHMARKS below (`all` runs each in turn); `python -m bench NAME --help` lists a
benchmark's options. The default is the ReLU-prediction benchmark, the project's main job.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from pyann.outputs import OutputFolderError, writable_folder

# name -> (module, one-line description). Modules expose add_arguments(parser) and run(args).
BENCHMARKS = {
    "relu": ("bench.relu", "ReLU prediction: dense, masked, zero-skipping and combined mlp5 inference on 10,000 test images"),
    "kernels": ("bench.kernels", "dense C kernels vs NumPy, batched and one sample at a time"),
    "train": ("bench.train", "training step images/s, pyann vs PyTorch CPU: cnn3 and WRN-16-2"),
}
DEFAULT = "relu"


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    name = argv.pop(0) if argv and not argv[0].startswith("-") else DEFAULT
    if name in ("-h", "--help", "help"):
        name, argv = DEFAULT, ["--help"]
    if name == "all":
        for each in BENCHMARKS:
            print(f"\n=== bench {each} ===")
            main([each, *argv])
        return 0
    if name not in BENCHMARKS:
        print(f"unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)} or all", file=sys.stderr)
        return 2
    module_name, description = BENCHMARKS[name]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"python -m bench {name}", description=description)
    module.add_arguments(parser)
    args = parser.parse_args(argv)
    # the folders the benchmark will write, proved writable before any timing or training
    folders = ([args.out] if getattr(args, "out", None) else []) + \
              ([Path(args.json).parent] if getattr(args, "json", None) else [])
    for folder in folders:
        try:
            writable_folder(folder)
        except OutputFolderError as exc:
            parser.error(str(exc))
    module.run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

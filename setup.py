"""Build and install pyann.

The C kernels in csrc/ are compiled into the extension `pyann._kernels` by cffi in API
(out-of-line) mode; `csrc/build_kernels.py` is the build script and `csrc/pyann_kernels.h` the
whole C API. `PYANN_PORTABLE=1` builds without `-march=native`.
"""
from setuptools import find_packages, setup

setup(
    name="pyann",
    version="0.1.0",
    description="From-scratch NumPy neural networks with C inference kernels, for studying cheaper inference",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["pyann", "pyann.*"]),
    setup_requires=["cffi>=1.15"],
    install_requires=["numpy>=1.22", "cffi>=1.15", "tqdm>=4.60", "matplotlib>=3.5", "threadpoolctl>=3.1", "tabulate>=0.8"],
    extras_require={"test": ["pytest>=7", "hypothesis>=6"],
                    # PyTorch state_dicts and modules, ONNX export and ONNX Runtime (pyann.interop)
                    "interop": ["torch>=2.0", "onnx>=1.14", "onnxruntime>=1.16"],
                    # substitution-study --scheduler: trials on a Dask cluster (pyann.substitution.executors)
                    "dask": ["dask[distributed]>=2023.1"]},
    cffi_modules=["csrc/build_kernels.py:ffibuilder"],
    # the one command line: pyann <command> (also python -m pyann); pyann.cli
    entry_points={"console_scripts": ["pyann=pyann.cli:console_main"]},
    zip_safe=False,
)

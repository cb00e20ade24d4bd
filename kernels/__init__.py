"""Hand-written kernels, installed as ``tinyconv.kernels``; this package imports nothing of tinyconv.

Per layer family: ``<family>_numba.py`` holds the CPU kernels (Numba), ``<family>.cu``
the CUDA C source and ``<family>_cuda.py`` its CuPy launcher.  ``tinyconv.backend.kernel``
finds them by these names.
"""

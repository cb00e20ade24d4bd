"""Shared fixtures: both kernel paths, and PyTorch as the oracle (skipped where absent)."""
import numpy as np
import pytest

import tinyconv


@pytest.fixture(params=["reference", "fast"])
def kernel_mode(request):
    """Run a test through the NumPy reference and through the fast kernels."""
    with tinyconv.use_kernels(request.param):
        yield request.param


@pytest.fixture
def torch():
    return pytest.importorskip("torch", reason="PyTorch (the test oracle) is not installed")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def cupy():
    """CuPy where it sees a CUDA GPU; elsewhere the test is skipped and says why."""
    import tinyconv.cuda
    if not tinyconv.cuda.is_available():
        pytest.skip("CuPy with a CUDA GPU is not available")
    import cupy
    return cupy

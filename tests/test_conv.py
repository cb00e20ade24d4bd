"""conv2d: im2col/col2im by definition and adjointness, float64 gradcheck, PyTorch parity, bad input."""
import numpy as np
import pytest

import tinyconv as tc
import tinyconv.functional as F
from tinyconv.backend import kernel
from tinyconv.functional.conv import Conv2dFn, col2im_reference, im2col_reference

# --------------------------------------------------------------------------- im2col / col2im


def _im2col_by_definition(x, kh, kw, sh, sw, ph, pw):
    """cols[n, (c*kh + i)*kw + j, oh*OW + ow] = x[n, c, oh*sh - ph + i, ow*sw - pw + j], elementwise."""
    N, C, H, W = x.shape
    OH, OW = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
    cols = np.zeros((N, C * kh * kw, OH * OW), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(kh):
                for j in range(kw):
                    for oh in range(OH):
                        for ow in range(OW):
                            h, w = oh * sh - ph + i, ow * sw - pw + j
                            if 0 <= h < H and 0 <= w < W:
                                cols[n, (c * kh + i) * kw + j, oh * OW + ow] = x[n, c, h, w]
    return cols


GEOMETRIES = [  # (x shape, kh, kw, sh, sw, ph, pw)
    ((2, 3, 5, 5), 3, 3, 1, 1, 0, 0),
    ((1, 2, 7, 6), 3, 2, 2, 1, 1, 2),
    ((2, 1, 8, 9), 4, 3, 3, 2, 2, 1),
    ((1, 2, 1, 1), 3, 3, 1, 1, 1, 1),       # 1x1 image, kernel == padded input
    ((1, 3, 11, 11), 11, 11, 4, 4, 2, 2),    # AlexNet conv1 geometry, tiny
    ((1, 2, 4, 5), 1, 1, 2, 3, 0, 0),        # 1x1 kernel, strided
]


@pytest.mark.parametrize("geom", GEOMETRIES)
def test_im2col_reference_matches_definition(geom):
    shape, *args = geom
    x = np.random.default_rng(1).standard_normal(shape)
    np.testing.assert_array_equal(im2col_reference(x, *args), _im2col_by_definition(x, *args))


@pytest.mark.parametrize("geom", GEOMETRIES)
def test_col2im_is_the_adjoint_of_im2col(geom):
    # <im2col(x), c> == <x, col2im(c)> for all x, c: col2im is im2col's transpose
    shape, *args = geom
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape)
    cols = rng.standard_normal(im2col_reference(x, *args).shape)
    lhs = np.sum(im2col_reference(x, *args) * cols)
    rhs = np.sum(x * col2im_reference(cols, shape, *args))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-12)
    assert col2im_reference(cols, shape, *args).flags.c_contiguous


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("geom", GEOMETRIES)
def test_fast_kernels_equal_reference(geom, dtype):
    shape, *args = geom
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape).astype(dtype)
    with tc.use_kernels("fast"):
        fast_im2col, fast_col2im = kernel("conv", "im2col", x), kernel("conv", "col2im", x)
    if fast_im2col is None or fast_col2im is None:
        pytest.skip("no fast conv kernel for this device")
    cols = fast_im2col(x, *args)
    assert cols.dtype == dtype
    np.testing.assert_array_equal(cols, im2col_reference(x, *args))
    g = rng.standard_normal(cols.shape).astype(dtype)
    tol = 1e-6 if dtype == np.float32 else 1e-14   # overlapping patches may add in another order
    np.testing.assert_allclose(fast_col2im(g, shape, *args), col2im_reference(g, shape, *args),
                               rtol=tol, atol=tol)


# --------------------------------------------------------------------------- gradcheck

GRAD_CASES = [  # (N, C, H, W), (O, kh, kw), stride, padding, groups, bias
    ((1, 1, 4, 4), (2, 3, 3), 1, 0, 1, True),
    ((2, 2, 5, 4), (3, 3, 2), 2, 1, 1, True),
    ((1, 2, 7, 5), (2, 3, 3), 3, 2, 1, False),
    ((1, 4, 5, 5), (4, 3, 3), 1, 1, 2, True),        # grouped, as AlexNet conv2/4/5
    ((2, 4, 6, 5), (6, 2, 3), (2, 1), (0, 1), 2, True),
    ((1, 2, 3, 4), (2, 5, 6), 1, 1, 1, True),        # kernel == padded input: one output pixel
    ((1, 3, 1, 1), (2, 1, 1), 1, 0, 1, True),        # 1x1 image
    ((1, 2, 1, 1), (2, 3, 3), 1, 1, 2, True),        # 1x1 image, padded 3x3, groups
    ((1, 1, 9, 9), (2, 5, 5), 4, 2, 1, True),        # strided, like conv1
]


@pytest.mark.parametrize("case", GRAD_CASES, ids=lambda c: f"{c[0]}-{c[1]}-s{c[2]}-p{c[3]}-g{c[4]}")
def test_gradcheck(kernel_mode, case):
    (N, C, H, W), (O, kh, kw), stride, padding, groups, with_bias = case
    rng = np.random.default_rng(4)
    x = tc.tensor(rng.standard_normal((N, C, H, W)), requires_grad=True)
    w = tc.tensor(rng.standard_normal((O, C // groups, kh, kw)), requires_grad=True)
    inputs = [x, w] + ([tc.tensor(rng.standard_normal(O), requires_grad=True)] if with_bias else [])
    assert tc.gradcheck(lambda *t: F.conv2d(*t, stride=stride, padding=padding, groups=groups), inputs)


# --------------------------------------------------------------------------- PyTorch parity

TORCH_CASES = [  # (N, C, H, W), (O, kh, kw), stride, padding, groups
    ((2, 3, 10, 9), (4, 3, 3), 1, 1, 1),
    ((3, 4, 11, 8), (6, 3, 2), (2, 3), (1, 2), 2),
    ((1, 6, 7, 7), (9, 1, 1), 1, 0, 3),
    ((2, 3, 35, 35), (8, 11, 11), 4, 2, 1),          # AlexNet conv1 geometry on a small image
    ((2, 3, 224, 224), (64, 11, 11), 4, 2, 1),       # torchvision AlexNet conv1, full size
    ((2, 96, 27, 27), (256, 5, 5), 1, 2, 2),         # AlexNet conv2 (two groups, as in the paper)
    ((2, 256, 13, 13), (384, 3, 3), 1, 1, 1),        # AlexNet conv3
    ((2, 384, 13, 13), (256, 3, 3), 1, 1, 2),        # AlexNet conv5 (two groups)
]


def _compare_with_torch(torch, case, dtype, with_bias=True):
    (N, C, H, W), (O, kh, kw), stride, padding, groups = case
    rng = np.random.default_rng(5)
    x_np = rng.standard_normal((N, C, H, W)).astype(dtype)
    w_np = (rng.standard_normal((O, C // groups, kh, kw)) / np.sqrt(C // groups * kh * kw)).astype(dtype)
    b_np = rng.standard_normal(O).astype(dtype)
    x, w, b = (tc.tensor(a, requires_grad=True) for a in (x_np, w_np, b_np))
    y = F.conv2d(x, w, b if with_bias else None, stride=stride, padding=padding, groups=groups)
    gy_np = rng.standard_normal(y.shape).astype(dtype)
    y.backward(tc.tensor(gy_np))

    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x_np, w_np, b_np))
    yt = torch.nn.functional.conv2d(xt, wt, bt if with_bias else None, stride=stride, padding=padding,
                                    groups=groups)
    yt.backward(torch.tensor(gy_np))

    assert y.shape == tuple(yt.shape) and y.dtype == dtype
    # relative to each array's scale: float32 sums over up to a few thousand products
    rtol = 1e-10 if dtype == np.float64 else 1e-5
    pairs = [(y, yt), (x.grad, xt.grad), (w.grad, wt.grad)] + ([(b.grad, bt.grad)] if with_bias else [])
    for ours, theirs in pairs:
        assert ours.dtype == dtype
        theirs = theirs.detach().numpy()
        np.testing.assert_allclose(ours.array, theirs, rtol=rtol, atol=rtol * np.abs(theirs).max())
    if not with_bias:
        assert b.grad is None


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", TORCH_CASES, ids=lambda c: f"{c[0]}-{c[1]}-s{c[2]}-p{c[3]}-g{c[4]}")
def test_matches_torch(kernel_mode, torch, case, dtype):
    _compare_with_torch(torch, case, dtype)


def test_matches_torch_without_bias(kernel_mode, torch):
    _compare_with_torch(torch, TORCH_CASES[1], np.float64, with_bias=False)


def test_unbatched_input_matches_torch(kernel_mode, torch):
    rng = np.random.default_rng(8)
    x_np, w_np, b_np = (rng.standard_normal(s) for s in [(4, 7, 6), (6, 2, 3, 3), (6,)])
    x, w, b = (tc.tensor(a, requires_grad=True) for a in (x_np, w_np, b_np))
    y = F.conv2d(x, w, b, 2, 1, 1, 2)
    assert y.shape == (6, 4, 3)
    gy = rng.standard_normal(y.shape)
    y.backward(tc.tensor(gy))
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x_np, w_np, b_np))
    yt = torch.nn.functional.conv2d(xt, wt, bt, 2, 1, 1, 2)
    yt.backward(torch.tensor(gy))
    for ours, theirs in [(y, yt), (x.grad, xt.grad), (w.grad, wt.grad), (b.grad, bt.grad)]:
        np.testing.assert_allclose(ours.array, theirs.detach().numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("chunk_samples", [1, 2])
def test_batch_split_into_chunks_matches_torch(kernel_mode, torch, monkeypatch, chunk_samples):
    # a batch of 5 in chunks of 1 or 2 samples (the last one short), as a large batch on
    # the CPU is split: every chunk's GEMMs, gW's sum over chunks and gx's pieces
    from tinyconv.functional import conv
    (_, C, H, W), (O, kh, kw), stride, padding, groups = TORCH_CASES[1]
    per_sample = C * kh * kw * conv.conv_output_size(H, kh, 2, 1) * conv.conv_output_size(W, kw, 3, 2) * 8
    monkeypatch.setattr(conv, "CPU_CHUNK_BYTES", chunk_samples * per_sample)
    assert len(conv.batch_chunks(np.zeros(1), 5, per_sample)) == -(-5 // chunk_samples)
    _compare_with_torch(torch, ((5, C, H, W), (O, kh, kw), stride, padding, groups), np.float64)


def test_gradcheck_through_chunks(kernel_mode, monkeypatch):
    from tinyconv.functional import conv
    monkeypatch.setattr(conv, "CPU_CHUNK_BYTES", 1)                  # one sample per chunk
    rng = np.random.default_rng(9)
    x = tc.tensor(rng.standard_normal((3, 4, 5, 4)), requires_grad=True)
    w = tc.tensor(rng.standard_normal((6, 2, 3, 2)), requires_grad=True)
    b = tc.tensor(rng.standard_normal(6), requires_grad=True)
    assert tc.gradcheck(lambda *t: F.conv2d(*t, stride=(2, 1), padding=1, groups=2), [x, w, b])


def test_results_never_share_the_scratch_buffers(kernel_mode):
    # columns and GEMM temporaries live in reused scratch buffers; what conv2d returns
    # (y, and the gradients) must not, or the next call would overwrite them
    rng = np.random.default_rng(10)
    x = tc.tensor(rng.standard_normal((2, 4, 6, 6)), requires_grad=True)
    w = tc.tensor(rng.standard_normal((4, 2, 3, 3)), requires_grad=True)
    y1 = F.conv2d(x, w, padding=1, groups=2)
    y1.sum().backward()
    kept = [a.array.copy() for a in (y1, x.grad, w.grad)]
    x2 = tc.tensor(rng.standard_normal((2, 4, 6, 6)), requires_grad=True)
    w2 = tc.tensor(rng.standard_normal((4, 2, 3, 3)), requires_grad=True)
    F.conv2d(x2, w2, padding=1, groups=2).sum().backward()
    for a, before in zip((y1, x.grad, w.grad), kept):
        np.testing.assert_array_equal(a.array, before)


def test_kept_columns_go_back_for_the_next_step():
    # backward releases the columns forward kept; the next forward of that shape reuses them
    rng = np.random.default_rng(11)
    x = tc.tensor(rng.standard_normal((2, 4, 6, 6)), requires_grad=True)
    w = tc.tensor(rng.standard_normal((4, 2, 3, 3)), requires_grad=True)
    y1 = F.conv2d(x, w, padding=1, groups=2)
    cols1 = y1.grad_fn.saved_tensors[2]
    assert cols1 is not None and y1.grad_fn.saved_tensors[0] is None     # columns kept, not x
    y1.sum().backward()
    gw1 = w.grad.array.copy()
    w.grad = None
    y2 = F.conv2d(x, w, padding=1, groups=2)
    assert np.shares_memory(y2.grad_fn.saved_tensors[2], cols1)
    y2.sum().backward()
    np.testing.assert_array_equal(w.grad.array, gw1)


def test_retain_graph_keeps_the_columns(kernel_mode):
    # a graph kept for a second backward keeps its columns: another forward in between
    # of the same shape must not take them
    rng = np.random.default_rng(12)
    x = tc.tensor(rng.standard_normal((2, 4, 6, 6)), requires_grad=True)
    w = tc.tensor(rng.standard_normal((4, 2, 3, 3)), requires_grad=True)
    y = F.conv2d(x, w, padding=1, groups=2)
    y.sum().backward(retain_graph=True)
    once = w.grad.array.copy()
    F.conv2d(tc.tensor(rng.standard_normal((2, 4, 6, 6))), w, padding=1, groups=2).sum().backward()
    w.grad = tc.tensor(once)
    y.sum().backward()
    np.testing.assert_allclose(w.grad.array, 2 * once, rtol=1e-12)


def test_empty_batch(torch):
    x = tc.tensor(np.zeros((0, 2, 5, 5)), requires_grad=True)
    w = tc.tensor(np.ones((3, 2, 3, 3)), requires_grad=True)
    y = F.conv2d(x, w, padding=1)
    assert y.shape == (0, 3, 5, 5)
    y.sum().backward()
    assert x.grad.shape == (0, 2, 5, 5)
    np.testing.assert_array_equal(w.grad.array, np.zeros((3, 2, 3, 3)))


# --------------------------------------------------------------------------- the op's bookkeeping


def test_hand_worked_example():
    # 1 channel 3x3 image 1..9, 2x2 kernel of ones, stride 1: each output = sum of a 2x2 block
    x = tc.tensor(np.arange(1.0, 10.0).reshape(1, 1, 3, 3), requires_grad=True)
    w = tc.tensor(np.ones((1, 1, 2, 2)), requires_grad=True)
    b = tc.tensor(np.array([0.5]), requires_grad=True)
    y = F.conv2d(x, w, b)
    np.testing.assert_array_equal(y.array, [[[[12.5, 16.5], [24.5, 28.5]]]])
    y.sum().backward()
    # the centre pixel is in all four windows, corners in one, edges in two
    np.testing.assert_array_equal(x.grad.array, [[[[1, 2, 1], [2, 4, 2], [1, 2, 1]]]])
    np.testing.assert_array_equal(w.grad.array, [[[[12, 16], [24, 28]]]])   # sums of the 2x2 blocks
    np.testing.assert_array_equal(b.grad.array, [4.0])


def test_groups_keep_channels_apart():
    # groups=2: output channel 0 sees only input channel 0, output 1 only input 1
    x_np = np.zeros((1, 2, 3, 3))
    x_np[0, 1] = 1.0
    y = F.conv2d(tc.tensor(x_np), tc.tensor(np.ones((2, 1, 3, 3))), groups=2)
    np.testing.assert_array_equal(y.array.ravel(), [0.0, 9.0])


def test_gradients_only_where_needed():
    rng = np.random.default_rng(6)
    x = tc.tensor(rng.standard_normal((1, 2, 5, 5)), requires_grad=True)
    w = tc.tensor(rng.standard_normal((3, 2, 3, 3)))      # frozen weight: x is not kept
    y = F.conv2d(x, w)
    assert y.grad_fn.saved_tensors[0] is None
    y.sum().backward()
    assert x.grad is not None and w.grad is None

    x2 = tc.tensor(x.array)
    w2 = tc.tensor(w.array, requires_grad=True)
    F.conv2d(x2, w2).sum().backward()
    assert x2.grad is None and w2.grad is not None


def test_no_grad_keeps_no_graph():
    x = tc.tensor(np.ones((1, 1, 4, 4)), requires_grad=True)
    w = tc.tensor(np.ones((1, 1, 3, 3)), requires_grad=True)
    with tc.no_grad():
        y = F.conv2d(x, w)
    assert not y.requires_grad and y.grad_fn is None


def test_non_contiguous_input(kernel_mode):
    rng = np.random.default_rng(7)
    base = rng.standard_normal((2, 6, 6, 3))                 # NHWC, viewed as NCHW below
    x_view = tc.tensor(base).permute(0, 3, 1, 2)
    w = tc.tensor(rng.standard_normal((2, 3, 3, 3)))
    expected = F.conv2d(tc.tensor(np.ascontiguousarray(base.transpose(0, 3, 1, 2))), w, padding=1)
    np.testing.assert_allclose(F.conv2d(x_view, w, padding=1).array, expected.array, rtol=1e-14)


def test_function_is_exposed_for_learners():
    assert "backward" in Conv2dFn.__doc__ and "im2col" in Conv2dFn.__doc__


# --------------------------------------------------------------------------- bad input


def _xw(x_shape=(1, 4, 5, 5), w_shape=(2, 4, 3, 3), dtype=np.float32):
    return tc.tensor(np.zeros(x_shape, dtype)), tc.tensor(np.zeros(w_shape, dtype))


@pytest.mark.parametrize("x_shape, w_shape, match", [
    ((5, 5), (2, 4, 3, 3), r"conv2d: expected input to be 4-d .*got shape \(5, 5\)"),
    ((1, 1, 4, 5, 5), (2, 4, 3, 3), r"conv2d: expected input to be 4-d .*got shape \(1, 1, 4, 5, 5\)"),
    ((1, 4, 5, 5), (2, 4, 3), r"conv2d: expected weight to be 4-d .*got shape \(2, 4, 3\)"),
])
def test_wrong_rank(x_shape, w_shape, match):
    with pytest.raises(ValueError, match=match):
        F.conv2d(*_xw(x_shape, w_shape))


def test_channel_mismatch():
    with pytest.raises(ValueError, match=r"conv2d: input has 4 channels .*expects 3"):
        F.conv2d(*_xw((1, 4, 5, 5), (2, 3, 3, 3)))
    with pytest.raises(ValueError, match=r"conv2d: input has 4 channels .*groups=2 expects 8"):
        F.conv2d(*_xw((1, 4, 5, 5), (2, 4, 3, 3)), groups=2)


def test_groups_must_divide_channels():
    with pytest.raises(ValueError, match=r"conv2d: out_channels .* = 3\) must be divisible by groups=2"):
        F.conv2d(*_xw((1, 4, 5, 5), (3, 2, 3, 3)), groups=2)
    with pytest.raises(ValueError, match=r"conv2d: groups must be a positive int, got 0"):
        F.conv2d(*_xw(), groups=0)


def test_kernel_larger_than_padded_input():
    with pytest.raises(ValueError, match=r"conv2d: kernel size \(5, 3\) is larger than the padded input "
                                         r"\(4, 6\)"):
        F.conv2d(*_xw((1, 4, 4, 4), (2, 4, 5, 3)), padding=(0, 1))
    F.conv2d(*_xw((1, 4, 4, 4), (2, 4, 5, 3)), padding=1)       # fits once padded: no error


@pytest.mark.parametrize("stride", [0, -1, (1, 0)])
def test_non_positive_stride(stride):
    with pytest.raises(ValueError, match=r"conv2d: stride must be >= 1"):
        F.conv2d(*_xw(), stride=stride)


def test_negative_padding():
    with pytest.raises(ValueError, match=r"conv2d: padding must be >= 0, got -1"):
        F.conv2d(*_xw(), padding=-1)


def test_stride_of_wrong_type():
    with pytest.raises(TypeError, match=r"conv2d: stride must be an int or a pair of ints, got 1.5"):
        F.conv2d(*_xw(), stride=1.5)


def test_bias_of_wrong_shape():
    x, w = _xw()
    with pytest.raises(ValueError, match=r"conv2d: expected bias of shape \(2,\) .*got \(3,\)"):
        F.conv2d(x, w, tc.tensor(np.zeros(3, np.float32)))
    with pytest.raises(ValueError, match=r"conv2d: expected bias of shape \(2,\) .*got \(1, 2\)"):
        F.conv2d(x, w, tc.tensor(np.zeros((1, 2), np.float32)))


def test_mixed_dtypes():
    x, _ = _xw(dtype=np.float32)
    _, w = _xw(dtype=np.float64)
    with pytest.raises(TypeError, match=r"conv2d: expected one dtype, got input float32, weight float64"):
        F.conv2d(x, w)
    x, w = _xw()
    with pytest.raises(TypeError, match=r"conv2d: expected one dtype, .*bias float64"):
        F.conv2d(x, w, tc.tensor(np.zeros(2)))


def test_integer_input():
    with pytest.raises(TypeError, match=r"conv2d: expected a floating point input, got int64"):
        F.conv2d(tc.tensor(np.zeros((1, 4, 5, 5), np.int64)), _xw()[1])


def test_not_a_tensor():
    with pytest.raises(TypeError, match=r"conv2d: input must be a Tensor, got ndarray"):
        F.conv2d(np.zeros((1, 4, 5, 5)), _xw()[1])


def test_bad_dilation_and_padding_strings():
    # dilation and padding="same"/"valid" themselves are tested in test_dilation.py
    with pytest.raises(ValueError, match=r"conv2d: dilation must be >= 1, got 0"):
        F.conv2d(*_xw(), dilation=0)
    with pytest.raises(ValueError, match=r"conv2d: kernel size \(3, 3\) \(dilated by \(3, 3\): \(7, 7\)\) is "
                                         r"larger than the padded input \(5, 5\)"):
        F.conv2d(*_xw(), dilation=3)
    with pytest.raises(ValueError, match=r"conv2d: invalid padding string 'full', should be one of"):
        F.conv2d(*_xw(), padding="full")
    with pytest.raises(ValueError, match=r"conv2d: padding='same' is not supported for strided convolutions"):
        F.conv2d(*_xw(), stride=2, padding="same")


def test_positional_arguments_follow_pytorch():
    # torch.nn.functional.conv2d(input, weight, bias, stride, padding, dilation, groups)
    x, w = _xw((1, 4, 6, 6), (2, 2, 3, 3))
    y = F.conv2d(x, w, None, 2, 1, 1, 2)
    assert y.shape == (1, 2, 3, 3)

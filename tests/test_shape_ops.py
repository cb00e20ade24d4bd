"""Shape, indexing and product ops (tinyconv/shape_ops.py) against PyTorch, in float64.

``CASES`` is one table: a name, a call written once for both libraries (``m`` is ``torch``
or ``tinyconv``; tensors follow), and the input arrays (float arrays require grad, integer
and bool ones are indices/masks).  Each row is compared with PyTorch -- outputs (a tensor or
a tuple of them, with shapes and dtypes) and the gradients of a random cotangent -- and
gradchecked.  ``ERRORS`` holds bad calls: same exception type as PyTorch, and its message
word for word where ``exact``.  Then views (writes through narrow/diagonal/split results,
a base's writes seen through expand), in-place scatter_/tril_ through autograd, and Tensor
size/dim helpers.  These ops are NumPy/CuPy array code with no kernel of their own, so
there is no fast path to run them through separately.
"""
import warnings

import numpy as np
import pytest

import tinyconv as tc

torch = pytest.importorskip("torch", reason="PyTorch (the test oracle) is not installed")

_rng = np.random.default_rng(0)


def R(*shape):
    return _rng.standard_normal(shape)


def I(*values):  # noqa: E743  (an index array)
    return np.array(values, dtype=np.int64)


_ZEROS = np.array([[1.5, 0.0, 2.0, -1.0], [0.0, 0.0, 3.0, 0.5]])

CASES = [
    # join and split
    ("cat", lambda m, a, b: m.cat([a, b], 1), [R(2, 3), R(2, 4)]),
    ("cat_neg_dim", lambda m, a, b: m.cat((a, b), -2), [R(2, 3), R(1, 3)]),
    ("cat_three", lambda m, a, b, c: m.cat([a, b, c]), [R(2), R(3), R(1)]),
    ("concat", lambda m, a, b: m.concat([a, b], 0), [R(1, 2), R(3, 2)]),
    ("concatenate", lambda m, a, b: m.concatenate([a, b], 1), [R(2, 0), R(2, 2)]),
    ("cat_legacy_empty", lambda m, a, b: m.cat([a, b]), [R(0), R(2, 3)]),
    ("cat_empty_rows", lambda m, a, b: m.cat([a, b]), [R(0, 3), R(2, 3)]),
    ("stack", lambda m, a, b: m.stack([a, b]), [R(2, 3), R(2, 3)]),
    ("stack_last", lambda m, a, b: m.stack([a, b], -1), [R(2, 3), R(2, 3)]),
    ("stack_0d", lambda m, a, b: m.stack([a, b]), [R(), R()]),
    ("hstack_1d", lambda m, a, b: m.hstack([a, b]), [R(2), R(3)]),
    ("hstack_2d", lambda m, a, b: m.hstack([a, b]), [R(2, 1), R(2, 3)]),
    ("vstack_1d", lambda m, a, b: m.vstack([a, b]), [R(3), R(3)]),
    ("vstack_2d", lambda m, a, b: m.vstack([a, b]), [R(1, 3), R(2, 3)]),
    ("chunk", lambda m, x: x.chunk(3, 1), [R(2, 7)]),
    ("chunk_fn", lambda m, x: m.chunk(x, 2), [R(5)]),
    ("chunk_more_than_size", lambda m, x: x.chunk(5), [R(3)]),
    ("chunk_empty", lambda m, x: x.chunk(2), [R(0)]),
    ("split_int", lambda m, x: x.split(2), [R(5, 3)]),
    ("split_list", lambda m, x: m.split(x, [1, 0, 2], dim=1), [R(2, 3)]),
    ("split_empty", lambda m, x: x.split(2), [R(0, 2)]),
    ("unbind", lambda m, x: x.unbind(), [R(3, 2)]),
    ("unbind_dim", lambda m, x: m.unbind(x, -1), [R(3, 2)]),
    # size-1 dims, broadcasting views, repeats
    ("squeeze_all", lambda m, x: x.squeeze(), [R(1, 3, 1)]),
    ("squeeze_dim", lambda m, x: x.squeeze(-1), [R(1, 3, 1)]),
    ("squeeze_not_one", lambda m, x: m.squeeze(x, 1), [R(1, 3, 1)]),
    ("squeeze_tuple", lambda m, x: x.squeeze((0, 2)), [R(1, 3, 1)]),
    ("squeeze_0d", lambda m, x: x.squeeze(0), [R()]),
    ("unsqueeze", lambda m, x: x.unsqueeze(1), [R(2, 3)]),
    ("unsqueeze_end", lambda m, x: m.unsqueeze(x, -1), [R(2, 3)]),
    ("unsqueeze_0d", lambda m, x: x.unsqueeze(0), [R()]),
    ("expand", lambda m, x: x.expand(4, 2, 3), [R(2, 3)]),
    ("expand_minus_one", lambda m, x: x.expand(-1, 3), [R(2, 1)]),
    ("expand_tuple", lambda m, x: x.expand((2, 1, 4)), [R(1, 1)]),
    ("expand_0d", lambda m, x: x.expand(3), [R()]),
    ("expand_as", lambda m, x, y: x.expand_as(y), [R(3, 1), R(3, 4)]),
    ("repeat", lambda m, x: x.repeat(2, 1, 3), [R(2, 3)]),
    ("repeat_tuple", lambda m, x: x.repeat((2, 2)), [R(2, 3)]),
    ("repeat_0d", lambda m, x: x.repeat(3), [R()]),
    ("repeat_zero", lambda m, x: x.repeat(0, 2), [R(2)]),
    ("tile_fewer", lambda m, x: x.tile((2,)), [R(2, 3)]),
    ("tile_more", lambda m, x: m.tile(x, (2, 1, 2)), [R(2, 3)]),
    # reshaping views
    ("view_as", lambda m, x, y: x.view_as(y), [R(2, 3), R(6)]),
    ("reshape_as", lambda m, x, y: x.reshape_as(y), [R(2, 3), R(3, 2)]),
    ("unflatten", lambda m, x: x.unflatten(1, (2, 3)), [R(2, 6)]),
    ("unflatten_infer", lambda m, x: m.unflatten(x, -1, (-1, 2)), [R(2, 6)]),
    ("t", lambda m, x: x.t(), [R(2, 3)]),
    ("t_1d", lambda m, x: m.t(x), [R(3)]),
    ("t_0d", lambda m, x: x.t(), [R()]),
    ("T", lambda m, x: x.T, [R(2, 3)]),
    ("mT", lambda m, x: x.mT, [R(2, 3, 4)]),
    ("contiguous", lambda m, x: x.t().contiguous(), [R(2, 3)]),
    ("narrow", lambda m, x: x.narrow(1, 1, 2), [R(2, 4)]),
    ("narrow_neg_start", lambda m, x: m.narrow(x, 0, -2, 1), [R(3, 2)]),
    ("narrow_empty", lambda m, x: x.narrow(0, 3, 0), [R(3, 2)]),
    ("movedim", lambda m, x: x.movedim(0, -1), [R(2, 3, 4)]),
    ("movedim_tuple", lambda m, x: m.movedim(x, (0, 1), (2, 0)), [R(2, 3, 4)]),
    ("moveaxis", lambda m, x: m.moveaxis(x, 2, 0), [R(2, 3, 4)]),
    ("swapaxes", lambda m, x: x.swapaxes(0, 2), [R(2, 3, 4)]),
    ("swapdims", lambda m, x: m.swapdims(x, -1, 0), [R(2, 3)]),
    ("diagonal", lambda m, x: x.diagonal(), [R(3, 4)]),
    ("diagonal_offset", lambda m, x: m.diagonal(x, 1), [R(3, 4)]),
    ("diagonal_neg_offset", lambda m, x: x.diagonal(-1), [R(3, 4)]),
    ("diagonal_dims", lambda m, x: x.diagonal(0, 0, 2), [R(2, 3, 4)]),
    ("diagonal_beyond", lambda m, x: x.diagonal(5), [R(3, 4)]),
    # reordering
    ("flip", lambda m, x: x.flip(0), [R(3, 2)]),
    ("flip_dims", lambda m, x: m.flip(x, (0, -1)), [R(3, 2)]),
    ("flip_varargs", lambda m, x: x.flip(1, 0), [R(3, 2)]),
    ("roll_flat", lambda m, x: x.roll(1), [R(2, 3)]),
    ("roll_dims", lambda m, x: m.roll(x, (1, -2), (0, 1)), [R(2, 3)]),
    ("roll_one_dim", lambda m, x: x.roll(-1, 1), [R(2, 3)]),
    ("argsort", lambda m, x: x.argsort(), [R(3, 4)]),
    ("argsort_desc", lambda m, x: m.argsort(x, dim=0, descending=True), [R(3, 4)]),
    ("argsort_stable", lambda m, x: x.argsort(stable=True), [np.array([2.0, 1.0, 2.0, 1.0])]),
    # indexing
    ("gather", lambda m, x, i: x.gather(1, i), [R(2, 3), I([0, 2], [1, 1])]),
    ("gather_dim0", lambda m, x, i: m.gather(x, 0, i), [R(3, 2), I([2, 0], [1, 1], [0, 0], [2, 2])]),
    ("gather_smaller", lambda m, x, i: x.gather(-1, i), [R(3, 4), I([3], [0])]),
    ("gather_int32", lambda m, x, i: x.gather(1, i), [R(2, 3), np.array([[2], [0]], np.int32)]),
    ("gather_empty", lambda m, x, i: x.gather(1, i), [R(2, 3), np.zeros((2, 0), np.int64)]),
    ("gather_0d", lambda m, x, i: x.gather(0, i), [R(), I(0)]),
    ("scatter", lambda m, x, i, s: x.scatter(1, i, s), [R(2, 4), I([0, 3], [2, 1]), R(2, 2)]),
    ("scatter_value", lambda m, x, i: m.scatter(x, 0, i, 2.5), [R(3, 2), I([2, 0])]),
    ("scatter_value_kw", lambda m, x, i: x.scatter(0, i, value=-1.0), [R(3, 2), I([1, 0])]),
    ("scatter_add", lambda m, x, i, s: x.scatter_add(0, i, s),
     [R(3, 2), I([0, 0], [2, 0], [0, 1]), R(3, 2)]),
    ("scatter_add_fn", lambda m, x, i, s: m.scatter_add(x, 1, i, s), [R(2, 3), I([1, 1]), R(1, 2)]),
    ("scatter_add_0d", lambda m, x, i, s: x.scatter_add(0, i, s), [R(), I(0), R()]),
    ("index_select", lambda m, x, i: x.index_select(0, i), [R(3, 2), I(2, 0, 2)]),
    ("index_select_dim1", lambda m, x, i: m.index_select(x, 1, i), [R(3, 2), I(1)]),
    ("index_select_0d_index", lambda m, x, i: x.index_select(1, i), [R(3, 2), I(1).reshape(())]),
    ("index_select_empty", lambda m, x, i: x.index_select(0, i), [R(3, 2), I()]),
    ("masked_select", lambda m, x, k: x.masked_select(k),
     [R(2, 3), np.array([[True, False, True], [False, False, True]])]),
    ("masked_select_broadcast", lambda m, x, k: m.masked_select(x, k),
     [R(2, 3), np.array([True, False, True])]),
    ("masked_select_0d", lambda m, x, k: x.masked_select(k), [R(), np.array(True)]),
    ("take", lambda m, x, i: x.take(i), [R(2, 3), I([0, -1], [4, 4])]),
    ("take_fn", lambda m, x, i: m.take(x, i), [R(4), I(3)]),
    ("nonzero", lambda m, x: x.nonzero(), [_ZEROS]),
    ("nonzero_tuple", lambda m, x: m.nonzero(x, as_tuple=True), [_ZEROS]),
    ("nonzero_0d", lambda m, x: x.nonzero(), [np.array(2.0)]),
    ("nonzero_0d_tuple", lambda m, x: x.nonzero(as_tuple=True), [np.array(2.0)]),
    ("nonzero_empty", lambda m, x: x.nonzero(), [R(0, 3)]),
    # triangles and diagonals
    ("tril", lambda m, x: x.tril(), [R(3, 4)]),
    ("tril_k", lambda m, x: m.tril(x, -1), [R(3, 4)]),
    ("triu", lambda m, x: x.triu(1), [R(3, 4)]),
    ("triu_batched", lambda m, x: m.triu(x), [R(2, 3, 4)]),
    ("diag_embed", lambda m, x: m.diag(x), [R(3)]),
    ("diag_embed_k", lambda m, x: x.diag(1), [R(3)]),
    ("diag_embed_neg_k", lambda m, x: m.diag(x, -2), [R(2)]),
    ("diag_of_matrix", lambda m, x: m.diag(x, 1), [R(3, 4)]),
    # scans
    ("cumsum", lambda m, x: x.cumsum(0), [R(3, 4)]),
    ("cumsum_last", lambda m, x: m.cumsum(x, dim=-1), [R(3, 4)]),
    ("cumsum_0d", lambda m, x: x.cumsum(0), [R()]),
    ("cumsum_int", lambda m, x: x.cumsum(0), [I(1, 2, 3)]),
    ("cumsum_dtype", lambda m, x: x.cumsum(0, dtype=m.float64), [I(1, 2, 3)]),
    ("cumsum_empty", lambda m, x: x.cumsum(1), [R(2, 0)]),
    ("cumprod", lambda m, x: x.cumprod(1), [R(3, 4)]),
    ("cumprod_zeros", lambda m, x: m.cumprod(x, dim=1), [_ZEROS]),
    ("cumprod_zeros_dim0", lambda m, x: x.cumprod(0), [_ZEROS.T.copy()]),
    # norms
    ("norm", lambda m, x: x.norm(), [R(3, 4)]),
    ("norm_p1", lambda m, x: x.norm(1), [R(3, 4)]),
    ("norm_inf", lambda m, x: x.norm(float("inf")), [R(3, 4)]),
    ("norm_neg_inf", lambda m, x: m.norm(x, float("-inf"), dim=1), [R(3, 4)]),
    ("norm_p3", lambda m, x: x.norm(3, dim=0), [R(3, 4)]),
    ("norm_p0", lambda m, x: x.norm(0), [_ZEROS]),
    ("norm_dim_keepdim", lambda m, x: m.norm(x, dim=1, keepdim=True), [R(3, 4)]),
    ("norm_fro_dims", lambda m, x: x.norm("fro", dim=(0, 2)), [R(2, 3, 4)]),
    ("norm_0d", lambda m, x: x.norm(), [R()]),
    ("norm_zero_vector", lambda m, x: x.norm(dim=1), [np.array([[0.0, 0.0], [3.0, 4.0]])]),
    ("norm_empty", lambda m, x: x.norm(), [R(0, 3)]),
    ("linalg_norm", lambda m, x: m.linalg.norm(x), [R(3, 4)]),
    ("linalg_norm_vector", lambda m, x: m.linalg.norm(x, 1, dim=0), [R(3, 4)]),
    ("linalg_vector_norm", lambda m, x: m.linalg.vector_norm(x, 3, dim=(0, 1)), [R(3, 4)]),
    ("linalg_norm_matrix_ord", lambda m, x: m.linalg.norm(x, 1), [R(3, 4)]),
    ("linalg_norm_dims", lambda m, x: m.linalg.norm(x, dim=(0, 2)), [R(2, 3, 4)]),
    ("matrix_norm_fro", lambda m, x: m.linalg.matrix_norm(x), [R(2, 3, 4)]),
    ("matrix_norm_1", lambda m, x: m.linalg.matrix_norm(x, 1), [R(2, 3, 4)]),
    ("matrix_norm_neg_1", lambda m, x: m.linalg.matrix_norm(x, -1, keepdim=True), [R(2, 3, 4)]),
    ("matrix_norm_inf", lambda m, x: m.linalg.matrix_norm(x, float("inf"), dim=(2, 0)), [R(2, 3, 4)]),
    ("matrix_norm_neg_inf", lambda m, x: m.linalg.matrix_norm(x, -float("inf")), [R(3, 4)]),
    ("matrix_norm_2", lambda m, x: m.linalg.matrix_norm(x, 2), [R(2, 3, 4)]),
    ("matrix_norm_neg_2", lambda m, x: m.linalg.matrix_norm(x, -2, dim=(-1, 0), keepdim=True),
     [R(3, 4, 2)]),
    ("matrix_norm_nuc", lambda m, x: m.linalg.matrix_norm(x, "nuc"), [R(4, 3)]),
    ("norm_nuc", lambda m, x: x.norm(p="nuc"), [R(3, 4)]),
    ("svdvals", lambda m, x: m.linalg.svdvals(x), [R(2, 3, 4)]),
    # products
    ("mm", lambda m, a, b: a.mm(b), [R(2, 3), R(3, 4)]),
    ("mm_fn", lambda m, a, b: m.mm(a, b), [R(1, 3), R(3, 1)]),
    ("bmm", lambda m, a, b: m.bmm(a, b), [R(2, 2, 3), R(2, 3, 4)]),
    ("dot", lambda m, a, b: a.dot(b), [R(3), R(3)]),
    ("dot_empty", lambda m, a, b: m.dot(a, b), [R(0), R(0)]),
    ("outer", lambda m, a, b: m.outer(a, b), [R(3), R(2)]),
    ("ger", lambda m, a, b: a.ger(b), [R(3), R(2)]),
    ("einsum_matmul", lambda m, a, b: m.einsum("ij,jk->ik", a, b), [R(2, 3), R(3, 4)]),
    ("einsum_batched", lambda m, a, b: m.einsum("bij,bjk->bik", a, b), [R(2, 2, 3), R(2, 3, 4)]),
    ("einsum_transpose", lambda m, a: m.einsum("ij->ji", a), [R(2, 3)]),
    ("einsum_sum", lambda m, a: m.einsum("ij->", a), [R(2, 3)]),
    ("einsum_dot", lambda m, a, b: m.einsum("i,i->", a, b), [R(3), R(3)]),
    ("einsum_outer", lambda m, a, b: m.einsum("i,j->ij", a, b), [R(3), R(2)]),
    ("einsum_rowdot", lambda m, a, b: m.einsum("ij,ij->i", a, b), [R(2, 3), R(2, 3)]),
    ("einsum_implicit", lambda m, a, b: m.einsum("ij,jk", a, b), [R(2, 3), R(3, 4)]),
    ("einsum_spaces_list", lambda m, a, b: m.einsum("ij, kj -> ki", [a, b]), [R(2, 3), R(4, 3)]),
    ("einsum_lonely_index", lambda m, a, b: m.einsum("ij,k->i", a, b), [R(2, 3), R(4)]),
    ("einsum_broadcast_one", lambda m, a, b: m.einsum("ij,ij->ij", a, b), [R(2, 1), R(2, 3)]),
    ("einsum_three", lambda m, a, b, c: m.einsum("ab,bc,cd->ad", a, b, c), [R(2, 3), R(3, 2), R(2, 2)]),
    ("einsum_diagonal", lambda m, a: m.einsum("ii->i", a), [R(3, 3)]),
    ("einsum_trace", lambda m, a: m.einsum("ii", a), [R(3, 3)]),
    ("einsum_repeat_and_other", lambda m, a, b: m.einsum("iij,j->i", a, b), [R(2, 2, 3), R(3)]),
    ("einsum_ellipsis", lambda m, a, b: m.einsum("...ij,...jk->...ik", a, b), [R(2, 2, 3), R(3, 4)]),
    ("einsum_ellipsis_broadcast", lambda m, a, b: m.einsum("...i,...i->...", a, b), [R(2, 1, 3), R(4, 3)]),
    ("einsum_ellipsis_summed", lambda m, a: m.einsum("i...->i", a), [R(2, 3, 4)]),
    ("einsum_ellipsis_implicit", lambda m, a: m.einsum("...ji", a), [R(2, 3, 4)]),
    ("einsum_ellipsis_empty", lambda m, a, b: m.einsum("...i,i->...", a, b), [R(3), R(3)]),
    ("meshgrid_ij", lambda m, a, b: m.meshgrid(a, b, indexing="ij"), [R(3), R(2)]),
    ("meshgrid_xy", lambda m, a, b, c: m.meshgrid([a, b, c], indexing="xy"), [R(3), R(2), R(4)]),
    ("meshgrid_0d", lambda m, a, b: m.meshgrid(a, b, indexing="ij"), [R(), R(2)]),
]


def _make(lib, arrays):
    out = []
    for a in arrays:
        if lib is torch:
            out.append(torch.tensor(a, requires_grad=a.dtype.kind == "f"))
        else:
            out.append(tc.tensor(a, requires_grad=a.dtype.kind == "f"))
    return out


def _outputs(out):
    return list(out) if isinstance(out, tuple) else [out]


def _np(t):
    return t.detach().numpy() if isinstance(t, torch.Tensor) else np.asarray(t.detach().array)


def _call(fn, lib, tensors):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(lib, *tensors)


@pytest.mark.parametrize("name,fn,arrays", CASES, ids=[c[0] for c in CASES])
def test_against_pytorch(name, fn, arrays):
    ts, ours = _make(torch, arrays), _make(tc, arrays)
    want, got = _call(fn, torch, ts), _call(fn, tc, ours)
    assert isinstance(got, tuple) == isinstance(want, tuple), (type(got), type(want))
    wants, gots = _outputs(want), _outputs(got)
    assert len(gots) == len(wants)
    for g, w in zip(gots, wants):
        assert isinstance(g, tc.Tensor), type(g)
        gn, wn = _np(g), _np(w)
        assert gn.shape == wn.shape and gn.dtype == wn.dtype, (gn.shape, wn.shape, gn.dtype, wn.dtype)
        np.testing.assert_allclose(gn, wn, rtol=1e-12, atol=1e-12)
    graded = [k for k, w in enumerate(wants) if w.requires_grad]
    assert [k for k, g in enumerate(gots) if g.requires_grad] == graded
    if not graded:
        return
    cots = [_rng.standard_normal(wants[k].shape) for k in graded]
    sum(((wants[k] * torch.tensor(r)).sum() for k, r in zip(graded, cots))).backward()
    sum(((gots[k] * tc.tensor(r)).sum() for k, r in zip(graded, cots))).backward()
    for t, o in zip(ts, ours):
        if t.requires_grad:
            want_g = np.zeros(t.shape) if t.grad is None else t.grad.numpy()
            got_g = np.zeros(t.shape) if o.grad is None else o.grad.numpy()
            np.testing.assert_allclose(got_g, want_g, rtol=1e-10, atol=1e-12)


GRADCHECKED = [c for c in CASES if any(a.dtype.kind == "f" and a.size for a in c[2])
               and c[0] not in ("nonzero", "nonzero_tuple", "nonzero_0d", "nonzero_0d_tuple",
                                "argsort", "argsort_desc", "argsort_stable", "norm_p0")]


@pytest.mark.parametrize("name,fn,arrays", GRADCHECKED, ids=[c[0] for c in GRADCHECKED])
def test_gradcheck(name, fn, arrays):
    def flat(*ts):
        outs = [o for o in _outputs(_call(fn, tc, ts)) if o.dtype.kind == "f"]
        return tc.cat([o.reshape(-1) for o in outs])
    tensors = _make(tc, arrays)
    assert tc.gradcheck(flat, tensors)


# --------------------------------------------------------------------------- bad input

def _long(*shape, fill=0):
    return lambda m: m.full(shape, fill, dtype=m.int64)


ERRORS = [
    # (name, call(m), exact message?)
    ("cat_sizes", lambda m: m.cat([m.zeros(2, 3), m.zeros(2, 4)]), True),
    ("cat_sizes_dim1", lambda m: m.cat([m.zeros(3, 2), m.zeros(4, 2)], 1), True),
    ("cat_ndim", lambda m: m.cat([m.zeros(2, 3), m.zeros(2, 3, 1)]), True),
    ("cat_0d", lambda m: m.cat([m.zeros(()), m.zeros(())]), True),
    ("cat_nothing", lambda m: m.cat([]), True),
    ("cat_dim", lambda m: m.cat([m.zeros(2, 3)], dim=5), True),
    ("stack_sizes", lambda m: m.stack([m.zeros(2, 3), m.zeros(2, 4)]), True),
    ("stack_nothing", lambda m: m.stack([]), True),
    ("stack_dim", lambda m: m.stack([m.zeros(2, 3)], 4), True),
    ("hstack_nothing", lambda m: m.hstack([]), True),
    ("squeeze_dim", lambda m: m.zeros(2, 3).squeeze(5), True),
    ("unsqueeze_dim", lambda m: m.zeros(2, 3).unsqueeze(3), True),
    ("expand_size", lambda m: m.zeros(2, 3).expand(2, 4), True),
    ("expand_few", lambda m: m.zeros(2, 3).expand(3), True),
    ("expand_leading_minus_one", lambda m: m.zeros(2, 3).expand(-1, 2, 3), True),
    ("repeat_few", lambda m: m.zeros(2, 3).repeat(2), True),
    ("narrow_start", lambda m: m.zeros(2, 3).narrow(1, 4, 1), True),
    ("narrow_length", lambda m: m.zeros(2, 3).narrow(1, 1, 5), True),
    ("narrow_negative_length", lambda m: m.zeros(2, 3).narrow(1, 1, -1), True),
    ("chunk_zero", lambda m: m.zeros(2, 3).chunk(0), True),
    ("split_sizes", lambda m: m.zeros(2, 3).split([1, 1], 1), True),
    ("split_negative", lambda m: m.zeros(2, 3).split(-1, 1), True),
    ("split_zero", lambda m: m.zeros(2, 3).split(0, 1), True),
    ("unbind_dim", lambda m: m.zeros(2, 3).unbind(3), True),
    ("gather_ndim", lambda m: m.zeros(2, 3).gather(1, _long(2)(m)), True),
    ("gather_size", lambda m: m.zeros(2, 3).gather(1, _long(3, 3)(m)), True),
    ("gather_bounds", lambda m: m.zeros(2, 3).gather(1, _long(2, 3, fill=5)(m)), False),
    ("gather_float_index", lambda m: m.zeros(2, 3).gather(1, m.zeros(2, 3)), True),
    ("scatter_float_index", lambda m: m.zeros(2, 3).scatter(1, m.zeros(2, 3), m.zeros(2, 3)), True),
    ("take_float_index", lambda m: m.zeros(2, 3).take(m.zeros(2)), True),
    ("take_int32_index", lambda m: m.zeros(2, 3).take(m.tensor(np.zeros(2, np.int32))), True),
    ("scatter_dtype", lambda m: m.zeros(2, 3).scatter(1, _long(2, 3)(m), m.zeros(2, 3).double()),
     True),
    ("scatter_bounds", lambda m: m.zeros(2, 3).scatter(1, _long(2, 3, fill=5)(m), m.zeros(2, 3)),
     False),
    ("scatter_src_size", lambda m: m.zeros(2, 3).scatter(1, _long(2, 3)(m), m.zeros(2, 2)), True),
    ("index_select_matrix", lambda m: m.zeros(2, 3).index_select(1, _long(2, 2)(m)), True),
    ("index_select_bounds", lambda m: m.zeros(2, 3).index_select(1, m.tensor([7])), False),
    ("bmm_dtype", lambda m: m.bmm(m.zeros(2, 2, 3), m.zeros(2, 3, 2).double()), True),
    ("index_select_float", lambda m: m.zeros(2, 3).index_select(1, m.zeros(2)), True),
    ("masked_select_float_mask", lambda m: m.zeros(2, 3).masked_select(m.zeros(2, 3)), True),
    ("masked_select_shape", lambda m: m.zeros(2, 3).masked_select(m.zeros(2, 4) > 0), True),
    ("take_bounds", lambda m: m.zeros(2, 3).take(m.tensor([10])), True),
    ("mm_vector", lambda m: m.mm(m.zeros(3), m.zeros(3, 2)), True),
    ("mm_vector2", lambda m: m.mm(m.zeros(2, 3), m.zeros(3)), True),
    ("mm_shapes", lambda m: m.mm(m.zeros(2, 3), m.zeros(2, 3)), True),
    ("mm_dtype", lambda m: m.mm(m.zeros(2, 3), m.zeros(3, 2).double()), True),
    ("bmm_ndim", lambda m: m.bmm(m.zeros(2, 3), m.zeros(3, 2)), True),
    ("bmm_shapes", lambda m: m.bmm(m.zeros(2, 2, 3), m.zeros(2, 4, 5)), True),
    ("bmm_batch", lambda m: m.bmm(m.zeros(2, 2, 3), m.zeros(3, 3, 5)), True),
    ("dot_ndim", lambda m: m.dot(m.zeros(2, 3), m.zeros(2, 3)), True),
    ("dot_size", lambda m: m.dot(m.zeros(3), m.zeros(4)), True),
    ("dot_dtype", lambda m: m.dot(m.zeros(3), m.zeros(3).double()), True),
    ("outer_ndim", lambda m: m.outer(m.zeros(2, 3), m.zeros(3)), True),
    ("tril_1d", lambda m: m.zeros(3).tril(), True),
    ("diag_3d", lambda m: m.diag(m.zeros(2, 2, 2)), True),
    ("diagonal_same_dims", lambda m: m.zeros(2, 2).diagonal(0, 0, 0), True),
    ("mT_1d", lambda m: m.zeros(3).mT, True),
    ("t_3d", lambda m: m.zeros(2, 2, 2).t(), True),
    ("roll_align", lambda m: m.zeros(2, 3).roll((1, 2), (0,)), True),
    ("movedim_repeat", lambda m: m.zeros(2, 3).movedim((0, 0), (0, 1)), True),
    ("movedim_lengths", lambda m: m.zeros(2, 3).movedim((0, 1), (0,)), True),
    ("flip_repeat", lambda m: m.zeros(2, 3).flip(0, 0), True),
    ("einsum_sizes", lambda m: m.einsum("ij,jk->ik", m.zeros(2, 3), m.zeros(2, 3)), True),
    ("einsum_few_operands", lambda m: m.einsum("ij,jk->ik", m.zeros(2, 3)), True),
    ("einsum_many_operands", lambda m: m.einsum("ij->ij", m.zeros(2, 3), m.zeros(2)), True),
    ("einsum_ndim", lambda m: m.einsum("ij->ij", m.zeros(2)), False),
    ("einsum_ellipsis_ndim", lambda m: m.einsum("...ij->ij", m.zeros(2)), False),
    ("einsum_bad_letter", lambda m: m.einsum("i1->i", m.zeros(2, 2)), True),
    ("meshgrid_2d", lambda m: m.meshgrid(m.zeros(2, 2), indexing="ij"), False),
    ("meshgrid_indexing", lambda m: m.meshgrid(m.zeros(2), indexing="foo"), True),
    ("norm_order", lambda m: m.zeros(2, 3).norm(p="bad"), True),
    ("norm_fro_three_dims", lambda m: m.zeros(2, 2, 2).norm(p="fro", dim=(0, 1, 2)), True),
    ("matrix_norm_1d", lambda m: m.linalg.matrix_norm(m.zeros(3)), True),
    ("matrix_norm_order", lambda m: m.linalg.matrix_norm(m.zeros(2, 3), 3), True),
    ("linalg_norm_3d_ord", lambda m: m.linalg.norm(m.zeros(2, 2, 2), 2), True),
    ("linalg_norm_three_dims", lambda m: m.linalg.norm(m.zeros(2, 2, 2), dim=(0, 1, 2)), True),
    ("norm_integer", lambda m: m.zeros(3, dtype=m.int64).norm(), True),
    ("norm_inf_empty", lambda m: m.zeros(0).norm(float("inf")), True),
    ("unflatten_sizes", lambda m: m.zeros(2, 3).unflatten(1, (2, 2)), True),
    ("size_dim", lambda m: m.zeros(2, 3).size(5), True),
    ("size_0d", lambda m: m.zeros(()).size(0), True),
    ("cumsum_dim", lambda m: m.zeros(2, 3).cumsum(3), True),
    ("swapaxes_dim", lambda m: m.zeros(2, 3).swapaxes(0, 3), True),
    ("argsort_dim", lambda m: m.zeros(2, 3).argsort(dim=3), True),
    ("narrow_dim", lambda m: m.zeros(2, 3).narrow(2, 0, 1), True),
    ("diagonal_dim", lambda m: m.zeros(2, 3).diagonal(0, 0, 2), True),
]


@pytest.mark.parametrize("name,call,exact", ERRORS, ids=[e[0] for e in ERRORS])
def test_errors_as_pytorch(name, call, exact):
    with pytest.raises(Exception) as want:
        call(torch)
    with pytest.raises(type(want.value)) as got:
        call(tc)
    if exact:
        assert str(got.value) == str(want.value).split("\n")[0]


# --------------------------------------------------------------------------- views


def _pair(shape=(3, 4)):
    a = np.arange(np.prod(shape), dtype=np.float64).reshape(shape)
    return torch.tensor(a), tc.tensor(a)


VIEWS = [
    ("narrow", lambda x: x.narrow(1, 1, 2)),
    ("diagonal", lambda x: x.diagonal(1)),
    ("split", lambda x: x.split(2, 1)[1]),
    ("chunk", lambda x: x.chunk(2, 0)[0]),
    ("unbind", lambda x: x.unbind(1)[2]),
    ("t", lambda x: x.t()),
    ("mT", lambda x: x.mT),
    ("squeeze", lambda x: x.unsqueeze(0).squeeze()),
    ("movedim", lambda x: x.movedim(0, 1)),
    ("swapaxes", lambda x: x.swapaxes(0, 1)),
    ("unflatten", lambda x: x.unflatten(1, (2, 2))),
    ("view_as", lambda x: x.view_as(x.reshape(12))),
    ("flip_copies", lambda x: x.flip(0)),
    ("index_select_copies", lambda x: x.index_select(0, type(x)([0, 1]).long()
                                                     if isinstance(x, torch.Tensor)
                                                     else tc.tensor([0, 1]))),
    ("diag_copies", lambda x: x.diag()),
    ("roll_copies", lambda x: x.roll(1)),
]


@pytest.mark.parametrize("name,view", VIEWS, ids=[v[0] for v in VIEWS])
def test_writes_through_views_as_pytorch(name, view):
    """A write into the result shows in the base exactly when it does in PyTorch (and the reverse)."""
    t, o = _pair()
    tv, ov = view(t), view(o)
    tv.mul_(-1)
    ov.mul_(-1)
    np.testing.assert_array_equal(o.numpy(), t.numpy())
    t.add_(100)
    o.add_(100)
    np.testing.assert_array_equal(ov.numpy(), tv.numpy())


def test_expand_sees_base_writes_and_refuses_its_own():
    t, o = _pair((3, 1))
    te, oe = t.expand(3, 4), o.expand(3, 4)
    t[1, 0] = 7.0
    o[1, 0] = 7.0
    np.testing.assert_array_equal(oe.numpy(), te.numpy())
    with pytest.raises(RuntimeError):
        te.add_(1)
    with pytest.raises(RuntimeError):
        oe.add_(1)


def test_view_versions_shared():
    o = tc.zeros(3, 4)
    v = o.narrow(0, 0, 1)
    o.add_(1)
    assert v._version == o._version == 1
    assert o.contiguous() is o and o.t().contiguous() is not o
    assert o.is_contiguous() and not o.t().is_contiguous()


INPLACE = [
    ("narrow_mul_", lambda m, y: y.narrow(1, 1, 2).mul_(3)),
    ("diagonal_add_", lambda m, y: y.diagonal().add_(y.diagonal().clone())),
    ("scatter_", lambda m, y: y.scatter_(1, m.tensor([[0], [2], [1]]), m.ones(3, 1, dtype=m.float64))),
    ("scatter_value_", lambda m, y: y.scatter_(0, m.tensor([[2, 0, 1, 0]]), 5.0)),
    ("scatter_add_", lambda m, y: y.scatter_add_(1, m.tensor([[0, 0], [3, 3], [1, 2]]), y[:, :2] * 2)),
    ("tril_", lambda m, y: y.tril_()),
    ("triu_", lambda m, y: y.triu_(1)),
    ("select_pow_", lambda m, y: y[1].pow_(2)),
]


@pytest.mark.parametrize("piece", [lambda y: y.split(2, 1)[1], lambda y: y.chunk(2)[0],
                                   lambda y: y.split([1, 3], 1)[1], lambda y: y.unbind(1)[0]],
                         ids=["split", "chunk", "split_sizes", "unbind"])
def test_inplace_into_multi_output_views_refused_as_pytorch(piece):
    for m in (torch, tc):
        y = m.zeros(3, 4, requires_grad=True) * 1
        with pytest.raises(RuntimeError, match="output of a function that returns multiple views"):
            piece(y).mul_(2)
        with m.no_grad():
            piece(y).add_(1)             # outside autograd the write is allowed, and goes through
    assert float(y.sum()) > 0


@pytest.mark.parametrize("name,op", INPLACE, ids=[c[0] for c in INPLACE])
def test_inplace_through_autograd(name, op):
    a = R(3, 4)
    outs = []
    for m in (torch, tc):
        x = m.tensor(a, requires_grad=True)
        y = x * 1.5
        op(m, y)
        (y * m.tensor(np.arange(12.0).reshape(3, 4))).sum().backward()
        outs.append((_np(y), x.grad.numpy()))
    np.testing.assert_allclose(outs[1][0], outs[0][0], rtol=1e-12)
    np.testing.assert_allclose(outs[1][1], outs[0][1], rtol=1e-12)


def test_size_dim_and_counts():
    for shape in [(2, 3, 4), (5,), (0, 2)]:
        t, o = torch.zeros(shape), tc.zeros(*shape)
        assert [o.size(d) for d in range(-len(shape), len(shape))] == \
            [t.size(d) for d in range(-len(shape), len(shape))]
        assert o.size() == tuple(t.size())
        assert (o.dim(), o.ndimension(), o.nelement()) == (t.dim(), t.ndimension(), t.nelement())


def test_meshgrid_warns_without_indexing():
    with pytest.warns(UserWarning, match="indexing"):
        grids = tc.meshgrid(tc.zeros(2), tc.zeros(3))
    assert [g.shape for g in grids] == [(2, 3), (2, 3)]


def test_cat_promotes_dtypes_as_pytorch():
    for a, b in [(np.float32, np.float64), (np.int64, np.float32), (np.bool_, np.int64)]:
        want = torch.cat([torch.zeros(2, dtype=getattr(torch, np.dtype(a).name if a is not np.bool_
                                                            else "bool")),
                          torch.zeros(1, dtype=getattr(torch, np.dtype(b).name))])
        got = tc.cat([tc.tensor(np.zeros(2, a)), tc.tensor(np.zeros(1, b))])
        assert got.dtype == want.numpy().dtype


def test_scatter_src_larger_than_index():
    """PyTorch reads only the part of ``src`` that ``index`` covers (its backward of this case
    fails in PyTorch 2.x, so the gradient is checked by finite differences alone)."""
    x, s, i = R(2, 4), R(3, 3), I([0, 3], [2, 1])
    want = torch.tensor(x).scatter(1, torch.tensor(i), torch.tensor(s)).numpy()
    got = tc.tensor(x).scatter(1, tc.tensor(i), tc.tensor(s))
    np.testing.assert_array_equal(got.numpy(), want)
    assert tc.gradcheck(lambda a, b: a.scatter(1, tc.tensor(i), b),
                        [tc.tensor(x, requires_grad=True), tc.tensor(s, requires_grad=True)])

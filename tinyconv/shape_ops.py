"""Shape, indexing and linear-algebra ops of the everyday tensor API, as PyTorch's.

cat/stack/split/chunk/unbind, squeeze/unsqueeze/expand/repeat, views (narrow, t, mT,
diagonal, movedim), flip/roll, gather/scatter/index_select/masked_select/take/nonzero,
tril/triu/diag, cumsum/cumprod, argsort, norm, mm/bmm/dot/outer, einsum, meshgrid.

* An op that is a view in PyTorch is a view here: it reuses :class:`~tinyconv.math_ops.Reshape`,
  ``Permute``, ``GetItem`` or :class:`Expand`/:class:`Diagonal`, whose output shares its
  input's memory (and version counter), so writes go through as in PyTorch.
* Each new Function has its forward and backward together, the math in its docstring.
* Bad arguments raise PyTorch's exception type with PyTorch's wording.

Deliberate differences: ``scatter``'s ``reduce=`` is not supported; expanded
tensors (``expand``, ``meshgrid``) are read-only views.
"""
import builtins
import functools
import warnings

import numpy as np

from . import backend
from .autograd import Function, Tensor
from .math_ops import (Clone, GetItem, MatMul, Permute, Reshape, _shape_arg, accepts_out, getitem, mul,
                       result_type, sum_to, transpose, wrap_dim)
from .reductions import amax, amin, sort

_TORCH_NAMES = {"b1": "Bool", "u1": "Byte", "i1": "Char", "i2": "Short", "i4": "Int", "i8": "Long",
                "f2": "Half", "f4": "Float", "f8": "Double"}


def _tname(dtype):
    """PyTorch's name for a dtype in messages: float32 -> Float, int64 -> Long."""
    return _TORCH_NAMES.get(np.dtype(dtype).str[1:], str(dtype))


def _xp(a):
    return backend.array_module(a)


def _dims_arg(dims):
    """``f(0, 1)``, ``f((0, 1))`` or ``f([0, 1])`` -> a tuple of ints."""
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = tuple(dims[0])
    return tuple(dims)


def _wrap_dims(dims, ndim, op):
    out = tuple(wrap_dim(d, ndim) for d in dims)
    for d in out:
        if out.count(d) > 1:
            raise RuntimeError(f"dim {d} appears multiple times in the list of dims")
    return out


def _tensors(op, tensors):
    tensors = list(tensors)
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}(): expected Tensor as element {i} in argument 0, but got "
                            f"{type(t).__name__}")
    return tensors


def _common_dtype(tensors):
    """PyTorch's result_type of several tensors."""
    return functools.reduce(lambda d, t: result_type(_Probe(d), t), tensors[1:], tensors[0].dtype)


def _promote(tensors):
    """All tensors cast (differentiably) to their common dtype."""
    dt = _common_dtype(tensors)
    return [t if t.dtype == dt else t.to(dt) for t in tensors]


class _Probe:
    """A dtype standing in for a tensor in ``result_type`` (dimensioned, so it does not yield)."""

    ndim = 1

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)


# --------------------------------------------------------------------------- views


def squeeze(input, dim=None):
    """Drop size-1 dims (all of them, or those of ``dim``: an int or a tuple), a view."""
    if dim is None:
        axes = range(input.ndim)
    else:
        axes = _wrap_dims(dim if isinstance(dim, (tuple, list)) else (dim,), input.ndim, "squeeze")
    drop = {a for a in axes if input.ndim and input.shape[a] == 1}
    return Reshape(tuple(n for a, n in enumerate(input.shape) if a not in drop))(input)


def unsqueeze(input, dim):
    """Insert a size-1 dim at ``dim`` (in ``[-ndim-1, ndim]``), a view."""
    d = wrap_dim(dim, input.ndim + 1)
    return Reshape(input.shape[:d] + (1,) + input.shape[d:])(input)


class Expand(Function):
    """y = x broadcast to ``shape`` (a read-only view);  dx = dy summed back over the broadcast dims."""

    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        self.src = x.shape
        return _xp(x).broadcast_to(x, self.shape)

    def backward(self, gy):
        return sum_to(gy, self.src)


def expand(input, *sizes):
    """``input`` broadcast to ``sizes`` (``-1`` keeps a dim), a view, as ``Tensor.expand``."""
    sizes = _shape_arg(sizes)
    shape, lead = input.shape, len(sizes) - input.ndim
    if lead < 0:
        raise RuntimeError(f"expand(torch.{_tname(input.dtype)}Tensor{{{list(shape)}}}, "
                           f"size={list(sizes)}): the number of sizes provided ({len(sizes)}) must "
                           f"be greater or equal to the number of dimensions in the tensor "
                           f"({input.ndim})")
    target = []
    for i, s in enumerate(sizes):
        if i < lead:
            if s < 0:
                raise RuntimeError(f"The expanded size of the tensor ({s}) isn't allowed in a "
                                   f"leading, non-existing dimension {i}")
            target.append(s)
            continue
        have = shape[i - lead]
        s = have if s == -1 else s
        if have != 1 and have != s:
            raise RuntimeError(f"The expanded size of the tensor ({s}) must match the existing "
                               f"size ({have}) at non-singleton dimension {i}.  Target sizes: "
                               f"{list(sizes)}.  Tensor sizes: {list(shape)}")
        target.append(s)
    return Expand(tuple(target))(input)


def t(input):
    """Transpose a matrix (0-d and 1-d tensors come back as they are), a view."""
    if input.ndim > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {input.ndim}D")
    return Permute(tuple(range(input.ndim))[::-1])(input)


def mT(input):
    """Swap the last two dims (a batch of matrices transposed), a view."""
    if input.ndim < 2:
        raise RuntimeError(f"tensor.mT is only supported on matrices or batches of matrices. Got "
                           f"{input.ndim}-D tensor.")
    dims = list(range(input.ndim))
    dims[-2], dims[-1] = dims[-1], dims[-2]
    return Permute(tuple(dims))(input)


def contiguous(input):
    """``input`` itself if its memory is in row-major order, else a row-major copy."""
    flags = getattr(input.array, "flags", None)
    return input if flags is not None and flags.c_contiguous else Clone()(input)


def narrow(input, dim, start, length):
    """``input[..., start:start+length, ...]`` along ``dim``, a view."""
    d = wrap_dim(dim, input.ndim)
    size = input.shape[d]
    if not -size <= start <= size:
        raise IndexError(f"start out of range (expected to be in range of [{-size}, {size}], "
                         f"but got {start})")
    start = start + size if start < 0 else start
    if length < 0:
        raise RuntimeError("narrow(): length must be non-negative.")
    if start + length > size:
        raise RuntimeError(f"start ({start}) + length ({length}) exceeds dimension size ({size}).")
    return getitem(input, (slice(None),) * d + (slice(start, start + length),))


def movedim(input, source, destination):
    """Move dims ``source`` to positions ``destination`` (ints or tuples), the rest in order; a view."""
    src = tuple(source) if isinstance(source, (tuple, list)) else (source,)
    dst = tuple(destination) if isinstance(destination, (tuple, list)) else (destination,)
    if len(src) != len(dst):
        raise RuntimeError(f"movedim: Invalid source or destination dims: source ({list(src)} "
                           f"dims) should contain the same number of dims as destination "
                           f"({list(dst)} dims)")
    s = [wrap_dim(d, input.ndim) for d in src]
    e = [wrap_dim(d, input.ndim) for d in dst]
    for name, ds, given in (("source", s, src), ("destination", e, dst)):
        if len(set(ds)) != len(ds):
            raise RuntimeError(f"movedim: repeated dim in `{name}` ({list(given)})")
    order = [n for n in range(input.ndim) if n not in s]
    for dest, srcd in sorted(zip(e, s)):
        order.insert(dest, srcd)
    return Permute(tuple(order))(input)


moveaxis = movedim


def swapaxes(input, axis0, axis1):
    return transpose(input, axis0, axis1)


swapdims = swapaxes


def _diagonal_view(a, offset, dim1, dim2):
    """The (writable) view of ``a``'s diagonal, as ``torch.diagonal``."""
    v = _xp(a).diagonal(a, offset, dim1, dim2)
    if isinstance(v, np.ndarray) and a.flags.writeable:
        v.flags.writeable = True      # NumPy marks it read-only only to warn; the memory is a's
    return v


class Diagonal(Function):
    """y = the diagonal ``offset`` of dims (dim1, dim2), a view;  dx = zeros with dy on that diagonal."""

    def __init__(self, offset, dim1, dim2):
        self.args = offset, dim1, dim2

    def forward(self, x):
        self.shape = x.shape
        return _diagonal_view(x, *self.args)

    def backward(self, gy):
        gx = _xp(gy).zeros(self.shape, dtype=gy.dtype)
        _diagonal_view(gx, *self.args)[...] = gy
        return gx


def diagonal(input, offset=0, dim1=0, dim2=1):
    """The diagonal ``offset`` of dims ``dim1``/``dim2`` as the last dim, a view."""
    d1, d2 = wrap_dim(dim1, input.ndim), wrap_dim(dim2, input.ndim)
    if d1 == d2:
        raise RuntimeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
    return Diagonal(offset, d1, d2)(input)


class DiagEmbed(Function):
    """y = the square matrix with vector x on diagonal ``k``;  dx = that diagonal of dy."""

    def __init__(self, k):
        self.k = k

    def forward(self, x):
        return _xp(x).diag(x, self.k)

    def backward(self, gy):
        return _xp(gy).diagonal(gy, self.k).copy()


def diag(input, diagonal=0):
    """1-d: the matrix with ``input`` on diagonal ``diagonal``; 2-d: that diagonal (a copy)."""
    if input.ndim == 1:
        return DiagEmbed(diagonal)(input)
    if input.ndim == 2:
        return Clone()(Diagonal(diagonal, 0, 1)(input))
    raise RuntimeError(f"diag(): Supports 1D or 2D tensors. Got {input.ndim}D")


def view_as(input, other):
    return input.view(other.shape)


def reshape_as(input, other):
    return input.reshape(other.shape)


def unflatten(input, dim, sizes):
    """Split dim ``dim`` into ``sizes`` (one may be -1), a view."""
    d = wrap_dim(dim, input.ndim)
    sizes = tuple(int(s) for s in sizes)
    n = input.shape[d]
    known = int(np.prod([s for s in sizes if s != -1], dtype=np.int64))
    if sizes.count(-1) > 1:
        raise RuntimeError("unflatten: only one dimension can be inferred")
    if sizes.count(-1) == 1 and known and n % known == 0:
        sizes = tuple(n // known if s == -1 else s for s in sizes)
    if int(np.prod(sizes, dtype=np.int64)) != n or -1 in sizes:
        raise RuntimeError(f"unflatten: Provided sizes {list(sizes)} don't multiply up to the "
                           f"size of dim {dim} ({n}) in the input tensor")
    return Reshape(input.shape[:d] + sizes + input.shape[d + 1:])(input)


# --------------------------------------------------------------------------- join and split


class Concat(Function):
    """y = the inputs joined along ``axis``;  dx_i = the slice of dy that came from x_i."""

    def __init__(self, axis):
        self.axis = axis

    def forward(self, *xs):
        self.sizes = [x.shape[self.axis] for x in xs]
        return _xp(xs[0]).concatenate(xs, axis=self.axis)

    def backward(self, gy):
        bounds = np.cumsum(self.sizes)[:-1]
        return tuple(_xp(gy).split(gy, bounds, axis=self.axis))


@accepts_out
def cat(tensors, dim=0):
    """Join tensors of one shape (but along ``dim``), as ``torch.cat``; dtypes promoted."""
    tensors = _tensors("cat", tensors)
    if not tensors:
        raise ValueError("torch.cat(): expected a non-empty list of Tensors")
    for i, x in enumerate(tensors):
        if x.ndim == 0:
            raise RuntimeError(f"zero-dimensional tensor (at position {i}) cannot be concatenated")
    # PyTorch's legacy rule: a 1-d empty tensor joins anything (it is skipped)
    kept = [x for x in tensors if not (x.shape == (0,))] or tensors[:1]
    ref = kept[0]
    d = wrap_dim(dim, ref.ndim)
    for i, x in enumerate(tensors):
        if x.shape == (0,) and ref.shape != (0,):
            continue
        if x.ndim != ref.ndim:
            raise RuntimeError(f"Tensors must have same number of dimensions: got {ref.ndim} and "
                               f"{x.ndim}")
        for a in range(ref.ndim):
            if a != d and x.shape[a] != ref.shape[a]:
                raise RuntimeError(f"Sizes of tensors must match except in dimension {d}. Expected "
                                   f"size {ref.shape[a]} but got size {x.shape[a]} for tensor "
                                   f"number {i} in the list.")
    dt = _common_dtype(tensors)                  # the skipped empties count for the dtype
    return Concat(d)(*(x if x.dtype == dt else x.to(dt) for x in kept))


concat = concatenate = cat


@accepts_out
def stack(tensors, dim=0):
    """Join tensors of one shape along a new dim ``dim``, as ``torch.stack``."""
    tensors = _tensors("stack", tensors)
    if not tensors:
        raise RuntimeError("stack expects a non-empty TensorList")
    for i, x in enumerate(tensors):
        if x.shape != tensors[0].shape:
            raise RuntimeError(f"stack expects each tensor to be equal size, but got "
                               f"{list(tensors[0].shape)} at entry 0 and {list(x.shape)} at entry {i}")
    d = wrap_dim(dim, tensors[0].ndim + 1)
    return cat([unsqueeze(x, d) for x in tensors], d)


def _atleast(x, n):
    """``x`` with leading size-1 dims up to ``n`` dims (``atleast_1d``/``atleast_2d``)."""
    return x if x.ndim >= n else Reshape((1,) * (n - x.ndim) + x.shape)(x)


def hstack(tensors):
    """Join along dim 1 (dim 0 for 1-d tensors), as ``torch.hstack``."""
    tensors = [_atleast(x, 1) for x in _tensors("hstack", tensors)]
    if not tensors:
        raise RuntimeError("hstack expects a non-empty TensorList")
    return cat(tensors, 0 if tensors[0].ndim == 1 else 1)


def vstack(tensors):
    """Join along dim 0, 0-d and 1-d tensors made rows first, as ``torch.vstack``."""
    tensors = [_atleast(x, 2) for x in _tensors("vstack", tensors)]
    if not tensors:
        raise RuntimeError("vstack expects a non-empty TensorList")
    return cat(tensors, 0)


def split(tensor, split_size_or_sections, dim=0):
    """Consecutive views along ``dim``: of one size (the last may be smaller) or of the sizes given."""
    d = wrap_dim(dim, tensor.ndim)
    n = tensor.shape[d]
    if isinstance(split_size_or_sections, (tuple, list)):
        sizes = [int(s) for s in split_size_or_sections]
        if builtins.any(s < 0 for s in sizes) or builtins.sum(sizes) != n:
            raise RuntimeError(f"split_with_sizes expects split_sizes to sum exactly to {n} (input "
                               f"tensor's size at dimension {d}), but got split_sizes={sizes}")
    else:
        size = int(split_size_or_sections)
        if size < 0:
            raise RuntimeError(f"split expects split_size be non-negative, but got split_size={size}")
        if size == 0 and n != 0:
            raise RuntimeError(f"split_size can only be 0 if dimension size is 0, but got dimension "
                               f"size of {n}")
        count = max(-(-n // size), 1) if size else 1
        sizes = [builtins.min(size, n - i * size) for i in range(count)]
    starts = np.cumsum([0] + sizes[:-1])
    pieces = tuple(narrow(tensor, d, int(s), k) for s, k in zip(starts, sizes))
    name = "SplitWithSizes" if isinstance(split_size_or_sections, (tuple, list)) else "Split"
    return _multi_views(pieces, name)


def _multi_views(pieces, name):
    """Mark the views one call returned together: PyTorch refuses a recorded in-place write into one."""
    for i, p in enumerate(pieces):
        p._multi_view = (i, name)
    return pieces


def chunk(input, chunks, dim=0):
    """At most ``chunks`` views of equal size (the last may be smaller) along ``dim``."""
    if chunks <= 0:
        raise RuntimeError(f"chunk expects `chunks` to be greater than 0, got: {chunks}")
    n = input.shape[wrap_dim(dim, input.ndim)]
    return split(input, -(-n // chunks) if n else [0] * chunks, dim)   # empty: `chunks` empties


def unbind(input, dim=0):
    """The slices along ``dim``, each a view without that dim."""
    d = wrap_dim(dim, input.ndim)
    return _multi_views(tuple(getitem(input, (slice(None),) * d + (i,))
                              for i in range(input.shape[d])), "Unbind")


# --------------------------------------------------------------------------- repeat, flip, roll


class Repeat(Function):
    """y = x tiled ``reps`` times per dim;  dx = dy summed over the copies."""

    def __init__(self, reps):
        self.reps = reps

    def forward(self, x):
        self.src = x.shape
        lead = (1,) * (len(self.reps) - x.ndim)
        self.padded = lead + x.shape
        return _xp(x).tile(x.reshape(self.padded), self.reps)

    def backward(self, gy):
        inter = tuple(v for r, s in zip(self.reps, self.padded) for v in (r, s))
        g = gy.reshape(inter).sum(axis=tuple(range(0, len(inter), 2)))
        return g.reshape(self.src)


def repeat(input, *sizes):
    """``input`` tiled ``sizes`` times along each dim (more sizes than dims add leading dims)."""
    sizes = _shape_arg(sizes)
    if len(sizes) < input.ndim:
        raise RuntimeError("Number of dimensions of repeat dims can not be smaller than number of "
                           "dimensions of tensor")
    if builtins.any(s < 0 for s in sizes):
        raise RuntimeError(f"Trying to create tensor with negative dimension: {list(sizes)}")
    return Repeat(sizes)(input)


def tile(input, dims):
    """``repeat``, with missing leading ``dims`` taken as 1 (as ``torch.tile``)."""
    dims = _shape_arg((dims,))
    return repeat(input, (1,) * (input.ndim - len(dims)) + dims)


class Flip(Function):
    """y = x reversed along ``axes`` (a copy, as PyTorch);  dx = dy reversed back."""

    def __init__(self, axes):
        self.axes = axes

    def forward(self, x):
        return _xp(x).flip(x, self.axes).copy() if self.axes else x.copy()

    def backward(self, gy):
        return _xp(gy).flip(gy, self.axes) if self.axes else gy


def flip(input, *dims):
    return Flip(_wrap_dims(_dims_arg(dims), input.ndim, "flip"))(input)


class Roll(Function):
    """y = x shifted cyclically by ``shifts`` along ``axes`` (None: flattened);  dx = dy shifted back."""

    def __init__(self, shifts, axes):
        self.shifts, self.axes = shifts, axes

    def forward(self, x):
        return _xp(x).roll(x, self.shifts, self.axes)

    def backward(self, gy):
        back = tuple(-s for s in self.shifts) if isinstance(self.shifts, tuple) else -self.shifts
        return _xp(gy).roll(gy, back, self.axes)


def roll(input, shifts, dims=None):
    if dims is None:
        if isinstance(shifts, (tuple, list)):
            if len(shifts) != 1:
                raise RuntimeError(f"shifts and dimensions must align. shifts: {len(shifts)}, dims:0")
            shifts = shifts[0]
        return Roll(int(shifts), None)(input)
    shifts = tuple(shifts) if isinstance(shifts, (tuple, list)) else (shifts,)
    dims = tuple(dims) if isinstance(dims, (tuple, list)) else (dims,)
    if len(shifts) != len(dims):
        raise RuntimeError(f"shifts and dimensions must align. shifts: {len(shifts)}, "
                           f"dims:{len(dims)}")
    axes = tuple(wrap_dim(d, input.ndim) for d in dims)
    if input.ndim == 0:
        return Roll(0, None)(input)
    return Roll(tuple(int(s) for s in shifts), axes)(input)


# --------------------------------------------------------------------------- gather and scatter


def _int_index(op, index, long_only=False):
    """The array of an integer index tensor (int32 or int64; only int64 with ``long_only``)."""
    if not isinstance(index, Tensor):
        raise TypeError(f"{op}(): index must be a Tensor, got {type(index).__name__}")
    if long_only and index.dtype != np.int64:
        raise RuntimeError(f"{op}(): Expected a long tensor for index, but got {_tname(index.dtype)}")
    if index.dtype not in (np.int32, np.int64):
        raise RuntimeError(f"{op}(): Expected dtype int32/int64 for index")
    return index.array


def _scatter_coords(op, x_shape, d, index, src_shape=None):
    """The coordinates in ``x`` (of ``x_shape``, at least 1-d) that ``index`` names along dim ``d``.

    ``x[coords]`` is ``gather``'s result: ``index``'s own grid with ``index`` put in dim
    ``d``.  PyTorch's checks: as many dims as ``x``, ``index`` no larger than ``x`` apart
    from dim ``d`` (and no larger than ``src``), every index in ``[0, x_shape[d])``.
    """
    if index.ndim != len(x_shape):
        raise RuntimeError("Index tensor must have the same number of dimensions as input tensor")
    ishape = index.shape
    for a in range(index.ndim):
        if src_shape is not None and (ishape[a] > src_shape[a] or a != d and ishape[a] > x_shape[a]):
            raise RuntimeError(f"Expected index {list(ishape)} to be no larger than self "
                               f"{list(x_shape)} apart from dimension {d} and to be no larger size "
                               f"than src {list(src_shape)}")
        if src_shape is None and a != d and ishape[a] > x_shape[a]:
            raise RuntimeError(f"Size does not match at dimension {a} expected index "
                               f"{list(ishape)} to be no larger than self {list(x_shape)} apart "
                               f"from dimension {d}")
    bad = index[(index < 0) | (index >= x_shape[d])]
    if bad.size:
        raise RuntimeError(f"{op}(): index {int(bad[0])} is out of bounds for dimension {d} with "
                           f"size {x_shape[d]}")
    xp, n = _xp(index), len(ishape)
    grid = [xp.arange(k).reshape((1,) * a + (k,) + (1,) * (n - a - 1)) for a, k in enumerate(ishape)]
    grid[d] = index                   # the open grid of index's shape, with index in dim d
    return tuple(grid)


class Gather(Function):
    """y[i][j] = x[index[i][j]][j] (dim 0; likewise any dim);  dx = dy added back at those places."""

    def __init__(self, coords):
        self.coords = coords

    def forward(self, x):
        self.src = x.shape
        return x[self.coords]

    def backward(self, gy):
        gx = _xp(gy).zeros(self.src, dtype=gy.dtype)
        _xp(gy).add.at(gx, self.coords, gy)
        return gx


def _as_1d(op, input, index):
    """A 0-d ``input`` (and its index) seen as 1-d, as PyTorch treats them."""
    if input.ndim:
        return input, index
    return Reshape((1,))(input), index.reshape(-1)


def gather(input, dim, index, *, sparse_grad=False):
    """``out[i][j] = input[index[i][j]][j]`` for ``dim=0`` (and likewise for any dim)."""
    d = wrap_dim(dim, input.ndim)
    idx = _int_index("gather", index)
    x, flat = _as_1d("gather", input, idx)
    out = Gather(_scatter_coords("gather", x.shape, d, flat))(x)
    return out if input.ndim else Reshape(idx.shape)(out)


class Scatter(Function):
    """y = x with y[index[i][j]][j] = src[i][j] (dim 0; likewise any dim), or ``+=`` with ``add``;
    dx = dy (zero where overwritten, unless ``add``),  dsrc[i][j] = dy[index[i][j]][j]."""

    def __init__(self, coords, ishape, add):
        self.coords, self.add = coords, add
        self.part = tuple(slice(0, n) for n in ishape)    # the part of src that index covers

    def forward(self, x, src):
        xp = _xp(x)
        y = x.copy()
        self.src_shape = src.shape
        vals = src[self.part] if src.ndim else xp.broadcast_to(src, self.coords[0].shape)
        if self.add:
            xp.add.at(y, self.coords, vals)
        else:
            y[self.coords] = vals
        return y

    def backward(self, gy):
        gx = gsrc = None
        if self.needs_input_grad[0]:
            gx = gy.copy()
            if not self.add:
                gx[self.coords] = 0
        if self.needs_input_grad[1]:
            gsrc = _xp(gy).zeros(self.src_shape, dtype=gy.dtype)
            gsrc[self.part] = gy[self.coords]
        return gx, gsrc


def _scatter(op, input, dim, index, src, add):
    d = wrap_dim(dim, input.ndim)
    idx = _int_index(op, index)
    if not isinstance(src, Tensor):              # a number: scatter(dim, index, value)
        src_shape = None
        src = Tensor(backend.to_device(np.asarray(src, dtype=input.dtype), input.device))
    elif src.dtype != input.dtype:
        raise RuntimeError(f"{op}(): Expected self.dtype to be equal to src.dtype")
    else:
        src_shape = src.shape if input.ndim else (src.numel(),)
        src = src if input.ndim else Reshape((src.numel(),))(src)
    x, flat = _as_1d(op, input, idx)
    coords = _scatter_coords(op, x.shape, d, flat, src_shape)
    out = Scatter(coords, flat.shape, add)(x, src)
    return out if input.ndim else Reshape(())(out)


def scatter(input, dim, index, src=None, *, value=None, reduce=None):
    """``input`` with ``out[index[i][j]][j] = src[i][j]`` (dim 0; likewise any dim); src may be a number."""
    if reduce is not None:
        raise NotImplementedError("scatter(): reduce= is not supported; use scatter_add")
    if src is None and value is None:
        raise TypeError("scatter(): expected a src tensor or a value")
    return _scatter("scatter", input, dim, index, value if src is None else src, False)


def scatter_add(input, dim, index, src):
    """``input`` with ``out[index[i][j]][j] += src[i][j]`` (dim 0; likewise any dim)."""
    return _scatter("scatter_add", input, dim, index, src, True)


def index_select(input, dim, index):
    """The entries ``index`` (a vector of ints) along ``dim``, a copy."""
    d = wrap_dim(dim, input.ndim)
    if not isinstance(index, Tensor):
        raise TypeError(f"index_select(): index must be a Tensor, got {type(index).__name__}")
    if index.ndim > 1:
        raise IndexError("index_select(): Index is supposed to be a vector")
    if index.dtype not in (np.int32, np.int64):
        raise RuntimeError("index_select(): Expected dtype int32 or int64 for index")
    idx = index.array.reshape(-1)
    size = input.shape[d] if input.ndim else 1
    bad = idx[(idx < 0) | (idx >= size)]
    if bad.size:
        raise RuntimeError(f"index_select(): index {int(bad[0])} is out of bounds for dimension "
                           f"{d} with size {size}")
    if input.ndim == 0:
        return Reshape(index.shape)(GetItem((idx,))(Reshape((1,))(input)))
    return GetItem((slice(None),) * d + (idx,))(input)


def broadcast_shapes(a, b):
    """The broadcast of shapes ``a`` and ``b``, with PyTorch's message when they do not broadcast."""
    n = builtins.max(len(a), len(b))
    pa, pb = (1,) * (n - len(a)) + tuple(a), (1,) * (n - len(b)) + tuple(b)
    for i, (x, y) in enumerate(zip(pa, pb)):
        if x != y and x != 1 and y != 1:
            raise RuntimeError(f"The size of tensor a ({x}) must match the size of tensor b ({y}) "
                               f"at non-singleton dimension {i}")
    return tuple(builtins.max(x, y) if 0 not in (x, y) else 0 for x, y in zip(pa, pb))


def masked_select(input, mask):
    """The entries of ``input`` where ``mask`` (broadcast with it) is True, as a 1-d copy."""
    if not isinstance(mask, Tensor) or mask.dtype != np.bool_:
        raise RuntimeError("masked_select: expected BoolTensor for mask")
    shape = broadcast_shapes(mask.shape, input.shape)
    x = input if input.shape == shape else expand(input, shape)
    m = _xp(mask.array).broadcast_to(mask.array, shape)
    return GetItem(m if shape else m.reshape(1))(x if shape else Reshape((1,))(x))


def take(input, index):
    """``input`` read as 1-d at ``index`` (negative counts from the end); shaped like ``index``."""
    idx = _int_index("take", index, long_only=True)
    n = input.numel()
    bad = idx[(idx < -n) | (idx >= n)]
    if bad.size:
        raise IndexError(f"out of range: tried to access index {int(bad.reshape(-1)[0])} on a "
                         f"tensor of {n} elements.")
    return GetItem(idx)(Reshape((n,))(input))


def nonzero(input, *, as_tuple=False):
    """The indices of the nonzero entries: an (n, ndim) int64 tensor, or one 1-d tensor per dim."""
    a = input.array
    xp = _xp(a)
    if as_tuple:
        return tuple(Tensor(i.astype(np.int64)) for i in xp.nonzero(a.reshape(-1) if a.ndim == 0
                                                                     else a))
    return Tensor(xp.argwhere(a).astype(np.int64))


# --------------------------------------------------------------------------- triangles, scans


class Tri(Function):
    """y = x with the entries above (tril) or below (triu) diagonal ``k`` zeroed;  dx = dy likewise."""

    def __init__(self, k, upper):
        self.k, self.upper = k, upper

    def _mask(self, a):
        return (_xp(a).triu if self.upper else _xp(a).tril)(a, self.k)

    def forward(self, x):
        return self._mask(x)

    def backward(self, gy):
        return self._mask(gy)


def _tri(op, input, diagonal, upper):
    if input.ndim < 2:
        raise RuntimeError(f"{op}: input tensor must have at least 2 dimensions")
    return Tri(int(diagonal), upper)(input)


def tril(input, diagonal=0):
    return _tri("tril", input, diagonal, False)


def triu(input, diagonal=0):
    return _tri("triu", input, diagonal, True)


class CumSum(Function):
    """y_i = sum_{j<=i} x_j along ``axis``;  dx_i = sum_{j>=i} dy_j."""

    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        return _xp(x).cumsum(x, axis=self.axis)

    def backward(self, gy):
        xp = _xp(gy)
        return xp.flip(xp.cumsum(xp.flip(gy, self.axis), axis=self.axis), self.axis)


class CumProd(Function):
    """y_i = prod_{j<=i} x_j along ``axis``;  dx_i = sum_{j>=i} dy_j * prod_{k<=j, k!=i} x_k."""

    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        y = _xp(x).cumprod(x, axis=self.axis)
        self.save_for_backward(x, y)
        return y

    def backward(self, gy):
        x, y = self.saved_tensors
        xp, ax = _xp(gy), self.axis
        if not (x == 0).any():          # the usual case: dx_i = (sum_{j>=i} dy_j y_j) / x_i
            return xp.flip(xp.cumsum(xp.flip(gy * y, ax), axis=ax), ax) / x
        xs, gs = xp.moveaxis(x, ax, -1), xp.moveaxis(gy, ax, -1)   # zeros: each i on its own
        gx = xp.empty_like(xs)
        for i in range(xs.shape[-1]):
            others = xs.copy()
            others[..., i] = 1
            gx[..., i] = (gs[..., i:] * xp.cumprod(others, axis=-1)[..., i:]).sum(axis=-1)
        return xp.moveaxis(gx, -1, ax)


def _scan(fn, input, dim, dtype):
    d = wrap_dim(dim, input.ndim)
    x = input
    if dtype is not None:
        x = x.to(dtype)
    elif x.dtype.kind in "biu":
        x = x.to(np.int64)               # integer scans accumulate in int64, as PyTorch
    if x.ndim == 0:
        return Reshape(())(fn(0)(Reshape((1,))(x)))
    return fn(d)(x)


def cumsum(input, dim, *, dtype=None):
    return _scan(CumSum, input, dim, dtype)


def cumprod(input, dim, *, dtype=None):
    return _scan(CumProd, input, dim, dtype)


def argsort(input, dim=-1, descending=False, stable=False):
    """The indices that sort ``input`` along ``dim`` (ties keep their order)."""
    return sort(input, wrap_dim(dim, input.ndim), descending, stable).indices


# --------------------------------------------------------------------------- norms


class VectorNorm(Function):
    """y = (sum |x|^p)^(1/p) over ``axes`` (p = inf: max |x|, p = 0: count of x != 0);
    dx = dy * sign(x) |x|^(p-1) / y^(p-1)  (p = 2: dy x / y;  p = inf: dy sign(x) split among the maxima)."""

    def __init__(self, ord, axes, keepdim):
        self.ord, self.axes, self.keepdim = ord, axes, keepdim

    def forward(self, x):
        xp, p, ax = _xp(x), self.ord, self.axes
        a = xp.abs(x)
        if p == float("inf"):
            y = a.max(axis=ax, keepdims=True)
        elif p == -float("inf"):
            y = a.min(axis=ax, keepdims=True)
        elif p == 0:
            y = (x != 0).sum(axis=ax, keepdims=True).astype(x.dtype)
        elif p == 1:
            y = a.sum(axis=ax, keepdims=True)
        elif p == 2:
            y = xp.sqrt((x * x).sum(axis=ax, keepdims=True))
        else:
            y = (a ** p).sum(axis=ax, keepdims=True) ** (1.0 / p)
        self.save_for_backward(x, y)
        return y if self.keepdim else y.squeeze(axis=ax)

    def backward(self, gy):
        x, y = self.saved_tensors
        xp, p, ax = _xp(x), self.ord, self.axes
        gy = gy if self.keepdim else xp.expand_dims(gy, ax)
        if p == 0:
            return xp.zeros_like(x)
        if p == 1:
            return gy * xp.sign(x)
        if abs(p) == float("inf"):
            hit = xp.abs(x) == y
            return gy * xp.sign(x) * hit / hit.sum(axis=ax, keepdims=True)
        safe = xp.where(y == 0, 1, y)
        if p == 2:
            return xp.where(y == 0, 0, gy * x / safe)
        return xp.where(y == 0, 0, gy * xp.sign(x) * xp.abs(x) ** (p - 1) / safe ** (p - 1))


def vector_norm(x, ord=2, dim=None, keepdim=False, *, dtype=None):
    """The ``ord``-norm of ``x`` over ``dim`` (None: all of it), as ``torch.linalg.vector_norm``."""
    if x.dtype.kind != "f":
        raise RuntimeError(f"linalg.vector_norm: Expected a floating point or complex tensor as "
                           f"input. Got {_tname(x.dtype)}")
    if dtype is not None:
        x = x.to(dtype)
    if dim is None:
        axes = tuple(range(x.ndim))
    else:
        axes = _wrap_dims(dim if isinstance(dim, (tuple, list)) else (dim,), x.ndim, "norm")
    if x.ndim == 0:
        return VectorNorm(float(ord), None, True)(x)
    if abs(ord) == float("inf") and builtins.any(x.shape[a] == 0 for a in axes or range(x.ndim)):
        raise RuntimeError("linalg.vector_norm cannot compute the inf norm on an empty tensor "
                           "because the operation does not have an identity")
    return VectorNorm(float(ord), axes, keepdim)(x)


INF = float("inf")


class SingularValues(Function):
    """s = the singular values of x (each matrix of a batch), largest first;
    dx = U diag(ds) V^T (for distinct singular values, as PyTorch's)."""

    def forward(self, x):
        u, s, vh = backend.array_module(x).linalg.svd(x, full_matrices=False)
        self.save_for_backward(u, vh)
        return s

    def backward(self, gs):
        u, vh = self.saved_tensors
        return u @ (gs[..., :, None] * vh)


def svdvals(A):
    if A.ndim < 2:
        raise RuntimeError("linalg.svd: The input tensor A must have at least 2 dimensions.")
    return SingularValues()(A)


def matrix_norm(A, ord="fro", dim=(-2, -1), keepdim=False, *, dtype=None):
    """The matrix norm ``ord`` ('fro', 'nuc', 1, -1, 2, -2, inf, -inf) over dims ``dim``."""
    if A.ndim < 2:
        raise RuntimeError("linalg.matrix_norm: The input tensor A must have at least 2 dimensions.")
    if len(dim) != 2:
        raise RuntimeError(f"linalg.matrix_norm: dim must be a 2-tuple. Got "
                           f"{' '.join(str(d) for d in dim)}")
    rows, cols = wrap_dim(dim[0], A.ndim), wrap_dim(dim[1], A.ndim)
    if rows == cols:
        raise RuntimeError(f"linalg.matrix_norm: dims must be different. Got ({dim[0]}, {dim[1]})")
    if dtype is not None:
        A = A.to(dtype)
    if ord == "fro":
        return vector_norm(A, 2, (rows, cols), keepdim)
    if ord in (1, -1, INF, -INF):            # the largest (smallest) column or row sum of |A|
        summed, then = (rows, cols) if abs(ord) == 1 else (cols, rows)
        pick = amax if ord > 0 else amin
        y = pick(vector_norm(A, 1, summed, keepdim=True), then, keepdim=True)
        return y if keepdim else squeeze(y, (rows, cols))
    if ord in ("nuc", 2, -2):                # from the singular values
        s = svdvals(movedim(A, (rows, cols), (-2, -1)))
        y = s.sum(-1) if ord == "nuc" else (amax if ord == 2 else amin)(s, -1)
        if keepdim:
            for d in sorted((rows, cols)):
                y = unsqueeze(y, d)
        return y
    raise RuntimeError(f"linalg.matrix_norm: Order {ord} not supported.")


def norm(input, p="fro", dim=None, keepdim=False, dtype=None):
    """The ``p``-norm (2, 1, inf, any number, or 'fro') over ``dim`` (None: all), as ``torch.norm``."""
    if isinstance(p, str):
        if p == "fro" and (dim is None or isinstance(dim, int) or len(dim) <= 2):
            return vector_norm(input, 2, dim, keepdim, dtype=dtype)
        if p == "fro":
            raise RuntimeError(f"linalg.matrix_norm: dim must be a 2-tuple. Got "
                               f"{' '.join(str(d) for d in dim)}")
        if p == "nuc":
            return matrix_norm(input, "nuc", (-2, -1) if dim is None else dim, keepdim, dtype=dtype)
        raise RuntimeError(f"linalg.matrix_norm: Order {p} not supported.")
    return vector_norm(input, p, dim, keepdim, dtype=dtype)


# --------------------------------------------------------------------------- products


@accepts_out
def mm(input, mat2):
    """The matrix product of two 2-d tensors (no broadcasting), as ``torch.mm``."""
    for name, m in (("self", input), ("mat2", mat2)):
        if m.ndim != 2:
            raise RuntimeError(f"{name} must be a matrix")
    if input.shape[1] != mat2.shape[0]:
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({input.shape[0]}x"
                           f"{input.shape[1]} and {mat2.shape[0]}x{mat2.shape[1]})")
    if input.dtype != mat2.dtype:
        raise RuntimeError(f"expected m1 and m2 to have the same dtype, but got: "
                           f"{_tname(input.dtype).lower()} != {_tname(mat2.dtype).lower()}")
    return MatMul()(input, mat2)


@accepts_out
def bmm(input, mat2):
    """Batched matrix product of (b, n, m) and (b, m, p) tensors, as ``torch.bmm``."""
    for name, m in (("batch1", input), ("batch2", mat2)):
        if m.ndim != 3:
            raise RuntimeError(f"{name} must be a 3D tensor")
    want = [input.shape[0], input.shape[2]]
    if list(mat2.shape[:2]) != want:
        raise RuntimeError(f"Expected size for first two dimensions of batch2 tensor to be: {want} "
                           f"but got: {list(mat2.shape[:2])}.")
    if input.dtype != mat2.dtype:
        raise RuntimeError(f"expected scalar type {_tname(input.dtype)} but found "
                           f"{_tname(mat2.dtype)}")
    return MatMul()(input, mat2)


def dot(input, other):
    """The inner product of two 1-d tensors of one length and dtype, as ``torch.dot``."""
    if input.ndim != 1 or other.ndim != 1:
        raise RuntimeError(f"1D tensors expected, but got {input.ndim}D and {other.ndim}D tensors")
    if input.dtype != other.dtype:
        raise RuntimeError(f"dot : expected both vectors to have same dtype, but found "
                           f"{_tname(input.dtype)} and {_tname(other.dtype)}")
    if input.shape != other.shape:
        n, m = input.shape[0], other.shape[0]
        raise RuntimeError(f"inconsistent tensor size, expected tensor [{n}] and src [{m}] to have "
                           f"the same number of elements, but got {n} and {m} elements respectively")
    return MatMul()(input, other)


def outer(input, vec2):
    """``out[i, j] = input[i] * vec2[j]`` of two 1-d tensors, as ``torch.outer``."""
    for name, v in (("self", input), ("vec2", vec2)):
        if v.ndim != 1:
            raise RuntimeError(f"outer: Expected 1-D argument {name}, but got {v.ndim}-D")
    return mul(Reshape((input.shape[0], 1))(input), Reshape((1, vec2.shape[0]))(vec2))


ger = outer


class Einsum(Function):
    """y = einsum(spec, *xs);  dx_k = einsum(dy and the other operands -> x_k's subscripts),
    broadcast over the subscripts only x_k has, put on the diagonal where x_k repeats a
    subscript (``'ii'``), and summed over x_k's broadcast size-1 dims."""

    def __init__(self, inputs, output, sizes):
        self.inputs, self.output, self.sizes = inputs, output, sizes

    def forward(self, *xs):
        xp = _xp(xs[0])
        self.shapes = [x.shape for x in xs]
        full = [xp.broadcast_to(x, tuple(self.sizes[c] for c in s))
                for x, s in zip(xs, self.inputs)]
        self.save_for_backward(*full)
        return xp.asarray(xp.einsum(",".join(self.inputs) + "->" + self.output, *full))

    def backward(self, gy):
        xs = self.saved_tensors
        grads = []
        for k, sub in enumerate(self.inputs):
            if not self.needs_input_grad[k]:
                grads.append(None)
                continue
            others = [(s, x) for i, (s, x) in enumerate(zip(self.inputs, xs)) if i != k]
            seen = set(self.output).union(*(set(s) for s, _ in others))
            unique = "".join(dict.fromkeys(sub))
            kept = "".join(c for c in unique if c in seen)
            spec = ",".join([self.output] + [s for s, _ in others]) + "->" + kept
            g = _xp(gy).einsum(spec, gy, *(x for _, x in others))
            g = g.reshape(tuple(self.sizes[c] if c in seen else 1 for c in unique))
            g = _xp(gy).broadcast_to(g, tuple(self.sizes[c] for c in unique))
            grads.append(sum_to(self._on_diagonal(g, sub, unique), self.shapes[k]))
        return tuple(grads)

    def _on_diagonal(self, g, sub, unique):
        """``g`` (over the ``unique`` letters) as an array over ``sub``: zero off the diagonals
        of its repeated letters, ``out[i, i, j] = g[i, j]`` for ``sub='iij'``."""
        xp = _xp(g)
        if len(unique) == len(sub):
            return xp.ascontiguousarray(g)
        out = xp.zeros(tuple(self.sizes[c] for c in sub), dtype=g.dtype)

        def coordinate(c):           # letter c's index, along g's axis for c
            shape = [1] * len(unique)
            shape[unique.index(c)] = self.sizes[c]
            return xp.arange(self.sizes[c]).reshape(shape)
        out[tuple(coordinate(c) for c in sub)] = g
        return out


def _expand_ellipsis(inputs, rhs, arrow, operands):
    """Subscripts with each ``...`` spelled out in letters the equation does not use (right-aligned)."""
    counts = []
    for k, (s, x) in enumerate(zip(inputs, operands)):
        named = len(s.replace("...", ""))
        if "..." in s and named > x.ndim:
            raise RuntimeError(f"einsum(): the number of subscripts in the equation ({named}) is "
                               f"more than the number of dimensions ({x.ndim}) for operand {k}")
        counts.append(x.ndim - named if "..." in s else 0)
    used = set("".join(inputs) + rhs)
    pool = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" if c not in used]
    width = builtins.max(counts, default=0)
    if width > len(pool):
        raise RuntimeError("einsum(): the ellipsis covers too many dimensions")
    ell = "".join(pool[:width])
    inputs = [s.replace("...", ell[width - n:]) for s, n in zip(inputs, counts)]
    if arrow:
        return inputs, rhs.replace("...", ell)
    letters = "".join(inputs)
    return inputs, ell + "".join(sorted(c for c in set(letters) if letters.count(c) == 1
                                        and c not in ell))


def einsum(equation, *operands):
    """Einstein summation, as ``torch.einsum('ij,jk->ik', a, b)`` (with ``...``); dtypes promoted."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    operands = _promote(_tensors("einsum", operands))
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    inputs = lhs.split(",")
    if len(inputs) > len(operands):
        raise RuntimeError("einsum(): fewer operands were provided than specified in the equation")
    if len(inputs) < len(operands):
        raise RuntimeError("einsum(): more operands were provided than specified in the equation")
    for i, c in enumerate(eq.replace("...", "___")):
        if not (c.isascii() and c.isalpha() or c in ",->_"):
            raise RuntimeError(f"einsum(): invalid subscript given at index {i} in the equation "
                               "string, subscripts must be in [a-zA-Z]")
    inputs, rhs = _expand_ellipsis(inputs, rhs, arrow, operands)
    sizes = {}
    for k, (s, x) in enumerate(zip(inputs, operands)):
        if len(s) != x.ndim:
            raise RuntimeError(f"einsum(): the number of subscripts in the equation ({len(s)}) does "
                               f"not match the number of dimensions ({x.ndim}) for operand {k} and "
                               "no ellipsis was given")
        for c, n in zip(s, x.shape):
            if sizes.get(c, 1) != 1 and n != 1 and sizes[c] != n:
                raise RuntimeError(f"einsum(): subscript {c} has size {n} for operand {k} which "
                                   f"does not broadcast with previously seen size {sizes[c]}")
            sizes[c] = n if sizes.get(c, 1) == 1 else sizes[c]
    for c in rhs:
        if c not in sizes:
            raise RuntimeError(f"einsum(): output subscript {c} does not appear in the equation "
                               "for any input operand")
        if rhs.count(c) > 1:
            raise RuntimeError(f"einsum(): output subscript {c} appears more than once in the output")
    return Einsum(inputs, rhs, sizes)(*operands)


def meshgrid(*tensors, indexing=None):
    """Grids of coordinates, as ``torch.meshgrid`` (``indexing='ij'`` or ``'xy'``); read-only views."""
    tensors = _tensors("meshgrid", tensors[0] if len(tensors) == 1 and
                       isinstance(tensors[0], (list, tuple)) else tensors)
    if indexing is None:
        warnings.warn("torch.meshgrid: in an upcoming release, it will be required to pass the "
                      "indexing argument.", UserWarning, stacklevel=2)
        indexing = "ij"
    if indexing not in ("xy", "ij"):
        raise RuntimeError(f'torch.meshgrid: indexing must be one of "xy" or "ij", but received: '
                           f"{indexing}")
    if not tensors:
        raise RuntimeError("meshgrid expects a non-empty TensorList")
    for x in tensors:
        if x.ndim > 1:
            raise RuntimeError(f"torch.meshgrid: Expected 0D or 1D tensor in the tensor list but "
                               f"got a tensor of shape {list(x.shape)}")
        if x.dtype != tensors[0].dtype:
            raise RuntimeError("meshgrid expects all tensors to have the same dtype")
    swap = indexing == "xy" and len(tensors) >= 2
    order = [1, 0] + list(range(2, len(tensors))) if swap else list(range(len(tensors)))
    ts = [tensors[i] for i in order]
    shape = tuple(x.numel() for x in ts)
    n = len(ts)
    grids = [expand(Reshape((1,) * i + (shape[i],) + (1,) * (n - i - 1))(x), shape)
             for i, x in enumerate(ts)]
    if swap:
        grids[0], grids[1] = grids[1], grids[0]
    return tuple(grids)

"""Argument checks shared by the ``optim`` kernels (Numba and CUDA).

The fused updates index every array of a parameter with the same flat i < p.size, so
arrays of another size would be read or written out of bounds (neither Numba nor CUDA
checks): each launcher calls :func:`check_same` first.
"""


def check_same(op, named):
    """Every ``(name, array)`` pair is C-contiguous with the first one's shape and dtype."""
    (first_name, first), *rest = named
    for name, a in named:
        if not a.flags.c_contiguous:
            raise ValueError(f"{op}: {name} must be C-contiguous (it is read or updated in place)")
    for name, a in rest:
        if a.shape != first.shape:
            raise ValueError(f"{op}: {name} has shape {tuple(a.shape)}, "
                             f"{first_name} has {tuple(first.shape)}")
        if a.dtype != first.dtype:
            raise TypeError(f"{op}: {name} is {a.dtype}, {first_name} is {first.dtype}")


def adam_arrays(p, g, exp_avg, exp_avg_sq, max_exp_avg_sq):
    """Check an ``adam_update`` call's arrays (``max_exp_avg_sq`` may be None)."""
    named = [("p", p), ("g", g), ("exp_avg", exp_avg), ("exp_avg_sq", exp_avg_sq)]
    if max_exp_avg_sq is not None:
        named.append(("max_exp_avg_sq", max_exp_avg_sq))
    check_same("adam_update", named)

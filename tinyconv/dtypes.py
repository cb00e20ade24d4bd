"""dtypes with PyTorch's names: ``tinyconv.float32``, ``tinyconv.long``, ... are NumPy dtypes.

A tinyconv tensor's ``.dtype`` is a ``numpy.dtype`` (the array's own), so the aliases are
NumPy dtypes too: ``x.dtype == tinyconv.float`` and ``x.to(tinyconv.long)`` work as in
PyTorch, and so does passing ``np.float32``.  The one visible difference: they print as
NumPy's (``float32``), not as ``torch.float32``; :func:`dtype_name` gives PyTorch's spelling.
"""
import numpy as np

float32 = float = np.dtype(np.float32)
float64 = double = np.dtype(np.float64)
float16 = half = np.dtype(np.float16)
int64 = long = np.dtype(np.int64)
int32 = int = np.dtype(np.int32)
int16 = short = np.dtype(np.int16)
int8 = np.dtype(np.int8)
uint8 = np.dtype(np.uint8)
bool = bool_ = np.dtype(np.bool_)

ALIASES = {"float32": float32, "float": float32, "float64": float64, "double": float64,
           "float16": float16, "half": float16, "int64": int64, "long": int64, "int32": int32,
           "int": int32, "int16": int16, "short": int16, "int8": int8, "uint8": uint8,
           "bool": bool_}

#: ``Tensor.type()``'s names, as PyTorch's legacy tensor types
TYPE_NAMES = {float32: "FloatTensor", float64: "DoubleTensor", float16: "HalfTensor",
              int64: "LongTensor", int32: "IntTensor", int16: "ShortTensor", int8: "CharTensor",
              uint8: "ByteTensor", bool_: "BoolTensor"}

_default = {"dtype": float32}


def dtype_name(dt):
    """PyTorch's spelling of a dtype: ``torch.float32``, ``torch.int64``, ``torch.bool``."""
    dt = np.dtype(dt)
    return "torch.bool" if dt == bool_ else f"torch.{dt.name}"


def get_default_dtype():
    """The dtype of tensors made from Python floats and of ``zeros``/``rand``/...: float32."""
    return _default["dtype"]


def set_default_dtype(d):
    """Change :func:`get_default_dtype` (float32 or float64 here; float16 too, as PyTorch)."""
    d = np.dtype(d)
    if d.kind != "f":
        raise TypeError(f"only floating-point types are supported as the default type, got "
                        f"{dtype_name(d)}")
    _default["dtype"] = d


def is_floating_point(input):
    """True for a float16/32/64 tensor, as ``torch.is_floating_point``."""
    if not hasattr(input, "dtype") or not hasattr(input, "array"):
        raise TypeError(f"is_floating_point(): argument 'input' (position 1) must be Tensor, not "
                        f"{type(input).__name__}")
    return input.dtype.kind == "f"


def type_name(dtype, device_type="cpu"):
    """``'torch.FloatTensor'`` for float32 on the CPU, ``'torch.cuda.FloatTensor'`` on CUDA."""
    prefix = "torch.cuda." if device_type == "cuda" else "torch."
    return prefix + TYPE_NAMES[np.dtype(dtype)]


def parse_type(t):
    """The dtype that ``Tensor.type(t)`` means: a dtype, or a name such as 'torch.LongTensor'."""
    if isinstance(t, str):
        name = t.split(".")[-1]
        for dt, n in TYPE_NAMES.items():
            if n == name:
                return dt
        raise ValueError(f"invalid type: '{t}'")
    legacy = getattr(t, "_legacy_dtype", None)      # tinyconv.FloatTensor, ... as a type
    return legacy if legacy is not None else np.dtype(t)

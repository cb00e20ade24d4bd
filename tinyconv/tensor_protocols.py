"""What makes a ``Tensor`` behave as PyTorch's in plain Python: ``len``, iteration, ``bool``,
``float``/``int``/``index`` (so ``classes[label]`` works), ``format``, ``in``, ``item``,
``tolist``, the NumPy and DLPack bridges and ``repr``.

None of it touches the graph: each reads the raw array (``self.array``).  ``Tensor`` (in
:mod:`tinyconv.autograd`) inherits these, so the core stays about the graph.
"""
import numpy as np

from . import backend


class TensorProtocols:
    """Mixed into :class:`~tinyconv.autograd.Tensor`: Python's protocols, as PyTorch's."""

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.shape[0]))

    def __bool__(self):
        if self.array.size != 1:
            which = "no values" if self.array.size == 0 else "more than one value"
            raise RuntimeError(f"Boolean value of Tensor with {which} is ambiguous")
        return bool(self.item())

    def __float__(self):
        return float(self._scalar("float"))

    def __int__(self):
        return int(self._scalar("int"))

    def __index__(self):
        if self.dtype.kind not in "iub" or self.array.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.item())

    def __format__(self, spec):
        if self.ndim == 0:
            return format(self.item(), spec)
        return object.__format__(self, spec)

    def __contains__(self, element):
        if not isinstance(element, (TensorProtocols, bool, int, float)):
            raise RuntimeError(f"Tensor.__contains__ only supports Tensor or scalar, but you passed "
                               f"in a {type(element)}.")
        return bool((self == element).array.any())

    def _scalar(self, op):
        if self.array.size != 1:
            raise ValueError(f"only one element tensors can be converted to Python scalars "
                             f"({op}() of a tensor of shape {self.shape})")
        return self.item()

    def item(self):
        if self.array.size != 1:
            raise RuntimeError(f"a Tensor with {self.array.size} elements cannot be converted to Scalar")
        if backend.is_cuda_array(self.array):       # a host read: report the deferred device checks
            from . import device_checks
            device_checks.raise_pending()
        return self.array.reshape(()).item()

    def tolist(self):
        return backend.to_device(self.array, "cpu").tolist()

    def numpy(self):
        """The data as a NumPy array (shares memory on the CPU)."""
        if self.requires_grad:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use "
                               "tensor.detach().numpy() instead.")
        if self.device.type != "cpu":
            raise TypeError(f"numpy(): the tensor is on {self.device}; call .cpu() first")
        return self.array

    def __array__(self, dtype=None, copy=None):
        if self.device.type != "cpu":
            raise TypeError(f"cannot convert a tensor on {self.device} to NumPy; call .cpu() first")
        return self.array if dtype is None else self.array.astype(dtype)

    def __dlpack__(self, *args, **kwargs):
        """Zero-copy export (DLPack), e.g. ``torch.from_dlpack(t)``; the data is shared, not copied."""
        if self.requires_grad:
            raise RuntimeError("__dlpack__: the tensor requires grad; export t.detach() instead")
        return self.array.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return self.array.__dlpack_device__()

    def __repr__(self):
        body = np.array2string(backend.to_device(self.array, "cpu"), separator=", ", prefix="tensor(")
        extra = "" if self.dtype in (np.float32, np.int64, np.bool_) else f", dtype={self.dtype}"
        if self.device.type != "cpu":
            extra += f", device='{self.device}'"
        if self.grad_fn is not None:
            extra += f", grad_fn={self.grad_fn!r}"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

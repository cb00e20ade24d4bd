"""Seeding: one generator for initialization, dropout masks and data shuffling.

``tinyconv.manual_seed(n)`` makes every draw after it reproducible.  CPU draws come
from a NumPy ``Generator``; GPU dropout uses a counter-based RNG keyed by a seed and
an offset (:func:`philox_seed_offset`), so a mask can be regenerated, never stored.
"""
import numpy as np

_state = {"seed": None, "generator": np.random.default_rng(), "offset": 0}


def manual_seed(seed):
    """Seed tinyconv's generator (initialization, dropout, DataLoader shuffling)."""
    seed = int(seed)
    _state.update(seed=seed, generator=np.random.default_rng(seed), offset=0)
    return _state["generator"]


def generator():
    """The NumPy Generator that every CPU draw goes through."""
    return _state["generator"]


def philox_seed_offset(n):
    """A (seed, offset) pair for a counter-based kernel that draws ``n`` numbers.

    The seed is drawn once per ``manual_seed``; the offset advances by ``n`` per call,
    so successive masks differ and a re-seeded run repeats them exactly.
    """
    if _state["seed"] is None:
        _state["seed"] = int(_state["generator"].integers(2**62))
    seed, offset = _state["seed"], _state["offset"]
    _state["offset"] += int(n)
    return seed, offset


def get_rng_state():
    """The generator's full state as plain data (JSON-able), for checkpoints."""
    return {"seed": _state["seed"], "offset": _state["offset"],
            "bit_generator": _state["generator"].bit_generator.state}


def set_rng_state(state):
    """Restore a state from :func:`get_rng_state`."""
    g = np.random.default_rng()
    g.bit_generator.state = state["bit_generator"]
    _state.update(seed=state["seed"], offset=state["offset"], generator=g)


def numpy_generator(gen, who):
    """``gen`` itself (a ``numpy.random.Generator``: PyTorch's ``torch.Generator`` has no
    NumPy counterpart), or tinyconv's seeded global one for None; anything else is an error."""
    if gen is None:
        return generator()
    if isinstance(gen, np.random.Generator):
        return gen
    raise TypeError(f"{who}: generator must be a numpy.random.Generator (np.random.default_rng(seed)) "
                    f"or None, got {type(gen).__name__}")

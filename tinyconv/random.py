"""Seeding: one generator for initialization, dropout masks and data shuffling.

``tinyconv.manual_seed(n)`` makes every draw after it reproducible.  CPU draws come
from a NumPy ``Generator``; GPU dropout uses a counter-based RNG keyed by a seed and
an offset (:func:`philox_seed_offset`), so a mask can be regenerated, never stored.
"""
import numpy as np

_state = {"seed": None, "generator": np.random.default_rng(), "offset": 0}
_counter_shard = {"rank": 0, "world": 1}      # data parallelism: see shard_counter


def manual_seed(seed):
    """Seed tinyconv's generator (initialization, dropout, DataLoader shuffling).

    ``seed`` takes ``torch.manual_seed``'s range, -2**63 to 2**64 - 1; a negative seed is
    taken modulo 2**64 as PyTorch does (-1 is the seed 2**64 - 1).
    """
    try:
        seed = int(seed)                    # as torch.manual_seed: 1.5 and "3" are taken too
    except (TypeError, ValueError):
        raise TypeError(f"manual_seed: expected an int, got {seed!r}") from None
    if not -2**63 <= seed < 2**64:
        raise ValueError(f"manual_seed: seed must be from -2**63 to 2**64 - 1, got {seed}")
    seed %= 2**64
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
    rank, world = _counter_shard["rank"], _counter_shard["world"]
    seed, offset = _state["seed"], _state["offset"] + rank * int(n)
    _state["offset"] += world * int(n)
    return seed, offset


def shard_counter(rank=0, world=1):
    """Data parallelism: each counter draw of ``n`` numbers becomes rank ``rank``'s
    ``n`` of one draw of ``world * n`` (``shard_counter()`` undoes it).

    With the same seed on every rank, the ranks' offsets then tile the counter range one
    process would draw for the global batch: rank r draws at ``offset + r * n`` and
    every rank advances by ``world * n``.  A dropout input whose first dimension is the
    batch is the r-th slice of the global batch's, so where a kernel keys element i by
    counter ``offset + i`` (the CPU fast path) rank r's mask is exactly the r-th slice of
    the one-process mask; elsewhere the ranks draw different masks (different offsets)."""
    rank, world = int(rank), int(world)
    if not 0 <= rank < world:
        raise ValueError(f"shard_counter: need 0 <= rank < world, got rank {rank}, world {world}")
    _counter_shard.update(rank=rank, world=world)


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

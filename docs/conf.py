"""Sphinx configuration of the minirnn book.

Build (from the repo root, with the ``docs`` extra installed)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

The chapters are Markdown (MyST); equations are rendered by MathJax; the API
pages come from the docstrings (autodoc + napoleon). Code quoted from
``minirnn/`` and ``csrc/`` is included from the files themselves
(``literalinclude`` on a function name or on a line of text), so it cannot drift:
a quoted line that disappears is a warning, and ``-W`` makes it an error.
The figures are PNGs made by ``docs/figures/make_figures.py`` from real runs.
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)          # autodoc imports minirnn from this checkout

import minirnn  # noqa: E402

project = "minirnn"
author = "the minirnn authors"
copyright = "the minirnn authors"
version = release = minirnn.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3              # [text](file.md#heading-slug) links

autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_typehints = "none"
napoleon_google_docstring = True
napoleon_numpy_docstring = False

html_theme = "alabaster"
html_title = f"minirnn {release}"
html_static_path = []
pygments_style = "sphinx"


# The docstrings are written to read well as plain text (help(), PyTorch's style), not as
# reStructuredText. One plain-text habit is an error in RST: a heading of two or more lines,
# ending in ":", followed by an indented block ("Parameters (gate order ...\n ...):\n
# weight_ih...: ..."). Joining the heading into one line makes it the term of a definition
# list, which is how a one-line heading already renders. A no-op for docstrings without it.
def _indent(line):
    return len(line) - len(line.lstrip())


def _join_multiline_headings(app, what, name, obj, options, lines):
    j = 0
    while j < len(lines) - 1:
        line, nxt = lines[j], lines[j + 1]
        if (line.rstrip().endswith(":") and not line.rstrip().endswith("::") and nxt.strip()
                and _indent(nxt) > _indent(line)):
            k = j
            while k > 0 and lines[k - 1].strip() and _indent(lines[k - 1]) == _indent(line):
                k -= 1
            if k < j:
                lines[k:j + 1] = [" " * _indent(line) + " ".join(s.strip() for s in lines[k:j + 1])]
                j = k
        j += 1


def setup(app):
    app.connect("autodoc-process-docstring", _join_multiline_headings)

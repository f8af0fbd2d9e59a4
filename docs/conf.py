"""Sphinx configuration of the minirnn book.

Build (from the repo root, with the ``docs`` extra installed)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

The chapters are Markdown (MyST); equations are rendered by MathJax 3, served from the
book's own ``_static/mathjax`` (copied there by the ``sphinx-mathjax-offline`` package), so
the built book reads the same with no network: no page loads anything over http(s). The theme
is furo (wide content column, light and dark modes, previous/next links). The API
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
    "sphinx-mathjax-offline",       # sets mathjax_path to the bundled copy, copies it in
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

html_theme = "furo"
html_title = f"minirnn {release}"
html_static_path = ["_static"]
html_css_files = ["book.css"]
html_theme_options = {"navigation_with_keys": True}
pygments_style = "sphinx"
pygments_dark_style = "monokai"


# Signatures show defaults as a reader would type them: ``dtype=np.float32``, not
# ``<class 'numpy.float32'>``; RNN and GRU take ``proj_size`` only to refuse it (as PyTorch
# does), so their default says so instead of printing the sentinel object's address.
def _readable_defaults(app, what, name, obj, options, signature, return_annotation):
    import re

    if signature:
        signature = re.sub(r"<class 'numpy\.(\w+)'>", r"np.\1", signature)
        signature = re.sub(r"<object object at 0x[0-9a-f]+>", "<LSTM only>", signature)
    return signature, return_annotation


def setup(app):
    app.connect("autodoc-process-signature", _readable_defaults)

"""Sphinx configuration of offload's documentation site (`make docs`).

Sphinx, because its autodoc imports the real package, native module included, so the API
reference is the docstrings users see in help(); sphinx.ext.doctest runs every example of the
site; furo is a clean, readable theme; MyST lets the guides and the reports be Markdown that
also reads well on GitHub.
"""

from __future__ import annotations

import doctest
import os

import offload

project = "offload"
author = "the offload authors"
copyright = "2026, the offload authors"
release = version = offload.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
    "sphinx.ext.intersphinx",
    "sphinx.ext.napoleon",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build"]

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# Docstrings are written in Google style ("Raises:", "Args:"); signatures come from the code.
napoleon_google_docstring = True
napoleon_numpy_docstring = False
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True, "show-inheritance": True}

# Links to the standard library's documentation, resolved from the copy Debian's python3-doc
# installs (the build needs no network); without it they stay plain text.
_python_inventory = "/usr/share/doc/python3/html/objects.inv"
intersphinx_mapping = (
    {"python": ("https://docs.python.org/3", _python_inventory)}
    if os.path.exists(_python_inventory)
    else {}
)

# Every example on the site runs under `make docs` (the doctest builder) and under `make test`
# (tests/test_docs.py).
doctest_global_setup = """
import asyncio
import offload
"""
doctest_default_flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

html_theme = "furo"
html_title = f"offload {release}"

"""Every ```python block of README.md and docs/*.md runs (blocks of one file share a namespace,
in order), so the documentation cannot rot."""
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILES = ["README.md"] + sorted(os.path.join("docs", f) for f in os.listdir(os.path.join(ROOT, "docs"))
                               if f.endswith(".md"))


def python_blocks(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)


@pytest.mark.parametrize("path", FILES)
def test_code_blocks_run(path):
    blocks = python_blocks(path)
    assert blocks, f"{path} has no python example"
    namespace = {"__name__": "__docs__"}
    for i, block in enumerate(blocks):
        exec(compile(block, f"{path}[block {i}]", "exec"), namespace)

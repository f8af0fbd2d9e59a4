"""Packaging: minirnn without its compiled extension still imports and runs on the NumPy path
(with a warning, and an error for backend="c" that says how to build); the version has one
source."""
import os
import re
import shutil
import subprocess
import sys

import pytest

import minirnn
from minirnn.conformance import DATA_DIR

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = os.path.dirname(os.path.abspath(minirnn.__file__))


@pytest.fixture(scope="module")
def no_kernels(tmp_path_factory):
    """A copy of the package without the compiled extension (as after an install on a machine
    without a C compiler, or a checkout that was not built)."""
    root = tmp_path_factory.mktemp("nokernels")
    shutil.copytree(PKG, root / "minirnn", ignore=shutil.ignore_patterns(
        "_kernels*.so", "_kernels*.pyd", "_kernels.c", "__pycache__", "data"))
    # An editable install (`pip install -e .`, as the README and CI do) adds an import hook that
    # maps `minirnn._kernels` to the checkout's build even when `minirnn` itself comes from this
    # copy; drop such hooks at start-up so the copy really has no extension.
    (root / "sitecustomize.py").write_text(
        "import sys\n"
        "sys.meta_path[:] = [f for f in sys.meta_path\n"
        "                    if 'editable' not in str(getattr(f, '__module__', '')).lower()]\n")
    return str(root)


def _python(where, code, *args):
    env = dict(os.environ, PYTHONPATH=where)
    return subprocess.run([sys.executable, *args] if not code else
                          [sys.executable, "-c", code, *args], capture_output=True, text=True,
                          cwd=where, env=env, timeout=300)


def test_without_the_extension_the_numpy_path_works(no_kernels):
    r = _python(no_kernels, """
import warnings
import numpy as np
with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter("always")
    import minirnn
assert minirnn.__file__.startswith(%r), minirnn.__file__
assert [x.category.__name__ for x in w] == ["KernelsNotBuiltWarning"], [str(x.message) for x in w]
print("WARNING:", w[0].message)
m = minirnn.LSTM(3, 4, num_layers=2, bidirectional=True, seed=0)
assert m.backend == "numpy", m.backend
out, (h, c) = m(np.ones((5, 2, 3), np.float32))
assert out.shape == (5, 2, 8) and h.shape == (4, 2, 4)
m.backward(np.ones_like(out), (None, None))
assert minirnn.GRUCell(3, 4).backend == "numpy"
assert minirnn.get_num_threads() == 1 and minirnn.openmp_enabled() is False
minirnn.set_num_threads(2)
minirnn.release_buffers()
for make in (lambda: minirnn.GRU(3, 4, backend="c"), lambda: minirnn.RNNCell(3, 4, backend="c")):
    try:
        make()
    except ImportError as e:
        print("ERROR:", e)
    else:
        raise AssertionError("backend='c' without kernels did not raise")
""" % no_kernels)
    assert r.returncode == 0, r.stdout + r.stderr
    warning = r.stdout.split("WARNING:")[1].split("\n")[0]
    errors = [line for line in r.stdout.splitlines() if line.startswith("ERROR:")]
    assert "minirnn._kernels" in warning and "NumPy" in warning and "pip install" in warning
    assert len(errors) == 2
    assert errors[0].startswith("ERROR: GRU: backend='c' needs the compiled kernels")
    assert errors[1].startswith("ERROR: RNNCell: backend='c' needs the compiled kernels")
    for e in errors:
        assert "C compiler" in e and "pip install" in e and "backend='numpy'" in e


def test_without_the_extension_the_main_job_checks_the_numpy_path(no_kernels):
    r = _python(no_kernels, None, "-W", "ignore", "-m", "minirnn", "--dumps", DATA_DIR)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "NumPy path only: the compiled kernels are not built" in r.stdout
    assert "cases pass on numpy, in float64 and float32" in r.stdout


def test_the_version_has_one_source():
    from minirnn import _version
    assert minirnn.__version__ == _version.__version__
    assert re.fullmatch(r"\d+\.\d+\.\d+(\.dev\d+|rc\d+)?", minirnn.__version__)
    with open(os.path.join(ROOT, "pyproject.toml")) as f:
        pyproject = f.read()
    assert 'dynamic = ["version"]' in pyproject
    assert 'version = { attr = "minirnn._version.__version__" }' in pyproject
    assert not re.search(r"^version\s*=\s*\"", pyproject, flags=re.M)
    with open(os.path.join(ROOT, "CHANGELOG.md")) as f:
        changelog = f.read()
    assert f"## {minirnn.__version__}" in changelog


@pytest.mark.skipif(not os.path.exists(os.path.join(ROOT, "setup.py")), reason="no source tree")
def test_a_build_without_a_c_compiler_says_so(tmp_path):
    pytest.importorskip("Cython")
    pytest.importorskip("setuptools", minversion="77")       # reads pyproject's SPDX license
    cmd = [sys.executable, "setup.py", "-q", "build_ext", "-b", str(tmp_path / "lib"),
           "-t", str(tmp_path / "tmp")]
    env = dict(os.environ, CC="no-such-c-compiler-xyz")
    for key in ("MINIRNN_REQUIRE_KERNELS", "MINIRNN_REQUIRE_OPENMP"):
        env.pop(key, None)
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    # installs without the kernels, loudly, naming the cause (not OpenMP)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "no C compiler: 'no-such-c-compiler-xyz'" in r.stderr
    assert "WITHOUT its compiled kernels" in r.stderr and "OpenMP" not in r.stderr
    assert not list((tmp_path / "lib").rglob("_kernels*")) if (tmp_path / "lib").exists() else True
    r = subprocess.run(cmd, cwd=ROOT, env=dict(env, MINIRNN_REQUIRE_KERNELS="1"),
                       capture_output=True, text=True, timeout=600)
    assert r.returncode != 0
    assert "cannot build the compiled kernels: no C compiler" in r.stdout + r.stderr

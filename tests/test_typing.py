"""The public API carries type hints: every callable ``minirnn.__all__`` exposes (functions,
classes' constructors and public methods, also of ``minirnn.optim``) annotates each parameter
and its return; the hints resolve at run time (``typing.get_type_hints``); the compiled
extension's stub ``minirnn/_kernels.pyi`` types the functions minirnn re-exports from it and
names only what the extension has. With mypy installed, a user's script sees the overloads:
packed input gives a PackedSequence, an LSTM an ``(h, c)`` pair."""
import ast
import inspect
import os
import subprocess
import sys
import textwrap
import types
import typing

import pytest

import minirnn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STUB = os.path.join(ROOT, "minirnn", "_kernels.pyi")


def _stub_functions():
    tree = ast.parse(open(STUB).read())
    return {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}


def _public_callables():
    """(qualified name, function) of every public function and method in minirnn.__all__."""
    seen = []

    def add_class(qual, cls):
        done = set()                  # the first class of the MRO defining a name is the one
        for klass in cls.__mro__:     # a call reaches
            for name, attr in vars(klass).items():
                if name in done:
                    continue
                done.add(name)
                if not klass.__module__.startswith("minirnn") or (
                        name.startswith("_") and name not in ("__init__", "__new__", "__call__")):
                    continue
                if isinstance(attr, (staticmethod, classmethod)):
                    attr = attr.__func__
                if isinstance(attr, property):
                    attr = attr.fget
                if inspect.isfunction(attr):
                    seen.append((f"{qual}.{name}", attr))

    def add(qual, obj):
        if isinstance(obj, types.ModuleType):
            for name in obj.__all__:
                add(f"{qual}.{name}", getattr(obj, name))
        elif inspect.isclass(obj):
            add_class(qual, obj)
        elif callable(obj):
            seen.append((qual, obj))

    for name in minirnn.__all__:
        add(f"minirnn.{name}", getattr(minirnn, name))
    return seen


CALLABLES = _public_callables()


def test_the_walk_finds_the_api():
    names = {q for q, _ in CALLABLES}
    for expected in ("minirnn.LSTM.forward", "minirnn.RNN.__init__", "minirnn.GRUCell.backward",
                     "minirnn.pack_padded_sequence", "minirnn.PackedSequence.__new__",
                     "minirnn.optim.Adam.step", "minirnn.no_grad.__call__",
                     "minirnn.set_num_threads", "minirnn.Linear.forward"):
        assert expected in names
    assert len(names) > 60


def _missing_annotations(fn):
    """The parameters (and 'return') of ``fn`` without an annotation."""
    if getattr(fn, "__module__", "") == "minirnn._kernels":    # compiled: read the stub
        node = _stub_functions().get(fn.__name__)
        if node is None:
            return ["not in minirnn/_kernels.pyi"]
        a = node.args
        params = a.posonlyargs + a.args + a.kwonlyargs + [p for p in (a.vararg, a.kwarg) if p]
        return ([p.arg for p in params if p.annotation is None]
                + (["return"] if node.returns is None else []))
    sig = inspect.signature(fn)
    params = list(sig.parameters.values())
    if params and params[0].name in ("self", "cls"):
        params = params[1:]
    return ([p.name for p in params if p.annotation is inspect.Parameter.empty]
            + (["return"] if sig.return_annotation is inspect.Signature.empty else []))


@pytest.mark.parametrize("qual,fn", CALLABLES, ids=[q for q, _ in CALLABLES])
def test_public_signature_is_annotated(qual, fn):
    assert _missing_annotations(fn) == [], f"{qual}: no annotation on {_missing_annotations(fn)}"


def test_the_check_sees_a_missing_annotation():
    def half(x: int, y) -> int:
        return x

    def bare(x: int):
        return x

    assert _missing_annotations(half) == ["y"]
    assert _missing_annotations(bare) == ["return"]


@pytest.mark.parametrize("qual,fn", [(q, f) for q, f in CALLABLES
                                     if getattr(f, "__module__", "") != "minirnn._kernels"],
                         ids=[q for q, f in CALLABLES
                              if getattr(f, "__module__", "") != "minirnn._kernels"])
def test_hints_resolve_at_run_time(qual, fn):
    # every name an annotation uses exists at run time (aliases are objects, not strings)
    hints = typing.get_type_hints(fn)
    assert "return" in hints


def test_stub_names_what_the_extension_has():
    kernels = pytest.importorskip("minirnn._kernels")
    tree = ast.parse(open(STUB).read())
    names = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)] + \
            [n.target.id for n in tree.body if isinstance(n, ast.AnnAssign)]
    for name in names:
        if name == "__getattr__":
            continue
        assert hasattr(kernels, name), f"minirnn/_kernels.pyi declares {name}, the extension " \
                                       "has no such name"
        obj = getattr(kernels, name)
        if callable(obj):
            node = _stub_functions()[name]
            stub_params = [p.arg for p in node.args.args]
            assert stub_params == list(inspect.signature(obj).parameters), name
    for name in ("openmp_enabled", "get_num_threads", "set_num_threads"):
        assert name in names                  # re-exported by minirnn: typed in the stub


USER_SCRIPT = """
import numpy as np
import minirnn

x = np.zeros((5, 2, 3), dtype=np.float32)
lstm = minirnn.LSTM(3, 4)
out, (h, c) = lstm(x)
reveal_type(out)
reveal_type(c)
packed_out, _ = lstm(minirnn.pack_sequence([x[:, 0], x[:3, 1]]))
reveal_type(packed_out)
gru_out, h_n = minirnn.GRU(3, 4).eval()(x)
reveal_type(h_n)
h1, c1 = minirnn.LSTMCell(3, 4)(x[0])
reveal_type(minirnn.RNNCell(3, 4)(x[0]))
"""


def test_a_users_type_checker_sees_the_overloads(tmp_path, request):
    # mypy with its defaults (no project configuration): also a missing stub of the compiled
    # extension would be an error here, as in a user's project
    pytest.importorskip("mypy")
    script = tmp_path / "user.py"
    script.write_text(textwrap.dedent(USER_SCRIPT))
    env = dict(os.environ, MYPYPATH=ROOT)
    # kept between runs (numpy's stubs) unless pytest runs with -p no:cacheprovider
    cache_plugin = getattr(request.config, "cache", None)
    cache = cache_plugin.mkdir("mypy-user") if cache_plugin is not None else tmp_path / "mypy"
    r = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(cache),
                        "--config-file", os.devnull, str(script)],
                       capture_output=True, text=True, env=env, cwd=str(tmp_path))
    revealed = [line.split("Revealed type is ")[1] for line in r.stdout.splitlines()
                if "Revealed type is" in line]
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(revealed) == 5, r.stdout
    out, c, packed_out, h_n, cell_h = revealed
    for t in (out, c, h_n, cell_h):
        assert t.startswith('"numpy.ndarray') and "floating" in t, t
    assert "PackedSequence" in packed_out, packed_out

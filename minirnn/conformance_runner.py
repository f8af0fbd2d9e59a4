"""Run minirnn's PyTorch reference cases against *another* implementation.

    python -m minirnn conformance --impl MODULE:FUNCTION [--dumps DIR] [--only PATTERN]
                                  [--dtype float64] [--dtype float32] [--forward-only]

or, from Python, :func:`run_conformance`. Every shipped reference case (``*.npz`` in
``minirnn.conformance.DATA_DIR``, format in ``minirnn/data/README.md``) is given to the
implementation through the adapter below; its outputs and gradients are compared with
PyTorch's by :func:`minirnn.conformance.compare` (max|got - ref| / max|ref| against the
per-dtype tolerance) and a pass/fail table is printed. The command exits with status 1 when
any case fails.

The adapter interface
---------------------
``FUNCTION(case)`` is called once per case and dtype with a :class:`Case` (the rebuilt
configuration and PyTorch's parameters). It returns ``None`` to skip a case it does not
support (reported as ``skip``), or an object with:

``forward(inputs) -> dict``
    ``inputs``: ``"input"``, ``"h0"`` (``None`` when the case passes no initial state:
    use zeros), for LSTMs ``"c0"``; packed cases also ``"lengths"`` (one per sequence,
    caller's order; ``"input"`` is padded). Every array is in ``case.dtype`` and in the
    layout of ``case.config`` (``batch_first``, unbatched 2-D input, cells ``(steps, N, I)``).
    Return, for modules: ``"output"``, ``"h_n"`` (, ``"c_n"``); packed cases: ``"output"``
    **padded** like ``"input"`` (zeros past each length, ``seq_len`` steps), ``"h_n"``
    (, ``"c_n"``) in the caller's batch order; cells (a loop of ``steps`` calls of one cell,
    the first with ``h0``/``c0``): ``"h"`` (and ``"c"``), every step stacked.
``backward(grads) -> dict`` (optional; checked when present and not ``--forward-only``)
    ``grads``: the upstream gradients of the forward's outputs, same keys with ``grad_``
    (``"grad_output"``, padded for packed cases, ``"grad_h_n"``, ``"grad_c_n"``; cells
    ``"grad_h"``, ``"grad_c"`` for every step). Return the gradients of the loss
    ``sum(output*grad_output) + sum(h_n*grad_h_n) [+ sum(c_n*grad_c_n)]``:
    ``"grad_input"`` (padded for packed cases), ``"grad_h0"`` (, ``"grad_c0"``), also when
    ``h0`` was ``None`` (then w.r.t. the zero state), and ``"grad.<param>"`` for every
    parameter name of ``case.params``. A missing key fails the case.

Arrays may be anything ``numpy.asarray`` converts. ``examples/torch_adapter.py`` wraps
``torch.nn``; ``examples/numpy_adapter.py`` wraps minirnn itself.
"""
from __future__ import annotations

import fnmatch
import importlib
import importlib.util
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from .conformance import DATA_DIR, TOLERANCE, Comparison, compare, find_cases, load_case
from .packed import PackedSequence, pad_packed_sequence


@dataclass
class Case:
    """One reference case, as given to an adapter.

    ``name`` (file name without ``.npz``), ``kind`` (``"module"``, ``"packed"`` or
    ``"cell"``), ``cls`` (``"RNN"``, ``"GRU"``, ``"LSTM"``, ``"RNNCell"``, ...), ``mode``
    (``"RNN_TANH"``, ``"RNN_RELU"``, ``"GRU"``, ``"LSTM"``), ``config`` (PyTorch's constructor
    keyword arguments: ``torch.nn.<cls>(**config)``), ``params`` (``{name: array}`` in
    PyTorch's names, shapes and order, in ``dtype``), ``dtype`` (the dtype to compute in),
    ``meta`` (the whole ``meta`` of the dump)."""

    name: str
    kind: str
    cls: str
    mode: str
    config: Dict[str, Any]
    params: Dict[str, np.ndarray]
    dtype: np.dtype
    meta: Dict[str, Any] = field(repr=False)


@dataclass
class CaseResult:
    """The outcome of one case in one dtype: ``status`` is ``"pass"``, ``"FAIL"`` or
    ``"skip"``; ``error`` the worst normalized error; ``comparisons`` every tensor
    compared (:class:`minirnn.conformance.Comparison`); ``message`` why it failed
    (an exception, a missing key) or was skipped."""

    name: str
    dtype: np.dtype
    status: str
    error: float = 0.0
    comparisons: List[Comparison] = field(default_factory=list)
    message: str = ""
    backward: bool = False


def load_impl(spec: str) -> Callable[[Case], Any]:
    """``"package.module:function"`` -> the function (the module is imported; a path to a
    ``.py`` file is accepted before the colon too)."""
    if not isinstance(spec, str) or ":" not in spec:
        raise ValueError(f"--impl must be MODULE:FUNCTION (e.g. examples.torch_adapter:"
                         f"make_adapter), got {spec!r}")
    mod_name, func_name = spec.rsplit(":", 1)
    if mod_name.endswith(".py"):
        s = importlib.util.spec_from_file_location(
            os.path.splitext(os.path.basename(mod_name))[0], mod_name)
        if s is None or s.loader is None:
            raise ValueError(f"--impl: cannot load {mod_name!r}")
        module = importlib.util.module_from_spec(s)
        s.loader.exec_module(module)
    else:
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        module = importlib.import_module(mod_name)
    fn = getattr(module, func_name, None)
    if not callable(fn):
        raise ValueError(f"--impl: {mod_name} has no callable {func_name!r}")
    return fn


def _packed_grad_output(meta: Dict[str, Any], a: Dict[str, np.ndarray], dtype) -> np.ndarray:
    """The packed case's upstream gradient (stored as packed data) in the padded layout."""
    sorted_idx = meta["sorted_indices"]
    unsorted = None if sorted_idx is None else np.argsort(sorted_idx)
    ps = PackedSequence(a["grad_output"].astype(dtype), np.asarray(meta["batch_sizes"]),
                        None if sorted_idx is None else np.asarray(sorted_idx), unsorted)
    padded, _ = pad_packed_sequence(ps, batch_first=meta["config"]["batch_first"],
                                    total_length=meta["seq_len"])
    return padded


def _references(meta, a):
    """(forward keys: {adapter key: dump key}, backward keys) compared for this case."""
    lstm = meta["mode"] == "LSTM"
    if meta["kind"] == "cell":
        fwd = {"h": "h", **({"c": "c"} if lstm else {})}
    else:
        fwd = {"output": "output_padded" if meta["kind"] == "packed" else "output",
               "h_n": "h_n", **({"c_n": "c_n"} if lstm else {})}
    bwd = {f"grad.{n}": f"grad.{n}" for n in reversed(meta["param_names"])}
    bwd.update({"grad_input": "grad_input", "grad_h0": "grad_h0"})
    if lstm:
        bwd["grad_c0"] = "grad_c0"
    return fwd, bwd


def run_case_with(adapter_factory: Callable[[Case], Any], path: str, dtype=np.float64,
                  backward: bool = True) -> CaseResult:
    """Run one dump through an adapter (see the module docstring) in ``dtype``."""
    dtype = np.dtype(dtype)
    tol = TOLERANCE[dtype]
    name = os.path.basename(path)[:-4]
    meta, a = load_case(path)
    cast = lambda k: a[k].astype(dtype) if k in a else None     # noqa: E731
    case = Case(name, meta["kind"], meta["class"], meta["mode"], dict(meta["config"]),
                {n: a[n].astype(dtype) for n in meta["param_names"]}, dtype, meta)
    lstm = meta["mode"] == "LSTM"
    try:
        adapter = adapter_factory(case)
    except Exception as e:       # the implementation's error is a result, not a crash
        return CaseResult(name, dtype, "FAIL", np.inf, message=f"adapter raised {e!r}")
    if adapter is None:
        return CaseResult(name, dtype, "skip", message="not supported by the adapter")
    inputs = {"input": cast("input"), "h0": cast("h0") if meta["has_h0"] else None}
    if lstm:
        inputs["c0"] = cast("c0") if meta["has_h0"] else None
    if meta["kind"] == "packed":
        inputs["lengths"] = list(meta["lengths"])
    fwd, bwd = _references(meta, a)
    results: List[Comparison] = []
    do_backward = backward and callable(getattr(adapter, "backward", None))
    try:
        got = adapter.forward(inputs)
        for k, ref in fwd.items():
            results.append(_compare_key(got, k, a[ref], tol))
        if do_backward:
            if meta["kind"] == "cell":
                grads = {"grad_h": cast("grad_h"), **({"grad_c": cast("grad_c")} if lstm else {})}
            else:
                go = (_packed_grad_output(meta, a, dtype) if meta["kind"] == "packed"
                      else cast("grad_output"))
                grads = {"grad_output": go, "grad_h_n": cast("grad_h_n")}
                if lstm:
                    grads["grad_c_n"] = cast("grad_c_n")
            gotb = adapter.backward(grads)
            for k, ref in bwd.items():
                results.append(_compare_key(gotb, k, a[ref], tol))
    except Exception as e:
        tb = traceback.format_exception_only(type(e), e)[-1].strip()
        return CaseResult(name, dtype, "FAIL", np.inf, results, f"adapter raised {tb}",
                          do_backward)
    worst = max((c.error for c in results), default=0.0)
    bad = [c for c in results if not c.ok]
    msg = "" if not bad else "; ".join(
        f"{c.name}: {c.where}" if np.isinf(c.error) and isinstance(c.where, str)
        else f"{c.name} {c.error:.2e}" for c in bad[:3])
    return CaseResult(name, dtype, "FAIL" if bad else "pass", worst, results, msg, do_backward)


def _compare_key(got: Any, key: str, ref: np.ndarray, tol: float) -> Comparison:
    if not isinstance(got, dict) or key not in got or got[key] is None:
        return Comparison(key, np.inf, tol, "missing from the adapter's result", 0.0, False)
    try:
        arr = np.asarray(got[key], dtype=np.float64)
    except (TypeError, ValueError) as e:
        return Comparison(key, np.inf, tol, f"not an array ({e})", 0.0, False)
    return compare(key, arr, ref, tol)


@dataclass
class Report:
    """All results of :func:`run_conformance`; ``ok`` when no case failed (skips allowed
    unless none passed)."""

    results: List[CaseResult]

    @property
    def n_pass(self) -> int:
        return sum(r.status == "pass" for r in self.results)

    @property
    def n_fail(self) -> int:
        return sum(r.status == "FAIL" for r in self.results)

    @property
    def n_skip(self) -> int:
        return sum(r.status == "skip" for r in self.results)

    @property
    def ok(self) -> bool:
        return self.n_fail == 0 and self.n_pass > 0


def run_conformance(impl: Any, directory: str = DATA_DIR, *, only: Optional[str] = None,
                    dtypes: Sequence[Any] = (np.float64, np.float32), backward: bool = True,
                    out: Any = None) -> Report:
    """Run every reference case in ``directory`` (those whose name matches the glob
    ``only``) through ``impl`` (an adapter factory, or a ``"MODULE:FUNCTION"`` string) in
    each dtype, print the table to ``out`` (default ``sys.stdout``; ``None`` output with
    ``out=False``) and return the :class:`Report`."""
    factory = load_impl(impl) if isinstance(impl, str) else impl
    if not callable(factory):
        raise TypeError(f"impl must be a callable adapter factory or 'MODULE:FUNCTION', got "
                        f"{type(impl).__name__}")
    dts = [np.dtype(d) for d in dtypes]
    for d in dts:
        if d not in TOLERANCE:
            raise ValueError(f"dtypes must be float64 and/or float32, got {d}")
    if not os.path.isdir(directory):
        raise ValueError(f"no folder of reference dumps at {directory!r}")
    paths = [p for p in find_cases(directory)
             if only is None or fnmatch.fnmatch(os.path.basename(p)[:-4], only)]
    stream = sys.stdout if out is None else out
    say = (lambda s: None) if out is False else (lambda s: print(s, file=stream))   # noqa: E731
    name = getattr(factory, "__module__", "?") + ":" + getattr(factory, "__name__", "?")
    say(f"conformance of {name} against PyTorch reference dumps ({len(paths)} cases in "
        f"{directory}{', matching ' + repr(only) if only else ''})")
    say("  worst max|diff|/max|ref| over all outputs and gradients; tolerance "
        + ", ".join(f"{d.name} {TOLERANCE[d]:.0e}" for d in dts)
        + ("; 'fwd': checked forward only (the adapter has no backward)" if backward
           else "; forward only"))
    say(f"  {'case':<44}" + "".join(f"{d.name:>12}" for d in dts) + "  result")
    results: List[CaseResult] = []
    t0 = time.perf_counter()
    worst = {d: 0.0 for d in dts}
    for path in paths:
        row, statuses, notes = "", [], []
        for d in dts:
            r = run_case_with(factory, path, d, backward)
            results.append(r)
            statuses.append(r.status)
            if r.status == "skip":
                row += f"{'skip':>12}"
            else:
                worst[d] = max(worst[d], r.error)
                row += f"{r.error:>12.2e}" if np.isfinite(r.error) else f"{'error':>12}"
            if r.message and r.status == "FAIL":
                notes.append(f"{d.name}: {r.message}")
            elif backward and r.status == "pass" and not r.backward:
                notes.append("fwd")
        status = ("FAIL" if "FAIL" in statuses else "skip" if all(s == "skip" for s in statuses)
                  else "pass")
        note = "" if not notes else "  " + "; ".join(dict.fromkeys(notes))
        say(f"  {os.path.basename(path)[:-4]:<44}{row}  {status}{note}")
    rep = Report(results)
    say(f"  {'worst':<44}" + "".join(f"{worst[d]:>12.2e}" for d in dts))
    say(f"\n{rep.n_pass} passed, {rep.n_fail} failed, {rep.n_skip} skipped "
        f"({len(paths)} cases x {len(dts)} dtypes, {time.perf_counter() - t0:.1f} s)")
    return rep


def add_arguments(p: Any) -> None:
    """The ``conformance`` subcommand's options (``python -m minirnn conformance -h``)."""
    p.add_argument("--impl", required=True, metavar="MODULE:FUNCTION",
                   help="the adapter factory of the implementation to check "
                   "(e.g. examples.torch_adapter:make_adapter)")
    # its own dest: the top level's --dumps default would otherwise replace it
    p.add_argument("--dumps", default=DATA_DIR, dest="impl_dumps",
                   help="folder of reference dumps (default: the cases installed with minirnn)")
    p.add_argument("--only", default=None, metavar="PATTERN",
                   help="only the cases whose name matches this glob (e.g. 'lstm_*')")
    p.add_argument("--dtype", action="append", choices=["float64", "float32"], dest="dtypes",
                   help="dtype(s) to run (default: both)")
    p.add_argument("--forward-only", action="store_true",
                   help="do not call the adapter's backward")


def main(args: Any) -> int:
    """Run the subcommand; 0 when every case passed, 1 otherwise."""
    try:
        rep = run_conformance(args.impl, args.impl_dumps, only=args.only,
                              dtypes=args.dtypes or ["float64", "float32"],
                              backward=not args.forward_only)
    except (ValueError, TypeError, ImportError) as e:
        print(f"python -m minirnn conformance: {e}", file=sys.stderr)
        return 2
    return 0 if rep.ok else 1

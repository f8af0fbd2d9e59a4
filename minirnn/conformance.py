"""Run PyTorch reference dumps against minirnn and compare, tensor by tensor.

A dump (written by ``tools/make_reference_dumps.py``, format in
``minirnn/data/README.md``) holds a configuration, parameters, inputs, upstream
gradients and every output and gradient PyTorch computed, in float64. This
module rebuilds the model from the dump, runs forward and backward on a chosen
backend and dtype, and compares with **one** routine, :func:`compare`, which
reports the largest difference, where it is, and how much of the tolerance it
used. Tensors are compared in dataflow order (forward outputs, then gradients
in the order the backward produces them), so the first failure points at the
bug.

Used by the test suite and by ``python -m minirnn``; implementers of other RNN
libraries can use the dumps and this file as a conformance suite.
"""
from __future__ import annotations

import json
import os
from collections import namedtuple
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from . import modules
from .packed import PackedSequence, pack_padded_sequence, pad_packed_sequence

#: normalized tolerance per dtype: max|got - ref| / max|ref| must not exceed it
#: (measured: float64 implementations agree to ~1e-15, float32 to ~1e-6 against float64).
#: the reference cases installed with minirnn (package data; format in its README.md)
DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")

TOLERANCE = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-4}

#: one dump as :func:`load_case` returns it: (meta, {key: float64 array})
Case = Tuple[Dict[str, Any], Dict[str, Any]]

Comparison = namedtuple("Comparison", "name error tolerance where max_ref ok")
Comparison.__doc__ = ("One tensor compared: ``error`` = max|got - ref| / max|ref| (normalized), "
                      "``where`` the index of the largest difference.")


def compare(name: str, got: Any, ref: ArrayLike, tolerance: float) -> Comparison:
    """Compare ``got`` with the reference ``ref`` (shapes must be equal).

    The error is normalized by the largest reference magnitude, so one tolerance
    serves tensors of any scale (gradients reach 100, states stay below 1).
    """
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if got.shape != ref.shape:
        return Comparison(name, np.inf, tolerance, f"shape {got.shape} != reference {ref.shape}",
                          0.0, False)
    if ref.size == 0:
        return Comparison(name, 0.0, tolerance, None, 0.0, True)
    diff = np.abs(got - ref)
    max_ref = float(np.abs(ref).max())
    worst = int(np.argmax(np.where(np.isnan(diff), np.inf, diff)))
    where = tuple(int(i) for i in np.unravel_index(worst, ref.shape))
    error = float(diff.flat[worst]) / max(max_ref, np.finfo(np.float64).tiny)
    if not np.isfinite(error):
        error = np.inf
    return Comparison(name, error, tolerance, where, max_ref, error <= tolerance)


def format_comparison(c: Comparison) -> str:
    used = c.error / c.tolerance if c.tolerance else np.inf
    return (f"{c.name}: {'ok' if c.ok else 'MISMATCH'} max|diff|/max|ref| = {c.error:.3e} "
            f"at {c.where} (tolerance {c.tolerance:.0e}, {100 * used:.2g}% used; "
            f"max|ref| = {c.max_ref:.3g})")


def load_case(path: str) -> Case:
    """Read one dump: returns (meta dict, {key: float64 array})."""
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files if k != "meta"}
        meta = json.loads(str(z["meta"]))
    return meta, arrays


def find_cases(directory: str) -> List[str]:
    """Sorted paths of every ``*.npz`` dump in ``directory``."""
    return sorted(os.path.join(directory, f) for f in os.listdir(directory) if f.endswith(".npz"))


def _build(meta, dtype, backend):
    cls = getattr(modules, meta["class"])
    return cls(**meta["config"], dtype=dtype, backend=backend)


def run_case(path_or_case: Union[str, Case], backend: Optional[str] = None,
             dtype: DTypeLike = np.float64) -> List[Comparison]:
    """Run one dump on ``backend`` in ``dtype``; return the list of Comparisons in dataflow
    order."""
    meta, a = load_case(path_or_case) if isinstance(path_or_case, str) else path_or_case
    dtype = np.dtype(dtype)
    tol = TOLERANCE[dtype]
    m = _build(meta, dtype, backend)
    m.load_state_dict({name: a[name] for name in meta["param_names"]})
    def cast(k: str) -> Any:
        return a[k].astype(dtype) if k in a else None
    lstm = meta["mode"] == "LSTM"
    results = []
    if meta["kind"] == "module":
        h0, c0 = cast("h0"), cast("c0")
        hx = ((h0, c0) if meta["has_h0"] else None) if lstm else h0
        out, state = m(cast("input"), hx)
        h_n, c_n = state if lstm else (state, None)
        results.append(compare("output", out, a["output"], tol))
        results.append(compare("h_n", h_n, a["h_n"], tol))
        if lstm:
            results.append(compare("c_n", c_n, a["c_n"], tol))
        gstate = (cast("grad_h_n"), cast("grad_c_n")) if lstm else cast("grad_h_n")
        gx, gs = m.backward(cast("grad_output"), gstate)
        gh0, gc0 = gs if lstm else (gs, None)
    elif meta["kind"] == "packed":
        # pack as torch did (the data and the integer fields must be identical), run packed
        bf = meta["config"]["batch_first"]
        packed = pack_padded_sequence(cast("input"), meta["lengths"], batch_first=bf,
                                      enforce_sorted=meta["enforce_sorted"])
        results.append(compare("packed_data", packed.data, a["packed_data"], tol))
        results.append(compare("batch_sizes", packed.batch_sizes, meta["batch_sizes"], 0.0))
        if meta["sorted_indices"] is None:
            results.append(Comparison("sorted_indices", 0.0 if packed.sorted_indices is None
                                      else np.inf, 0.0, None, 0.0,
                                      packed.sorted_indices is None))
        else:
            results.append(compare("sorted_indices", packed.sorted_indices,
                                   meta["sorted_indices"], 0.0))
        h0, c0 = cast("h0"), cast("c0")
        hx = ((h0, c0) if meta["has_h0"] else None) if lstm else h0
        out, state = m(packed, hx)
        h_n, c_n = state if lstm else (state, None)
        results.append(compare("output", out.data, a["output"], tol))
        padded, _ = pad_packed_sequence(out, batch_first=bf, total_length=meta["seq_len"])
        results.append(compare("output_padded", padded, a["output_padded"], tol))
        results.append(compare("h_n", h_n, a["h_n"], tol))
        if lstm:
            results.append(compare("c_n", c_n, a["c_n"], tol))
        gstate = (cast("grad_h_n"), cast("grad_c_n")) if lstm else cast("grad_h_n")
        grad_out = PackedSequence(cast("grad_output"), out.batch_sizes, out.sorted_indices,
                                  out.unsorted_indices)
        gx, gs = m.backward(grad_out, gstate)
        gh0, gc0 = gs if lstm else (gs, None)
        gx, _ = pad_packed_sequence(gx, batch_first=bf, total_length=meta["seq_len"])
    else:
        x = cast("input")
        h, c = cast("h0"), cast("c0")
        hs, cs = [], []
        for t in range(meta["steps"]):
            if lstm:
                h, c = m(x[t], (h, c))
                cs.append(c)
            else:
                h = m(x[t], h)
            hs.append(h)
        results.append(compare("h", np.stack(hs), a["h"], tol))
        if lstm:
            results.append(compare("c", np.stack(cs), a["c"], tol))
        grad_h, grad_c = cast("grad_h"), cast("grad_c")
        gx_steps: List[Any] = [None] * meta["steps"]
        gh0 = np.zeros_like(hs[0])
        gc0 = np.zeros_like(hs[0]) if lstm else None
        for t in reversed(range(meta["steps"])):
            # the gradient reaching h_t: from the loss at step t, plus from step t+1
            gh_t = grad_h[t] + gh0
            if lstm:
                gx_steps[t], (gh0, gc0) = m.backward((gh_t, grad_c[t] + gc0))
            else:
                gx_steps[t], gh0 = m.backward(gh_t)
        gx = np.stack(gx_steps)
    for name in reversed(meta["param_names"]):
        results.append(compare(f"grad.{name}", m.grads[name], a[f"grad.{name}"], tol))
    results.append(compare("grad_input", gx, a["grad_input"], tol))
    results.append(compare("grad_h0", gh0, a["grad_h0"], tol))
    if lstm:
        results.append(compare("grad_c0", gc0, a["grad_c0"], tol))
    return results


#: the modes of the dumps (``meta["mode"]``), in the order summaries list them
MODES = ("RNN_TANH", "RNN_RELU", "GRU", "LSTM")

class CaseResult(namedtuple("CaseResult", "name mode kind backend dtype comparisons")):
    """One dump run on one backend in one dtype; ``comparisons`` is what :func:`run_case`
    returned, in dataflow order."""
    __slots__ = ()

    @property
    def ok(self):
        """Every comparison within its tolerance."""
        return all(c.ok for c in self.comparisons)

    @property
    def error(self):
        """The worst normalized error of the case."""
        return max((c.error for c in self.comparisons), default=0.0)

    @property
    def first_failure(self):
        """The first comparison out of tolerance (dataflow order: it points at the bug), or
        None."""
        return next((c for c in self.comparisons if not c.ok), None)


def run_cases(paths: Iterable[str], backends: Optional[Sequence[str]] = None,
              dtypes: Sequence[DTypeLike] = (np.float64, np.float32)) -> List[CaseResult]:
    """Run every dump in ``paths`` on every backend of ``backends`` (default: all) in every
    dtype of ``dtypes``; return the list of :class:`CaseResult`, case by case."""
    backends = modules.BACKENDS if backends is None else backends
    results = []
    for path in paths:
        case = load_case(path)
        meta = case[0]
        name = os.path.basename(path)[:-len(".npz")]
        for backend in backends:
            for dtype in (np.dtype(d) for d in dtypes):
                results.append(CaseResult(name, meta["mode"], meta["kind"], backend, dtype,
                                          run_case(case, backend=backend, dtype=dtype)))
    return results


SummaryRow = namedtuple("SummaryRow", "mode backend dtype cases passed worst tolerance")


def summarize(results: Iterable[CaseResult]) -> List[SummaryRow]:
    """One :class:`SummaryRow` per (mode, backend, dtype) present in ``results``: the number of
    cases, how many passed, the worst normalized error and the dtype's tolerance."""
    groups: Dict[Tuple[str, str, str], List[CaseResult]] = {}
    for r in results:
        groups.setdefault((r.mode, r.backend, r.dtype.name), []).append(r)
    order = {m: i for i, m in enumerate(MODES)}
    rows = []
    for (mode, backend, dtype), rs in sorted(groups.items(), key=lambda kv: (
            order.get(kv[0][0], len(order)), kv[0][0], kv[0][1], kv[0][2] != "float64")):
        rows.append(SummaryRow(mode, backend, dtype, len(rs), sum(r.ok for r in rs),
                               max(r.error for r in rs), TOLERANCE[np.dtype(dtype)]))
    return rows


# --------------------------------------------------------------------------- variant cases

#: where the cell-variant references live (written by ``tools/make_variant_dumps.py``; format
#: in ``minirnn/data/variants/README.md``)
VARIANTS_DIR = os.path.join(DATA_DIR, "variants")

#: normalized tolerance of a comparison, by (reference, dtype run): onnxruntime computes in
#: float32 (measured agreement with float64 implementations: ~1e-6), ONNX's reference evaluator
#: in float64, Keras (jax, floatx float64) to ~1e-7 (it differs that much from a float64 NumPy
#: evaluation of its own equations); the gradients are float64 central differences (~1e-9)
VARIANT_TOLERANCE = {
    ("ort", np.dtype(np.float64)): 2e-5, ("ort", np.dtype(np.float32)): 1e-4,
    ("ref", np.dtype(np.float64)): 1e-10, ("ref", np.dtype(np.float32)): 1e-4,
    ("keras", np.dtype(np.float64)): 1e-6, ("keras", np.dtype(np.float32)): 1e-4,
    ("fd", np.dtype(np.float64)): 1e-7, ("fd", np.dtype(np.float32)): 2e-3,
}


def variant_forward_backward(meta, a, backend=None, dtype=np.float64, backward=True):
    """Run one variant case (``meta``, arrays ``a``) on ``backend`` in ``dtype``.

    Returns {name: array}: the forward's ``output``, ``h_n`` (, ``c_n``) (cells: ``h`` (, ``c``),
    every step), and with ``backward`` the gradients of the case's loss (``meta["loss"]``):
    ``grad_input``, ``grad_h0`` (, ``grad_c0``) and ``grad.<param>``. A packed case packs
    ``input`` with ``lengths`` (``allow_empty=True``, ``enforce_sorted=False``) and returns
    the padded output and input gradient (``total_length = seq_len``)."""
    dtype = np.dtype(dtype)
    m = getattr(modules, meta["class"])(**meta["config"], dtype=dtype, backend=backend)
    m.load_state_dict({name: a[name] for name in meta["param_names"]})
    cast = lambda k: a[k].astype(dtype) if k in a else None      # noqa: E731
    lstm = meta["mode"] == "LSTM"
    res = {}
    if meta["kind"] == "cell":
        x, h, c = cast("input"), cast("h0"), cast("c0")
        hs, cs = [], []
        for t in range(meta["steps"]):
            if lstm:
                h, c = m(x[t], (h, c))
                cs.append(c)
            else:
                h = m(x[t], h)
            hs.append(h)
        res["h"] = np.stack(hs)
        if lstm:
            res["c"] = np.stack(cs)
        if not backward:
            return res
        grad_h, grad_c = cast("grad_h"), cast("grad_c")
        gx = [None] * meta["steps"]
        gh = np.zeros_like(hs[0])
        gc = np.zeros_like(hs[0]) if lstm else None
        for t in reversed(range(meta["steps"])):
            if lstm:
                gx[t], (gh, gc) = m.backward((grad_h[t] + gh, grad_c[t] + gc))
            else:
                gx[t], gh = m.backward(grad_h[t] + gh)
        res["grad_input"], res["grad_h0"] = np.stack(gx), gh
        if lstm:
            res["grad_c0"] = gc
    else:
        h0, c0 = cast("h0"), cast("c0")
        hx = (h0, c0) if lstm else h0
        bf = meta["config"].get("batch_first", False)
        x = cast("input")
        if meta["kind"] == "packed":
            x = pack_padded_sequence(x, meta["lengths"], batch_first=bf, enforce_sorted=False,
                                     allow_empty=True)
        out, state = m(x, hx)
        h_n, c_n = state if lstm else (state, None)
        if meta["kind"] == "packed":
            packed_out = out
            out, _ = pad_packed_sequence(out, batch_first=bf, total_length=meta["seq_len"])
        res["output"], res["h_n"] = out, h_n
        if lstm:
            res["c_n"] = c_n
        if not backward:
            return res
        go = cast("grad_output")
        if meta["kind"] == "packed":
            go = pack_padded_sequence(go, meta["lengths"], batch_first=bf, enforce_sorted=False,
                                      allow_empty=True)
            go = PackedSequence(go.data, packed_out.batch_sizes, packed_out.sorted_indices,
                                packed_out.unsorted_indices)
        gs = (cast("grad_h_n"), cast("grad_c_n")) if lstm else cast("grad_h_n")
        gx, gst = m.backward(go, gs)
        if meta["kind"] == "packed":
            gx, _ = pad_packed_sequence(gx, batch_first=bf, total_length=meta["seq_len"])
        res["grad_input"] = gx
        res["grad_h0"], res["grad_c0"] = gst if lstm else (gst, None)
        if not lstm:
            del res["grad_c0"]
    for name in meta["param_names"]:
        res[f"grad.{name}"] = m.grads[name].copy()
    return res


def run_variant_case(path_or_case: Union[str, Case], backend: Optional[str] = None,
                     dtype: DTypeLike = np.float64) -> List[Comparison]:
    """Run one variant dump on ``backend`` in ``dtype``: the forward against every reference
    the dump holds (``ort.*``, ``ref.*``, ``keras.*``), the gradients against the float64 central
    differences (``grad.*``, ``grad_input``, ...). Returns Comparisons named ``<ref>:<key>``."""
    meta, a = load_case(path_or_case) if isinstance(path_or_case, str) else path_or_case
    dtype = np.dtype(dtype)
    got = variant_forward_backward(meta, a, backend, dtype)
    results = []
    for key in sorted(a):
        if "." in key and key.split(".", 1)[0] in ("ort", "ref", "keras"):
            src, name = key.split(".", 1)
            results.append(compare(f"{src}:{name}", got[name], a[key],
                                   VARIANT_TOLERANCE[(src, dtype)]))
    for name in got:
        if name.startswith("grad"):
            results.append(compare(f"fd:{name}", got[name], a[name],
                                   VARIANT_TOLERANCE[("fd", dtype)]))
    return results

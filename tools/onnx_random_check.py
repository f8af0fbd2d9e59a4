"""Randomized comparison of ``minirnn.onnx`` against onnxruntime over every attribute of
ONNX's RNN, GRU and LSTM operators.

Each case is a one-node ONNX model with random sizes, direction, layout, ``sequence_lens``
(zeros included), ``initial_h``/``initial_c`` present or not, biases present or not, random
activations with random ``activation_alpha``/``activation_beta`` (or their defaults),
``clip``, peepholes ``P``, ``input_forget`` and ``linear_before_reset``. minirnn evaluates
the model in float64 (the same graph with double tensors) and in float32; onnxruntime
evaluates the float32 model (it rejects ``layout=1``: it runs the layout-0 twin of the node,
the inputs and outputs transposed in NumPy). The errors are ``max|a - b| / max|b|`` over
``Y``, ``Y_h``, ``Y_c``.

    pip install onnx onnxruntime
    python tools/onnx_random_check.py                 # 500 cases, seed 0
    python tools/onnx_random_check.py --cases 2000 --seed 3 --verbose

Exits 1 when any case exceeds the tolerance. ``tests/test_onnx.py`` runs a fixed-seed slice.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import onnx  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
import minirnn.onnx as mo  # noqa: E402
from minirnn.variants import DEFAULT_ALPHA_BETA, SLOTS  # noqa: E402

#: the largest max|minirnn - onnxruntime| / max|onnxruntime| accepted, per minirnn dtype
#: (onnxruntime computes float32). Measured over 3000 cases (seed 1): float64 7.1e-5 and
#: float32 1.1e-4 at worst, both in a case whose gates are unbounded (Relu gates, an Affine
#: candidate) so that float32 rounding grows with the cell state; typically 1e-6.
TOLERANCE = {"float64": 2e-4, "float32": 5e-4}
GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
ACTIVATIONS = ["Sigmoid", "Tanh", "Relu", "Affine", "LeakyRelu", "ThresholdedRelu",
               "ScaledTanh", "HardSigmoid", "Elu", "Softsign", "Softplus"]


def _f32(x: float) -> float:
    return float(np.float32(x))


def random_case(rng: np.random.Generator) -> dict:
    """One random node: attributes and float64 inputs (float32-exact values)."""
    op = str(rng.choice(["RNN", "GRU", "LSTM"]))
    direction = str(rng.choice(["forward", "reverse", "bidirectional"]))
    D = 2 if direction == "bidirectional" else 1
    T, N, I, H = (int(v) for v in (rng.integers(1, 7), rng.integers(1, 5),
                                   rng.integers(1, 6), rng.integers(1, 6)))
    G = GATES[op]
    attrs: dict = dict(hidden_size=H, direction=direction)
    layout = int(rng.integers(0, 2))
    if layout:
        attrs["layout"] = 1
    if op == "GRU":
        attrs["linear_before_reset"] = int(rng.integers(0, 2))
    if op == "LSTM" and rng.random() < 0.3:
        attrs["input_forget"] = 1
    if rng.random() < 0.3:
        attrs["clip"] = _f32(rng.uniform(0.2, 2.0))
    if rng.random() < 0.5:
        k = SLOTS["RNN_TANH" if op == "RNN" else op]
        names = [str(rng.choice(ACTIVATIONS)) for _ in range(k * D)]
        attrs["activations"] = names
        if rng.random() < 0.8:          # else every alpha/beta takes its default
            alphas = [_f32(rng.uniform(0.1, 1.5)) for n in names
                      if DEFAULT_ALPHA_BETA[n][0] is not None]
            betas = [_f32(rng.uniform(0.1, 1.5)) for n in names
                     if DEFAULT_ALPHA_BETA[n][1] is not None]
            if alphas:
                attrs["activation_alpha"] = alphas
            if betas:
                attrs["activation_beta"] = betas

    def u(*shape):
        return rng.uniform(-0.8, 0.8, shape).astype(np.float32).astype(np.float64)

    x = u(T, N, I)
    inputs = dict(X=x, W=u(D, G * H, I), R=u(D, G * H, H))
    if rng.random() < 0.8:
        inputs["B"] = u(D, 2 * G * H)
    if rng.random() < 0.5:
        lens = rng.integers(0, T + 1, N).astype(np.int32)
        inputs["sequence_lens"] = lens
    if rng.random() < 0.7:
        inputs["initial_h"] = u(D, N, H)
    if op == "LSTM":
        if rng.random() < 0.6:
            inputs["initial_c"] = u(D, N, H)
        if rng.random() < 0.5:
            inputs["P"] = u(D, 3 * H)
    return dict(op=op, attrs=attrs, inputs=inputs, layout=layout)


def _to_layout1(name: str, a: np.ndarray) -> np.ndarray:
    if name == "X":
        return a.transpose(1, 0, 2)                 # [T, N, I] -> [N, T, I]
    if name in ("initial_h", "initial_c", "Y_h", "Y_c"):
        return a.transpose(1, 0, 2)                 # [D, N, H] -> [N, D, H]
    if name == "Y":
        return a.transpose(2, 0, 1, 3)              # [T, D, N, H] -> [N, T, D, H]
    return a


def _from_layout1(name: str, a: np.ndarray) -> np.ndarray:
    if name == "Y":
        return a.transpose(1, 2, 0, 3)
    return a.transpose(1, 0, 2) if name in ("X", "initial_h", "initial_c", "Y_h",
                                            "Y_c") else a


def node_model(case: dict, dtype, layout: int):
    """The case as a one-node model whose inputs are all graph inputs, in ``layout``."""
    op, attrs = case["op"], dict(case["attrs"])
    attrs.pop("layout", None)
    if layout:
        attrs["layout"] = 1
    et = TensorProto.DOUBLE if dtype == np.float64 else TensorProto.FLOAT
    slots = ["X", "W", "R", "B", "sequence_lens", "initial_h"] + (
        ["initial_c", "P"] if op == "LSTM" else [])
    names = [s if s in case["inputs"] else "" for s in slots]
    while names[-1] == "":
        names.pop()
    outs = ["Y", "Y_h"] + (["Y_c"] if op == "LSTM" else [])
    node = helper.make_node(op, names, outs, **attrs)
    ins = [helper.make_tensor_value_info(n, TensorProto.INT32 if n == "sequence_lens" else et,
                                         None) for n in names if n]
    graph = helper.make_graph([node], "case", ins,
                              [helper.make_tensor_value_info(o, et, None) for o in outs])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)],
                             ir_version=8)


def feeds(case: dict, dtype, layout: int) -> dict:
    out = {}
    for n, a in case["inputs"].items():
        a = a if n == "sequence_lens" else a.astype(dtype)
        out[n] = np.ascontiguousarray(_to_layout1(n, a) if layout else a)
    return out


def run_minirnn(case: dict, dtype) -> dict:
    """minirnn's outputs, in layout 0 (float64 arrays)."""
    L = case["layout"]
    res = mo.load(node_model(case, dtype, L)).run(None, feeds(case, dtype, L))
    names = ["Y", "Y_h", "Y_c"][:len(res)]
    return {n: (_from_layout1(n, r) if L else r).astype(np.float64) for n, r in zip(names, res)}


def run_onnxruntime(case: dict) -> dict:
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(node_model(case, np.float32, 0).SerializeToString(), so,
                                providers=["CPUExecutionProvider"])
    res = sess.run(None, feeds(case, np.float32, 0))
    return {n: r.astype(np.float64) for n, r in zip(["Y", "Y_h", "Y_c"], res)}


def rel(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        return float("inf")
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30)) if b.size else 0.0


def compare(case: dict) -> dict:
    """{'float64': err, 'float32': err} of minirnn against onnxruntime."""
    ref = run_onnxruntime(case)
    out = {}
    for label, dtype in (("float64", np.float64), ("float32", np.float32)):
        got = run_minirnn(case, dtype)
        out[label] = max(rel(got[n], ref[n]) for n in ref)
    return out


def describe(case: dict) -> str:
    a = dict(case["attrs"])
    parts = [case["op"], f"X{list(case['inputs']['X'].shape)}", f"H={a.pop('hidden_size')}",
             a.pop("direction")]
    parts += [f"{k}={v}" for k, v in a.items()]
    parts += [k for k in ("B", "initial_h", "initial_c", "P") if k in case["inputs"]]
    if "sequence_lens" in case["inputs"]:
        parts.append(f"lens={case['inputs']['sequence_lens'].tolist()}")
    return " ".join(parts)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    worst = {"float64": (0.0, ""), "float32": (0.0, "")}
    failures = 0
    for k in range(args.cases):
        case = random_case(rng)
        errs = compare(case)
        bad = any(e > TOLERANCE[k] for k, e in errs.items())
        failures += bad
        for label, e in errs.items():
            if e > worst[label][0]:
                worst[label] = (e, describe(case))
        if args.verbose or bad:
            print(f"{k:5d} {'FAIL' if bad else 'ok  '} f64 {errs['float64']:.1e} "
                  f"f32 {errs['float32']:.1e}  {describe(case)}")
    print(f"{args.cases} random cases (seed {args.seed}), onnx {onnx.__version__}: "
          f"{args.cases - failures} within tolerance {TOLERANCE} of onnxruntime")
    for label, (e, d) in worst.items():
        print(f"  worst minirnn {label} vs onnxruntime float32: {e:.2e}  ({d})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

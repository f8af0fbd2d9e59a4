"""Check minirnn.convert's ONNX tensor converters against onnxruntime and ONNX's reference.

    pip install onnx onnxruntime      # in your own venv
    python tools/check_converters_onnx.py

For every operator (RNN tanh and relu, GRU with linear_before_reset=1 and, for
``minirnn.GRU(reset_after=False)``, 0, LSTM, LSTM with peepholes), one direction, reverse
and bidirectional, with and without biases (RNN relu: onnxruntime only, the reference
evaluator's RNN has no Relu): a random minirnn layer's weights go through
``to_onnx`` into a one-node ONNX graph; onnxruntime (float32) and
``onnx.reference.ReferenceEvaluator`` (float32 and float64) must give minirnn's ``output``
and ``h_n`` (, ``c_n``). Then ``from_onnx`` of the same tensors must give back the
weights exactly. Prints max|diff|/max|ref| per case and the worst per operator and dtype;
exits 1 if any exceeds the tolerance (float64 1e-12, float32 1e-5).
"""
import sys
import os

import numpy as np
import onnx
from onnx import TensorProto, helper

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import minirnn  # noqa: E402
from minirnn import convert  # noqa: E402

try:
    import onnxruntime as ort
except ImportError:          # the reference evaluator alone still checks
    ort = None
from onnx.reference import ReferenceEvaluator  # noqa: E402

I, H, N, L = 3, 5, 2, 6
TOL = {"float64": 1e-12, "float32": 1e-5}

TYPES = [  # name, op, minirnn mode, class, kwargs, extra attributes
    ("rnn_tanh", "RNN", "RNN_TANH", minirnn.RNN, {}, {"activations": ["Tanh"]}),
    ("rnn_relu", "RNN", "RNN_RELU", minirnn.RNN, {"nonlinearity": "relu"},
     {"activations": ["Relu"]}),
    ("gru", "GRU", "GRU", minirnn.GRU, {}, {"linear_before_reset": 1}),
    ("gru_reset_before", "GRU", "GRU", minirnn.GRU, {"reset_after": False},
     {"linear_before_reset": 0}),
    ("lstm", "LSTM", "LSTM", minirnn.LSTM, {}, {}),
    ("lstm_peephole", "LSTM", "LSTM", minirnn.LSTM, {"peephole": True}, {}),
]


def graph(op, mode, t, direction, attrs, dtype):
    elem = TensorProto.DOUBLE if dtype == "float64" else TensorProto.FLOAT
    D = 2 if direction == "bidirectional" else 1
    names = ["X", "W", "R", "B" if t["B"] is not None else "", "", "", "", "P"][
        :8 if t["P"] is not None else 4]
    while names and names[-1] == "":
        names.pop()
    outs = ["Y", "Y_h"] + (["Y_c"] if op == "LSTM" else [])
    a = dict(attrs)
    if "activations" in a:
        a["activations"] = a["activations"] * D
    node = helper.make_node(op, names, outs, hidden_size=H, direction=direction, **a)
    inits = [onnx.numpy_helper.from_array(t[k].astype(dtype), k) for k in ("W", "R", "B", "P")
             if t[k] is not None]
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("X", elem, [L, N, I])],
                          [helper.make_tensor_value_info(o, elem, None) for o in outs], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)])


def rel(got, ref):
    ref = np.asarray(ref, np.float64)
    return float(np.abs(np.asarray(got, np.float64) - ref).max() / max(np.abs(ref).max(), 1e-300))


def main():
    print(f"onnx {onnx.__version__}, onnxruntime {ort.__version__ if ort else 'absent'}, "
          f"minirnn {minirnn.__version__}; I={I} H={H} N={N} L={L}; max|diff|/max|ref| of "
          "output, h_n, c_n")
    print(f"{'operator':<18}{'direction':>15}{'bias':>6}{'engine':>10}{'dtype':>9}"
          f"{'error':>11}  result")
    worst, n_fail = {}, 0
    for name, op, mode, cls, kw, attrs in TYPES:
        for direction in ("forward", "reverse", "bidirectional"):
            for bias in (True, False):
                rkw = dict(kw, reverse=True) if direction == "reverse" else kw
                m = cls(I, H, bias=bias, bidirectional=direction == "bidirectional",
                        dtype=np.float64, seed=1, backend="numpy", **rkw)
                rng = np.random.default_rng(2)
                sd = {k: v + (0.1 * rng.standard_normal(v.shape) if "bias" in k else 0)
                      for k, v in m.state_dict().items()}
                m.load_state_dict(sd)
                t = convert.to_onnx(sd, mode)
                back = convert.from_onnx(**t, mode=mode, bias=bias)
                exact = list(back) == list(sd) and all(np.array_equal(back[k], sd[k])
                                                       for k in sd)
                x = rng.standard_normal((L, N, I))
                out, state = m(x)
                h_n, c_n = state if mode == "LSTM" else (state, None)
                ref = [out, h_n] + ([c_n] if c_n is not None else [])
                runs = [("reference", "float64"), ("reference", "float32")]
                if ort is not None:
                    runs.append(("ort", "float32"))
                for engine, dtype in runs:
                    if engine == "reference" and name == "rnn_relu":
                        continue        # ONNX's reference RNN knows only Tanh and Affine
                    model = graph(op, mode, t, direction, attrs, dtype)
                    xin = x.astype(dtype)
                    if engine == "ort":
                        so = ort.SessionOptions()
                        so.intra_op_num_threads = 1
                        sess = ort.InferenceSession(model.SerializeToString(), so,
                                                    providers=["CPUExecutionProvider"])
                        got = sess.run(None, {"X": xin})
                    else:
                        got = ReferenceEvaluator(model).run(None, {"X": xin})
                    Y = got[0].transpose(0, 2, 1, 3).reshape(L, N, -1)   # [L, D, N, H] -> torch
                    e = max(rel(Y, ref[0]), *(rel(g, r) for g, r in zip(got[1:], ref[1:])))
                    ok = e <= TOL[dtype] and exact
                    n_fail += not ok
                    key = (name, engine, dtype)
                    worst[key] = max(worst.get(key, 0.0), e)
                    print(f"{name:<18}{direction:>15}{str(bias):>6}{engine:>10}{dtype:>9}"
                          f"{e:>11.2e}  {'pass' if ok else 'FAIL'}"
                          f"{'' if exact else ' (round trip not exact)'}")
    print("\nworst per operator, engine and dtype:")
    for (name, engine, dtype), e in sorted(worst.items()):
        print(f"  {name:<18}{engine:>10}{dtype:>9}{e:>11.2e}")
    print(f"\n{'all passed' if n_fail == 0 else f'{n_fail} FAILED'}")
    return 1 if n_fail else 0


if __name__ == "__main__":
    sys.exit(main())

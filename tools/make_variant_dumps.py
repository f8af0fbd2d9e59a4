"""Write the cell-variant reference dumps, ``minirnn/data/variants/*.npz``.

PyTorch cannot compute these cells, so the forward references come from ONNX: onnxruntime
(float32, every case) and ONNX's reference evaluator ``onnx.reference.ReferenceEvaluator``
(float64, the cases it computes: it ignores ``clip``, ``input_forget``, ``sequence_lens``
and, except the RNN's Tanh/Affine, ``activations``). The two are checked against each other
and against minirnn's NumPy path before anything is written; the reset-before GRU is also
checked against Keras 3 (``KERAS_BACKEND=jax``, float64). The gradients are float64 central
differences of minirnn's NumPy forward (an independent check of every backward). Format:
``minirnn/data/variants/README.md``.

    pip install onnx onnxruntime keras jax
    python tools/make_variant_dumps.py            # rewrite all, delete stale files
    python tools/make_variant_dumps.py --check    # regenerate in memory, compare with the files
    python tools/make_variant_dumps.py --list     # case names
    python tools/make_variant_dumps.py --only 'gru_*'

Only this script (and optional tests) imports onnx, onnxruntime and keras.
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import os
import sys
import tempfile
import zipfile
import zlib
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("JAX_ENABLE_X64", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import minirnn  # noqa: E402
from minirnn.conformance import variant_forward_backward  # noqa: E402
from minirnn.variants import DEFAULT_ALPHA_BETA, make_variant  # noqa: E402

OUT = ROOT / "minirnn" / "data" / "variants"
FORMAT_VERSION = 1
EPS = 1e-6                       # central differences, float64

# the variants, each (name, mode, kwargs); activations per direction: forward's, reverse's
ACTS = {   # alpha, beta and clip exact in float32: ONNX stores them as float32 attributes
    "RNN_TANH": [[("LeakyRelu", 0.125)], [("Elu", 0.75)]],
    "RNN_TANH2": [[("Affine", 0.625, 0.125)], ["Softplus"]],
    "RNN_TANH3": [[("ThresholdedRelu", 0.25)], ["Softsign"]],
    "GRU": [["HardSigmoid", ("ScaledTanh", 1.25, 0.75)], ["Sigmoid", "Softsign"]],
    "LSTM": [[("HardSigmoid", 0.25, 0.5), ("LeakyRelu", 0.25), "Softsign"],
             ["Sigmoid", ("Elu", 0.875), ("Affine", 0.625, 0.125)]],
}
VARIANTS = [
    ("gru_reset_before", "GRU", dict(reset_after=False)),
    ("lstm_peephole", "LSTM", dict(peephole=True)),
    ("lstm_coupled", "LSTM", dict(coupled_input_forget=True)),
    ("lstm_peephole_coupled", "LSTM", dict(peephole=True, coupled_input_forget=True)),
    ("rnn_clip", "RNN_TANH", dict(cell_clip=0.75)),
    ("gru_clip", "GRU", dict(cell_clip=0.75)),
    ("gru_reset_before_clip", "GRU", dict(cell_clip=0.75, reset_after=False)),
    ("lstm_clip", "LSTM", dict(cell_clip=0.75)),
    ("lstm_peephole_clip", "LSTM", dict(cell_clip=0.75, peephole=True)),
    ("rnn_acts", "RNN_TANH", dict(activations="RNN_TANH")),
    ("rnn_acts2", "RNN_TANH", dict(activations="RNN_TANH2")),
    ("rnn_acts3", "RNN_TANH", dict(activations="RNN_TANH3")),
    ("gru_acts", "GRU", dict(activations="GRU")),
    ("gru_reset_before_acts", "GRU", dict(activations="GRU", reset_after=False)),
    ("lstm_acts", "LSTM", dict(activations="LSTM")),
    ("rnn_reverse", "RNN_RELU", dict(reverse=True)),
    ("gru_reset_before_reverse", "GRU", dict(reset_after=False, reverse=True)),
    ("lstm_peephole_reverse", "LSTM", dict(peephole=True, reverse=True)),
    ("rnn_empty", "RNN_TANH", dict()),
    ("gru_empty", "GRU", dict()),
    ("lstm_empty", "LSTM", dict()),
]
# the shapes each variant runs in: (suffix, kind, num_layers, bidirectional, batch_first,
# unbatched); "packed" has lengths with a zero for the *_empty variants
LAYOUTS = [
    ("", "module", 1, False, False, False),
    ("_l2_bi", "module", 2, True, False, False),
    ("_bf", "module", 1, False, True, False),
    ("_unbatched", "module", 1, False, False, True),
    ("_packed", "packed", 2, True, True, False),
    ("_cell", "cell", 1, False, False, False),
]
T, B, I, H = 4, 3, 3, 3


def build_cases():
    cases = []
    for vname, mode, kw in VARIANTS:
        empty = vname.endswith("_empty")
        for sfx, kind, nl, bi, bf, unb in LAYOUTS:
            if empty and kind != "packed":
                continue                       # empty sequences exist only in packed input
            if kind == "cell" and kw.get("reverse"):
                continue                       # a cell has no time axis to reverse
            if bi and kw.get("reverse"):
                nl, bi = 2, False              # reverse=True is for unidirectional modules
            cases.append(dict(name=vname + sfx, variant_name=vname, mode=mode, variant=kw,
                              kind=kind,
                              num_layers=nl, bidirectional=bi, batch_first=bf, unbatched=unb,
                              empty=empty))
    return cases


# --------------------------------------------------------------------------- minirnn side

def module_config(c):
    mode = c["mode"]
    cls = {"RNN_TANH": "RNN", "RNN_RELU": "RNN"}.get(mode, mode)
    D = 2 if c["bidirectional"] else 1
    kw = dict(c["variant"])
    if "activations" in kw:
        per_dir = ACTS[kw["activations"]]
        kw["activations"] = [list(a) if isinstance(a, tuple) else a
                             for d in per_dir[:D] for a in d]
    if c["kind"] == "cell":
        config = dict(input_size=I, hidden_size=H, **kw)
        cls += "Cell"
    else:
        config = dict(input_size=I, hidden_size=H, num_layers=c["num_layers"],
                      bidirectional=c["bidirectional"], batch_first=c["batch_first"], **kw)
    if mode.startswith("RNN"):
        config["nonlinearity"] = mode[4:].lower()
    return cls, config


def make_arrays(c, rng):
    """Parameters, inputs and upstream gradients of a case, in minirnn's layouts."""
    cls, config = module_config(c)
    m = getattr(minirnn, cls)(**config, dtype=np.float64, backend="numpy")
    scale = 1.5 if "cell_clip" in c["variant"] else 0.7    # make the clip bite
    params = {n: scale * rng.standard_normal(p.shape) for n, p in m.named_parameters()}
    lstm = c["mode"] == "LSTM"
    a = dict(params)
    D = 2 if c["bidirectional"] else 1
    LD = D * c["num_layers"]
    meta = dict(format_version=FORMAT_VERSION, kind=c["kind"], mode=c["mode"], **{
        "class": cls}, config=config, param_names=list(params))
    if c["kind"] == "cell":
        meta["steps"] = T
        a["input"] = rng.standard_normal((T, B, I))
        a["h0"] = rng.standard_normal((B, H))
        if lstm:
            a["c0"] = rng.standard_normal((B, H))
        a["grad_h"] = rng.standard_normal((T, B, H))
        if lstm:
            a["grad_c"] = rng.standard_normal((T, B, H))
        meta["loss"] = "sum_t sum(h_t*grad_h[t]) [+ sum_t sum(c_t*grad_c[t])]"
        return meta, a
    Bc = 1 if c["unbatched"] else B
    x = rng.standard_normal((T, Bc, I))
    h0 = rng.standard_normal((LD, Bc, H))
    c0 = rng.standard_normal((LD, Bc, H))
    go = rng.standard_normal((T, Bc, D * H))
    if c["kind"] == "packed":
        lengths = [2, 0, 4] if c["empty"] else [2, 4, 3]
        meta["lengths"] = lengths
        meta["seq_len"] = T
        for t in range(T):                         # padded positions: zero (the loss ignores them)
            for b, n in enumerate(lengths):
                if t >= n:
                    x[t, b] = 0
                    go[t, b] = 0
    if c["unbatched"]:
        x, h0, c0, go = x[:, 0], h0[:, 0], c0[:, 0], go[:, 0]
    elif c["batch_first"]:
        x, go = x.transpose(1, 0, 2).copy(), go.transpose(1, 0, 2).copy()
    a["input"], a["h0"] = x, h0
    if lstm:
        a["c0"] = c0
    a["grad_output"] = go
    a["grad_h_n"] = rng.standard_normal(h0.shape)
    if lstm:
        a["grad_c_n"] = rng.standard_normal(c0.shape)
    meta["loss"] = "sum(output*grad_output) + sum(h_n*grad_h_n) [+ sum(c_n*grad_c_n)]"
    return meta, a


def loss_of(meta, a):
    res = variant_forward_backward(meta, a, "numpy", np.float64, backward=False)
    if meta["kind"] == "cell":
        total = np.sum(res["h"] * a["grad_h"])
        if "c" in res:
            total += np.sum(res["c"] * a["grad_c"])
        return total
    total = np.sum(res["output"] * a["grad_output"]) + np.sum(res["h_n"] * a["grad_h_n"])
    if "c_n" in res:
        total += np.sum(res["c_n"] * a["grad_c_n"])
    return total


def central_differences(meta, a):
    """float64 central differences of the loss w.r.t. every parameter, input and state."""
    grads = {}
    keys = [(f"grad.{n}", n) for n in meta["param_names"]]
    keys += [("grad_input", "input"), ("grad_h0", "h0")]
    if "c0" in a:
        keys.append(("grad_c0", "c0"))
    for gname, key in keys:
        arr = a[key]
        g = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            old = arr[idx]
            arr[idx] = old + EPS
            up = loss_of(meta, a)
            arr[idx] = old - EPS
            down = loss_of(meta, a)
            arr[idx] = old
            g[idx] = (up - down) / (2 * EPS)
        if meta["kind"] == "packed" and key == "input":
            for t in range(meta["seq_len"]):   # padding is not an input: its gradient is 0
                for b, n in enumerate(meta["lengths"]):
                    if t >= n:
                        (g[b, t] if meta["config"]["batch_first"] else g[t, b])[...] = 0
        grads[gname] = g
    return grads


# --------------------------------------------------------------------------- ONNX side

def _onnx_attrs(mode, variant, D):
    """The ONNX node attributes of a minirnn Variant (one layer)."""
    attrs = {}
    if mode == "GRU":
        attrs["linear_before_reset"] = 1 if variant.reset_after else 0
    if variant.coupled_input_forget:
        attrs["input_forget"] = 1
    if variant.cell_clip is not None:
        attrs["clip"] = variant.cell_clip
    if variant.activations is not None or mode == "RNN_RELU":
        acts = [variant.acts(mode, d) for d in range(D)]
        flat = [a for d in acts for a in d]
        attrs["activations"] = [a.name for a in flat]
        # onnxruntime's reading: alphas (betas) listed only for activations that take one
        alphas = [a.alpha for a in flat if DEFAULT_ALPHA_BETA[a.name][0] is not None]
        betas = [a.beta for a in flat if DEFAULT_ALPHA_BETA[a.name][1] is not None]
        if alphas:
            attrs["activation_alpha"] = alphas
        if betas:
            attrs["activation_beta"] = betas
    return attrs


def _onnx_weights(mode, params, layer, D, peephole):
    order = {"GRU": [1, 0, 2], "LSTM": [0, 3, 1, 2]}.get(mode, [0])   # ONNX z,r,h / i,o,f,c
    Ws, Rs, Bs, Ps = [], [], [], []
    for sfx in ("", "_reverse")[:D]:
        def blk(v):
            return np.concatenate([v[k * H:(k + 1) * H] for k in order])
        Ws.append(blk(params[f"weight_ih_l{layer}{sfx}"]))
        Rs.append(blk(params[f"weight_hh_l{layer}{sfx}"]))
        Bs.append(np.concatenate([blk(params[f"bias_ih_l{layer}{sfx}"]),
                                  blk(params[f"bias_hh_l{layer}{sfx}"])]))
        if peephole:
            p = params[f"weight_peephole_l{layer}{sfx}"]              # minirnn i, f, o
            Ps.append(np.concatenate([p[:H], p[2 * H:], p[H:2 * H]]))  # ONNX i, o, f
    return np.stack(Ws), np.stack(Rs), np.stack(Bs), (np.stack(Ps) if peephole else None)


def onnx_model(mode, variant, num_layers, D, dtype, params, has_lens):
    """A graph of ``num_layers`` ONNX nodes (one per layer, joined as PyTorch's exporter
    does: Transpose(0, 2, 1, 3) then Reshape to (T, B, D*H)); weights as initializers."""
    et = TensorProto.DOUBLE if dtype == np.float64 else TensorProto.FLOAT
    op = {"GRU": "GRU", "LSTM": "LSTM"}.get(mode, "RNN")
    lstm = op == "LSTM"
    direction = "bidirectional" if D == 2 else ("reverse" if variant.reverse else "forward")
    nodes, inits = [], []
    inputs = [helper.make_tensor_value_info("X", et, None)]
    if has_lens:
        inputs.append(helper.make_tensor_value_info("sequence_lens", TensorProto.INT32, None))
    outputs = []
    x = "X"
    for layer in range(num_layers):
        W, R, Bb, P = _onnx_weights(mode, params, layer, D, variant.peephole)
        names = {f"W{layer}": W, f"R{layer}": R, f"B{layer}": Bb}
        if P is not None:
            names[f"P{layer}"] = P
        for n, v in names.items():
            inits.append(onnx.numpy_helper.from_array(v.astype(dtype), n))
        for s in ("h", "c")[:2 if lstm else 1]:
            inputs.append(helper.make_tensor_value_info(f"initial_{s}{layer}", et, None))
        ins = [x, f"W{layer}", f"R{layer}", f"B{layer}", "sequence_lens" if has_lens else "",
               f"initial_h{layer}"]
        if lstm:
            ins += [f"initial_c{layer}", f"P{layer}" if P is not None else ""]
        outs = [f"Y{layer}", f"Y_h{layer}"] + ([f"Y_c{layer}"] if lstm else [])
        nodes.append(helper.make_node(op, ins, outs, hidden_size=H, direction=direction,
                                      **_onnx_attrs(mode, variant, D)))
        outputs += [helper.make_tensor_value_info(o, et, None) for o in outs[1:]]
        nodes.append(helper.make_node("Transpose", [f"Y{layer}"], [f"Yt{layer}"],
                                      perm=[0, 2, 1, 3]))
        inits.append(onnx.numpy_helper.from_array(np.array([0, 0, -1], np.int64),
                                                  f"shape{layer}"))
        nodes.append(helper.make_node("Reshape", [f"Yt{layer}", f"shape{layer}"],
                                      [f"out{layer}"]))
        x = f"out{layer}"
    outputs.insert(0, helper.make_tensor_value_info(x, et, None))
    g = helper.make_graph(nodes, "variant", inputs, outputs, initializer=inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)]), x


def _ref_computes(mode, variant, has_lens):
    """Whether ONNX's reference evaluator computes this case (it ignores what it cannot)."""
    if has_lens or variant.cell_clip is not None or variant.coupled_input_forget:
        return False
    if variant.activations is not None:
        return mode.startswith("RNN") and all(a.name in ("Tanh", "Affine")
                                              for d in variant.activations for a in d)
    return mode != "RNN_RELU"


def onnx_forward(meta, a, engine):
    """(output (T, B, D*H), h_n (L*D, B, H), c_n or None) time-major, from ``engine``
    ("ort" float32 or "ref" float64), for a module or packed case; cells run as a module of
    one layer whose per-step outputs are the cell's h (c: one node call per step)."""
    mode, cfg = meta["mode"], meta["config"]
    lstm = mode == "LSTM"
    D = 2 if cfg.get("bidirectional") else 1
    L = cfg.get("num_layers", 1)
    variant = make_variant(mode, num_directions=D, **{
        k: cfg[k] for k in ("reset_after", "peephole", "coupled_input_forget", "cell_clip",
                            "activations", "reverse") if k in cfg})
    cell = meta["kind"] == "cell"
    params = {(n if not cell else n + "_l0"): a[n] for n in meta["param_names"]}
    dtype = np.float32 if engine == "ort" else np.float64
    x, h0, c0 = a["input"], a["h0"], a.get("c0")
    if cell:
        h0, c0 = h0[None], None if c0 is None else c0[None]
    elif x.ndim == 2:
        x, h0, c0 = x[:, None], h0[:, None], None if c0 is None else c0[:, None]
    elif cfg.get("batch_first"):
        x = x.transpose(1, 0, 2)
    has_lens = meta["kind"] == "packed"
    model, out_name = onnx_model(mode, variant, L, D, dtype, params, has_lens)
    if engine == "ort":
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(model.SerializeToString(), so,
                                    providers=["CPUExecutionProvider"])
        run = lambda feeds: sess.run(None, feeds)          # noqa: E731
    else:
        if not _ref_computes(mode, variant, has_lens):
            return None
        ev = ReferenceEvaluator(model)
        run = lambda feeds: ev.run(None, feeds)            # noqa: E731

    def feeds_of(xs, hs, cs):
        f = {"X": np.ascontiguousarray(xs, dtype=dtype)}
        if has_lens:
            f["sequence_lens"] = np.asarray(meta["lengths"], np.int32)
        for layer in range(L):
            f[f"initial_h{layer}"] = np.ascontiguousarray(hs[layer * D:(layer + 1) * D], dtype)
            if lstm:
                f[f"initial_c{layer}"] = np.ascontiguousarray(cs[layer * D:(layer + 1) * D],
                                                              dtype)
        return f

    def unpack(res):
        out = res[0]
        hn = np.concatenate([res[1 + k * (2 if lstm else 1)] for k in range(L)])
        cn = np.concatenate([res[2 + k * 2] for k in range(L)]) if lstm else None
        return out.astype(np.float64), hn.astype(np.float64), \
            None if cn is None else cn.astype(np.float64)

    if cell and lstm:                      # c after every step: one call per step
        hs, cs, h, c = [], [], h0, c0
        for t in range(x.shape[0]):
            _, h, c = unpack(run(feeds_of(x[t:t + 1], h, c)))
            hs.append(h[0])
            cs.append(c[0])
        return np.stack(hs), None, np.stack(cs)
    out, hn, cn = unpack(run(feeds_of(x, h0, c0)))
    if has_lens:
        # onnxruntime returns 0 in Y_h/Y_c for a sequence of length 0; minirnn returns its
        # initial state (the state it never left): the reference says so for those rows
        empty = [b for b, n in enumerate(meta["lengths"]) if n == 0]
        hn[:, empty] = h0[:, empty]
        if lstm:
            cn[:, empty] = c0[:, empty]
    return out, hn, cn


def to_caller(meta, out, hn, cn):
    """Time-major ONNX results -> the case's layout (keys as minirnn's results)."""
    cfg = meta["config"]
    if meta["kind"] == "cell":
        r = {"h": out}
        if cn is not None:
            r["c"] = cn
        return r
    if meta["unbatched"]:
        out, hn, cn = out[:, 0], hn[:, 0], None if cn is None else cn[:, 0]
    elif cfg.get("batch_first"):
        out = out.transpose(1, 0, 2)
    r = {"output": out, "h_n": hn}
    if cn is not None:
        r["c_n"] = cn
    return r


def keras_gru(meta, a):
    """Keras 3's GRU(reset_after=False) on a 1-layer unidirectional case without packing:
    (output, h_n) in the case's layout, float64 (jax, x64), or None when Keras cannot say."""
    cfg = meta["config"]
    if (meta["mode"] != "GRU" or cfg.get("reset_after", True) or meta["kind"] == "packed"
            or cfg.get("num_layers", 1) != 1 or cfg.get("bidirectional")
            or "cell_clip" in cfg or "activations" in cfg):
        return None
    import keras
    keras.config.set_floatx("float64")
    cell = meta["kind"] == "cell"
    sfx = "" if cell else "_l0"
    wi, wh = a["weight_ih" + sfx], a["weight_hh" + sfx]
    bias = a["bias_ih" + sfx] + a["bias_hh" + sfx]     # reset-before: b_hn adds after U(r*h)
    zrh = [1, 0, 2]                                    # Keras z, r, h from minirnn r, z, n

    def blk(v):
        return np.concatenate([v[k * H:(k + 1) * H] for k in zrh])
    x, h0 = a["input"], a["h0"]
    if cell:
        x = x.transpose(1, 0, 2)                        # (B, T, I)
    elif x.ndim == 2:
        x, h0 = x[None], h0[:, None]
    elif not cfg.get("batch_first"):
        x = x.transpose(1, 0, 2)
    h0 = h0 if cell else h0[0]
    rev = cfg.get("reverse", False)
    layer = keras.layers.GRU(H, reset_after=False, return_sequences=True, return_state=True,
                             go_backwards=rev, dtype="float64")
    layer.build((None, None, I))
    layer.set_weights([blk(wi).T, blk(wh).T, blk(bias)])
    seq, hn = layer(x, initial_state=[h0])
    seq, hn = np.asarray(seq, np.float64), np.asarray(hn, np.float64)
    if rev:
        seq = seq[:, ::-1]                             # go_backwards: reversed time order
    if cell:
        return {"h": seq.transpose(1, 0, 2)}
    if a["input"].ndim == 2:
        return {"output": seq[0], "h_n": hn}
    if not cfg.get("batch_first"):
        seq = seq.transpose(1, 0, 2)
    return {"output": seq, "h_n": hn[None]}


# --------------------------------------------------------------------------- one case

def rel(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


def make_case(c):
    rng = np.random.default_rng(zlib.crc32(c["name"].encode()))
    meta, a = make_arrays(c, rng)
    meta["unbatched"] = c["unbatched"]
    meta["name"] = c["name"]
    mine = variant_forward_backward(meta, a, "numpy", np.float64, backward=False)
    checks = {}
    refs = {}
    for engine in ("ort", "ref"):
        r = onnx_forward(meta, a, engine)
        if r is None:
            continue
        r = to_caller(meta, *r)
        refs[engine] = r
        checks[f"minirnn_float64_vs_{engine}"] = max(rel(mine[k], r[k]) for k in r)
    if "ref" in refs:
        checks["ort_vs_ref"] = max(rel(refs["ort"][k], refs["ref"][k]) for k in refs["ort"])
    k = keras_gru(meta, a)
    if k is not None:
        refs["keras"] = k
        checks["minirnn_float64_vs_keras"] = max(rel(mine[key], k[key]) for key in k)
        checks["ort_vs_keras"] = max(rel(refs["ort"][key], k[key]) for key in k)
    for name, err in checks.items():
        # float64 against float64 must agree to rounding; anything against onnxruntime
        # (float32) to float32's precision
        # (and Keras: with floatx float64 on jax it still differs from a float64 NumPy
        # evaluation of its own GRU equations by ~6e-8, measured)
        exact = name == "minirnn_float64_vs_ref"
        if err > (1e-12 if exact else 2e-5):
            raise AssertionError(f"{c['name']}: {name} = {err:.2e}")
    meta["checks"] = checks
    meta["references"] = sorted(refs)
    meta["versions"] = dict(onnx=onnx.__version__, onnxruntime=ort.__version__,
                            numpy=np.__version__)
    arrays = dict(a)
    for src, r in refs.items():
        for key, v in r.items():
            arrays[f"{src}.{key}"] = v
    arrays.update(central_differences(meta, a))
    # the analytic backward must agree with the differences before the case is written
    got = variant_forward_backward(meta, a, "numpy", np.float64)
    for key in got:
        if key.startswith("grad"):
            err = rel(got[key], arrays[key]) if np.abs(arrays[key]).max() > 0 else \
                float(np.abs(got[key]).max())
            if err > 1e-7:
                raise AssertionError(f"{c['name']}: {key} analytic vs differences {err:.2e}")
    return meta, arrays


_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def write_npz(path, meta, arrays):
    """np.savez_compressed with a fixed member timestamp (byte-deterministic output)."""
    members = {"meta": np.array(json.dumps(meta))}
    members.update(arrays)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, mode="w", compression=zipfile.ZIP_DEFLATED) as zf:
            for key, val in members.items():
                info = zipfile.ZipInfo(key + ".npy", date_time=_ZIP_DATE)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                with zf.open(info, "w") as fid:
                    np.lib.format.write_array(fid, np.asanyarray(val), allow_pickle=False)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--only", action="append", metavar="PATTERN")
    ap.add_argument("--check", action="store_true",
                    help="write nothing: regenerate in memory and compare with the files")
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args(argv)
    cases = build_cases()
    if args.only:
        cases = [c for c in cases if any(fnmatch.fnmatchcase(c["name"], p) for p in args.only)]
    if args.list:
        print("\n".join(c["name"] for c in cases))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    problems, total, worst = [], 0, {}
    for c in cases:
        meta, arrays = make_case(c)
        for name, err in meta["checks"].items():
            key = (c["variant_name"], name)
            worst[key] = max(worst.get(key, 0.0), err)
        path = args.out / (c["name"] + ".npz")
        if args.check:
            if not path.exists():
                problems.append(f"missing {path}")
                continue
            with np.load(path) as z:
                old = {k: z[k] for k in z.files if k != "meta"}
            for k, v in arrays.items():
                if k not in old or old[k].shape != v.shape or rel(old[k], v) > 1e-9 * (
                        1 if not k.startswith("ort.") else 1e3):
                    problems.append(f"{c['name']}: {k} differs")
            continue
        write_npz(path, meta, arrays)
        total += path.stat().st_size
    if not args.only and not args.check:
        wanted = {c["name"] + ".npz" for c in cases}
        for p in sorted(args.out.glob("*.npz")):
            if p.name not in wanted:
                p.unlink()
    for (v, name), err in sorted(worst.items()):
        print(f"{v:24s} {name:28s} {err:.1e}")
    for p in problems:
        print("PROBLEM:", p)
    print(f"{'checked' if args.check else 'wrote'} {len(cases)} cases in {args.out}"
          + ("" if args.check else f" ({total / 1024:.1f} KiB)"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

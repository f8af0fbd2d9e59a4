"""minirnn.convert: weight conversions to other frameworks and back.

- Round trips (to a format and back) are exact for every mode, layer and direction.
- Converted weights fed to each framework's own equations (written from its specification
  in NumPy here, and the live framework when installed) give minirnn's outputs.
- Bad arguments raise errors naming the argument.
"""
import glob
import os

import numpy as np
import pytest

import minirnn
from minirnn import convert
from minirnn.conformance import compare, format_comparison, load_case

MODES = [("RNN_TANH", minirnn.RNN, {}), ("RNN_RELU", minirnn.RNN, {"nonlinearity": "relu"}),
         ("GRU", minirnn.GRU, {}), ("LSTM", minirnn.LSTM, {}),
         ("LSTM", minirnn.LSTM, {"peephole": True})]


def build(cls, kw, layers=2, bidirectional=True, bias=True, seed=0):
    return cls(3, 4, num_layers=layers, bidirectional=bidirectional, bias=bias,
               dtype=np.float64, seed=seed, **kw)


# --------------------------------------------------------------------------- ONNX

@pytest.mark.parametrize("mode, cls, kw", MODES)
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("bias", [False, True])
def test_onnx_round_trip_exact(mode, cls, kw, bidirectional, bias):
    sd = build(cls, kw, bidirectional=bidirectional, bias=bias).state_dict()
    back = {}
    for layer in range(2):
        t = convert.to_onnx(sd, mode, layer)
        D = 2 if bidirectional else 1
        G = convert.GATES[mode]
        assert t["W"].shape[:2] == (D, G * 4) and t["R"].shape == (D, G * 4, 4)
        assert (t["B"] is None) == (not bias)
        back.update(convert.from_onnx(**t, mode=mode, layer=layer, bias=bias))
    assert list(back) == list(sd)
    for k in sd:
        assert np.array_equal(back[k], sd[k]), k


def test_onnx_gate_orders():
    # each block holds its PyTorch gate index, so the permutation is visible
    H = 2
    lstm = {"weight_ih_l0": np.repeat(np.arange(4.0), H)[:, None] * np.ones((1, 3)),
            "weight_hh_l0": np.zeros((4 * H, H))}
    W = convert.to_onnx(lstm, "LSTM")["W"][0, ::H, 0]
    assert list(W) == [0, 3, 1, 2]                       # i, o, f, c
    gru = {"weight_ih_l0": np.repeat(np.arange(3.0), H)[:, None] * np.ones((1, 3)),
           "weight_hh_l0": np.zeros((3 * H, H))}
    assert list(convert.to_onnx(gru, "GRU")["W"][0, ::H, 0]) == [1, 0, 2]   # z, r, h
    p = {**lstm, "weight_peephole_l0": np.repeat(np.arange(3.0), H)}       # i, f, o
    assert list(convert.to_onnx(p, "LSTM")["P"][0, ::H]) == [0, 2, 1]      # i, o, f


def test_onnx_missing_bias_is_zero():
    sd = build(minirnn.GRU, {}, layers=1, bidirectional=False, bias=False).state_dict()
    t = convert.to_onnx(sd, "GRU")
    back = convert.from_onnx(t["W"], t["R"], mode="GRU")
    assert np.array_equal(back["bias_ih_l0"], np.zeros(12))
    with pytest.raises(ValueError, match="bias=False but B"):
        convert.from_onnx(t["W"], t["R"], np.ones((1, 24)), mode="GRU", bias=False)


def test_onnx_errors_name_the_argument():
    sd = build(minirnn.LSTM, {}, layers=1, bidirectional=False).state_dict()
    with pytest.raises(ValueError, match="mode must be one of"):
        convert.to_onnx(sd, "TRANSFORMER")
    with pytest.raises(ValueError, match="params has no 'weight_ih_l3'"):
        convert.to_onnx(sd, "LSTM", layer=3)
    bad = dict(sd, weight_hh_l0=np.zeros((16, 5)))
    with pytest.raises(ValueError, match=r"params\['weight_hh_l0'\] has shape \(16, 5\)"):
        convert.to_onnx(bad, "LSTM")
    with pytest.raises(ValueError, match="gate blocks"):
        convert.to_onnx(sd, "GRU")
    proj = minirnn.LSTM(3, 4, proj_size=2).state_dict()
    with pytest.raises(ValueError, match="projection"):
        convert.to_onnx(proj, "LSTM")
    t = convert.to_onnx(sd, "LSTM")
    with pytest.raises(ValueError, match=r"R has shape \(1, 16, 3\)"):
        convert.from_onnx(t["W"], t["R"][:, :, :3], mode="LSTM")
    with pytest.raises(ValueError, match="B has shape"):
        convert.from_onnx(t["W"], t["R"], t["B"][:, :8], mode="LSTM")
    with pytest.raises(ValueError, match="P has shape"):
        convert.from_onnx(t["W"], t["R"], P=np.zeros((1, 5)), mode="LSTM")
    with pytest.raises(TypeError, match="W must be a NumPy array"):
        convert.from_onnx(None, t["R"], mode="LSTM")
    with pytest.raises(ValueError, match="W must be 3-D"):
        convert.from_onnx(t["W"][0], t["R"], mode="LSTM")


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


def run_minirnn(m, x):
    out, state = m(x)
    return out, state


# --------------------------------------------------------------------------- Keras

KERAS = [("RNN_TANH", minirnn.RNN, {}), ("RNN_RELU", minirnn.RNN, {"nonlinearity": "relu"}),
         ("GRU", minirnn.GRU, {}), ("GRU", minirnn.GRU, {"reset_after": False}),
         ("LSTM", minirnn.LSTM, {})]


@pytest.mark.parametrize("mode, cls, kw", KERAS)
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("bias", [False, True])
def test_keras_round_trip(mode, cls, kw, bidirectional, bias):
    ra = kw.get("reset_after", True)
    sd = build(cls, kw, bidirectional=bidirectional, bias=bias).state_dict()
    layers = convert.to_keras_layers(sd, mode, reset_after=ra)
    assert len(layers) == 2
    D = 2 if bidirectional else 1
    assert len(layers[0]) == D * (3 if bias else 2)
    back = convert.from_keras_layers(layers, mode, bidirectional=bidirectional, reset_after=ra)
    assert list(back) == list(sd)
    summed = mode != "GRU" or not ra
    for k in sd:
        if summed and k.startswith("bias_"):
            continue
        assert np.array_equal(back[k], sd[k]), k
    if bias and summed:                  # the sum is kept; the way back puts it in b_ih
        for k in sd:
            if k.startswith("bias_ih"):
                kh = k.replace("bias_ih", "bias_hh")
                assert np.allclose(back[k], sd[k] + sd[kh], rtol=0, atol=1e-15)
                assert not back[kh].any()
        # and the model computes the same function
        m2 = cls(3, 4, num_layers=2, bidirectional=bidirectional, dtype=np.float64, **kw)
        m2.load_state_dict(back)
        x = np.random.default_rng(1).standard_normal((5, 2, 3))
        m1 = build(cls, kw, bidirectional=bidirectional, bias=bias)
        assert np.allclose(m2(x)[0], m1(x)[0], rtol=0, atol=1e-13)
    half = convert.from_keras_layers(layers, mode, bidirectional=bidirectional,
                                     reset_after=ra, bias_split="half")
    if bias and summed:
        k = "bias_ih_l0"
        assert np.array_equal(half[k] + half[k.replace("ih", "hh")], back[k])


def keras_equations(mode, x, weights, reset_after=True):
    """Keras 3's SimpleRNN / GRU / LSTM (keras/src/layers/rnn/*.py), one direction,
    batch-major x (N, L, I), zero initial state: the output sequence."""
    kernel, rk = weights[0], weights[1]
    bias = weights[2] if len(weights) == 3 else None
    H = rk.shape[0]
    h = np.zeros((x.shape[0], H))
    c = np.zeros_like(h)
    out = []
    for t in range(x.shape[1]):
        xt = x[:, t]
        if mode.startswith("RNN"):
            a = xt @ kernel + (0 if bias is None else bias) + h @ rk
            h = np.tanh(a) if mode == "RNN_TANH" else np.maximum(a, 0)
        elif mode == "LSTM":
            z = xt @ kernel + h @ rk + (0 if bias is None else bias)
            i, f, g, o = np.split(z, 4, axis=-1)
            c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
            h = sigmoid(o) * np.tanh(c)
        else:
            if bias is None:
                bi = bh = np.zeros(3 * H)
            elif reset_after:
                bi, bh = bias
            else:
                bi, bh = bias, np.zeros(3 * H)
            xz, xr, xh = np.split(xt @ kernel + bi, 3, axis=-1)
            if reset_after:
                hz, hr, hh = np.split(h @ rk + bh, 3, axis=-1)
                z, r = sigmoid(xz + hz), sigmoid(xr + hr)
                cand = np.tanh(xh + r * hh)
            else:
                hz, hr = np.split(h @ rk[:, :2 * H], 2, axis=-1)
                z, r = sigmoid(xz + hz), sigmoid(xr + hr)
                cand = np.tanh(xh + (r * h) @ rk[:, 2 * H:])
            h = z * h + (1 - z) * cand
        out.append(h)
    return np.stack(out, axis=1)


@pytest.mark.parametrize("mode, cls, kw", KERAS)
@pytest.mark.parametrize("bias", [False, True])
def test_keras_equations_match_minirnn(mode, cls, kw, bias):
    ra = kw.get("reset_after", True)
    m = cls(3, 4, bias=bias, batch_first=True, dtype=np.float64, seed=2, **kw)
    if bias:
        rng = np.random.default_rng(3)
        m.load_state_dict({k: v + (0.1 * rng.standard_normal(v.shape) if "bias" in k else 0)
                           for k, v in m.state_dict().items()})
    x = np.random.default_rng(4).standard_normal((2, 5, 3))
    w = convert.to_keras(m.state_dict(), mode, reset_after=ra)
    assert np.allclose(keras_equations(mode, x, w, ra), m(x)[0], rtol=0, atol=1e-13)


def test_keras_errors():
    sd = build(minirnn.GRU, {}, layers=1, bidirectional=False).state_dict()
    w = convert.to_keras(sd, "GRU")
    with pytest.raises(ValueError, match=r"\(2, 3\*units\): reset_after=True"):
        convert.from_keras([w[0], w[1], w[2][0]], "GRU")
    with pytest.raises(ValueError, match="means reset_after=True"):
        convert.from_keras(w, "GRU", reset_after=False)
    with pytest.raises(ValueError, match="weights has 3 arrays"):
        convert.from_keras(w, "GRU", bidirectional=True)
    with pytest.raises(ValueError, match=r"weights\[1\] \(recurrent_kernel\) has shape"):
        convert.from_keras([w[0], w[1][:3], w[2]], "GRU")
    with pytest.raises(ValueError, match="reset_after=False is a GRU option"):
        convert.to_keras(build(minirnn.LSTM, {}, 1, False).state_dict(), "LSTM",
                         reset_after=False)
    with pytest.raises(ValueError, match="peepholes"):
        convert.to_keras(build(minirnn.LSTM, {"peephole": True}, 1, False).state_dict(), "LSTM")
    with pytest.raises(TypeError, match="weights must be a list"):
        convert.from_keras(w[0], "GRU")
    with pytest.raises(ValueError, match="bias_split"):
        convert.from_keras(w, "GRU", bias_split="third")
    with pytest.raises(ValueError, match=r"layers\[1\] reads 3 features, expected 8"):
        bi = convert.to_keras(build(minirnn.GRU, {}, 1, True).state_dict(), "GRU")
        convert.from_keras_layers([bi, bi[:3] + bi[:3]], "GRU", bidirectional=True)


# --------------------------------------------------------------------------- cuDNN

@pytest.mark.parametrize("mode, cls, kw", MODES[:4])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("bias", [False, True])
def test_cudnn_round_trip(mode, cls, kw, bidirectional, bias):
    sd = build(cls, kw, bidirectional=bidirectional, bias=bias).state_dict()
    flat, pseudo = convert.to_cudnn(sd, mode)
    G = convert.GATES[mode]
    assert len(pseudo) == 2 * (2 if bidirectional else 1)
    assert len(pseudo[0]) == 2 * G * (2 if bias else 1)
    assert flat.size == sum(v.size for v in sd.values())
    # linear layer id k of pseudo-layer 0 is rows k*H:(k+1)*H of weight_ih (k < G)
    assert np.array_equal(pseudo[0][G - 1], sd["weight_ih_l0"][(G - 1) * 4:])
    # PyTorch's flatten order: each pseudo-layer's w_ih, w_hh, b_ih, b_hh, row-major
    assert np.array_equal(flat, np.concatenate([v.ravel() for v in sd.values()]))
    back = convert.from_cudnn(flat, mode, 3, 4, 2, bidirectional, bias)
    assert list(back) == list(sd) and all(np.array_equal(back[k], sd[k]) for k in sd)
    with pytest.raises(ValueError, match="flat has"):
        convert.from_cudnn(flat[:-1], mode, 3, 4, 2, bidirectional, bias)


# --------------------------------------------------------------------------- oneDNN

def onednn_equations(mode, x, wl, wi, b, reset_after=True):
    """oneDNN's RNN cells as its developer guide writes them (one layer, one direction,
    ldigo weights [I, G, O], bias [Gb, O]), time-major x (L, N, I), zero initial state."""
    I, G, H = wl.shape
    W, U = wl.reshape(I, G * H), wi.reshape(H, G * H)
    h = np.zeros((x.shape[1], H))
    c = np.zeros_like(h)
    out = []
    for xt in x:
        if mode.startswith("RNN"):
            a = xt @ W + h @ U + b[0]
            h = np.tanh(a) if mode == "RNN_TANH" else np.maximum(a, 0)
        elif mode == "LSTM":
            i, f, g, o = np.split(xt @ W + h @ U + b.ravel(), 4, axis=-1)     # i, f, c~, o
            c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
            h = sigmoid(o) * np.tanh(c)
        else:
            Wu, Wr, Wo = np.split(W, 3, axis=-1)
            Uu, Ur, Uo = np.split(U, 3, axis=-1)
            u = sigmoid(xt @ Wu + h @ Uu + b[0])
            r = sigmoid(xt @ Wr + h @ Ur + b[1])
            if reset_after:                                    # lbr_gru: b = u, r, o, u'
                o = np.tanh(xt @ Wo + b[2] + r * (h @ Uo + b[3]))
            else:                                              # vanilla_gru
                o = np.tanh(xt @ Wo + (r * h) @ Uo + b[2])
            h = u * h + (1 - u) * o
        out.append(h)
    return np.stack(out)


@pytest.mark.parametrize("mode, cls, kw", KERAS)
def test_onednn_equations_match_minirnn(mode, cls, kw):
    ra = kw.get("reset_after", True)
    m = cls(3, 4, dtype=np.float64, seed=5, **kw)
    rng = np.random.default_rng(6)
    m.load_state_dict({k: v + (0.1 * rng.standard_normal(v.shape) if "bias" in k else 0)
                       for k, v in m.state_dict().items()})
    t = convert.to_onednn(m.state_dict(), mode, reset_after=ra)
    G = convert.GATES[mode]
    assert t["weights_layer"].shape == (1, 1, 3, G, 4)
    assert t["bias"].shape == (1, 1, G + (mode == "GRU" and ra), 4)
    x = rng.standard_normal((5, 2, 3))
    got = onednn_equations(mode, x, t["weights_layer"][0, 0], t["weights_iter"][0, 0],
                           t["bias"][0, 0], ra)
    assert np.allclose(got, m(x)[0], rtol=0, atol=1e-13)
    for split in ("input", "half"):
        back = convert.from_onednn(**t, mode=mode, reset_after=ra, bias_split=split)
        m2 = cls(3, 4, dtype=np.float64, **kw)
        m2.load_state_dict(back)
        assert np.allclose(m2(x)[0], m(x)[0], rtol=0, atol=1e-13)
        for k in back:
            if k.startswith("weight"):
                assert np.array_equal(back[k], m.state_dict()[k])
    if mode == "GRU" and ra:       # the candidate's biases come back exactly
        H = 4
        assert np.array_equal(back["bias_hh_l0"][2 * H:], m.state_dict()["bias_hh_l0"][2 * H:])


@pytest.mark.parametrize("fmt", ["ldigo", "ldgoi"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_onednn_stacked_round_trip(fmt, bidirectional):
    D = 2 if bidirectional else 1
    m = minirnn.LSTM(4 * D, 4, num_layers=3, bidirectional=bidirectional, dtype=np.float64,
                     seed=7)
    sd = m.state_dict()
    t = convert.to_onednn(sd, "LSTM", format=fmt)
    assert t["weights_layer"].shape == ((3, D, 4 * D, 4, 4) if fmt == "ldigo"
                                        else (3, D, 4, 4, 4 * D))
    back = convert.from_onednn(**t, mode="LSTM", format=fmt)
    assert list(back) == list(sd)
    for k in sd:
        if k.startswith("weight"):
            assert np.array_equal(back[k], sd[k])
    with pytest.raises(ValueError, match="layer 1 reads 8 features but layer 0 reads 3"):
        convert.to_onednn(minirnn.GRU(3, 4, num_layers=2, bidirectional=True).state_dict(),
                          "GRU")


# --------------------------------------------------------------------------- live references

CONVERT_DIR = os.path.join(os.path.dirname(minirnn.__file__), "data", "convert")
KERAS_DUMPS = sorted(glob.glob(os.path.join(CONVERT_DIR, "keras_*.npz")))


def test_keras_dumps_exist():
    # one per layer type, one direction and Bidirectional
    assert len(KERAS_DUMPS) == 10


@pytest.mark.parametrize("path", KERAS_DUMPS, ids=os.path.basename)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_keras_reference_dumps(path, dtype):
    """Weights of a live Keras 3 layer (tools/check_converters_keras.py --write-dumps)
    converted into minirnn give Keras' output; converting back gives Keras' weights."""
    meta, a = load_case(path)
    cfg = meta["config"]
    mode = meta["mode"]
    weights = [a[f"weight.{j}"].astype(dtype) for j in range(meta["n_weights"])]
    sd = convert.from_keras(weights, mode, bidirectional=cfg["bidirectional"],
                            reset_after=meta["reset_after"])
    cls = {"RNN_TANH": minirnn.RNN, "RNN_RELU": minirnn.RNN, "GRU": minirnn.GRU,
           "LSTM": minirnn.LSTM}[mode]
    kw = {k: v for k, v in cfg.items() if k not in ("input_size", "hidden_size")}
    if mode == "RNN_RELU":
        kw["nonlinearity"] = "relu"
    m = cls(cfg["input_size"], cfg["hidden_size"], dtype=dtype, **kw)
    m.load_state_dict(sd)
    out, _ = m(a["input"].astype(dtype))
    c = compare("output", out, a["output"], 1e-12 if dtype == np.float64 else 1e-5)
    assert c.ok, format_comparison(c)
    back = convert.to_keras(sd, mode, reset_after=meta["reset_after"])
    assert len(back) == len(weights)
    for w, b in zip(weights, back):
        assert np.array_equal(w, b)


def test_live_keras():
    os.environ.setdefault("KERAS_BACKEND", "jax")
    pytest.importorskip("jax")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "jax":
        pytest.skip("Keras runs on another backend")
    m = minirnn.GRU(3, 4, bidirectional=True, batch_first=True, dtype=np.float32, seed=8)
    lay = keras.layers.Bidirectional(keras.layers.GRU(4, return_sequences=True))
    x = np.random.default_rng(9).standard_normal((2, 5, 3)).astype(np.float32)
    lay.build((None, 5, 3))
    lay.set_weights(convert.to_keras(m.state_dict(), "GRU"))
    c = compare("output", np.asarray(lay(x)), m(x)[0], 1e-5)
    assert c.ok, format_comparison(c)


def test_live_onnxruntime():
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper
    H = 4
    m = minirnn.LSTM(3, H, bidirectional=True, peephole=True, dtype=np.float32, seed=10)
    t = convert.to_onnx(m.state_dict(), "LSTM")
    node = helper.make_node("LSTM", ["X", "W", "R", "B", "", "", "", "P"], ["Y", "Y_h", "Y_c"],
                            hidden_size=H, direction="bidirectional")
    g = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [5, 2, 3])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in ("Y", "Y_h", "Y_c")],
        [numpy_helper.from_array(t[k], k) for k in ("W", "R", "B", "P")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)])
    x = np.random.default_rng(11).standard_normal((5, 2, 3)).astype(np.float32)
    Y, Y_h, Y_c = ort.InferenceSession(model.SerializeToString(),
                                       providers=["CPUExecutionProvider"]).run(None, {"X": x})
    out, (h_n, c_n) = m(x)
    for name, got, ref in (("output", Y.transpose(0, 2, 1, 3).reshape(5, 2, 2 * H), out),
                           ("h_n", Y_h, h_n), ("c_n", Y_c, c_n)):
        c = compare(name, got, ref, 1e-5)
        assert c.ok, format_comparison(c)
    assert onnx.__version__

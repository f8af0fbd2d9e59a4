"""minirnn.convert: weight conversions to other frameworks and back.

- Round trips (to a format and back) are exact for every mode, layer and direction.
- Converted weights fed to each framework's own equations (written from its specification
  in NumPy here, and the live framework when installed) give minirnn's outputs.
- Bad arguments raise errors naming the argument.
"""
import numpy as np
import pytest

import minirnn
from minirnn import convert

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

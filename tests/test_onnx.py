"""minirnn.onnx: export to onnxruntime, load from ONNX, round trips, the glue evaluator, errors.

The references are independent implementations: onnxruntime (float32) runs what
``export`` writes and the random one-node graphs of ``tools/onnx_random_check.py``; onnx's
reference evaluator computes the glue operators. Skips without onnx (and the onnxruntime
parts without onnxruntime).
"""
import os
import subprocess
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

import minirnn  # noqa: E402
import minirnn.onnx as mo  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ort_run(model, feeds):
    ort = pytest.importorskip("onnxruntime")
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def rel(a, b):
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


# (class, constructor arguments): every mode and every variant ONNX expresses
MODULES = [
    ("RNN", dict()),
    ("RNN", dict(nonlinearity="relu", num_layers=2, bidirectional=True)),
    ("RNN", dict(num_layers=2, batch_first=True, cell_clip=0.5)),
    ("RNN", dict(activations=[("LeakyRelu", 0.125)], reverse=True, num_layers=2)),
    ("GRU", dict(num_layers=3, bidirectional=True)),
    ("GRU", dict(reset_after=False, num_layers=2, batch_first=True)),
    ("GRU", dict(reset_after=False, bidirectional=True, cell_clip=0.75,
                 activations=["HardSigmoid", ("ScaledTanh", 1.25, 0.75), "Sigmoid",
                              "Softsign"])),
    ("GRU", dict(bias=False, reverse=True)),
    ("LSTM", dict(num_layers=2, bidirectional=True)),
    ("LSTM", dict(peephole=True, num_layers=2, batch_first=True)),
    ("LSTM", dict(coupled_input_forget=True, peephole=True, bidirectional=True)),
    ("LSTM", dict(cell_clip=0.5, reverse=True, bias=False)),
    ("LSTM", dict(activations=[("HardSigmoid", 0.25, 0.5), ("LeakyRelu", 0.25), "Softsign",
                               "Sigmoid", ("Elu", 0.875), ("Affine", 0.625, 0.125)],
                  bidirectional=True, num_layers=2)),
]
IDS = [f"{c}-{'-'.join(f'{k}={v}' for k, v in kw.items())}"[:60] for c, kw in MODULES]


def make(cls, kw, dtype=np.float32):
    m = getattr(minirnn, cls)(3, 4, dtype=dtype, seed=7, **kw)
    rng = np.random.default_rng(1)
    m.load_state_dict({k: rng.uniform(-0.9, 0.9, v.shape) for k, v in m.state_dict().items()})
    return m


def inputs(m, T=5, N=3, seed=2):
    rng = np.random.default_rng(seed)
    LD = m.num_layers * m.num_directions
    x = rng.standard_normal((N, T, 3) if m.batch_first else (T, N, 3)).astype(m.dtype)
    h0 = rng.standard_normal((LD, N, 4)).astype(m.dtype)
    c0 = rng.standard_normal((LD, N, 4)).astype(m.dtype)
    return x, h0, c0


def forward(m, x, h0, c0):
    if m.mode == "LSTM":
        out, (h, c) = m(x, (h0, c0))
        return [out, h, c]
    out, h = m(x, h0)
    return [out, h]


def feeds_of(m, x, h0, c0):
    f = {"input": x, "h0": h0}
    if m.mode == "LSTM":
        f["c0"] = c0
    return f


# --------------------------------------------------------------------------- export

@pytest.mark.parametrize("cls, kw", MODULES, ids=IDS)
def test_export_runs_in_onnxruntime(cls, kw):
    m = make(cls, kw)
    model = mo.export(m)
    assert sum(n.op_type in ("RNN", "GRU", "LSTM") for n in model.graph.node) == m.num_layers
    x, h0, c0 = inputs(m)
    want = forward(m, x, h0, c0)
    got = ort_run(model, feeds_of(m, x, h0, c0))
    for name, g, w in zip(("output", "h_n", "c_n"), got, want):
        assert rel(g, w) < 1e-5, name


@pytest.mark.parametrize("cls, kw", MODULES, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_is_bit_exact(cls, kw, dtype):
    m = make(cls, kw, dtype)
    back = mo.load(mo.export(m).SerializeToString())
    m2 = back.to_module(batch_first=m.batch_first)
    assert type(m2) is type(m) and m2.dtype == m.dtype
    assert m2.variant.describe() == mo.load(mo.export(m2)).to_module().variant.describe()
    a, b = m.state_dict(), m2.state_dict()
    assert list(a) == list(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k
    # and the loaded graph computes what the loaded module computes (which is the exported
    # module's cell but for alpha/beta/clip rounded to float32, ONNX's attribute type:
    # HardSigmoid's default alpha 0.2 above)
    x, h0, c0 = inputs(m)
    for g, w in zip(back(**feeds_of(m, x, h0, c0)), forward(m2, x, h0, c0)):
        assert rel(g, w) < (1e-12 if dtype == np.float64 else 1e-6)


@pytest.mark.parametrize("cls, kw", [("RNN", dict(num_layers=2, bidirectional=True)),
                                     ("GRU", dict(num_layers=2, batch_first=True)),
                                     ("GRU", dict(reset_after=False, bidirectional=True)),
                                     ("LSTM", dict(num_layers=2, bidirectional=True)),
                                     ("LSTM", dict(peephole=True, reverse=True, bias=False))])
def test_export_float64_against_reference_evaluator(cls, kw):
    # onnx's reference evaluator computes float64 (onnxruntime's RNN kernels are float32 only)
    m = make(cls, kw, np.float64)
    x, h0, c0 = inputs(m)
    got = ReferenceEvaluator(mo.export(m)).run(None, feeds_of(m, x, h0, c0))
    for g, w in zip(got, forward(m, x, h0, c0)):
        assert rel(g, w) < 1e-12


def test_export_writes_a_file(tmp_path):
    m = make("GRU", dict(num_layers=2))
    path = tmp_path / "gru.onnx"
    model = mo.export(m, path, opset=14)
    assert path.exists() and onnx.load(str(path)) == model
    assert model.opset_import[0].version == 14


@pytest.mark.parametrize("cls", ["RNN", "GRU", "LSTM"])
def test_export_packed_sequence_lens(cls):
    # a PackedSequence is the padded batch plus its lengths: sequence_lens
    m = make(cls, dict(num_layers=2, bidirectional=True))
    x, h0, c0 = inputs(m, T=5, N=4)
    lengths = np.array([3, 5, 0, 1])
    x[np.arange(5)[:, None] >= lengths[None, :]] = 0
    packed = minirnn.pack_padded_sequence(x, lengths, enforce_sorted=False, allow_empty=True)
    res = forward(m, packed, h0, c0)
    out, _ = minirnn.pad_packed_sequence(res[0], total_length=5)
    model = mo.export(m, sequence_lens=True)
    got = ort_run(model, dict(feeds_of(m, x, h0, c0), sequence_lens=lengths.astype(np.int32)))
    assert rel(got[0], out) < 1e-5
    full = lengths > 0
    for g, w, s0 in zip(got[1:], res[1:], (h0, c0)):
        assert rel(g[:, full], w[:, full]) < 1e-5
        # by design: onnxruntime gives 0 for a sequence of length 0, minirnn its h0 (c0)
        assert np.all(g[:, ~full] == 0) and np.array_equal(w[:, ~full], s0[:, ~full])
    # minirnn.onnx reproduces onnxruntime there
    mine = mo.load(model)(**dict(feeds_of(m, x, h0, c0), sequence_lens=lengths.astype(np.int32)))
    for g, w in zip(mine, got):
        assert rel(g, w) < 1e-5


def test_export_without_initial_states():
    m = make("LSTM", dict(num_layers=2))
    model = mo.export(m, initial_states=False)
    assert [i.name for i in model.graph.input] == ["input"]
    x, _, _ = inputs(m)
    out, (h, c) = m(x)
    for g, w in zip(ort_run(model, {"input": x}), (out, h, c)):
        assert rel(g, w) < 1e-5


@pytest.mark.parametrize("cls, kw", [("RNNCell", dict(nonlinearity="relu")),
                                     ("GRUCell", dict(reset_after=False)),
                                     ("LSTMCell", dict(peephole=True, cell_clip=0.5))])
def test_export_cells(cls, kw):
    cell = getattr(minirnn, cls)(3, 4, seed=3, **kw)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3)).astype(np.float32)
    h = rng.standard_normal((2, 4)).astype(np.float32)
    c = rng.standard_normal((2, 4)).astype(np.float32)
    model = mo.export(cell)
    if cls == "LSTMCell":
        want = cell(x, (h, c))
        got = ort_run(model, {"input": x, "h": h, "c": c})
    else:
        want = (cell(x, h),)
        got = ort_run(model, {"input": x, "h": h})
    for g, w in zip(got, want):
        assert rel(g, w) < 1e-5


def test_export_errors():
    with pytest.raises(ValueError, match="no projection"):
        mo.export(minirnn.LSTM(3, 4, proj_size=2))
    with pytest.raises(ValueError, match="opset"):
        mo.export(minirnn.GRU(3, 4), opset=13)
    with pytest.raises(TypeError, match="expected a minirnn"):
        mo.export(object())


def test_api_docs_list_every_glue_op():
    with open(os.path.join(ROOT, "docs", "api.md"), encoding="utf-8") as f:
        text = f.read()
    assert all(f"`{op}`" in text for op in mo.GLUE_OPS)


def test_import_minirnn_does_not_import_onnx():
    code = "import sys, minirnn; assert 'onnx' not in sys.modules, 'onnx imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
    # without onnx, minirnn.onnx imports and its functions say what to install
    code = ("import sys; sys.modules['onnx'] = None\n"
            "import minirnn, minirnn.onnx as mo\n"
            "for f in (lambda: mo.load('m.onnx'), lambda: mo.export(minirnn.GRU(2, 3))):\n"
            "    try:\n        f()\n    except ModuleNotFoundError as e:\n"
            "        assert e.name == 'onnx' and 'minirnn[onnx]' in str(e), e\n"
            "    else:\n        raise AssertionError('no error')\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# --------------------------------------------------------------------------- load

def _node_graph(op, W, R, B=None, **attrs):
    """One node, its weights as initializers, X and initial_h as graph inputs."""
    inits = [numpy_helper.from_array(W, "W"), numpy_helper.from_array(R, "R")]
    if B is not None:
        inits.append(numpy_helper.from_array(B, "B"))
    node = helper.make_node(op, ["X", "W", "R", "B" if B is not None else ""],
                            ["Y", "Y_h"], **attrs)
    et = TensorProto.FLOAT if W.dtype == np.float32 else TensorProto.DOUBLE
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("X", et, None)],
                          [helper.make_tensor_value_info("Y", et, None),
                           helper.make_tensor_value_info("Y_h", et, None)], initializer=inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)])


def test_load_converts_weights_to_pytorch_layout():
    H, I = 2, 3
    rng = np.random.default_rng(0)
    W = rng.standard_normal((1, 4 * H, I)).astype(np.float32)
    R = rng.standard_normal((1, 4 * H, H)).astype(np.float32)
    B = rng.standard_normal((1, 8 * H)).astype(np.float32)
    m = mo.load(_node_graph("LSTM", W, R, B, hidden_size=H)).modules[0]
    i, o, f, c = np.split(W[0], 4)                      # ONNX's gate blocks
    assert np.array_equal(m.weight_ih_l0, np.concatenate([i, f, c, o]))
    wb, rb = np.split(B[0], 2)
    assert np.array_equal(m.bias_hh_l0, np.concatenate([np.split(rb, 4)[k] for k in
                                                        (0, 2, 3, 1)]))
    Wg = rng.standard_normal((1, 3 * H, I)).astype(np.float64)
    Rg = rng.standard_normal((1, 3 * H, H)).astype(np.float64)
    g = mo.load(_node_graph("GRU", Wg, Rg, linear_before_reset=1)).modules[0]
    z, r, h = np.split(Wg[0], 3)
    assert np.array_equal(g.weight_ih_l0, np.concatenate([r, z, h]))
    assert g.dtype == np.float64 and not g.bias and g.variant.reset_after
    assert not mo.load(_node_graph("GRU", Wg, Rg)).modules[0].variant.reset_after


def test_weights_as_graph_inputs_must_be_fed():
    m = make("GRU", {})
    w = minirnn.onnx._layers.onnx_weights(m, 0)
    node = helper.make_node("GRU", ["X", "W", "R", "B"], ["", "Y_h"], hidden_size=4,
                            linear_before_reset=1)
    vi = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in "XWRB"]
    g = helper.make_graph([node], "g", vi, [helper.make_tensor_value_info("Y_h",
                                                                          TensorProto.FLOAT,
                                                                          None)])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)])
    loaded = mo.load(model)
    assert loaded.modules == [None] and loaded.layers[0].weight_inputs == ["W", "R", "B"]
    x, h0, _ = inputs(m)
    with pytest.raises(ValueError, match="weights of recurrent nodes"):
        loaded(x)
    want = m(x)[1]
    assert rel(loaded(x, w["W"], w["R"], w["B"]), want) < 1e-6
    given = mo.load(model, weights={"W": w["W"], "R": w["R"], "B": w["B"]})
    assert np.array_equal(given.modules[0].weight_hh_l0, m.weight_hh_l0)
    with pytest.raises(ValueError, match="not graph inputs"):
        mo.load(model, weights={"Q": w["W"]})


def test_initializers_listed_as_graph_inputs_are_overridable_weights():
    # IR < 4 models list every initializer among the graph inputs too: a default value
    m, m2 = make("LSTM", {}), make("LSTM", {})
    m2.load_state_dict({k: 0.5 * v for k, v in m.state_dict().items()})
    model = mo.export(m, initial_states=False)
    model.graph.input.extend([helper.make_tensor_value_info(t.name, t.data_type, t.dims)
                              for t in model.graph.initializer])
    loaded = mo.load(model)
    assert loaded.input_names == ["input"] and loaded.modules[0] is not None
    x = inputs(m)[0]
    assert rel(loaded(x)[0], m(x)[0]) < 1e-6
    w = minirnn.onnx._layers.onnx_weights(m2, 0)
    assert rel(loaded(x, W_l0=w["W"], R_l0=w["R"], B_l0=w["B"])[0], m2(x)[0]) < 1e-6
    assert rel(loaded(x)[0], m(x)[0]) < 1e-6        # the module loaded is unchanged


def test_weights_from_constant_nodes_and_glue():
    # W computed in the graph from Constant nodes (an exporter without constant folding)
    m = make("RNN", {})
    w = minirnn.onnx._layers.onnx_weights(m, 0)
    nodes = [helper.make_node("Constant", [], ["W2"], value=numpy_helper.from_array(w["W"][0])),
             helper.make_node("Constant", [], ["ax"], value=numpy_helper.from_array(
                 np.array([0], np.int64))),
             helper.make_node("Unsqueeze", ["W2", "ax"], ["W"]),
             helper.make_node("RNN", ["X", "W", "R", "B"], ["Y", "Y_h"], hidden_size=4)]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT,
                                                                     None)],
                          [helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, None)],
                          initializer=[numpy_helper.from_array(w["R"], "R"),
                                       numpy_helper.from_array(w["B"], "B")])
    loaded = mo.load(helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)]))
    assert np.array_equal(loaded.modules[0].weight_ih_l0, m.weight_ih_l0)
    x, _, _ = inputs(m)
    assert rel(loaded(x), m(x)[1]) < 1e-6


def test_unsupported_op_is_named():
    m = make("LSTM", {})
    model = mo.export(m, initial_states=False)
    model.graph.node.append(helper.make_node("MatMul", ["output", "output"], ["mm"]))
    loaded = mo.load(model)
    assert loaded.unsupported_ops == ["MatMul"] and loaded.modules[0] is not None
    with pytest.raises(NotImplementedError, match="MatMul"):
        loaded(inputs(m)[0])


def test_load_errors():
    rng = np.random.default_rng(0)
    W = rng.standard_normal((1, 4, 3)).astype(np.float32)
    R = rng.standard_normal((1, 4, 4)).astype(np.float32)
    with pytest.raises(ValueError, match=r"input W must have shape \[1, 6, 3\]"):
        mo.load(_node_graph("GRU", W[:, :3], R[:, :3, :1], hidden_size=2))
    with pytest.raises(ValueError, match=r"input R must have shape \[1, 12, 3\]"):
        mo.load(_node_graph("LSTM", np.zeros((1, 12, 3), np.float32), R[:, :3, :3]))
    with pytest.raises(ValueError, match="direction"):
        mo.load(_node_graph("RNN", W, R, direction="sideways"))
    with pytest.raises(ValueError, match="unknown activation"):
        mo.load(_node_graph("RNN", W, R, activations=["Swish"]))
    with pytest.raises(ValueError, match="activations must list"):
        mo.load(_node_graph("RNN", W, R, activations=["Tanh", "Tanh", "Tanh"]))
    with pytest.raises(TypeError, match="float32 or float64"):
        mo.load(_node_graph("RNN", W.astype(np.float16), R.astype(np.float16)))
    with pytest.raises(TypeError, match="expected an onnx.ModelProto"):
        mo.load(42)
    loaded = mo.load(_node_graph("RNN", W, R))
    x = rng.standard_normal((2, 1, 3)).astype(np.float32)
    with pytest.raises(TypeError, match="dtype float64"):
        loaded(x.astype(np.float64))
    with pytest.raises(ValueError, match="missing input"):
        loaded()
    with pytest.raises(ValueError, match="unknown input"):
        loaded(x, Z=x)


def test_sequence_lens_errors():
    rng = np.random.default_rng(0)
    W = rng.standard_normal((1, 4, 3)).astype(np.float32)
    R = rng.standard_normal((1, 4, 4)).astype(np.float32)
    m = mo.load(_node_graph("RNN", W, R))
    spec, mod = m.layers[0].spec, m.modules[0]
    x = rng.standard_normal((2, 2, 3)).astype(np.float32)
    with pytest.raises(ValueError, match=r"lie in \[0, 2\]"):
        mo._layers.run_layer(spec, mod, x, np.array([3, 1], np.int32))
    with pytest.raises(ValueError, match="integer vector"):
        mo._layers.run_layer(spec, mod, x, np.array([1.0, 1.0]))


# --------------------------------------------------------------------------- the glue

def _glue_case(op, inputs, attrs=None, opset=17, n_out=1):
    names = [f"i{k}" for k in range(len(inputs))]
    node = helper.make_node(op, names, [f"o{k}" for k in range(n_out)], **(attrs or {}))
    vi = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
          for n, a in zip(names, inputs)]
    outs = [helper.make_tensor_value_info(f"o{k}", TensorProto.UNDEFINED, None)
            for k in range(n_out)]
    g = helper.make_graph([node], "g", vi, outs)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    feeds = dict(zip(names, inputs))
    return model, feeds


x4 = np.arange(2 * 3 * 1 * 4, dtype=np.float32).reshape(2, 3, 1, 4)
i64 = lambda *v: np.array(v, np.int64)  # noqa: E731
GLUE = [
    ("Transpose", [x4], dict(perm=[0, 2, 1, 3]), 17),
    ("Transpose", [x4], {}, 17),
    ("Squeeze", [x4, i64(2)], {}, 17),
    ("Squeeze", [x4], dict(axes=[-2]), 11),
    ("Unsqueeze", [x4, i64(0, -1)], {}, 17),
    ("Unsqueeze", [x4], dict(axes=[1]), 11),
    ("Concat", [x4, x4], dict(axis=1), 17),
    ("Reshape", [x4, i64(0, 0, -1)], {}, 17),
    ("Reshape", [x4, i64(6, -1)], {}, 14),
    ("Flatten", [x4], dict(axis=2), 17),
    ("Slice", [x4, i64(1), i64(3), i64(1)], {}, 17),
    ("Slice", [x4, i64(-1, 2**62), i64(-2**62, 0), i64(1, 3), i64(-1, -2)], {}, 17),
    ("Slice", [x4, i64(0, 1), i64(1, 100)], {}, 17),
    ("Slice", [x4], dict(starts=[1], ends=[2], axes=[0]), 9),
    ("Shape", [x4], {}, 17),
    ("Shape", [x4], dict(start=1, end=-1), 17),
    ("Size", [x4], {}, 17),
    ("Gather", [x4, i64(2, -1)], dict(axis=3), 17),
    ("Gather", [i64(5, 6, 7), np.array(1, np.int64)], {}, 17),
    ("Cast", [x4], dict(to=TensorProto.DOUBLE), 17),
    ("ConstantOfShape", [i64(2, 3)], {}, 17),
    ("Expand", [np.ones((1, 3, 1), np.float32), i64(2, 1, 4)], {}, 17),
    ("Split", [x4, i64(1, 2)], dict(axis=1), 17, 2),
    ("Split", [x4], dict(axis=1, num_outputs=2), 18, 2),
    ("Add", [i64(4, 5), i64(1)], {}, 17),
    ("Mul", [x4, np.float32(2)], {}, 17),
    ("Div", [i64(7, -7), i64(2)], {}, 17),
    ("Identity", [x4], {}, 17),
]


@pytest.mark.parametrize("case", GLUE, ids=[f"{c[0]}-{k}" for k, c in enumerate(GLUE)])
def test_glue_ops_match_reference_evaluator(case):
    op, ins, attrs, opset = case[:4]
    n_out = case[4] if len(case) > 4 else 1
    model, feeds = _glue_case(op, [np.asarray(a) for a in ins], attrs, opset, n_out)
    want = ReferenceEvaluator(model).run(None, feeds)
    got = mo.load(model).run(None, feeds)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype and np.array_equal(g, w)


# --------------------------------------------------------------------------- onnxruntime

def test_random_graphs_against_onnxruntime():
    # a fixed-seed slice of tools/onnx_random_check.py (every attribute, random values)
    pytest.importorskip("onnxruntime")
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    try:
        import onnx_random_check as rc
    finally:
        sys.path.pop(0)
    rng = np.random.default_rng(20261203)
    for _ in range(120):
        case = rc.random_case(rng)
        errs = rc.compare(case)
        for label, e in errs.items():
            assert e <= rc.TOLERANCE[label], (label, e, rc.describe(case))

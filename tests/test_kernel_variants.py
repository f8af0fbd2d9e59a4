"""The compiled kernels on every cell variant (minirnn.variants): the compiled path against the
NumPy path (the oracle) forward and backward, in combination with layers, directions, a
reverse-only layer, packed input with empty sequences, projections, dropout and the cells; and
bitwise invariance under thread counts, batch slices, the input-product scheme and the
instruction set.

Expected values come from the NumPy path or from the kernels themselves under another thread
count; none is typed in by hand. (The variants' references from ONNX and Keras are checked on
both backends by the tests of the dumps.)
"""
import numpy as np
import pytest

import minirnn
from minirnn import _backend_c, _kernels, variants
from minirnn.conformance import TOLERANCE
from minirnn.packed import pack_sequence, unpack_sequence

from helpers import (assert_grad_close, join_state, make_cell, make_module, model_with_state,
                     numerical_grad, perturb_biases, split_state, train_step)

DTYPES = [np.float64, np.float32]

# name -> (mode, variant arguments). Together they use every activation, the clip in every
# mode, both GRU forms, peepholes, coupled gates, and activations that take their derivative
# from the input (LeakyRelu, ThresholdedRelu, ScaledTanh, Elu: the saved pre-activations).
VARIANTS = {
    "gru_reset_before": ("GRU", dict(reset_after=False)),
    "gru_clip": ("GRU", dict(cell_clip=0.5)),
    "gru_acts": ("GRU", dict(activations=["HardSigmoid", ("ScaledTanh", 0.8, 1.3)])),
    "gru_relu": ("GRU", dict(activations=["Sigmoid", "Relu"])),
    "gru_before_clip_acts": ("GRU", dict(reset_after=False, cell_clip=0.7,
                                         activations=["Softsign", ("Elu", 0.6)])),
    "lstm_peephole": ("LSTM", dict(peephole=True)),
    "lstm_coupled": ("LSTM", dict(coupled_input_forget=True)),
    "lstm_peephole_coupled_clip": ("LSTM", dict(peephole=True, coupled_input_forget=True,
                                                cell_clip=0.6)),
    "lstm_acts": ("LSTM", dict(activations=["HardSigmoid", ("Elu", 0.7), ("LeakyRelu", 0.1)])),
    "lstm_acts_peephole": ("LSTM", dict(activations=["Sigmoid", "Softplus", "Softsign"],
                                        peephole=True)),
    "rnn_softsign": ("RNN_TANH", dict(activations=["Softsign"])),
    "rnn_tanh_clip": ("RNN_TANH", dict(cell_clip=0.4)),
    "rnn_thresholded_clip": ("RNN_RELU", dict(activations=[("ThresholdedRelu", 0.2)],
                                              cell_clip=1.0)),
    "rnn_affine": ("RNN_TANH", dict(activations=[("Affine", 0.5, 0.1)])),
}

setup = model_with_state      # (mode, backend, variant, dtype, T, B, I, H, layers, ...)

# (layers, bidirectional, reverse)
LAYOUTS = [(2, True, False), (1, False, True), (2, False, False)]


def assert_close(got, ref, dtype):
    tol = TOLERANCE[np.dtype(dtype)]
    assert got.keys() == ref.keys()
    for key, r in ref.items():
        g = got[key]
        assert g.shape == r.shape, key
        err = np.abs(g - r).max() / max(np.abs(r).max(), np.finfo(dtype).tiny) if r.size else 0
        assert err <= tol, f"{key}: {err:.2e} > {tol:.0e}"


def assert_identical(got, ref, what):
    for key, r in ref.items():
        assert np.array_equal(got[key], r), f"{key}: {what}"


def test_the_kernels_compute_every_variant():
    for mode, kw in VARIANTS.values():
        v = variants.make_variant(mode, **kw)
        assert _backend_c.unsupported(mode, v) is None
        assert make_module(mode, 3, 4, **kw).backend == "c"


# ------------------------------------------------------------------------ compiled == NumPy

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS, ids=["2bidir", "1reverse", "2uni"])
@pytest.mark.parametrize("name", list(VARIANTS))
def test_compiled_equals_numpy_for_every_variant(name, layout, dtype):
    mode, kw = VARIANTS[name]
    layers, bidir, reverse = layout
    kw = dict(kw, reverse=True) if reverse else kw
    for P in ([0, 3] if mode == "LSTM" else [0]):
        sizes = dict(dtype=dtype, layers=layers, bidirectional=bidir, P=P)
        ref = train_step(*setup(mode, "numpy", kw, **sizes))
        got = train_step(*setup(mode, "c", kw, **sizes))
        if "peephole" in kw:
            assert "grad.weight_peephole_l0" in got
        assert_close(got, ref, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["gru_reset_before", "gru_before_clip_acts", "lstm_peephole",
                                  "lstm_acts_peephole", "rnn_tanh_clip"])
def test_compiled_equals_numpy_across_block_boundaries(name, dtype):
    # H = 70: G*H, 2H and H cross the panels (8/16 columns) and the 64-column blocks of the
    # weight gradients (the split product's r,z | n boundary at 140 inside a block); T*B
    # = 495 rows cross the 64-row blocks and the K blocks of the weight gradients
    mode, kw = VARIANTS[name]
    sizes = dict(dtype=dtype, T=45, B=11, I=5, H=70, layers=1, bidirectional=True)
    assert_close(train_step(*setup(mode, "c", kw, **sizes)),
                 train_step(*setup(mode, "numpy", kw, **sizes)), dtype)


@pytest.mark.filterwarnings("ignore:dropout option adds dropout after all but last")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["gru_reset_before", "lstm_peephole_coupled_clip",
                                  "lstm_acts", "rnn_thresholded_clip"])
def test_compiled_equals_numpy_with_dropout(name, dtype):
    mode, kw = VARIANTS[name]
    for P in ([0, 2] if mode == "LSTM" else [0]):
        sizes = dict(dtype=dtype, layers=3, bidirectional=True, P=P, dropout=0.4)
        assert_close(train_step(*setup(mode, "c", kw, **sizes)),
                     train_step(*setup(mode, "numpy", kw, **sizes)), dtype)


def _packed_step(m, lengths, seed=5):
    """forward + backward of a packed batch (empty sequences included), every result."""
    rng = np.random.default_rng(seed)
    dt, P, H = m.dtype, m._h_width, m.hidden_size
    LD, B, D = m.num_layers * m.num_directions, len(lengths), m.num_directions
    seqs = [rng.standard_normal((n, m.input_size)).astype(dt) for n in lengths]
    h0 = rng.standard_normal((LD, B, P)).astype(dt)
    c0 = rng.standard_normal((LD, B, H)).astype(dt)
    g_out = [rng.standard_normal((n, D * P)).astype(dt) for n in lengths]
    g_h = rng.standard_normal((LD, B, P)).astype(dt)
    g_c = rng.standard_normal((LD, B, H)).astype(dt)
    m.zero_grad()
    out, st = m(pack_sequence(seqs, enforce_sorted=False, allow_empty=True),
                join_state(m.mode, h0, c0))
    h, c = split_state(m.mode, st)
    gx, gst = m.backward(pack_sequence(g_out, enforce_sorted=False, allow_empty=True),
                         join_state(m.mode, g_h, None if c is None else g_c))
    gh0, gc0 = split_state(m.mode, gst)
    res = dict(h_n=h, grad_h0=gh0)
    res.update({f"out{k}": o for k, o in enumerate(unpack_sequence(out))})
    res.update({f"grad_x{k}": o for k, o in enumerate(unpack_sequence(gx))})
    if c is not None:
        res.update(c_n=c, grad_c0=gc0)
    res.update({"grad." + k: v.copy() for k, v in m.grads.items()})
    return res, h0, c0, g_h, g_c


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS, ids=["2bidir", "1reverse", "2uni"])
@pytest.mark.parametrize("name", ["gru_reset_before", "gru_acts", "lstm_peephole",
                                  "lstm_peephole_coupled_clip", "rnn_softsign"])
def test_compiled_equals_numpy_on_packed_input_with_empty_sequences(name, layout, dtype):
    mode, kw = VARIANTS[name]
    layers, bidir, reverse = layout
    kw = dict(kw, reverse=True) if reverse else kw
    lengths = [3, 0, 6, 1, 6, 0, 2, 5]
    for P in ([0, 2] if mode == "LSTM" else [0]):
        res = {}
        for backend in ("numpy", "c"):
            m = setup(mode, backend, kw, dtype=dtype, I=3, H=5, layers=layers,
                      bidirectional=bidir, P=P)[0]
            res[backend], h0, c0, g_h, g_c = _packed_step(m, lengths)
        assert_close(res["c"], res["numpy"], dtype)
        empty = [k for k, n in enumerate(lengths) if n == 0]
        assert np.array_equal(res["c"]["h_n"][:, empty], h0[:, empty])
        assert np.array_equal(res["c"]["grad_h0"][:, empty], g_h[:, empty])
        if mode == "LSTM":
            assert np.array_equal(res["c"]["c_n"][:, empty], c0[:, empty])
            assert np.array_equal(res["c"]["grad_c0"][:, empty], g_c[:, empty])


CELL_VARIANTS = {
    "GRU": [dict(reset_after=False), dict(reset_after=False, cell_clip=0.5,
                                          activations=["HardSigmoid", "Softsign"])],
    "LSTM": [dict(peephole=True), dict(peephole=True, coupled_input_forget=True, cell_clip=0.8,
                                       activations=["Sigmoid", ("Elu", 0.5), "Softplus"])],
    "RNN_TANH": [dict(activations=[("ScaledTanh", 1.5, 0.7)], cell_clip=0.9)],
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", list(CELL_VARIANTS))
def test_cells_compiled_equal_numpy(mode, dtype):
    # a few steps of a cell, backpropagated in reverse order through the cell's tape
    for kw in CELL_VARIANTS[mode]:
        res = {}
        for backend in ("numpy", "c"):
            rng = np.random.default_rng(3)
            cell = make_cell(mode, 4, 6, dtype=dtype, seed=2, backend=backend, **kw)
            perturb_biases(cell, rng)
            for name, p in cell.named_parameters():
                if "peephole" in name:
                    p += rng.standard_normal(p.shape).astype(dtype)
            xs = [rng.standard_normal((5, 4)).astype(dtype) for _ in range(3)]
            h = rng.standard_normal((5, 6)).astype(dtype)
            state = (h, rng.standard_normal((5, 6)).astype(dtype)) if mode == "LSTM" else h
            outs = {}
            for k, x in enumerate(xs):
                state = cell(x, state)
                for j, s in enumerate(state if mode == "LSTM" else (state,)):
                    outs[f"s{k}.{j}"] = s
            g = [rng.standard_normal((5, 6)).astype(dtype) for _ in range(2)]
            grad = (g[0], g[1]) if mode == "LSTM" else g[0]
            for k in reversed(range(3)):
                gx, grad = cell.backward(grad)
                outs[f"gx{k}"] = gx
            for j, s in enumerate(grad if mode == "LSTM" else (grad,)):
                outs[f"g_state{j}"] = s
            outs.update({"grad." + n: v.copy() for n, v in cell.grads.items()})
            res[backend] = outs
        if kw.get("peephole"):
            assert "grad.weight_peephole" in res["c"]
        assert_close(res["c"], res["numpy"], dtype)


# ------------------------------------------------------------------------ bitwise invariance

@pytest.fixture
def restore_threads():
    n = minirnn.get_num_threads()
    yield
    minirnn.set_num_threads(n)


# big enough for every phase but the packing to ask for several threads
PARALLEL = dict(T=20, B=37, I=16, H=24)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["gru_reset_before", "gru_before_clip_acts", "lstm_peephole",
                                  "lstm_peephole_coupled_clip", "lstm_acts", "rnn_affine"])
def test_variants_are_bitwise_identical_for_any_thread_count(name, dtype, restore_threads):
    mode, kw = VARIANTS[name]
    for layout in [(2, True, False), (1, False, True)]:
        layers, bidir, reverse = layout
        args = dict(kw, reverse=True) if reverse else kw
        results = {}
        for n in (1, 2, 3):
            minirnn.set_num_threads(n)
            results[n] = train_step(*setup(mode, "c", args, dtype=dtype, layers=layers,
                                           bidirectional=bidir, **PARALLEL))
        for n in (2, 3):
            assert_identical(results[n], results[1], f"{n} threads != 1 thread")


@pytest.fixture
def restore_kernel_settings():
    slices = _kernels._set_slice_rows(1, 1, 1)
    _kernels._set_slice_rows(*slices)
    step_gx = _kernels._set_step_gx_limits(0, 0)
    _kernels._set_step_gx_limits(*step_gx)
    isa = _kernels.get_isa()
    yield
    _kernels._set_slice_rows(*slices)
    _kernels._set_step_gx_limits(*step_gx)
    _kernels.set_isa(isa)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["gru_reset_before", "lstm_peephole", "lstm_acts_peephole"])
def test_variants_are_bitwise_identical_for_any_slices_and_input_product(
        name, dtype, restore_threads, restore_kernel_settings):
    # batch slices of 1 to 64 rows, G_x before the loops or step by step inside them
    mode, kw = VARIANTS[name]
    minirnn.set_num_threads(2)
    results = []
    for rows, gx in [((8, 4, 32), (0, 0)), ((1, 1, 1), (1 << 40, 0)), ((3, 3, 3), (0, 0)),
                     ((64, 64, 64), (1 << 40, 0))]:
        _kernels._set_slice_rows(*rows)
        _kernels._set_step_gx_limits(*gx)
        results.append(train_step(*setup(mode, "c", kw, dtype=dtype, T=7, B=37, I=5, H=12)))
    for res in results[1:]:
        assert_identical(res, results[0], "another slicing changed a bit")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["gru_reset_before", "lstm_peephole_coupled_clip", "gru_acts"])
def test_avx512_gives_the_results_of_avx2_to_the_bit(name, dtype, restore_kernel_settings):
    if "avx512" not in _kernels.available_isas():
        pytest.skip("this CPU or build has no AVX-512 variant")
    mode, kw = VARIANTS[name]
    res = {}
    for isa in ("avx2", "avx512"):
        _kernels.set_isa(isa)
        res[isa] = train_step(*setup(mode, "c", kw, dtype=dtype, H=21))
    assert_identical(res["avx512"], res["avx2"], "avx512 != avx2")


# ------------------------------------------------------------------------ the kernels' contract

def _layer(mode, kv, D=1, T=5, B=6, I=3, H=4, peephole=False, seed=0, dtype=np.float64):
    """Arguments of one forward_layer call (training) for variant argument kv."""
    rng = np.random.default_rng(seed)
    G = {"RNN_TANH": 1, "RNN_RELU": 1, "GRU": 3, "LSTM": 4}[mode]
    lstm = mode == "LSTM"
    SW = _kernels.saved_width(_kernels.MODES[mode], kv)
    w = tuple((rng.standard_normal((G * H, I)), rng.standard_normal((G * H, H)),
               rng.standard_normal(G * H), rng.standard_normal(G * H), None,
               rng.standard_normal(3 * H) if peephole else None) for _ in range(D))
    return dict(
        mode=_kernels.MODES[mode], X=rng.standard_normal((T, B, I)).astype(dtype),
        weights=w, h0=rng.standard_normal((D, B, H)), c0=rng.standard_normal((D, B, H))
        if lstm else None, Y=np.empty((T, B, D * H)), hT=np.empty((D, B, H)),
        cT=np.empty((D, B, H)) if lstm else None,
        Cs=np.empty((D, T, B, H)) if lstm else None,
        S=np.empty((D, T, B, SW * H)) if SW else None, variant=kv)


@pytest.mark.parametrize("mode,name", [("LSTM", "lstm_peephole"), ("GRU", "gru_reset_before"),
                                       ("RNN_TANH", "rnn_tanh_clip"), ("GRU", None)])
def test_rows_that_never_take_a_step_keep_their_state(mode, name):
    # batch_sizes[0] < B straight into the kernels: the 2 empty rows (the last ones) keep
    # h0, c0, output zeros, pass dhT, dcT to dh0, dc0 and add nothing to the weight gradients;
    # the other rows compute what a batch of only them computes
    kw = dict(VARIANTS[name][1]) if name else {}
    v = variants.make_variant(mode, num_directions=1, **kw) if name else None
    for reverse in (False, True):
        if reverse:
            v = variants.make_variant(mode, reverse=True, **kw)
        kv = _backend_c._kernel_variant(mode, v)[0]
        peep = bool(kw.get("peephole"))
        bs = np.array([4, 4, 3, 1, 1], np.int64)               # T = 5, B = 6: rows 4, 5 empty
        full, sub = _layer(mode, kv, peephole=peep), _layer(mode, kv, peephole=peep)
        for k in ("X", "h0", "c0"):
            if sub[k] is not None:
                sub[k] = np.ascontiguousarray(full[k][:, :4])
        for k in ("Y", "hT", "cT"):
            if sub[k] is not None:
                sub[k] = np.empty_like(sub[k][:, :4])
        for k in ("Cs", "S"):
            if sub[k] is not None:
                sub[k] = np.empty_like(sub[k][:, :, :4])
        _kernels.forward_layer(**full, batch_sizes=bs)
        _kernels.forward_layer(**sub, batch_sizes=bs.copy())
        assert np.array_equal(full["Y"][:, 4:], np.zeros_like(full["Y"][:, 4:]))
        assert np.array_equal(full["hT"][:, 4:], full["h0"][:, 4:])
        assert np.allclose(full["Y"][:, :4], sub["Y"], rtol=0, atol=1e-13)
        assert np.allclose(full["hT"][:, :4], sub["hT"], rtol=0, atol=1e-13)
        if mode == "LSTM":
            assert np.array_equal(full["cT"][:, 4:], full["c0"][:, 4:])
        grads = {}
        for a, B in ((full, 6), (sub, 4)):
            rng = np.random.default_rng(9)
            dY = np.ascontiguousarray(rng.standard_normal((5, 6, 4))[:, :B])
            dhT = np.ascontiguousarray(rng.standard_normal((1, 6, 4))[:, :B])
            dcT = np.ascontiguousarray(rng.standard_normal((1, 6, 4))[:, :B])
            g = (tuple(None if w is None else np.zeros_like(w) for w in a["weights"][0]),)
            dX, dh0 = np.empty_like(a["X"]), np.empty_like(a["h0"])
            dc0 = np.empty_like(a["c0"]) if mode == "LSTM" else None
            _kernels.backward_layer(a["mode"], a["X"], a["weights"], a["h0"], a["c0"], a["Y"],
                                    a["Cs"], a["S"], dY, dhT, dcT if mode == "LSTM" else None,
                                    dX, dh0, dc0, g, None, bs, kv)
            grads[B] = dict(dX=dX, dh0=dh0, dc0=dc0, g=g, dhT=dhT, dcT=dcT)
        f, s = grads[6], grads[4]
        assert np.array_equal(f["dh0"][:, 4:], f["dhT"][:, 4:])
        assert np.array_equal(f["dX"][:, 4:], np.zeros_like(f["dX"][:, 4:]))
        assert np.allclose(f["dX"][:, :4], s["dX"], rtol=0, atol=1e-12)
        assert np.allclose(f["dh0"][:, :4], s["dh0"], rtol=0, atol=1e-12)
        if mode == "LSTM":
            assert np.array_equal(f["dc0"][:, 4:], f["dcT"][:, 4:])
        for a, b in zip(f["g"][0], s["g"][0]):
            if a is not None:
                assert np.allclose(a, b, rtol=0, atol=1e-12)


def test_saved_width_follows_the_variants_rule():
    # the kernels save the pre-activations exactly when minirnn.variants says the backward
    # needs them
    for mode, kw in VARIANTS.values():
        v = variants.make_variant(mode, **kw)
        kv, SW = _backend_c._kernel_variant(mode, v)
        base = {"GRU": 4, "LSTM": 5}.get(mode, 0)
        extra = {"GRU": 3, "LSTM": 4}.get(mode, 1)
        assert SW == base + (extra if v.needs_preactivations(mode) else 0), (mode, kw)


def test_forward_layer_checks_the_variant_and_the_peepholes():
    kv = _backend_c._kernel_variant("LSTM", variants.make_variant("LSTM", peephole=True))[0]
    a = _layer("LSTM", kv, peephole=True)
    _kernels.forward_layer(**a)
    bad = dict(a, weights=((*a["weights"][0][:5], np.zeros(5)),))
    with pytest.raises(ValueError, match=r"W_peephole\[0\] has shape \(5,\), expected \(12,\)"):
        _kernels.forward_layer(**bad)
    g = _layer("GRU", None)
    bad = dict(g, weights=((*g["weights"][0][:5], np.zeros(12)),))
    with pytest.raises(ValueError, match="only LSTM takes peepholes"):
        _kernels.forward_layer(**bad)
    with pytest.raises(ValueError, match="reset_after=False is a GRU variant"):
        _kernels.forward_layer(**dict(a, variant=(False, False, None, False, None)))
    with pytest.raises(ValueError, match="reverse is for a layer of one direction"):
        _kernels.forward_layer(**_layer("GRU", (True, False, None, True, None), D=2))
    with pytest.raises(ValueError, match="unknown activation id 11"):
        _kernels.forward_layer(**_layer("RNN_TANH", (True, False, None, False,
                                                     (((11, 0., 0.),),))))
    with pytest.raises(ValueError, match="activations must hold 1"):
        _kernels.forward_layer(**_layer("RNN_TANH", (True, False, None, False,
                                                     (((1, 0., 0.), (1, 0., 0.)),))))
    with pytest.raises(ValueError, match="expected an array of shape"):
        _kernels.forward_layer(**dict(a, S=None))


# ------------------------------------------------------------------------ finite differences

@pytest.mark.parametrize("name", ["gru_reset_before", "gru_before_clip_acts",
                                  "lstm_peephole_coupled_clip", "lstm_acts_peephole",
                                  "rnn_thresholded_clip"])
def test_compiled_gradients_match_central_differences(name):
    # float64, every parameter (peepholes included), the input and the initial state; the
    # loss is a random projection of the output and the final states
    mode, kw = VARIANTS[name]
    m, x, state = setup(mode, "c", kw, T=4, B=3, I=2, H=3, layers=2, bidirectional=True)
    h0, c0 = split_state(mode, state)
    rng = np.random.default_rng(7)
    out, st = m(x, state)
    h, c = split_state(mode, st)
    g_out, g_h = rng.standard_normal(out.shape), rng.standard_normal(h.shape)
    g_c = None if c is None else rng.standard_normal(c.shape)

    def loss():
        with minirnn.no_grad():
            o, s = m(x, join_state(mode, h0, c0))
        hh, cc = split_state(mode, s)
        return float((o * g_out).sum() + (hh * g_h).sum()
                     + (0.0 if cc is None else (cc * g_c).sum()))

    m.zero_grad()
    m(x, join_state(mode, h0, c0))
    gx, gst = m.backward(g_out, join_state(mode, g_h, g_c))
    gh0, gc0 = split_state(mode, gst)
    params = dict(m.named_parameters())
    for pname, p in params.items():
        assert_grad_close(pname, m.grads[pname], numerical_grad(loss, p))
    assert_grad_close("x", gx, numerical_grad(loss, x))
    assert_grad_close("h0", gh0, numerical_grad(loss, h0))
    if c0 is not None:
        assert_grad_close("c0", gc0, numerical_grad(loss, c0))

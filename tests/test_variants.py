"""Cell variants (minirnn.variants): every variant against the ONNX/Keras references and the
float64 central differences stored in minirnn/data/variants, on both backends; backend
agreement and finite differences for the combinations ONNX cannot express (proj_size,
dropout); argument checks; empty sequences."""
import os

import numpy as np
import pytest

import minirnn
from minirnn import _backend_c, conformance, variants
from minirnn.packed import pack_padded_sequence, pack_sequence, pad_packed_sequence

from helpers import BACKENDS, EPS, TOL

CASES = conformance.find_cases(conformance.VARIANTS_DIR)
VARIANT_KEYS = ("reset_after", "peephole", "coupled_input_forget", "cell_clip", "activations",
                "reverse")


def _variant_of(mode, config):
    D = 2 if config.get("bidirectional") else 1
    return variants.make_variant(mode, num_directions=D,
                                 **{k: config[k] for k in VARIANT_KEYS if k in config})


def _skip_unsupported(backend, mode, variant):
    if backend == "c":
        reason = _backend_c.unsupported(mode, variant)
        if reason is not None:
            pytest.skip(reason)


def test_dumps_cover_every_variant():
    names = {os.path.basename(p)[:-4] for p in CASES}
    assert len(names) >= 100
    for v in ("gru_reset_before", "lstm_peephole", "lstm_coupled", "rnn_clip", "gru_clip",
              "lstm_clip", "rnn_acts", "gru_acts", "lstm_acts", "rnn_reverse", "lstm_empty"):
        assert any(n.startswith(v) for n in names), v
    for layout in ("_l2_bi", "_bf", "_unbatched", "_packed", "_cell"):
        assert any(n.endswith(layout) for n in names), layout
    # every ONNX activation name appears in some case
    used = set()
    for p in CASES:
        meta, _ = conformance.load_case(p)
        for a in meta["config"].get("activations", []):
            used.add(a if isinstance(a, str) else a[0])
    assert set(variants.ACTIVATIONS) - used <= {"Tanh", "Relu"}   # (the defaults: elsewhere)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("path", CASES, ids=lambda p: os.path.basename(p)[:-4])
def test_variant_dump(path, backend, dtype):
    meta, arrays = conformance.load_case(path)
    _skip_unsupported(backend, meta["mode"], _variant_of(meta["mode"], meta["config"]))
    results = conformance.run_variant_case((meta, arrays), backend=backend, dtype=dtype)
    assert any(r.name.startswith("ort:") for r in results)
    assert any(r.name.startswith("fd:") for r in results)
    bad = [conformance.format_comparison(r) for r in results if not r.ok]
    assert not bad, "\n".join(bad)


def test_dump_references_agree_with_each_other():
    """The stored references were checked against each other when written; check again."""
    seen = set()
    for p in CASES:
        meta, a = conformance.load_case(p)
        for src in ("ref", "keras"):
            for key in [k for k in a if k.startswith(src + ".")]:
                name = key.split(".", 1)[1]
                c = conformance.compare(key, a["ort." + name], a[key], 2e-5)
                assert c.ok, conformance.format_comparison(c)
                seen.add(src)
    assert seen == {"ref", "keras"}


# --------------------------------------------------------------------------- combinations

# (mode, variant kwargs) for the combinations ONNX has no reference for
VARIANTS = [
    ("GRU", dict(reset_after=False)),
    ("GRU", dict(reset_after=False, cell_clip=0.5, activations=["HardSigmoid", "Softsign"])),
    ("LSTM", dict(peephole=True)),
    ("LSTM", dict(peephole=True, coupled_input_forget=True, cell_clip=0.8)),
    ("LSTM", dict(coupled_input_forget=True, activations=[("LeakyRelu", 0.1), "Tanh",
                                                          ("ScaledTanh", 1.5, 0.5)])),
    ("RNN_TANH", dict(cell_clip=0.5, activations=[("Elu", 0.5)])),
    ("RNN_RELU", dict(reverse=True)),
    ("LSTM", dict(peephole=True, reverse=True)),
]
STRUCTURES = [
    dict(num_layers=2, dropout=0.4),
    dict(num_layers=2, bidirectional=True, batch_first=True),
    dict(proj_size=2),
    dict(proj_size=2, num_layers=2, bidirectional=True, dropout=0.3),
]


def _module(mode, kw, structure, dtype=np.float64, backend="numpy", seed=3):
    s = dict(structure)
    if mode != "LSTM" and "proj_size" in s:
        return None
    if kw.get("reverse") and s.get("bidirectional"):
        return None
    if mode.startswith("RNN"):
        return minirnn.RNN(3, 4, nonlinearity=mode[4:].lower(), dtype=dtype, seed=seed,
                           backend=backend, **s, **kw)
    return getattr(minirnn, mode)(3, 4, dtype=dtype, seed=seed, backend=backend, **s, **kw)


def _inputs(m, rng, packed):
    D, P = m.num_directions, m._h_width
    if packed:
        x = rng.standard_normal((5, 3, 3))
        lengths = [3, 0, 5]
        xin = pack_padded_sequence(x, lengths, enforce_sorted=False, allow_empty=True)
        B = 3
    else:
        B = 2
        x = rng.standard_normal((2, 5, 3) if m.batch_first else (5, 2, 3))
        xin = x
    LD = D * m.num_layers
    h0 = rng.standard_normal((LD, B, P))
    hx = (h0, rng.standard_normal((LD, B, m.hidden_size))) if m.mode == "LSTM" else h0
    return xin, hx


def _run(m, xin, hx, gen_seed, go, gs):
    m.generator = np.random.default_rng(gen_seed)        # the same dropout masks every call
    out, st = m(xin, hx)
    return out, st


def _loss(m, xin, hx, gen_seed, go, gs):
    with minirnn.no_grad():
        out, st = _run(m, xin, hx, gen_seed, go, gs)
    data = out.data if isinstance(out, minirnn.PackedSequence) else out
    hs = st if isinstance(st, tuple) else (st,)
    return float(np.sum(data * go) + sum(np.sum(h * g) for h, g in zip(hs, gs)))


@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
@pytest.mark.parametrize("structure", STRUCTURES, ids=lambda s: "_".join(f"{k}{v}" for k, v in
                                                                          s.items()))
@pytest.mark.parametrize("mode, kw", VARIANTS, ids=lambda v: v if isinstance(v, str) else
                         "_".join(sorted(v)))
def test_finite_differences(mode, kw, structure, packed):
    """float64 central differences of the NumPy path, with dropout masks held fixed."""
    m = _module(mode, kw, structure)
    if m is None:
        pytest.skip("not a valid combination")
    rng = np.random.default_rng(11)
    for _, p in m.named_parameters():
        p += 0.3 * rng.standard_normal(p.shape)
    xin, hx = _inputs(m, rng, packed)
    out, st = _run(m, xin, hx, 5, None, None)
    data = out.data if packed else out
    go = rng.standard_normal(data.shape)
    hs = st if isinstance(st, tuple) else (st,)
    gs = tuple(rng.standard_normal(h.shape) for h in hs)
    m.zero_grad()
    _run(m, xin, hx, 5, go, gs)
    gx, _ = m.backward(go, gs if m.mode == "LSTM" else gs[0])
    loss = lambda: _loss(m, xin, hx, 5, go, gs)           # noqa: E731
    # a few entries of every parameter and of the input (all of them would take minutes)
    pick = np.random.default_rng(13)
    arrays = [(n, m._params[n], m.grads[n]) for n in m.grads]
    arrays.append(("input", xin.data if packed else xin, gx.data if packed else gx))
    for name, arr, grad in arrays:
        scale = max(np.abs(grad).max(), 1e-3)
        for _ in range(4):
            idx = tuple(int(pick.integers(n)) for n in arr.shape)
            old = arr[idx]
            arr[idx] = old + EPS
            up = loss()
            arr[idx] = old - EPS
            down = loss()
            arr[idx] = old
            err = abs((up - down) / (2 * EPS) - grad[idx]) / scale
            assert err < TOL, f"{name}{list(idx)}: analytic vs numerical differ by {err:.2e}"


@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
@pytest.mark.parametrize("structure", STRUCTURES + [dict()], ids=lambda s: "_".join(
    f"{k}{v}" for k, v in s.items()) or "plain")
@pytest.mark.parametrize("mode, kw", VARIANTS, ids=lambda v: v if isinstance(v, str) else
                         "_".join(sorted(v)))
def test_backends_agree(mode, kw, structure, packed):
    """The compiled kernels against the NumPy path (float64), forward and backward."""
    probe = _module(mode, kw, structure)
    if probe is None:
        pytest.skip("not a valid combination")
    _skip_unsupported("c", probe.mode, probe.variant)
    ms = [_module(mode, kw, structure, backend=b) for b in ("numpy", "c")]
    rng = np.random.default_rng(12)
    xin, hx = _inputs(ms[0], rng, packed)
    results = []
    for m in ms:
        out, st = _run(m, xin, hx, 6, None, None)
        data = out.data if packed else out
        go = np.random.default_rng(1).standard_normal(data.shape)
        hs = st if isinstance(st, tuple) else (st,)
        gs = tuple(np.random.default_rng(2).standard_normal(h.shape) for h in hs)
        gx, gst = m.backward(go, gs if m.mode == "LSTM" else gs[0])
        results.append((data, hs, gx.data if packed else gx, dict(m.grads)))
    (o0, h0, g0, w0), (o1, h1, g1, w1) = results
    np.testing.assert_allclose(o1, o0, rtol=1e-10, atol=1e-12)
    for a, b in zip(h1, h0):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(g1, g0, rtol=1e-9, atol=1e-11)
    for k in w0:
        np.testing.assert_allclose(w1[k], w0[k], rtol=1e-9, atol=1e-11, err_msg=k)


@pytest.mark.parametrize("backend", BACKENDS)
def test_reverse_is_the_reverse_direction_of_a_bidirectional_layer(backend):
    """reverse=True computes what direction 1 of a bidirectional layer computes."""
    for mode, extra in (("GRU", dict(reset_after=False)), ("LSTM", dict(peephole=True)),
                        ("LSTM", dict())):
        bi = _module(mode, extra, dict(bidirectional=True))
        _skip_unsupported(backend, mode, variants.make_variant(mode, reverse=True, **extra))
        rev = _module(mode, dict(extra, reverse=True), dict(), backend=backend)
        rev.load_state_dict({k: bi.state_dict()[k + "_reverse"] for k in rev.state_dict()})
        x = np.random.default_rng(0).standard_normal((5, 2, 3))
        lengths = [5, 3]
        out_bi, st_bi = bi(pack_padded_sequence(x, lengths))
        out_rev, st_rev = rev(pack_padded_sequence(x, lengths))
        np.testing.assert_allclose(out_rev.data, out_bi.data[:, 4:], rtol=1e-12, atol=1e-14)
        h_bi = st_bi[0] if mode == "LSTM" else st_bi
        h_rev = st_rev[0] if mode == "LSTM" else st_rev
        np.testing.assert_allclose(h_rev[0], h_bi[1], rtol=1e-12, atol=1e-14)


def test_default_arguments_are_pytorch():
    """Defaults keep PyTorch's cell and state_dict; a variant equal to the default is one."""
    for cls in (minirnn.GRU, minirnn.LSTM, minirnn.RNN):
        a, b = cls(3, 4, seed=0), cls(3, 4, seed=0, cell_clip=None, activations=None)
        assert a.variant.is_default and b.variant.is_default
        assert list(a.state_dict()) == list(b.state_dict())
        assert "peephole" not in " ".join(a.state_dict())
    g = minirnn.GRU(3, 4, activations=["sigmoid", "TANH"])
    assert g.variant.is_default and g.backend == "c"


def test_peephole_parameters():
    m = minirnn.LSTM(3, 4, num_layers=2, bidirectional=True, proj_size=2, peephole=True, seed=1)
    names = list(m.state_dict())
    assert [n for n in names if "peephole" in n] == [
        "weight_peephole_l0", "weight_peephole_l0_reverse", "weight_peephole_l1",
        "weight_peephole_l1_reverse"]
    # after weight_hr in each block, drawn like the others: U(-1/sqrt(H), 1/sqrt(H))
    assert names.index("weight_peephole_l0") == names.index("weight_hr_l0") + 1
    assert m.weight_peephole_l0.shape == (12,)
    assert np.abs(m.weight_peephole_l0).max() <= 0.5 and np.abs(m.weight_peephole_l0).min() > 0
    assert m.grads["weight_peephole_l1"].shape == (12,)
    sd = {k: v + 1 for k, v in m.state_dict().items()}
    m.load_state_dict(sd)
    np.testing.assert_array_equal(m.weight_peephole_l1, sd["weight_peephole_l1"])
    with pytest.raises(ValueError, match="weight_peephole_l0"):
        minirnn.LSTM(3, 4, seed=1).load_state_dict(
            minirnn.LSTM(3, 4, seed=1, peephole=True).state_dict())
    cell = minirnn.LSTMCell(3, 4, peephole=True)
    assert list(cell.state_dict())[-1] == "weight_peephole"


def test_repr_shows_variant_arguments():
    assert repr(minirnn.GRU(3, 4, reset_after=False, backend="numpy")) == \
        "GRU(3, 4, reset_after=False)"
    r = repr(minirnn.LSTM(3, 4, peephole=True, cell_clip=2, activations=[
        "Sigmoid", ("LeakyRelu", 0.5), "Tanh"]))
    assert "peephole=True" in r and "cell_clip=2.0" in r and "('LeakyRelu', 0.5)" in r
    assert repr(minirnn.RNN(3, 4, reverse=True)) == "RNN(3, 4, reverse=True)"
    assert repr(minirnn.GRUCell(3, 4, reset_after=False)) == "GRUCell(3, 4, reset_after=False)"
    assert repr(minirnn.GRU(3, 4)) == "GRU(3, 4)"


@pytest.mark.parametrize("call, exc, match", [
    (lambda: minirnn.GRU(3, 4, reset_after=0), TypeError, "reset_after"),
    (lambda: minirnn.LSTM(3, 4, peephole="yes"), TypeError, "peephole"),
    (lambda: minirnn.LSTM(3, 4, cell_clip=0), ValueError, "cell_clip"),
    (lambda: minirnn.LSTM(3, 4, cell_clip=-1.0), ValueError, "cell_clip"),
    (lambda: minirnn.LSTM(3, 4, cell_clip=float("inf")), ValueError, "cell_clip"),
    (lambda: minirnn.GRU(3, 4, cell_clip="1"), TypeError, "cell_clip"),
    (lambda: minirnn.GRU(3, 4, activations="Tanh"), TypeError, "activations"),
    (lambda: minirnn.GRU(3, 4, activations=["Tanh"]), ValueError, "takes 2"),
    (lambda: minirnn.GRU(3, 4, bidirectional=True, activations=["Tanh"] * 3), ValueError,
     "2 or 4"),
    (lambda: minirnn.LSTM(3, 4, activations=["Sigmoid", "Tanh", "Gelu"]), ValueError,
     "unknown activation 'Gelu'"),
    (lambda: minirnn.LSTM(3, 4, activations=["Sigmoid", ("Tanh", 1.0), "Tanh"]), ValueError,
     "takes 0"),
    (lambda: minirnn.LSTM(3, 4, activations=["Sigmoid", ("Elu", "a"), "Tanh"]), ValueError,
     "alpha of Elu"),
    (lambda: minirnn.LSTM(3, 4, activations=["Sigmoid", 3, "Tanh"]), TypeError,
     "name or a"),
    (lambda: minirnn.LSTM(3, 4, bidirectional=True, reverse=True), ValueError,
     "unidirectional"),
])
def test_argument_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


@pytest.mark.parametrize("mode, kw", VARIANTS[:3] + [("GRU", dict(cell_clip=1.0))])
def test_backend_c_names_the_numpy_path_while_the_kernels_lack_a_variant(mode, kw):
    v = variants.make_variant(mode, **kw)
    if _backend_c.unsupported(mode, v) is None:
        pytest.skip("the compiled kernels compute this variant")
    with pytest.raises(NotImplementedError, match="backend='numpy'"):
        _module(mode, kw, {}, backend="c")
    m = _module(mode, kw, {}, backend=None)          # the default picks the NumPy path
    assert m.backend == "numpy"


def test_variant_arguments_are_keyword_only_and_mode_specific():
    with pytest.raises(TypeError):
        minirnn.GRUCell(3, 4, True, np.float32)
    with pytest.raises(TypeError, match="peephole"):
        minirnn.GRU(3, 4, peephole=True)
    with pytest.raises(TypeError, match="reset_after"):
        minirnn.LSTMCell(3, 4, reset_after=False)
    with pytest.raises(ValueError, match="GRU variant"):
        variants.make_variant("LSTM", reset_after=False)


def test_activation_derivatives_match_differences():
    x = np.linspace(-3, 3, 61) + 0.013           # away from the kinks
    for name in variants.ACTIVATIONS:
        for params in ((), (0.3,), (0.3, 0.6)):
            try:
                act = variants.make_activation((name,) + params)
            except ValueError:
                continue
            y = variants.activate(act, x)
            num = (variants.activate(act, x + 1e-6) - variants.activate(act, x - 1e-6)) / 2e-6
            np.testing.assert_allclose(variants.derivative(act, x, y), num, atol=1e-7,
                                       err_msg=str(act))


# --------------------------------------------------------------------------- empty sequences

def test_pack_rejects_empty_without_the_flag():
    x = np.zeros((3, 2, 1))
    with pytest.raises(ValueError, match="allow_empty=True"):
        pack_padded_sequence(x, [3, 0])
    with pytest.raises(ValueError, match="allow_empty=True"):
        pack_sequence([np.zeros((2, 1)), np.zeros((0, 1))])
    with pytest.raises(ValueError, match="greater than 0"):
        pack_padded_sequence(x, [3, -1], allow_empty=True)


def test_pack_with_empty_sequences_records_the_batch():
    x = np.arange(12.0).reshape(3, 4, 1)
    p = pack_padded_sequence(x, [2, 0, 3, 0], enforce_sorted=False, allow_empty=True)
    assert p.batch_size == 4 and p.batch_sizes.tolist() == [2, 2, 1]
    assert p.lengths.tolist() == [2, 0, 3, 0]
    padded, lengths = pad_packed_sequence(p, total_length=3)
    assert lengths.tolist() == [2, 0, 3, 0]
    np.testing.assert_array_equal(padded[:, 1], 0)
    np.testing.assert_array_equal(padded[:2, 0], x[:2, 0])
    s = pack_padded_sequence(x, [3, 2, 0, 0], allow_empty=True)        # sorted: identity
    assert s.sorted_indices.tolist() == [0, 1, 2, 3] and s.batch_size == 4
    e = pack_sequence([np.zeros((0, 2)), np.zeros((0, 2))], allow_empty=True)
    assert e.batch_size == 2 and e.data.shape == (0, 2) and len(e.batch_sizes) == 0
    assert minirnn.unpack_sequence(e)[1].shape == (0, 2)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", ["RNN_TANH", "GRU", "LSTM"])
def test_empty_sequences_keep_their_state(mode, backend):
    m = _module(mode, {}, dict(num_layers=2, bidirectional=True), backend=backend)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((4, 3, 3))
    p = pack_padded_sequence(x, [0, 4, 2], enforce_sorted=False, allow_empty=True)
    h0 = rng.standard_normal((4, 3, 4))
    c0 = rng.standard_normal((4, 3, 4))
    hx = (h0, c0) if mode == "LSTM" else h0
    out, st = m(p, hx)
    hn, cn = st if mode == "LSTM" else (st, None)
    np.testing.assert_array_equal(hn[:, 0], h0[:, 0])
    if cn is not None:
        np.testing.assert_array_equal(cn[:, 0], c0[:, 0])
    # the other rows: as if the empty one were not in the batch
    ref = _module(mode, {}, dict(num_layers=2, bidirectional=True), backend=backend)
    hx2 = (h0[:, 1:], c0[:, 1:]) if mode == "LSTM" else h0[:, 1:]
    out2, st2 = ref(pack_padded_sequence(x[:, 1:], [4, 2]), hx2)
    np.testing.assert_allclose(out.data, out2.data, rtol=1e-12, atol=1e-14)
    gh = rng.standard_normal(hn.shape)
    gc = rng.standard_normal(hn.shape)
    gx, gst = m.backward(rng.standard_normal(out.data.shape), (gh, gc) if mode == "LSTM" else gh)
    gh0, gc0 = gst if mode == "LSTM" else (gst, None)
    np.testing.assert_array_equal(gh0[:, 0], gh[:, 0])        # straight through
    if gc0 is not None:
        np.testing.assert_array_equal(gc0[:, 0], gc[:, 0])
    assert gx.data.shape == p.data.shape


@pytest.mark.parametrize("backend", BACKENDS)
def test_batch_of_only_empty_sequences(backend):
    m = _module("LSTM", {}, dict(bidirectional=True), backend=backend)
    p = pack_sequence([np.zeros((0, 3)), np.zeros((0, 3))], allow_empty=True)
    h0 = np.random.default_rng(0).standard_normal((2, 2, 4))
    out, (hn, cn) = m(p, (h0, -h0))
    assert out.data.shape == (0, 8)
    np.testing.assert_array_equal(hn, h0)
    np.testing.assert_array_equal(cn, -h0)
    gx, (gh0, gc0) = m.backward(None, (h0 * 2, h0 * 3))
    np.testing.assert_array_equal(gh0, h0 * 2)
    np.testing.assert_array_equal(gc0, h0 * 3)
    assert gx.data.shape == (0, 3)
    assert all(not g.any() for g in m.grads.values())

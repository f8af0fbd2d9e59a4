"""Dropout between layers, checked without PyTorch's random stream (which minirnn does not
reproduce): eval() equals p = 0, p = 1 cuts the signal between layers, the masks' statistics,
the masks of a training forward are the documented draws from ``m.generator`` applied between
the layers, a float64 finite-difference check of the backward with the masks held fixed, and
the same seed gives the same result on both backends and in both dtypes.
"""
import numpy as np
import pytest

import minirnn
from minirnn import functional
from helpers import (BACKENDS, MODES, assert_grad_close, join_state, make_module,
                     numerical_grad, perturb_biases, split_state)

I, H, L, N = 3, 5, 6, 4


def _model(mode, backend, layers=3, bidirectional=True, dropout=0.4, dtype=np.float64, seed=0,
           **kw):
    m = make_module(mode, I, H, layers, bidirectional=bidirectional, dropout=dropout,
                    dtype=dtype, seed=seed, backend=backend, **kw)
    perturb_biases(m, np.random.default_rng(seed + 100))
    return m


def _run(m, x, state, go, gh, gc):
    """forward + backward; every result in a dict."""
    m.zero_grad()
    out, st = m(x, state)
    h_n, c_n = split_state(m.mode, st)
    gx, gs = m.backward(go, join_state(m.mode, gh, gc))
    res = dict(out=out, h_n=h_n, grad_x=gx, grad_h0=split_state(m.mode, gs)[0])
    if c_n is not None:
        res.update(c_n=c_n, grad_c0=split_state(m.mode, gs)[1])
    res.update({"grad." + k: v.copy() for k, v in m.grads.items()})
    return res


def _inputs(m, rng, T=L):
    D, P = m.num_directions, m.proj_size or m.hidden_size
    LD = m.num_layers * D
    x = rng.standard_normal((T, N, I)).astype(m.dtype)
    h0 = rng.standard_normal((LD, N, P)).astype(m.dtype)
    c0 = rng.standard_normal((LD, N, m.hidden_size)).astype(m.dtype)
    go = rng.standard_normal((T, N, D * P)).astype(m.dtype)
    gh = rng.standard_normal(h0.shape).astype(m.dtype)
    gc = rng.standard_normal(c0.shape).astype(m.dtype)
    return x, join_state(m.mode, h0, c0), go, gh, gc


# --------------------------------------------------------------------------- the masks

@pytest.mark.parametrize("p", [0.0, 0.2, 0.5, 0.9])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mask_statistics(p, dtype):
    rng = np.random.default_rng(0)
    shape = (50, 40, 30)                                 # 60000 elements per mask
    a, b = functional.draw_dropout_masks(rng, p, 2, shape, dtype)
    for mask in (a, b):
        assert mask.shape == shape and mask.dtype == dtype
        # each element is 0 or 1/(1-p) (rounded to the dtype), zero with probability p
        assert set(np.unique(mask)) <= {0.0, dtype(1 / (1 - p))}
        dropped = np.mean(mask == 0)
        assert abs(dropped - p) < 5 * np.sqrt(p * (1 - p) / mask.size) + 1e-12
        # inverted scaling: the mean of the mask is 1
        assert abs(mask.mean(dtype=np.float64) - 1) < 5 * np.sqrt(p / (1 - p) / mask.size) + 1e-6
    if 0 < p:
        # a fresh mask per layer, per time step and per call
        assert not np.array_equal(a, b)
        assert not np.array_equal(a[0], a[1])
        c, = functional.draw_dropout_masks(rng, p, 1, shape, dtype)
        assert not np.array_equal(a, c)


def test_mask_p1_is_zeros_and_stream_is_documented():
    assert not functional.draw_dropout_masks(np.random.default_rng(0), 1.0, 1, (3, 4), np.float32)[0].any()
    # the documented stream: rng.random(shape) per mask, kept where >= p
    u = np.random.default_rng(5).random((2, 3, 4))
    mask, = functional.draw_dropout_masks(np.random.default_rng(5), 0.3, 1, (2, 3, 4), np.float64)
    np.testing.assert_array_equal(mask, np.where(u >= 0.3, 1 / 0.7, 0.0))


# --------------------------------------------------------------------------- eval, p = 0, p = 1

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", MODES)
def test_eval_equals_p0_and_p0_equals_no_dropout(mode, backend):
    rng = np.random.default_rng(1)
    ref = _model(mode, backend, dropout=0.0)
    args = _inputs(ref, rng)
    expected = _run(ref, *args)
    for model in (_model(mode, backend, dropout=0.7).eval(), _model(mode, backend, dropout=0.0)):
        got = _run(model, *args)
        for k, v in expected.items():
            np.testing.assert_array_equal(got[k], v, err_msg=k)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", ["GRU", "LSTM", "LSTM_PROJ"])
def test_p1_zeroes_the_signal_between_layers(mode, backend):
    """p = 1: layer 1 reads zeros. So the top layer's output equals a 1-layer model of the top
    layer's weights fed zeros, layer 0's h_n is unaffected, and no gradient reaches the input
    or layer 0 from the output."""
    kw = dict(proj_size=2) if mode == "LSTM_PROJ" else {}
    mode = mode[:4] if mode == "LSTM_PROJ" else mode
    rng = np.random.default_rng(2)
    m = _model(mode, backend, layers=2, dropout=1.0, **kw)
    x, state, go, gh, gc = _inputs(m, rng)
    h0, c0 = split_state(mode, state)
    with minirnn.no_grad():
        eval_h_n = split_state(mode, m.eval()(x, state)[1])[0]
    out, st = m.train()(x, state)
    D, P = 2, m.proj_size or H
    top = make_module(mode, D * P, H, bidirectional=True, dtype=np.float64, backend=backend, **kw)
    top.load_state_dict({k.replace("_l1", "_l0"): v for k, v in m.state_dict().items() if "_l1" in k})
    with minirnn.no_grad():
        top_out, _ = top(np.zeros((L, N, D * P)),
                         join_state(mode, h0[2:], None if c0 is None else c0[2:]))
    np.testing.assert_array_equal(out, top_out)
    np.testing.assert_array_equal(split_state(mode, st)[0][:2], eval_h_n[:2])
    # gradients from the output and from the top layer's final states only
    top_only = lambda g: None if g is None else np.concatenate([0 * g[:2], g[2:]])  # noqa: E731
    gx, _ = m.backward(go, join_state(mode, top_only(gh), top_only(gc)))
    assert not gx.any()
    assert all(not g.any() for k, g in m.grads.items() if "_l0" in k or "weight_ih_l1" in k)
    assert all(g.any() for k, g in m.grads.items() if "_l1" in k and "weight_ih" not in k)


# --------------------------------------------------------------------------- what a forward draws

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", ["RNN_TANH", "LSTM"])
def test_training_forward_is_the_layers_chained_through_the_documented_masks(mode, backend):
    """Layer by layer with 1-layer models, multiplying each output but the last by the masks
    drawn from a copy of m.generator, gives the module's training output and states."""
    rng = np.random.default_rng(3)
    m = _model(mode, backend, layers=3, dropout=0.3)
    x, state, *_ = _inputs(m, rng)
    h0, c0 = split_state(mode, state)
    gen = np.random.default_rng(0)
    gen.bit_generator.state = m.generator.bit_generator.state
    masks = functional.draw_dropout_masks(gen, 0.3, 2, (L, N, 2 * H), np.float64)
    out, st = m(x, state)
    y, hs = x, []
    for layer in range(3):
        single = make_module(mode, y.shape[-1], H, bidirectional=True, dtype=np.float64,
                             backend=backend)
        single.load_state_dict({k.replace(f"_l{layer}", "_l0"): v for k, v in m.state_dict().items()
                                if f"_l{layer}" in k})
        rows = slice(2 * layer, 2 * layer + 2)
        y, s = single(y, join_state(mode, h0[rows], None if c0 is None else c0[rows]))
        hs.append(split_state(mode, s)[0])
        if layer < 2:
            y = y * masks[layer]
    np.testing.assert_allclose(out, y, rtol=0, atol=1e-14)
    np.testing.assert_allclose(split_state(mode, st)[0], np.concatenate(hs), rtol=0, atol=1e-14)
    # and the generator moved on by exactly those draws
    assert m.generator.bit_generator.state == gen.bit_generator.state


@pytest.mark.parametrize("backend", BACKENDS)
def test_generator_advances_only_in_training_forwards(backend):
    rng = np.random.default_rng(4)
    m = _model("GRU", backend, layers=2)
    x, state, *_ = _inputs(m, rng)
    s0 = m.generator.bit_generator.state
    m.eval()(x, state)
    with minirnn.no_grad():
        m(x, state)
    assert m.generator.bit_generator.state == s0          # eval mode draws nothing
    m.train()
    a = m(x, state)[0]
    s1 = m.generator.bit_generator.state
    assert s1 != s0
    b = m(x, state)[0]                                    # a fresh mask: another result
    assert not np.allclose(a, b)
    with minirnn.no_grad():                               # as PyTorch: training mode drops
        m(x, state)                                       # even without gradients
    assert m.generator.bit_generator.state != s1
    m.generator = np.random.default_rng(99)               # reseed the masks alone
    c = m(x, state)[0]
    m.generator = np.random.default_rng(99)
    np.testing.assert_array_equal(m(x, state)[0], c)
    m.clear_tape()


def test_masks_are_time_major_whatever_the_layout():
    """batch_first only transposes: the same seed drops the same (step, row, feature)."""
    rng = np.random.default_rng(5)
    tf = _model("LSTM", "numpy", seed=7)
    bf = _model("LSTM", "numpy", seed=7, batch_first=True)
    x, state, *_ = _inputs(tf, rng)
    np.testing.assert_array_equal(bf(x.transpose(1, 0, 2), state)[0].transpose(1, 0, 2),
                                  tf(x, state)[0])


# --------------------------------------------------------------------------- backends, dtypes

@pytest.mark.parametrize("mode", MODES + ["LSTM_PROJ"])
def test_same_seed_same_result_on_both_backends_and_dtypes(mode):
    kw = dict(proj_size=3) if mode == "LSTM_PROJ" else {}
    mode = mode[:4] if mode == "LSTM_PROJ" else mode
    res = {}
    for backend in BACKENDS:
        for dtype in (np.float64, np.float32):
            m = _model(mode, backend, dropout=0.5, dtype=dtype, seed=11, **kw)
            args = _inputs(_model(mode, "numpy", seed=11, **kw), np.random.default_rng(6))
            args = [None if a is None else
                    (tuple(s.astype(dtype) for s in a) if isinstance(a, tuple) else a.astype(dtype))
                    for a in args]
            _run(m, *args)                                # a first call: the stream moves on
            res[backend, np.dtype(dtype).name] = _run(m, *args)
    ref = res["numpy", "float64"]
    for key, r in res.items():
        tol = 1e-12 if key[1] == "float64" else 1e-4
        for k, v in ref.items():
            err = np.abs(r[k] - v).max() / max(np.abs(v).max(), 1e-300)
            assert err <= tol, f"{key} {k}: {err:.2e}"


# --------------------------------------------------------------------------- gradient check

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", ["RNN_TANH", "GRU", "LSTM_PROJ"])
def test_finite_differences_with_the_masks_held_fixed(mode, backend):
    """float64 central differences; every loss evaluation reseeds m.generator, so each
    forward draws the same masks."""
    kw = dict(proj_size=2) if mode == "LSTM_PROJ" else {}
    mode = mode[:4] if mode == "LSTM_PROJ" else mode
    rng = np.random.default_rng(8)
    m = make_module(mode, 2, 3, 3, bidirectional=True, dropout=0.5, dtype=np.float64, seed=3,
                    backend=backend, **kw)
    perturb_biases(m, rng)
    T, B = 3, 2
    P, D = m.proj_size or 3, 2
    x = rng.standard_normal((T, B, 2))
    h0, c0 = rng.standard_normal((6, B, P)), rng.standard_normal((6, B, 3))
    go, gh, gc = rng.standard_normal((T, B, D * P)), rng.standard_normal(h0.shape), \
        rng.standard_normal(c0.shape)
    lstm = mode == "LSTM"

    def forward():
        m.generator = np.random.default_rng(123)
        return m(x, join_state(mode, h0, c0))

    def loss():
        with minirnn.no_grad():
            out, st = forward()
        h_n, c_n = split_state(mode, st)
        return (out * go).sum() + (h_n * gh).sum() + ((c_n * gc).sum() if lstm else 0.0)

    forward()
    gx, gs = m.backward(go, join_state(mode, gh, gc))
    checks = [("input", gx, x), ("h0", split_state(mode, gs)[0], h0)]
    if lstm:
        checks.append(("c0", gs[1], c0))
    checks += [(name, m.grads[name], p) for name, p in m.named_parameters()]
    for name, analytic, arr in checks:
        assert_grad_close(name, analytic, numerical_grad(loss, arr))

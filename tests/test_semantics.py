"""Semantics that need no reference: identities every correct RNN satisfies.

- a loop of cell steps equals one module call (forward and backward);
- truncated-BPTT chunks backpropagated in reverse equal one backward;
- output / h_n identities (uni, multi-layer, bidirectional, batch_first);
- unbatched input equals a batch of one; batch rows are independent;
- a 2-layer model equals two 1-layer models chained;
- float32 agrees with float64.
"""
import numpy as np
import pytest

import minirnn
from helpers import BACKENDS, MODES, join_state, make_cell, make_module, perturb_biases, split_state

I, H, L, N = 3, 5, 6, 4


def _data(rng, *shape):
    return rng.standard_normal(shape)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", MODES)
def test_cell_loop_equals_module(mode, backend):
    """T cell steps == a 1-layer module over T steps, outputs and every gradient."""
    rng = np.random.default_rng(0)
    m = make_module(mode, I, H, dtype=np.float64, seed=1, backend=backend)
    perturb_biases(m, rng)
    cell = make_cell(mode, I, H, dtype=np.float64, backend=backend)
    cell.load_state_dict({k[:-3]: v for k, v in m.state_dict().items()})     # weight_ih_l0 -> weight_ih
    x, h0, c0 = _data(rng, L, N, I), _data(rng, 1, N, H), _data(rng, 1, N, H)
    go, gh, gc = _data(rng, L, N, H), _data(rng, 1, N, H), _data(rng, 1, N, H)

    out, state = m(x, join_state(mode, h0, c0))
    h_n, c_n = split_state(mode, state)
    h, c = h0[0], c0[0]
    for t in range(L):
        h, c = split_state(mode, cell(x[t], join_state(mode, h, c)))
        np.testing.assert_allclose(h, out[t], rtol=0, atol=1e-14)
    np.testing.assert_allclose(h, h_n[0], rtol=0, atol=1e-14)
    if mode == "LSTM":
        np.testing.assert_allclose(c, c_n[0], rtol=0, atol=1e-14)

    gx, gstate = m.backward(go, join_state(mode, gh, gc))
    gh0, gc0 = split_state(mode, gstate)
    dh, dc = gh[0], gc[0]
    for t in reversed(range(L)):
        gx_t, gs = cell.backward(join_state(mode, go[t] + dh, dc))
        dh, dc = split_state(mode, gs)
        np.testing.assert_allclose(gx_t, gx[t], rtol=0, atol=1e-13)
    np.testing.assert_allclose(dh, gh0[0], rtol=0, atol=1e-13)
    if mode == "LSTM":
        np.testing.assert_allclose(dc, gc0[0], rtol=0, atol=1e-13)
    for name in cell.grads:
        np.testing.assert_allclose(cell.grads[name], m.grads[name + "_l0"], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", MODES)
def test_truncated_bptt_chunks_equal_one_backward(mode, backend):
    """Forward in chunks carrying the state; backward the chunks in reverse (LIFO),
    passing each chunk's initial-state gradient to the previous chunk."""
    rng = np.random.default_rng(1)
    m = make_module(mode, I, H, 2, dtype=np.float64, seed=2, backend=backend)
    perturb_biases(m, rng)
    x, go = _data(rng, 9, N, I), _data(rng, 9, N, H)
    h0, c0, gh, gc = (_data(rng, 2, N, H) for _ in range(4))
    m(x, join_state(mode, h0, c0))
    gx_full, gs_full = m.backward(go, join_state(mode, gh, gc))
    full = {k: v.copy() for k, v in m.grads.items()}
    m.zero_grad()

    bounds = [(0, 4), (4, 7), (7, 9)]
    state = join_state(mode, h0, c0)
    for a, b in bounds:
        _, state = m(x[a:b], state)
    assert m.tape_size == 3
    gstate = join_state(mode, gh, gc)
    gx = np.zeros_like(x)
    for a, b in reversed(bounds):
        gx[a:b], gstate = m.backward(go[a:b], gstate)
    assert m.tape_size == 0
    np.testing.assert_allclose(gx, gx_full, rtol=0, atol=1e-13)
    for got, ref in zip(split_state(mode, gstate), split_state(mode, gs_full)):
        if ref is not None:
            np.testing.assert_allclose(got, ref, rtol=0, atol=1e-13)
    for k in full:
        np.testing.assert_allclose(m.grads[k], full[k], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("layers", [1, 3])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_output_h_n_identities(mode, layers, bidirectional, batch_first, backend):
    """output = last layer, every step; h_n = every layer, last step (index layer*D + d).
    Forward direction: output[-1, :, :H] == h_n[(layers-1)*D]; reverse: output[0, :, H:]."""
    rng = np.random.default_rng(2)
    m = make_module(mode, I, H, layers, bidirectional=bidirectional, batch_first=batch_first,
                    dtype=np.float64, seed=4, backend=backend)
    x = _data(rng, N, L, I) if batch_first else _data(rng, L, N, I)
    out, state = m(x)
    h_n, _ = split_state(mode, state)
    D = 2 if bidirectional else 1
    assert out.shape == ((N, L, D * H) if batch_first else (L, N, D * H))
    assert h_n.shape == (layers * D, N, H)                 # batch_first never applies to h_n
    seq = out.transpose(1, 0, 2) if batch_first else out   # (L, N, D*H)
    last_layer = h_n.reshape(layers, D, N, H)[-1]
    np.testing.assert_array_equal(seq[-1, :, :H], last_layer[0])
    if bidirectional:
        np.testing.assert_array_equal(seq[0, :, H:], last_layer[1])
        assert not np.allclose(seq[-1, :, H:], last_layer[1])   # output[-1] is NOT the reverse final state


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", MODES)
def test_h_n_does_not_depend_on_length_but_output_does(mode, backend):
    rng = np.random.default_rng(3)
    m = make_module(mode, I, H, 2, seed=0, dtype=np.float64, backend=backend)
    for length in (1, 4, 9):
        out, state = m(_data(rng, length, N, I))
        assert out.shape == (length, N, H)
        assert split_state(mode, state)[0].shape == (2, N, H)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", MODES)
def test_unbatched_equals_batch_of_one_and_rows_are_independent(mode, backend):
    rng = np.random.default_rng(4)
    m = make_module(mode, I, H, 2, bidirectional=True, dtype=np.float64, seed=5, backend=backend)
    x, h0, c0 = _data(rng, L, N, I), _data(rng, 4, N, H), _data(rng, 4, N, H)
    out, state = m(x, join_state(mode, h0, c0))
    h_n, c_n = split_state(mode, state)
    for b in range(N):
        out_b, state_b = m(x[:, b], join_state(mode, h0[:, b], c0[:, b]))   # unbatched
        h_b, c_b = split_state(mode, state_b)
        np.testing.assert_allclose(out_b, out[:, b], rtol=0, atol=1e-14)
        np.testing.assert_allclose(h_b, h_n[:, b], rtol=0, atol=1e-14)
        if mode == "LSTM":
            np.testing.assert_allclose(c_b, c_n[:, b], rtol=0, atol=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", MODES)
def test_unbatched_backward_equals_batch_of_one(mode, backend):
    rng = np.random.default_rng(5)
    m = make_module(mode, I, H, 2, bidirectional=True, dtype=np.float64, seed=6, backend=backend)
    x, go, gh = _data(rng, L, I), _data(rng, L, 2 * H), _data(rng, 4, H)
    m(x)
    gx, gs = m.backward(go, join_state(mode, gh, gh))
    g1 = {k: v.copy() for k, v in m.grads.items()}
    m.zero_grad()
    m(x[:, None])
    gx_b, gs_b = m.backward(go[:, None], join_state(mode, gh[:, None], gh[:, None]))
    np.testing.assert_array_equal(gx, gx_b[:, 0])
    np.testing.assert_array_equal(split_state(mode, gs)[0], split_state(mode, gs_b)[0][:, 0])
    for k in g1:
        np.testing.assert_array_equal(g1[k], m.grads[k])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", MODES)
def test_two_layers_equal_two_chained_single_layers(mode, backend):
    rng = np.random.default_rng(6)
    deep = make_module(mode, I, H, 2, bidirectional=True, dtype=np.float64, seed=7, backend=backend)
    perturb_biases(deep, rng)
    sd = deep.state_dict()
    low = make_module(mode, I, H, bidirectional=True, dtype=np.float64, backend=backend)
    high = make_module(mode, 2 * H, H, bidirectional=True, dtype=np.float64, backend=backend)
    low.load_state_dict({k: v for k, v in sd.items() if "_l0" in k})
    high.load_state_dict({k.replace("_l1", "_l0"): v for k, v in sd.items() if "_l1" in k})
    x, h0, c0 = _data(rng, L, N, I), _data(rng, 4, N, H), _data(rng, 4, N, H)
    out, state = deep(x, join_state(mode, h0, c0))
    mid, s_low = low(x, join_state(mode, h0[:2], c0[:2]))
    top, s_high = high(mid, join_state(mode, h0[2:], c0[2:]))
    np.testing.assert_allclose(out, top, rtol=0, atol=1e-14)
    np.testing.assert_allclose(split_state(mode, state)[0],
                               np.concatenate([split_state(mode, s_low)[0],
                                               split_state(mode, s_high)[0]]), rtol=0, atol=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", MODES)
def test_float32_agrees_with_float64(mode, backend):
    rng = np.random.default_rng(8)
    m64 = make_module(mode, I, H, 2, bidirectional=True, dtype=np.float64, seed=9, backend=backend)
    m32 = make_module(mode, I, H, 2, bidirectional=True, dtype=np.float32, backend=backend)
    m32.load_state_dict(m64.state_dict())
    x, go = _data(rng, L, N, I), _data(rng, L, N, 2 * H)
    out64, _ = m64(x)
    out32, _ = m32(x.astype(np.float32))
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, out64, rtol=0, atol=1e-5)
    gx64, _ = m64.backward(go)
    gx32, _ = m32.backward(go.astype(np.float32))
    assert gx32.dtype == np.float32
    np.testing.assert_allclose(gx32, gx64, rtol=0, atol=1e-5 * np.abs(gx64).max())
    for k in m64.grads:
        assert m32.grads[k].dtype == np.float32
        np.testing.assert_allclose(m32.grads[k], m64.grads[k], rtol=0,
                                   atol=1e-5 * np.abs(m64.grads[k]).max())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", MODES)
def test_empty_batch(mode, backend):
    """N = 0 works (as in PyTorch) and gives empty outputs and zero gradients."""
    m = make_module(mode, I, H, 2, backend=backend)
    out, state = m(np.zeros((L, 0, I), np.float32))
    assert out.shape == (L, 0, H) and split_state(mode, state)[0].shape == (2, 0, H)
    gx, _ = m.backward(np.zeros((L, 0, H), np.float32))
    assert gx.shape == (L, 0, I)
    assert all(not g.any() for g in m.grads.values())


@pytest.mark.parametrize("backend", BACKENDS)
def test_relu_derivative_at_zero_is_zero(backend):
    """bias-free relu RNN, zero input and state: every pre-activation is exactly 0, so
    every gradient is exactly 0 (relu'(0) = 0, as PyTorch)."""
    m = minirnn.RNN(I, H, 2, nonlinearity="relu", bias=False, dtype=np.float64, seed=0,
                    backend=backend)
    m(np.zeros((L, N, I)))
    gx, gh0 = m.backward(np.ones((L, N, H)), np.ones((2, N, H)))
    assert not gx.any()
    assert all(not g.any() for g in m.grads.values())


# --------------------------------------------------------------------------- LSTM with projections
# (no cell test: LSTMCell has no proj_size, as in PyTorch)

P = 2


def _proj(layers=2, bidirectional=True, backend="numpy", seed=10, **kw):
    m = minirnn.LSTM(I, H, layers, bidirectional=bidirectional, proj_size=P, dtype=np.float64,
                     seed=seed, backend=backend, **kw)
    perturb_biases(m, np.random.default_rng(seed))
    return m


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_proj_shapes_and_output_h_n_identities(bidirectional, backend):
    """h is P wide (h_n, output per direction, W_hh's columns), c is H wide; the output/h_n
    identities hold with P in place of H."""
    rng = np.random.default_rng(20)
    m = _proj(3, bidirectional, backend)
    D = 2 if bidirectional else 1
    shapes = m.state_dict()
    assert shapes["weight_hh_l0"].shape == (4 * H, P) and shapes["weight_hr_l0"].shape == (P, H)
    assert shapes["weight_ih_l1"].shape == (4 * H, D * P)
    assert list(shapes)[:5] == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0",
                                "weight_hr_l0"]
    assert all(np.abs(p).max() <= 1 / np.sqrt(H) + 1 for p in m.parameters())
    out, (h_n, c_n) = m(_data(rng, L, N, I))
    assert out.shape == (L, N, D * P) and h_n.shape == (3 * D, N, P) and c_n.shape == (3 * D, N, H)
    np.testing.assert_array_equal(out[-1, :, :P], h_n[-D])
    if bidirectional:
        np.testing.assert_array_equal(out[0, :, P:], h_n[-1])


@pytest.mark.parametrize("backend", BACKENDS)
def test_proj_equals_the_unprojected_cell_state_times_w_hr(backend):
    """One layer, one direction: h_t = (o_t * tanh(c_t)) W_hr^T. Run the same gates by hand
    (numpy) from the module's c_t sequence."""
    rng = np.random.default_rng(21)
    m = _proj(1, False, backend)
    x, h0, c0 = _data(rng, L, N, I), _data(rng, 1, N, P), _data(rng, 1, N, H)
    out, _ = m(x, (h0, c0))
    sig = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
    h, c = h0[0], c0[0]
    for t in range(L):
        a = x[t] @ m.weight_ih_l0.T + m.bias_ih_l0 + h @ m.weight_hh_l0.T + m.bias_hh_l0
        i, f, g, o = np.split(a, 4, axis=1)
        c = sig(f) * c + sig(i) * np.tanh(g)
        h = (sig(o) * np.tanh(c)) @ m.weight_hr_l0.T
        np.testing.assert_allclose(out[t], h, rtol=0, atol=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
def test_proj_truncated_bptt_chunks_equal_one_backward(backend):
    rng = np.random.default_rng(22)
    m = _proj(bidirectional=False, backend=backend)     # (a reverse direction starts at a chunk's end)
    x, go = _data(rng, 9, N, I), _data(rng, 9, N, P)
    h0, gh = _data(rng, 2, N, P), _data(rng, 2, N, P)
    c0, gc = _data(rng, 2, N, H), _data(rng, 2, N, H)
    m(x, (h0, c0))
    gx_full, gs_full = m.backward(go, (gh, gc))
    full = {k: v.copy() for k, v in m.grads.items()}
    m.zero_grad()
    bounds = [(0, 4), (4, 7), (7, 9)]
    state = (h0, c0)
    for a, b in bounds:
        _, state = m(x[a:b], state)
    gstate, gx = (gh, gc), np.zeros_like(x)
    for a, b in reversed(bounds):
        gx[a:b], gstate = m.backward(go[a:b], gstate)
    np.testing.assert_allclose(gx, gx_full, rtol=0, atol=1e-13)
    for got, ref in zip(gstate, gs_full):
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-13)
    for k in full:
        np.testing.assert_allclose(m.grads[k], full[k], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_proj_two_layers_equal_two_chained_single_layers(backend):
    rng = np.random.default_rng(23)
    deep = _proj(backend=backend)
    sd = deep.state_dict()
    low = minirnn.LSTM(I, H, bidirectional=True, proj_size=P, dtype=np.float64, backend=backend)
    high = minirnn.LSTM(2 * P, H, bidirectional=True, proj_size=P, dtype=np.float64,
                        backend=backend)
    low.load_state_dict({k: v for k, v in sd.items() if "_l0" in k})
    high.load_state_dict({k.replace("_l1", "_l0"): v for k, v in sd.items() if "_l1" in k})
    x, h0, c0 = _data(rng, L, N, I), _data(rng, 4, N, P), _data(rng, 4, N, H)
    out, (h_n, c_n) = deep(x, (h0, c0))
    mid, (h_low, c_low) = low(x, (h0[:2], c0[:2]))
    top, (h_high, c_high) = high(mid, (h0[2:], c0[2:]))
    np.testing.assert_allclose(out, top, rtol=0, atol=1e-14)
    np.testing.assert_allclose(h_n, np.concatenate([h_low, h_high]), rtol=0, atol=1e-14)
    np.testing.assert_allclose(c_n, np.concatenate([c_low, c_high]), rtol=0, atol=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
def test_proj_unbatched_equals_batch_of_one_and_float32_agrees(backend):
    rng = np.random.default_rng(24)
    m = _proj(backend=backend, batch_first=True)
    x, h0, c0 = _data(rng, N, L, I), _data(rng, 4, N, P), _data(rng, 4, N, H)
    out, (h_n, c_n) = m(x, (h0, c0))
    for b in range(N):
        out_b, (h_b, c_b) = m(x[b], (h0[:, b], c0[:, b]))
        np.testing.assert_allclose(out_b, out[b], rtol=0, atol=1e-14)
        np.testing.assert_allclose(c_b, c_n[:, b], rtol=0, atol=1e-14)
    m32 = minirnn.LSTM(I, H, 2, bidirectional=True, proj_size=P, batch_first=True,
                       backend=backend)
    m32.load_state_dict(m.state_dict())
    out32, _ = m32(x.astype(np.float32), (h0.astype(np.float32), c0.astype(np.float32)))
    np.testing.assert_allclose(out32, out, rtol=0, atol=1e-5)

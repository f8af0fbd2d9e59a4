"""The backward tape cannot be corrupted through the arrays the caller holds: editing the
input, h0, c0 or the returned output/h_n/c_n in place between forward and backward changes no
gradient, on both backends and in every layout.

The expected gradients are those of the same forward and backward with no edit in between.
"""
import numpy as np
import pytest

import minirnn

BACKENDS = ["c", "numpy"]
CASES = [  # (class, kwargs, layout)
    (minirnn.RNN, dict(num_layers=2), "time"),
    (minirnn.GRU, dict(bidirectional=True), "time"),
    (minirnn.GRU, dict(batch_first=True), "batch_first"),
    (minirnn.LSTM, dict(), "time"),
    (minirnn.LSTM, dict(num_layers=2, proj_size=3), "unbatched"),
    (minirnn.LSTM, dict(bidirectional=True), "unbatched"),
    (minirnn.RNN, dict(), "unbatched"),
]


def _inputs(m, layout, rng):
    T, N = 5, 3
    LD = m.num_layers * m.num_directions
    P = m.proj_size or m.hidden_size
    if layout == "unbatched":
        x, hs, cs = (T, m.input_size), (LD, P), (LD, m.hidden_size)
    elif layout == "batch_first":
        x, hs, cs = (N, T, m.input_size), (LD, N, P), (LD, N, m.hidden_size)
    else:
        x, hs, cs = (T, N, m.input_size), (LD, N, P), (LD, N, m.hidden_size)
    x, h0, c0 = (rng.standard_normal(s) for s in (x, hs, cs))
    return x, (h0, c0) if m.mode == "LSTM" else h0


def _flat(state):
    return list(state) if isinstance(state, tuple) else [state]


def _edit(arrays):
    for a in arrays:
        a *= 0.5
        a += 1.0


def _grads_after(cls, kwargs, layout, backend, edit):
    m = cls(4, 6, dtype=np.float64, seed=0, backend=backend, **kwargs)
    rng = np.random.default_rng(1)
    x, hx = _inputs(m, layout, rng)
    out, hn = m(x, hx)
    go = rng.standard_normal(out.shape)
    gh = tuple(rng.standard_normal(s.shape) for s in _flat(hn))
    if edit:
        _edit([x, out] + _flat(hx) + _flat(hn))
    gx, gs = m.backward(go, gh if m.mode == "LSTM" else gh[0])
    return [gx] + _flat(gs) + [m.grads[k].copy() for k in m.grads]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cls, kwargs, layout", CASES)
def test_in_place_edits_after_forward_do_not_change_gradients(cls, kwargs, layout, backend):
    ref = _grads_after(cls, kwargs, layout, backend, edit=False)
    got = _grads_after(cls, kwargs, layout, backend, edit=True)
    for r, g in zip(ref, got):
        np.testing.assert_array_equal(g, r)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cls", [minirnn.RNNCell, minirnn.GRUCell, minirnn.LSTMCell])
@pytest.mark.parametrize("batched", [True, False])
def test_cells(cls, backend, batched):
    def run(edit):
        cell = cls(4, 5, dtype=np.float64, seed=0, backend=backend)
        rng = np.random.default_rng(2)
        shape = (3,) if batched else ()
        x = rng.standard_normal(shape + (4,))
        h = rng.standard_normal(shape + (5,))
        hx = (h, rng.standard_normal(shape + (5,))) if cls is minirnn.LSTMCell else h
        out = cell(x, hx)
        g = tuple(rng.standard_normal(o.shape) for o in _flat(out))
        if edit:
            _edit([x] + _flat(hx) + _flat(out))
        gx, gs = cell.backward(g if cls is minirnn.LSTMCell else g[0])
        return [gx] + _flat(gs) + [cell.grads[k].copy() for k in cell.grads]
    for r, g in zip(run(False), run(True)):
        np.testing.assert_array_equal(g, r)


@pytest.mark.parametrize("backend", BACKENDS)
def test_packed(backend):
    def run(edit):
        m = minirnn.GRU(4, 5, dtype=np.float64, seed=0, backend=backend, bidirectional=True)
        rng = np.random.default_rng(3)
        x = rng.standard_normal((6, 3, 4))
        packed = minirnn.pack_padded_sequence(x, [6, 2, 4], enforce_sorted=False)
        h0 = rng.standard_normal((2, 3, 5))
        out, hn = m(packed, h0)
        go = rng.standard_normal(out.data.shape)
        gh = rng.standard_normal(hn.shape)
        if edit:
            _edit([packed.data, out.data, h0, hn])
        gx, gh0 = m.backward(go, gh)
        return [gx.data if hasattr(gx, "data") else gx, gh0] + [m.grads[k].copy() for k in m.grads]
    for r, g in zip(run(False), run(True)):
        np.testing.assert_array_equal(g, r)


@pytest.mark.parametrize("backend", BACKENDS)
def test_output_is_not_the_next_forward_buffer(backend):
    # two forwards waiting on the tape: the first's output is still the caller's own array
    m = minirnn.LSTM(3, 4, seed=0, backend=backend)
    x = np.random.default_rng(0).standard_normal((4, 2, 3)).astype(np.float32)
    out1, _ = m(x)
    keep = out1.copy()
    m(x * 2)
    np.testing.assert_array_equal(out1, keep)

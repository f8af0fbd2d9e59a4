"""Central-difference gradient check in float64, on every backend.

The loss is L = sum(output * go) + sum(h_n * gh) [+ sum(c_n * gc)] with random
upstream gradients, so every output contributes. Each analytic gradient
(input, h0, c0, every parameter) is compared entry by entry with
(L(p + eps) - L(p - eps)) / (2 eps).
"""
import numpy as np
import pytest

from helpers import (BACKENDS, MODES, assert_grad_close, join_state, make_cell, make_module,
                     numerical_grad, perturb_biases, split_state)

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("layers,bidirectional,batch_first", [(2, True, False), (1, False, True)])
def test_module_gradients(mode, layers, bidirectional, batch_first, backend):
    rng = np.random.default_rng(7)
    I, H, L, N = 3, 4, 5, 3
    m = make_module(mode, I, H, layers, bidirectional=bidirectional, batch_first=batch_first,
                    dtype=np.float64, seed=3, backend=backend)
    perturb_biases(m, rng)
    D = 2 if bidirectional else 1
    x = rng.standard_normal((N, L, I) if batch_first else (L, N, I))
    h0 = rng.standard_normal((layers * D, N, H))
    c0 = rng.standard_normal((layers * D, N, H))
    go = rng.standard_normal((N, L, D * H) if batch_first else (L, N, D * H))
    gh = rng.standard_normal(h0.shape)
    gc = rng.standard_normal(c0.shape)
    lstm = mode == "LSTM"

    def loss():
        from minirnn import no_grad
        with no_grad():
            out, state = m(x, join_state(mode, h0, c0))
        h_n, c_n = split_state(mode, state)
        return (out * go).sum() + (h_n * gh).sum() + ((c_n * gc).sum() if lstm else 0.0)

    m(x, join_state(mode, h0, c0))
    gx, gstate = m.backward(go, join_state(mode, gh, gc))
    gh0, gc0 = split_state(mode, gstate)
    assert_grad_close("input", gx, numerical_grad(loss, x))
    assert_grad_close("h0", gh0, numerical_grad(loss, h0))
    if lstm:
        assert_grad_close("c0", gc0, numerical_grad(loss, c0))
    for name, p in m.named_parameters():
        assert_grad_close(name, m.grads[name], numerical_grad(loss, p))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("batched", [True, False])
def test_cell_gradients(mode, batched, backend):
    rng = np.random.default_rng(11)
    I, H, N = 3, 4, 2
    cell = make_cell(mode, I, H, dtype=np.float64, seed=5, backend=backend)
    perturb_biases(cell, rng)
    shape = (N,) if batched else ()
    x = rng.standard_normal(shape + (I,))
    h = rng.standard_normal(shape + (H,))
    c = rng.standard_normal(shape + (H,))
    gh = rng.standard_normal(h.shape)
    gc = rng.standard_normal(c.shape)
    lstm = mode == "LSTM"

    def loss():
        from minirnn import no_grad
        with no_grad():
            h1, c1 = split_state(mode, cell(x, join_state(mode, h, c)))
        return (h1 * gh).sum() + ((c1 * gc).sum() if lstm else 0.0)

    cell(x, join_state(mode, h, c))
    gx, gstate = cell.backward(join_state(mode, gh, gc))
    gh0, gc0 = split_state(mode, gstate)
    assert_grad_close("input", gx, numerical_grad(loss, x))
    assert_grad_close("h", gh0, numerical_grad(loss, h))
    if lstm:
        assert_grad_close("c", gc0, numerical_grad(loss, c))
    for name, p in cell.named_parameters():
        assert_grad_close(name, cell.grads[name], numerical_grad(loss, p))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("layers,bidirectional,batch_first,bias", [
    (2, True, False, True), (1, False, True, False), (3, False, False, True)])
def test_lstm_proj_gradients(layers, bidirectional, batch_first, bias, backend):
    """LSTM with projections: h0, h_n and output are P wide, c0 and c_n H wide; weight_hr too."""
    rng = np.random.default_rng(13)
    I, H, P, L, N = 3, 5, 2, 4, 3
    m = make_module("LSTM", I, H, layers, bias=bias, bidirectional=bidirectional,
                    batch_first=batch_first, proj_size=P, dtype=np.float64, seed=3,
                    backend=backend)
    perturb_biases(m, rng)
    D = 2 if bidirectional else 1
    x = rng.standard_normal((N, L, I) if batch_first else (L, N, I))
    h0 = rng.standard_normal((layers * D, N, P))
    c0 = rng.standard_normal((layers * D, N, H))
    go = rng.standard_normal((N, L, D * P) if batch_first else (L, N, D * P))
    gh = rng.standard_normal(h0.shape)
    gc = rng.standard_normal(c0.shape)

    def loss():
        from minirnn import no_grad
        with no_grad():
            out, (h_n, c_n) = m(x, (h0, c0))
        return (out * go).sum() + (h_n * gh).sum() + (c_n * gc).sum()

    m(x, (h0, c0))
    gx, (gh0, gc0) = m.backward(go, (gh, gc))
    assert any(name.startswith("weight_hr") for name, _ in m.named_parameters())
    assert_grad_close("input", gx, numerical_grad(loss, x))
    assert_grad_close("h0", gh0, numerical_grad(loss, h0))
    assert_grad_close("c0", gc0, numerical_grad(loss, c0))
    for name, p in m.named_parameters():
        assert_grad_close(name, m.grads[name], numerical_grad(loss, p))

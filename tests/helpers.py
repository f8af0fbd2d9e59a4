"""Shared by the tests: model factories and a loss with random upstream gradients."""
import numpy as np

import minirnn

MODES = ["RNN_TANH", "RNN_RELU", "GRU", "LSTM"]
BACKENDS = list(minirnn.BACKENDS)


def make_module(mode, *args, **kwargs):
    """RNN/GRU/LSTM from a mode name (RNN_TANH/RNN_RELU pick the nonlinearity)."""
    if mode.startswith("RNN"):
        kwargs.setdefault("nonlinearity", mode[4:].lower())
        return minirnn.RNN(*args, **kwargs)
    return getattr(minirnn, mode)(*args, **kwargs)


def make_cell(mode, *args, **kwargs):
    if mode.startswith("RNN"):
        kwargs.setdefault("nonlinearity", mode[4:].lower())
        return minirnn.RNNCell(*args, **kwargs)
    return getattr(minirnn, mode + "Cell")(*args, **kwargs)


def perturb_biases(m, rng, scale=0.3):
    """Biases start small; push them away from zero (and b_ih != b_hh) so tests see them."""
    for name, p in m.named_parameters():
        if name.startswith("bias"):
            p += scale * rng.standard_normal(p.shape).astype(p.dtype)


def split_state(mode, state):
    """(h, c) for LSTM, (h, None) otherwise."""
    return state if mode == "LSTM" else (state, None)


def join_state(mode, h, c):
    return (h, c) if mode == "LSTM" else h


def model_with_state(mode, backend, variant, dtype=np.float64, T=6, B=11, I=3, H=5, layers=2,
                     bidirectional=True, P=0, dropout=0.0, seed=0):
    """A model of ``variant`` (constructor keywords) with perturbed biases and peepholes, an
    input and a random initial state: ``(m, x, state)``."""
    rng = np.random.default_rng(seed)
    kw = dict(variant)
    if P:
        kw["proj_size"] = P
    m = make_module(mode, I, H, num_layers=layers, bidirectional=bidirectional, dtype=dtype,
                    seed=seed, backend=backend, dropout=dropout, **kw)
    perturb_biases(m, rng)
    for name, p in m.named_parameters():
        if "peephole" in name:
            p += rng.standard_normal(p.shape).astype(dtype)
    D = 2 if bidirectional else 1
    x = rng.standard_normal((T, B, I)).astype(dtype)
    h0 = rng.standard_normal((layers * D, B, P or H)).astype(dtype)
    c0 = rng.standard_normal((layers * D, B, H)).astype(dtype)
    return m, x, join_state(mode, h0, c0)


def train_step(m, x, state, seed=1):
    """forward + backward with random upstream gradients; every result, flattened to a dict."""
    rng = np.random.default_rng(seed)
    m.zero_grad()
    out, st = m(x, state)
    h, c = split_state(m.mode, st)
    g_out = rng.standard_normal(out.shape).astype(m.dtype)
    g_h = rng.standard_normal(h.shape).astype(m.dtype)
    g_c = None if c is None else rng.standard_normal(c.shape).astype(m.dtype)
    gx, gst = m.backward(g_out, join_state(m.mode, g_h, g_c))
    gh0, gc0 = split_state(m.mode, gst)
    res = dict(out=out, h_n=h, grad_x=gx, grad_h0=gh0)
    if c is not None:
        res.update(c_n=c, grad_c0=gc0)
    res.update({"grad." + k: v.copy() for k, v in m.grads.items()})
    return res


# float64 central differences, shared by the gradient checks
EPS = 1e-6
TOL = 1e-7        # relative to the largest gradient entry; truncation ~eps^2, rounding ~1e-16/eps


def numerical_grad(loss, arr):
    g = np.zeros_like(arr)
    for idx in np.ndindex(arr.shape):
        old = arr[idx]
        arr[idx] = old + EPS
        up = loss()
        arr[idx] = old - EPS
        down = loss()
        arr[idx] = old
        g[idx] = (up - down) / (2 * EPS)
    return g


def assert_grad_close(name, analytic, numeric):
    scale = max(np.abs(numeric).max(), 1e-3)
    err = np.abs(analytic - numeric).max() / scale
    assert err < TOL, f"{name}: analytic vs numerical gradient differ by {err:.2e} (relative)"

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

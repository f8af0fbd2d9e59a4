"""Elman RNN cell: pointwise forward and backward (NumPy reference).

Equations (PyTorch ``torch.nn.RNN`` / ``RNNCell``)::

    a_t = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh        = G_x + G_h
    h_t = act(a_t)                                          act = tanh or relu

``weight_ih`` is the W of the textbook equation ``h = act(W x + U h + b)``,
``weight_hh`` is U. There is one gate (G = 1), so both matrices have H rows.

Backward, given ``dh = dL/dh_t``::

    da = dh * (1 - h_t**2)          tanh:  d tanh(a)/da = 1 - tanh(a)^2
    da = dh * (h_t > 0)             relu:  relu'(a) = [a > 0]; relu'(0) = 0
    dG_x = dG_h = da                a is the plain sum G_x + G_h

There is no direct path from ``h_{t-1}`` to ``h_t`` other than through
``G_h``, so ``dh_prev`` (direct part) is zero.
"""
from .._math import relu, tanh


def forward_tanh(gx, gh, h_prev, c_prev=None):
    # h_t = tanh(G_x + G_h)
    h = tanh(gx + gh)
    return h, None, (h,)


def backward_tanh(dh, dc, saved, h_prev, c_prev=None):
    (h,) = saved
    # backprop through  h_t = tanh(a):  da = dh * (1 - h_t^2)
    da = dh * (1 - h * h)
    return da, da, None, None


def forward_relu(gx, gh, h_prev, c_prev=None):
    # h_t = relu(G_x + G_h)
    h = relu(gx + gh)
    return h, None, (h,)


def backward_relu(dh, dc, saved, h_prev, c_prev=None):
    (h,) = saved
    # backprop through  h_t = relu(a):  da = dh * [a > 0]   ([a > 0] == [h_t > 0])
    da = dh * (h > 0)
    return da, da, None, None

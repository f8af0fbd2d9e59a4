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

Variants (:mod:`minirnn.variants`; ONNX's ``RNN``): ``act`` is any activation ``f``
(ONNX's one slot), and with a ``cell_clip`` the sum is clipped first::

    h_t = f(clip(a_t))          da = dh * f'(clip(a_t)) * [-clip <= a_t <= clip]
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from ..variants import activate, clip, clip_mask, derivative
from .._typing import CellGrads, CellStep, FloatArray

if TYPE_CHECKING:
    from . import CellSpec


def forward(gx: FloatArray, gh: FloatArray, h_prev: FloatArray,
            c_prev: Optional[FloatArray], spec: CellSpec) -> CellStep:
    (f,) = spec.acts
    # a_t = G_x + G_h
    a = gx + gh
    # h_t = f(clip(a_t))       f = tanh (RNN_TANH) or relu (RNN_RELU), or ONNX's f;
    #                          clip(a) = a without a cell_clip, else a in [-clip, clip]
    h = activate(f, clip(a, spec.cell_clip))
    return h, None, (h, a)


def backward(dh: FloatArray, dc: Optional[FloatArray], saved: Any, h_prev: FloatArray,
             c_prev: Optional[FloatArray], spec: CellSpec) -> CellGrads:
    (f,) = spec.acts
    h, a = saved
    # backprop through  h_t = f(a_t):  da = dh * f'(a_t)    (tanh: 1 - h^2; relu: [h > 0])
    da = dh * derivative(f, clip(a, spec.cell_clip), h)
    if spec.cell_clip is not None:
        da = da * clip_mask(a, spec.cell_clip)     # ... and through the clip
    return da, da, None, None, None

"""LSTM cell: pointwise forward and backward (NumPy reference).

Equations (PyTorch ``torch.nn.LSTM`` / ``LSTMCell``; gate order **i, f, g, o**)::

    i_t = sigmoid(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)      input gate
    f_t = sigmoid(W_if x_t + b_if + W_hf h_{t-1} + b_hf)      forget gate
    g_t = tanh(W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)         cell candidate
    o_t = sigmoid(W_io x_t + b_io + W_ho h_{t-1} + b_ho)      output gate
    c_t = f_t * c_{t-1} + i_t * g_t
    h_t = o_t * tanh(c_t)

Rows ``k*H:(k+1)*H`` of ``weight_ih`` are the paper's ``W_k`` and of
``weight_hh`` its ``U_k`` (k = i, f, g, o), which is why the matrices have
``4*hidden_size`` rows: one product ``x @ W_ih^T`` computes all four ``W_k x``
at once. With ``G = G_x + G_h = [a_i|a_f|a_g|a_o]``::

    i = sigmoid(a_i); f = sigmoid(a_f); g = tanh(a_g); o = sigmoid(a_o)

Backward, given ``dh = dL/dh_t`` and ``dc = dL/dc_t`` from the next step::

    do    = dh * tanh(c_t) * o * (1 - o)
    dc_t' = dh * o * (1 - tanh(c_t)**2) + dc        total gradient of c_t
    di    = dc_t' * g * i * (1 - i)
    df    = dc_t' * c_{t-1} * f * (1 - f)
    dg    = dc_t' * i * (1 - g**2)
    dc_prev = dc_t' * f
    dG_x = dG_h = [di | df | dg | do]

so ``grad bias_ih == grad bias_hh`` exactly.

Variants (:mod:`minirnn.variants`; ONNX's ``LSTM``): the gate activation ``f``
(sigmoid), the candidate's ``g`` (tanh) and the output's ``h`` (tanh, applied to
``c_t``) may be any of ONNX's activations; a ``cell_clip`` clips every gate
pre-activation to ``[-clip, clip]`` (not ``c_t`` itself: ``h(c_t)`` sees it
unclipped, as onnxruntime computes). **Peepholes** give the gates the cell state
(``p = weight_peephole = [p_i | p_f | p_o]``, each ``(H,)``)::

    i_t = f(a_i + p_i * c_{t-1})    f_t = f(a_f + p_f * c_{t-1})    o_t = f(a_o + p_o * c_t)

and **coupled gates** replace the forget gate by ``f_t = 1 - i_t`` (its block of
the weights is then unused: zero gradient). Backward with both::

    da_o    = dh * h(c_t) * f'(o)
    dc_t'   = dh * o * h'(c_t) + dc + da_o * p_o     o_t also reads c_t
    da_i    = (dc_t' * g - [coupled] dc_t' * c_{t-1}) * f'(i)
    da_f    = dc_t' * c_{t-1} * f'(f)                 (0 when coupled)
    dc_prev = dc_t' * f + da_i * p_i + da_f * p_f
    dp      = [da_i * c_{t-1} | da_f * c_{t-1} | da_o * c_t]
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..variants import activate, clip, clip_mask, derivative
from .._typing import CellGrads, CellStep, FloatArray

if TYPE_CHECKING:
    from . import CellSpec

# Gates have names, not offsets: block k of the 4H gate axis.
LSTM_I, LSTM_F, LSTM_G, LSTM_O = 0, 1, 2, 3


def _times_derivative(d, act, a, y, cell_clip):
    """``d * act'(clip(a)) * clip'(a)``: backprop through ``y = act(clip(a))``."""
    d = d * derivative(act, clip(a, cell_clip), y)
    return d if cell_clip is None else d * clip_mask(a, cell_clip)


def forward(gx: FloatArray, gh: FloatArray, h_prev: FloatArray, c_prev: FloatArray,
            spec: CellSpec) -> CellStep:
    fa, ga, ha = spec.acts            # sigmoid, tanh, tanh unless a variant says otherwise
    cc = spec.cell_clip               # clip(a) = a without a cell_clip
    a_i, a_f, a_g, a_o = np.split(gx + gh, 4, axis=-1)
    if spec.peephole is not None:     # the gates see the cell state: p = [p_i | p_f | p_o]
        p_i, p_f, p_o = np.split(spec.peephole, 3)
        a_i = a_i + p_i * c_prev      # ... + p_i * c_{t-1}
        a_f = a_f + p_f * c_prev      # ... + p_f * c_{t-1}
    i = activate(fa, clip(a_i, cc))   # i_t = f(W_ii x + b_ii + W_hi h + b_hi (+ p_i * c_{t-1}))
    if spec.coupled:
        f = 1 - i                     # f_t = 1 - i_t                        (coupled gates)
    else:
        f = activate(fa, clip(a_f, cc))  # f_t = f(W_if x + b_if + W_hf h + b_hf (+ p_f c_{t-1}))
    g = activate(ga, clip(a_g, cc))   # g_t = g(W_ig x + b_ig + W_hg h + b_hg)
    c = f * c_prev + i * g            # c_t = f_t * c_{t-1} + i_t * g_t
    if spec.peephole is not None:
        a_o = a_o + p_o * c           # ... + p_o * c_t
    o = activate(fa, clip(a_o, cc))   # o_t = f(W_io x + b_io + W_ho h + b_ho (+ p_o * c_t))
    h_c = activate(ha, c)
    h = o * h_c                       # h_t = o_t * h(c_t)
    return h, c, (i, f, g, o, h_c, c, a_i, a_f, a_g, a_o)


def backward(dh: FloatArray, dc: FloatArray, saved: Any, h_prev: FloatArray,
             c_prev: FloatArray, spec: CellSpec) -> CellGrads:
    fa, ga, ha = spec.acts
    cc = spec.cell_clip
    i, f, g, o, h_c, c, a_i, a_f, a_g, a_o = saved
    # backprop through  h_t = o_t * h(c_t)
    da_o = _times_derivative(dh * h_c, fa, a_o, o, cc)          # ... and o = f(a_o)
    dc = dh * o * derivative(ha, c, h_c) + dc                   # total dL/dc_t
    if spec.peephole is not None:
        p_i, p_f, p_o = np.split(spec.peephole, 3)
        dc = dc + da_o * p_o                                    # o_t reads c_t too
    # backprop through  c_t = f_t * c_{t-1} + i_t * g_t
    di = dc * g
    if spec.coupled:
        di = di - dc * c_prev                                   # f = 1 - i: df/di = -1
        da_f = np.zeros_like(di)
    else:
        da_f = _times_derivative(dc * c_prev, fa, a_f, f, cc)   # ... and f = f(a_f)
    da_i = _times_derivative(di, fa, a_i, i, cc)                # ... and i = f(a_i)
    dg = _times_derivative(dc * i, ga, a_g, g, cc)              # ... and g = g(a_g)
    dc_prev = dc * f
    dp = None
    if spec.peephole is not None:
        dc_prev = dc_prev + da_i * p_i + da_f * p_f             # i, f read c_{t-1}
        dp = np.concatenate([da_i * c_prev, da_f * c_prev, da_o * c], axis=-1)
    dgates = np.concatenate([da_i, da_f, dg, da_o], axis=-1)
    return dgates, dgates, None, dc_prev, dp

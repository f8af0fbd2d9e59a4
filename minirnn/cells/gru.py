"""GRU cell: pointwise forward and backward (NumPy reference).

Equations (PyTorch ``torch.nn.GRU`` / ``GRUCell``; gate order **r, z, n**)::

    r_t = sigmoid(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)          reset gate
    z_t = sigmoid(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)          update gate
    n_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn))     candidate
    h_t = (1 - z_t) * n_t + z_t * h_{t-1}

Rows ``k*H:(k+1)*H`` of ``weight_ih`` are the paper's ``W_k`` (k = r, z, n) and
of ``weight_hh`` its ``U_k``. The reset gate multiplies ``(W_hn h + b_hn)``
*after* the product, with ``b_hn`` inside it ("reset after", as cuDNN; not
Cho et al.'s ``W_hn (r * h)``). So with ``G_x = [gi_r|gi_z|gi_n]`` and
``G_h = [gh_r|gh_z|gh_n]`` (each ``(N, H)``)::

    r = sigmoid(gi_r + gh_r);  z = sigmoid(gi_z + gh_z);  n = tanh(gi_n + r * gh_n)

Backward, given ``dh = dL/dh_t``::

    dz    = dh * (h_{t-1} - n) * z * (1 - z)
    dn    = dh * (1 - z) * (1 - n**2)            = dL/d(gi_n + r*gh_n)
    dgh_n = dn * r
    dr    = dn * gh_n * r * (1 - r)
    dG_x  = [dr | dz | dn]      dG_h = [dr | dz | dn * r]
    dh_prev (direct) = dh * z

So the n-block of ``grad bias_hh`` differs from that of ``grad bias_ih``.

Variants (:mod:`minirnn.variants`; ONNX's ``GRU``): the gate activation ``f``
(sigmoid) and the candidate's ``g`` (tanh) may be any of ONNX's activations, and
with a ``cell_clip`` every pre-activation is clipped to ``[-clip, clip]`` first
(its derivative is then masked by ``[-clip <= a <= clip]``). With
``reset_after=False`` (Cho et al. 2014, ONNX's default ``linear_before_reset=0``,
Keras ``reset_after=False``) the reset gate multiplies ``h`` *before* the product::

    n_t = g(W_in x_t + b_in + W_hn (r_t * h_{t-1}) + b_hn)

so the step needs ``r`` before the n block of the recurrent product: the loop
computes the r, z blocks of ``G_h`` from ``h_{t-1}`` and the cell asks for the
n block of ``u_t = r_t * h_{t-1}`` (a *split product*, see :mod:`minirnn.cells`).
Backward: ``dG_h[n] = dn`` (no factor r), ``du = dn @ W_hn``, ``dr = du * h_{t-1}``
through ``r``'s derivative, and ``dh_prev`` gains ``du * r``; ``dW_hn = dG_h[n]^T U``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from ..variants import activate, clip, clip_mask, derivative
from .._typing import CellGrads, CellStep, FloatArray

if TYPE_CHECKING:
    from . import CellSpec

# Gates have names, not offsets: block k of the 3H gate axis.
GRU_R, GRU_Z, GRU_N = 0, 1, 2


def _split(g):
    """(N, 3H) -> three (N, H) views, in gate order r, z, n."""
    return np.split(g, 3, axis=-1)


def split(spec: CellSpec) -> Optional[int]:
    """The split product: with the reset gate before the product, the loop computes only the
    first two blocks (r, z) of ``G_h`` from ``h_{t-1}``; else one product (None)."""
    return None if spec.reset_after else 2


def _times_derivative(d, act, a, y, cell_clip):
    """``d * act'(clip(a)) * clip'(a)``: backprop through ``y = act(clip(a))``."""
    d = d * derivative(act, clip(a, cell_clip), y)
    return d if cell_clip is None else d * clip_mask(a, cell_clip)


def forward(gx: FloatArray, gh: FloatArray, h_prev: FloatArray,
            c_prev: Optional[FloatArray], spec: CellSpec) -> CellStep:
    f, g = spec.acts                          # sigmoid and tanh unless a variant says otherwise
    cc = spec.cell_clip                       # clip(a) = a without a cell_clip
    H = h_prev.shape[-1]
    gi_r, gi_z, gi_n = _split(gx)
    gh_r, gh_z = gh[:, :H], gh[:, H:2 * H]
    # r_t = f(W_ir x + b_ir + W_hr h + b_hr)
    a_r = gi_r + gh_r
    r = activate(f, clip(a_r, cc))
    # z_t = f(W_iz x + b_iz + W_hz h + b_hz)
    a_z = gi_z + gh_z
    z = activate(f, clip(a_z, cc))
    if spec.reset_after:
        # n_t = g(W_in x + b_in + r_t * (W_hn h + b_hn))                    (PyTorch, cuDNN)
        gh_n = gh[:, 2 * H:]
        a_n = gi_n + r * gh_n
        u = None
    else:
        # n_t = g(W_in x + b_in + W_hn (r_t * h) + b_hn)       (Cho et al., ONNX's default)
        u = r * h_prev
        gh_n = spec.recur(u)                  # u_t @ W_hn^T + b_hn: the split product's rest
        a_n = gi_n + gh_n
    n = activate(g, clip(a_n, cc))
    # h_t = (1 - z_t) * n_t + z_t * h_{t-1}
    h = (1 - z) * n + z * h_prev
    return h, None, (r, z, n, gh_n, a_r, a_z, a_n, u)


def backward(dh: FloatArray, dc: Optional[FloatArray], saved: Any, h_prev: FloatArray,
             c_prev: Optional[FloatArray], spec: CellSpec) -> CellGrads:
    f, g = spec.acts
    cc = spec.cell_clip
    r, z, n, gh_n, a_r, a_z, a_n, u = saved
    # backprop through  h_t = (1 - z) * n + z * h_{t-1}
    dz = _times_derivative(dh * (h_prev - n), f, a_z, z, cc)    # ... and through z = f(.)
    dn = _times_derivative(dh * (1 - z), g, a_n, n, cc)         # ... and through n = g(.)
    dh_prev = dh * z                              # the direct path z * h_{t-1}
    if spec.reset_after:
        # backprop through  a_n = gi_n + r * gh_n
        dgh_n = dn * r
        dr = dn * gh_n
    else:
        # backprop through  a_n = gi_n + u W_hn^T + b_hn,  u = r * h_{t-1}
        dgh_n = dn
        du = spec.recur_grad(dn)                  # dL/du = dn @ W_hn
        dr = du * h_prev
        dh_prev = dh_prev + du * r                # h_{t-1} also reaches n through u
    dr = _times_derivative(dr, f, a_r, r, cc)     # ... and through r = f(.)
    dgx = np.concatenate([dr, dz, dn], axis=-1)
    dgh = np.concatenate([dr, dz, dgh_n], axis=-1)
    return dgx, dgh, dh_prev, None, None

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
"""
import numpy as np

from .._math import sigmoid, tanh

# Gates have names, not offsets: block k of the 3H gate axis.
GRU_R, GRU_Z, GRU_N = 0, 1, 2


def _split(g):
    """(N, 3H) -> three (N, H) views, in gate order r, z, n."""
    return np.split(g, 3, axis=-1)


def forward(gx, gh, h_prev, c_prev=None):
    gi_r, gi_z, gi_n = _split(gx)
    gh_r, gh_z, gh_n = _split(gh)
    # r_t = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
    r = sigmoid(gi_r + gh_r)
    # z_t = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
    z = sigmoid(gi_z + gh_z)
    # n_t = tanh(W_in x + b_in + r_t * (W_hn h + b_hn))
    n = tanh(gi_n + r * gh_n)
    # h_t = (1 - z_t) * n_t + z_t * h_{t-1}
    h = (1 - z) * n + z * h_prev
    return h, None, (r, z, n, gh_n)


def backward(dh, dc, saved, h_prev, c_prev=None):
    r, z, n, gh_n = saved
    # backprop through  h_t = (1 - z) * n + z * h_{t-1}
    dz = dh * (h_prev - n) * z * (1 - z)          # ... and through z = sigmoid(.)
    dn = dh * (1 - z) * (1 - n * n)               # ... and through n = tanh(.)
    dh_prev = dh * z                              # the direct path z * h_{t-1}
    # backprop through  n = tanh(gi_n + r * gh_n)
    dgh_n = dn * r
    dr = dn * gh_n * r * (1 - r)                  # ... and through r = sigmoid(.)
    dgx = np.concatenate([dr, dz, dn], axis=-1)
    dgh = np.concatenate([dr, dz, dgh_n], axis=-1)
    return dgx, dgh, dh_prev, None

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
"""
import numpy as np

from .._math import sigmoid, tanh

# Gates have names, not offsets: block k of the 4H gate axis.
LSTM_I, LSTM_F, LSTM_G, LSTM_O = 0, 1, 2, 3


def forward(gx, gh, h_prev, c_prev):
    a_i, a_f, a_g, a_o = np.split(gx + gh, 4, axis=-1)
    i = sigmoid(a_i)            # i_t = sigmoid(W_ii x + b_ii + W_hi h + b_hi)
    f = sigmoid(a_f)            # f_t = sigmoid(W_if x + b_if + W_hf h + b_hf)
    g = tanh(a_g)               # g_t = tanh(W_ig x + b_ig + W_hg h + b_hg)
    o = sigmoid(a_o)            # o_t = sigmoid(W_io x + b_io + W_ho h + b_ho)
    c = f * c_prev + i * g      # c_t = f_t * c_{t-1} + i_t * g_t
    tanh_c = tanh(c)
    h = o * tanh_c              # h_t = o_t * tanh(c_t)
    return h, c, (i, f, g, o, tanh_c)


def backward(dh, dc, saved, h_prev, c_prev):
    i, f, g, o, tanh_c = saved
    # backprop through  h_t = o_t * tanh(c_t)
    do = dh * tanh_c * o * (1 - o)                     # ... and o = sigmoid(a_o)
    dc = dh * o * (1 - tanh_c * tanh_c) + dc           # total dL/dc_t
    # backprop through  c_t = f_t * c_{t-1} + i_t * g_t
    di = dc * g * i * (1 - i)                          # ... and i = sigmoid(a_i)
    df = dc * c_prev * f * (1 - f)                     # ... and f = sigmoid(a_f)
    dg = dc * i * (1 - g * g)                          # ... and g = tanh(a_g)
    dc_prev = dc * f
    dgates = np.concatenate([di, df, dg, do], axis=-1)
    return dgates, dgates, None, dc_prev

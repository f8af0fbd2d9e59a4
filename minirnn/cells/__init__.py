"""The pointwise math of each recurrent cell, one module per cell.

Every recurrent layer is the same time loop around a cell (see
:mod:`minirnn.functional`). Per time step the loop computes two gate
pre-activations with matrix products,

    G_x = x_t   @ W_ih^T + b_ih        (N, G*H)   all steps at once, before the loop
    G_h = h_t-1 @ W_hh^T + b_hh        (N, G*H)   one product per step

and hands them to the cell's *pointwise* function, which is the only place the
three cells differ. ``G`` is the number of gates: 1 (Elman), 3 (GRU), 4 (LSTM).

Each cell module defines

``forward(gx, gh, h_prev, c_prev) -> (h, c, saved)``
    ``c`` is ``None`` for cells without a cell state; ``saved`` is what the
    backward needs (gate activations, never pre-activations).
``backward(dh, dc, saved, h_prev, c_prev) -> (dgx, dgh, dh_prev, dc_prev)``
    ``dgx``/``dgh`` are the gradients of ``G_x``/``G_h``; ``dh_prev`` is only the
    *direct* path from ``h_prev`` to ``h`` (GRU's ``z * h_prev``), the caller
    adds ``dgh @ W_hh`` for the path through the recurrent product.
"""
from collections import namedtuple

from . import elman, gru, lstm

CellMath = namedtuple("CellMath", "mode gates has_cell_state forward backward")
CellMath.__doc__ = "The pointwise math of one cell, as the time loop sees it."

#: mode name (PyTorch's ``mode`` attribute) -> the cell's pointwise math
CELLS = {
    "RNN_TANH": CellMath("RNN_TANH", 1, False, elman.forward_tanh, elman.backward_tanh),
    "RNN_RELU": CellMath("RNN_RELU", 1, False, elman.forward_relu, elman.backward_relu),
    "GRU": CellMath("GRU", 3, False, gru.forward, gru.backward),
    "LSTM": CellMath("LSTM", 4, True, lstm.forward, lstm.backward),
}

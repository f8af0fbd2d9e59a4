"""The pointwise math of each recurrent cell, one module per cell.

Every recurrent layer is the same time loop around a cell (see
:mod:`minirnn.functional`). Per time step the loop computes two gate
pre-activations with matrix products,

    G_x = x_t   @ W_ih^T + b_ih        (N, G*H)   all steps at once, before the loop
    G_h = h_t-1 @ W_hh^T + b_hh        (N, G*H)   one product per step

and hands them to the cell's *pointwise* function, which is the only place the
three cells differ. ``G`` is the number of gates: 1 (Elman), 3 (GRU), 4 (LSTM).

Each cell module defines

``forward(gx, gh, h_prev, c_prev, spec) -> (h, c, saved)``
    ``c`` is ``None`` for cells without a cell state; ``saved`` is what the
    backward needs (gate activations and their inputs).
``backward(dh, dc, saved, h_prev, c_prev, spec) -> (dgx, dgh, dh_prev, dc_prev, dp)``
    ``dgx``/``dgh`` are the gradients of ``G_x``/``G_h``; ``dh_prev`` is only the
    *direct* path from ``h_prev`` to ``h`` (GRU's ``z * h_prev``), the caller
    adds ``dgh @ W_hh`` for the path through the recurrent product. ``dp`` is the
    gradient of the LSTM's peephole weights at this step (None without them).

``spec`` (a :class:`CellSpec`) says which variant of the cell to compute (see
:mod:`minirnn.variants`): its activations, clip, flags and, for the two variants
that need more than ``G_x`` and ``G_h``, the extra inputs:

* a **split recurrent product** (the GRU with the reset gate before the product):
  the loop computes only the first ``split`` gate blocks of ``G_h`` from ``h_{t-1}``;
  the cell computes the operand ``u_t`` of the other blocks (``r_t * h_{t-1}``) and
  calls ``spec.recur(u_t)`` for ``u_t @ W_hh[rest]^T + b_hh[rest]`` (and, backward,
  ``spec.recur_grad(dG)`` for ``dG @ W_hh[rest]``). The step returns ``u_t`` as the
  last item of ``saved`` so the loop can form ``dW_hh[rest] = dG^T U``.
* a **cell-state input to the gates** (LSTM peepholes): ``spec.peephole``, the
  ``(3H,)`` vector ``[p_i | p_f | p_o]``, multiplies ``c_{t-1}`` (i, f) and ``c_t`` (o).
"""
from __future__ import annotations

from collections import namedtuple
from typing import Any, Optional

from .. import variants
from . import elman, gru, lstm

CellMath = namedtuple("CellMath", "mode gates has_cell_state forward backward split")
CellMath.__doc__ = """The pointwise math of one cell, as the time loop sees it. ``split(spec)``:
None (one recurrent product per step) or the number of gate blocks of ``G_h`` the loop computes
from ``h_{t-1}`` before the cell runs (the cell computes the rest, see above)."""

CellSpec = namedtuple("CellSpec", "acts cell_clip reset_after coupled peephole recur recur_grad")
CellSpec.__doc__ = """What one layer and direction computes: ``acts`` its activations
(:class:`minirnn.variants.Activation`, ONNX's slot order), ``cell_clip`` (None or a float),
``reset_after`` (GRU), ``coupled`` (LSTM ``f = 1 - i``), ``peephole`` (None or ``(3H,)``),
``recur``/``recur_grad`` (the split product's two halves, None without it)."""


def _no_split(spec: Any) -> Optional[int]:
    return None


#: mode name (PyTorch's ``mode`` attribute) -> the cell's pointwise math
CELLS = {
    "RNN_TANH": CellMath("RNN_TANH", 1, False, elman.forward, elman.backward, _no_split),
    "RNN_RELU": CellMath("RNN_RELU", 1, False, elman.forward, elman.backward, _no_split),
    "GRU": CellMath("GRU", 3, False, gru.forward, gru.backward, gru.split),
    "LSTM": CellMath("LSTM", 4, True, lstm.forward, lstm.backward, _no_split),
}


def make_spec(mode: str, variant: Optional[variants.Variant] = None, direction: int = 0,
              peephole: Optional[Any] = None, recur: Optional[Any] = None,
              recur_grad: Optional[Any] = None) -> CellSpec:
    """The :class:`CellSpec` of one layer and direction (``variant`` None = PyTorch's)."""
    v = variants.DEFAULT if variant is None else variant
    return CellSpec(v.acts(mode, direction), v.cell_clip, v.reset_after,
                    v.coupled_input_forget, peephole, recur, recur_grad)

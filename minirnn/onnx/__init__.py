"""ONNX import and export for minirnn's recurrent modules.

Needs the ``onnx`` package (``pip install "minirnn[onnx]"``) when :func:`load` or
:func:`export` runs; ``import minirnn`` never imports it, and importing this module does
not either.

- :func:`load` reads an ONNX model: every ``RNN``/``GRU``/``LSTM`` node becomes a one-layer
  minirnn module (every attribute ONNX defines: ``direction``, ``layout``, ``hidden_size``,
  ``linear_before_reset``, ``activations`` with ``activation_alpha``/``activation_beta``,
  ``clip``, ``input_forget``; the inputs ``W``, ``R``, ``B``, ``P`` converted to PyTorch's
  layout; ``sequence_lens``, ``initial_h``, ``initial_c``; float32 and float64), and the
  returned :class:`ONNXModel` evaluates the graph when it is made of recurrent nodes and the
  glue ops in :data:`GLUE_OPS` (what exporters write between layers).
- :func:`export` writes a minirnn module (or cell) as an ONNX model, one node per layer, that
  onnxruntime runs to minirnn's outputs.

Where ONNX's runtimes and minirnn's modules differ by design, the evaluated graph follows
onnxruntime: a row whose ``sequence_lens`` is 0 gets zeros in ``Y_h``/``Y_c`` (a minirnn
module, given an empty packed sequence, returns its ``h0``).
"""
from __future__ import annotations

from typing import Any, Optional

from ._graph import ONNXLayer, ONNXModel, load
from ._ops import GLUE_OPS

__all__ = ["load", "export", "ONNXModel", "ONNXLayer", "GLUE_OPS"]


def export(module: Any, path: Optional[Any] = None, *, opset: int = 17,
           sequence_lens: bool = False, initial_states: bool = True,
           graph_name: Optional[str] = None) -> Any:
    """Write a minirnn ``RNN``/``GRU``/``LSTM`` (or a cell) as an ONNX model.

    Returns the ``onnx.ModelProto`` (checked by ``onnx.checker``), and saves it to ``path``
    when one is given. The graph (a module):

    - inputs ``input`` ``[T, N, I]`` (``[N, T, I]`` with ``batch_first``), ``h0``
      ``[L*D, N, H]`` (and ``c0`` for an LSTM) unless ``initial_states=False`` (zeros),
      and with ``sequence_lens=True`` an int32 ``sequence_lens`` ``[N]``: what a
      PackedSequence carries (feed the padded batch and its lengths; ``output`` is 0 past
      each length, as minirnn's ``pad_packed_sequence`` pads it);
    - one ``RNN``/``GRU``/``LSTM`` node per layer (weights as initializers, PyTorch's gate
      blocks reordered to ONNX's), ``layout=0``, joined as PyTorch's exporter joins them:
      ``Y [T, D, N, H]`` -> ``Transpose(0, 2, 1, 3)`` -> ``Reshape [T, N, D*H]``
      (``Squeeze`` of axis 1 when unidirectional), a ``Slice`` of ``h0`` per layer;
    - outputs ``output`` ``[T, N, D*H]`` (``[N, T, D*H]`` with ``batch_first``), ``h_n``
      ``[L*D, N, H]`` (and ``c_n``): minirnn's results.

    A cell becomes inputs ``input`` ``[N, I]``, ``h`` (and ``c``) ``[N, H]``, one node of one
    step, outputs ``h_next`` (and ``c_next``). The variant is written as attributes:
    ``reset_after`` as ``linear_before_reset``, ``peephole`` as ``P``,
    ``coupled_input_forget`` as ``input_forget``, ``cell_clip`` as ``clip``, ``activations``
    (with ``activation_alpha``/``activation_beta``), ``reverse`` as ``direction``. Dropout is
    not exported (inference). An LSTM with ``proj_size`` is a ValueError: ONNX's LSTM has no
    projection. ``opset`` must lie in ``[14, onnx.defs.onnx_opset_version()]``.
    """
    from . import _export
    return _export.export(module, path, opset=opset, sequence_lens=sequence_lens,
                          initial_states=initial_states, graph_name=graph_name)

"""ONNX import and export for minirnn's recurrent modules (needs the ``onnx`` package:
``pip install "minirnn[onnx]"``; ``import minirnn`` itself never imports it).

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

try:
    import onnx as _onnx  # noqa: F401
except ImportError as e:      # the optional extra
    raise ModuleNotFoundError(
        "minirnn.onnx needs the onnx package: pip install onnx (or "
        "pip install \"minirnn[onnx]\")", name="onnx") from e

from ._export import export
from ._graph import ONNXLayer, ONNXModel, load
from ._ops import GLUE_OPS

__all__ = ["load", "export", "ONNXModel", "ONNXLayer", "GLUE_OPS"]

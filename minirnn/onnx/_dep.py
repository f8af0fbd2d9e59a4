"""The optional dependency: the ``onnx`` package, imported when a function needs it."""
from __future__ import annotations

from typing import Any


def require_onnx() -> Any:
    """The ``onnx`` module, or a ModuleNotFoundError saying how to install it."""
    try:
        import onnx
    except ImportError as e:      # the optional extra
        raise ModuleNotFoundError(
            'minirnn.onnx needs the onnx package: pip install "minirnn[onnx]" (or pip install '
            "onnx)", name="onnx") from e
    return onnx

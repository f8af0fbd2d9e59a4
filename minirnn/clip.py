"""Gradient clipping over modules' ``grads``, as ``torch.nn.utils.clip_grad_norm_`` and
``clip_grad_value_``."""
from __future__ import annotations

import math
import numbers
from typing import Any, List, Union

import numpy as np

__all__ = ["clip_grad_norm_", "clip_grad_value_"]


def _grads(fn: str, modules: Any) -> List[np.ndarray]:
    """The gradient arrays of one module or an iterable of modules, in named_parameters order."""
    mods = [modules] if hasattr(modules, "grads") else modules
    try:
        mods = list(mods)
    except TypeError:
        raise TypeError(f"{fn}: modules must be a module or an iterable of modules (objects "
                        f"with named_parameters() and .grads), got {type(modules).__name__}"
                        ) from None
    out: List[np.ndarray] = []
    for m in mods:
        if not (hasattr(m, "grads") and hasattr(m, "named_parameters")):
            raise TypeError(f"{fn}: every entry of modules must have named_parameters() and "
                            f".grads, got {type(m).__name__}")
        out += [m.grads[name] for name, _ in m.named_parameters()]
    return out


def _vector_norm(a: np.ndarray, p: float) -> float:
    """torch.linalg.vector_norm(a, p) of a flattened array, in float64."""
    x = np.abs(a.ravel().astype(np.float64))
    if x.size == 0:
        return 0.0 if p >= 0 or math.isnan(p) else math.inf
    if p == math.inf:
        return float(x.max())
    if p == -math.inf:
        return float(x.min())
    if p == 0:
        return float(np.count_nonzero(x))
    if p == 1:
        return float(x.sum())
    if p == 2:
        return float(math.sqrt(np.dot(x, x)))
    return float(np.sum(x ** p) ** (1.0 / p))


def clip_grad_norm_(modules: Any, max_norm: float, norm_type: Union[float, str] = 2.0,
                    error_if_nonfinite: bool = False) -> np.floating:
    """Scale the gradients of ``modules`` so that their total norm is at most ``max_norm``.

    As ``torch.nn.utils.clip_grad_norm_``: the total norm is the ``norm_type``-norm of the
    per-parameter norms (as if every gradient were concatenated into one vector), and every
    gradient is multiplied, in place, by ``min(1, max_norm / (total_norm + 1e-6))``.

    Args:
        modules: a module or an iterable of modules (anything with ``named_parameters()`` and
            ``.grads``).
        max_norm: the largest allowed norm.
        norm_type: the p of the p-norm; ``inf`` (or ``"inf"``) for the largest absolute value.
            Default 2.0.
        error_if_nonfinite: raise a ``RuntimeError`` when the total norm is nan or inf instead
            of scaling by it. Default False.

    Returns:
        The total norm of the gradients before clipping, a NumPy scalar of the gradients'
        dtype (float64 when there are none; then it is 0).
    """
    fn = "clip_grad_norm_"
    grads = _grads(fn, modules)
    try:
        p = float(norm_type)
    except (TypeError, ValueError):
        raise ValueError(f"{fn}: norm_type must be a number or 'inf', got {norm_type!r}") from None
    if isinstance(max_norm, bool) or not isinstance(max_norm, numbers.Real):
        raise TypeError(f"{fn}: max_norm must be a real number, got {type(max_norm).__name__}")
    dtype = np.result_type(*grads) if grads else np.dtype(np.float64)
    if not grads:
        return dtype.type(0.0)
    norms = np.array([_vector_norm(g, p) for g in grads], dtype=dtype)
    total = dtype.type(_vector_norm(norms, p))
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(
            f"The total norm of order {p} for gradients from `parameters` is non-finite, so it "
            "cannot be clipped. To disable this error and scale the gradients by the non-finite "
            "norm anyway, set `error_if_nonfinite=False`")
    clip_coef = min(float(max_norm) / (float(total) + 1e-6), 1.0) \
        if not math.isnan(float(total)) else math.nan
    with np.errstate(invalid="ignore"):         # an inf gradient times 0 is nan, as PyTorch
        for g in grads:
            g *= g.dtype.type(clip_coef)
    return total


def clip_grad_value_(modules: Any, clip_value: float) -> None:
    """Clamp every gradient of ``modules`` into ``[-clip_value, clip_value]``, in place, as
    ``torch.nn.utils.clip_grad_value_``.

    Args:
        modules: a module or an iterable of modules.
        clip_value: the largest allowed absolute value of a gradient entry.
    """
    fn = "clip_grad_value_"
    if isinstance(clip_value, bool) or not isinstance(clip_value, numbers.Real):
        raise TypeError(f"{fn}: clip_value must be a real number, got "
                        f"{type(clip_value).__name__}")
    c = float(clip_value)
    for g in _grads(fn, modules):
        np.clip(g, -c, c, out=g)



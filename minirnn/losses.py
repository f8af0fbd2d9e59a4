"""Loss functions that return their gradient: ``loss, grad = cross_entropy(logits, target)``.

Each computes what ``torch.nn.functional`` computes and, alongside, ``grad``: the gradient of
the returned loss with respect to the input, for the chosen reduction (for
``reduction="none"``, the gradient of ``loss.sum()``). ``grad`` is what the layer below
(usually :class:`minirnn.Linear`) takes in its ``backward``.
"""
from __future__ import annotations

import warnings
from typing import Any, Optional, Tuple, Union

import numpy as np

__all__ = ["cross_entropy", "mse_loss"]

_REDUCTIONS = ("mean", "sum", "none")
Loss = Union[np.floating, np.ndarray]


def _check_reduction(reduction: Any) -> str:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{reduction!r} is not a valid value for reduction: expected one of "
                         f"'mean', 'sum', 'none'")
    return reduction


def _check_float(fn: str, name: str, x: Any) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{fn}: {name} must be a numpy.ndarray, got {type(x).__name__}")
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"{fn}: {name} must be float32 or float64, got dtype {x.dtype}")
    return x


def _log_softmax(x: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """log_softmax and softmax over axis 1, stable: ``x - max - log(sum(exp(x - max)))``."""
    m = np.max(x, axis=1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)                   # a row of -inf stays nan, as PyTorch
    shifted = x - m
    e = np.exp(shifted)
    s = np.sum(e, axis=1, keepdims=True)
    return shifted - np.log(s), e / s


def cross_entropy(input: np.ndarray, target: np.ndarray, *, weight: Optional[np.ndarray] = None,
                  ignore_index: int = -100, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tuple[Loss, np.ndarray]:
    """The cross entropy between the logits ``input`` and ``target``, and its gradient.

    As ``torch.nn.functional.cross_entropy``: ``log_softmax`` over the class axis (axis 1, or
    axis 0 for an unbatched ``(C,)`` input), then the negative log-likelihood of the target.
    For class-index targets ``y_n`` and class weights ``w`` (all ones when ``weight`` is None)::

        l_n = -w[y_n] * log_softmax(x_n)[y_n]          (0 where y_n == ignore_index)
        "mean": sum_n l_n / sum_{n not ignored} w[y_n]  (nan when every target is ignored)
        "sum":  sum_n l_n;   "none": the l_n, shaped like target

    With ``label_smoothing = e > 0`` the target is a mix of the class and the uniform
    distribution: ``(1 - e) * l_n + (e / C) * s_n`` with ``s_n = -sum_c w[c] *
    log_softmax(x_n)[c]`` (0 where ignored), reduced with the same denominator.

    Class-probability targets (a float array shaped like ``input``, each row a distribution
    ``p_n``) give ``l_n = -sum_c w[c] * p_n[c] * log_softmax(x_n)[c]`` (after smoothing:
    ``p_n (1 - e) + e / C``); "mean" divides by the number of rows ``N * d1 * ...``.
    ``ignore_index`` does not apply to them.

    Args:
        input: logits ``(N, C)``, ``(N, C, d1, d2, ...)`` or unbatched ``(C,)``; float32
            or float64.
        target: class indices (an integer array) ``(N,)``, ``(N, d1, ...)`` or a 0-d array
            for an unbatched input, each in ``[0, C)`` or equal to ``ignore_index``; or class
            probabilities of ``input``'s shape and dtype.
        weight: optional ``(C,)`` class weights of ``input``'s dtype.
        ignore_index: a target value that contributes neither to the loss nor to the mean's
            denominator. Default -100.
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
        label_smoothing: ``e`` in ``[0, 1]``. Default 0.

    Returns:
        ``(loss, grad)``: ``loss`` a NumPy scalar of ``input``'s dtype (an array shaped like
        the targets for ``"none"``); ``grad`` the gradient of ``loss`` (of ``loss.sum()`` for
        ``"none"``) w.r.t. ``input``, ``input``'s shape and dtype. The gradient of
        ``l_n = -sum_c a_nc log_softmax(x_n)[c]`` is ``softmax(x_n) * sum_c a_nc - a_n``.
    """
    fn = "cross_entropy"
    _check_float(fn, "input", input)
    reduction = _check_reduction(reduction)
    if not isinstance(target, np.ndarray):
        raise TypeError(f"{fn}: target must be a numpy.ndarray, got {type(target).__name__}")
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, (int, float)) \
            or not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{fn}: label_smoothing must be between 0.0 and 1.0. Got: "
                         f"{label_smoothing!r}")
    if input.ndim == 0:
        raise ValueError(f"{fn}: input must be (C,), (N, C) or (N, C, d1, ...), got a 0-d array")
    unbatched = input.ndim == 1
    x = input[None] if unbatched else input                   # (N, C, d...)
    C = x.shape[1]
    dtype = input.dtype
    if weight is not None:
        _check_float(fn, "weight", weight)
        if weight.dtype != dtype:
            raise TypeError(f"{fn}: weight dtype ({weight.dtype}) must match input's ({dtype})")
        if weight.shape != (C,):
            raise ValueError(f"{fn}: weight must be of shape ({C},) (one per class), got "
                             f"{weight.shape}")
    probabilities = np.issubdtype(target.dtype, np.floating)
    if probabilities:
        if target.dtype != dtype:
            raise TypeError(f"{fn}: class-probability target dtype ({target.dtype}) must match "
                            f"input's ({dtype})")
        if target.shape != input.shape:
            raise ValueError(f"{fn}: class-probability target must have input's shape "
                             f"{input.shape}, got {target.shape}")
    else:
        if target.dtype == np.bool_ or not np.issubdtype(target.dtype, np.integer):
            raise TypeError(f"{fn}: target must hold class indices (an integer array) or class "
                            f"probabilities (a float array), got dtype {target.dtype}")
        expected = input.shape[:1] + input.shape[2:] if not unbatched else ()
        if target.shape != expected:
            raise ValueError(f"{fn}: Expected target of shape {expected} for input of shape "
                             f"{input.shape}, got {target.shape}")
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, (int, np.integer)):
        raise TypeError(f"{fn}: ignore_index must be an int, got {type(ignore_index).__name__}")

    # Move the class axis last: z is (M, C), one row per prediction.
    z = np.moveaxis(x, 1, -1).reshape(-1, C)
    wc = np.ones(C, dtype=dtype) if weight is None else weight
    e = float(label_smoothing)
    if probabilities:
        p = np.moveaxis(target[None] if unbatched else target, 1, -1).reshape(-1, C)
        if e > 0:
            p = p * (1 - e) + e / C                         # smoothed distribution
        a = wc * p                                          # l_n = -sum_c a_nc logp_nc
        per_row_weight = None
        denom = float(z.shape[0])                           # "mean": the number of rows
    else:
        y = (target[None] if unbatched else target).reshape(-1)
        valid = y != ignore_index
        bad = valid & ((y < 0) | (y >= C))
        if bad.any():
            raise IndexError(f"{fn}: Target {int(y[bad][0])} is out of bounds: every target "
                             f"must be in [0, {C}) or equal to ignore_index={ignore_index}")
        ys = np.where(valid, y, 0)
        M = z.shape[0]
        a = np.zeros((M, C), dtype=dtype)
        per_row_weight = np.where(valid, wc[ys], 0).astype(dtype)   # w[y_n], 0 if ignored
        a[np.arange(M), ys] = per_row_weight * (1 - e)
        if e > 0:
            a += np.where(valid[:, None], wc * (e / C), 0).astype(dtype)
        denom = per_row_weight.sum(dtype=np.float64)

    logp, prob = _log_softmax(z)
    with np.errstate(invalid="ignore"):
        # a = 0 times logp = -inf (a class with probability 0) counts as 0
        terms = np.where(a != 0, a * logp, 0)
    l_rows = -terms.sum(axis=1)                              # (M,)
    # d l_n / d z_n = softmax(z_n) * sum_c a_nc - a_n
    g_rows = prob * a.sum(axis=1, keepdims=True) - a
    with np.errstate(invalid="ignore", divide="ignore"):
        if reduction == "mean":
            loss: Loss = dtype.type(l_rows.sum(dtype=np.float64) / denom)
            g_rows = g_rows / dtype.type(denom) if denom else g_rows * np.nan
        elif reduction == "sum":
            loss = dtype.type(l_rows.sum(dtype=np.float64))
        else:
            shape = x.shape[:1] + x.shape[2:]
            per_target = l_rows.reshape(shape).astype(dtype)
            loss = per_target[0] if unbatched else per_target
    out_shape = (x.shape[0],) + x.shape[2:] + (C,)
    grad = np.moveaxis(g_rows.astype(dtype).reshape(out_shape), -1, 1)
    grad = np.ascontiguousarray(grad[0] if unbatched else grad)
    return loss, grad


def mse_loss(input: np.ndarray, target: np.ndarray,
             reduction: str = "mean") -> Tuple[Loss, np.ndarray]:
    """The mean squared error ``(input - target)^2``, reduced, and its gradient.

    As ``torch.nn.functional.mse_loss``: ``l = (x - y)^2`` element-wise; ``"mean"`` averages
    over every element, ``"sum"`` adds them, ``"none"`` returns them. A ``target`` of another
    shape is broadcast against ``input`` with a ``UserWarning``, as PyTorch.

    Args:
        input: a float32 or float64 array of any shape.
        target: an array of ``input``'s dtype and shape (or broadcastable to it).
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.

    Returns:
        ``(loss, grad)``: ``loss`` a NumPy scalar of ``input``'s dtype (an array for
        ``"none"``); ``grad = 2 (x - y) / n`` (``n`` the number of elements for ``"mean"``, 1
        otherwise), the gradient of ``loss`` (of ``loss.sum()`` for ``"none"``) w.r.t.
        ``input``, in ``input``'s shape.
    """
    fn = "mse_loss"
    _check_float(fn, "input", input)
    _check_float(fn, "target", target)
    reduction = _check_reduction(reduction)
    if target.dtype != input.dtype:
        raise TypeError(f"{fn}: target dtype ({target.dtype}) must match input's "
                        f"({input.dtype})")
    if target.shape != input.shape:
        try:
            shape = np.broadcast_shapes(input.shape, target.shape)
        except ValueError:
            raise ValueError(f"{fn}: The size of target {target.shape} must match the size of "
                             f"input {input.shape} (or broadcast with it)") from None
        warnings.warn(f"Using a target size ({target.shape}) that is different to the input "
                      f"size ({input.shape}). This will likely lead to incorrect results due "
                      "to broadcasting. Please ensure they have the same size.", UserWarning,
                      stacklevel=2)
    else:
        shape = input.shape
    diff = input - target                                   # broadcast to `shape`
    sq = diff * diff
    dtype = input.dtype
    if reduction == "mean":
        n = sq.size
        with np.errstate(invalid="ignore", divide="ignore"):
            loss: Loss = dtype.type(sq.sum(dtype=np.float64) / n) if n else dtype.type(np.nan)
            grad = diff * dtype.type(2.0 / n) if n else diff * np.nan
    elif reduction == "sum":
        loss = dtype.type(sq.sum(dtype=np.float64))
        grad = 2 * diff
    else:
        loss = sq
        grad = 2 * diff
    if grad.shape != input.shape:                           # input was broadcast: sum back
        lead = grad.ndim - input.ndim
        axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(input.shape)
                                          if s == 1 and shape[lead + i] != 1)
        grad = grad.sum(axis=axes, keepdims=True).reshape(input.shape)
    return loss, np.ascontiguousarray(grad, dtype=dtype)

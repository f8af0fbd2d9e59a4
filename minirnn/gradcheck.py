"""A public gradient checker: analytic gradients against float64 central differences.

``minirnn.gradcheck(m, (x, h0))`` runs ``m``'s forward and backward once with random upstream
gradients ``g`` on every output, so the checked loss is ``L = sum_k sum(out_k * g_k)``, then
estimates each entry of each gradient by ``(L(v + eps) - L(v - eps)) / (2 eps)`` and compares.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from ._grad_mode import no_grad
from .packed import PackedSequence

__all__ = ["gradcheck", "GradcheckResult", "GradcheckError"]


@dataclass
class GradcheckResult:
    """What :func:`gradcheck` found.

    Attributes:
        passed: every entry satisfied ``|analytic - numerical| <= atol + rtol * |numerical|``.
        worst_name: the tensor of the worst entry (``"input[0]"``, ``"input[1][0]"``, or a
            parameter name such as ``"weight_hh_l0"``).
        worst_index: that entry's index in its tensor.
        analytic, numerical: the two values there.
        max_abs_error: ``|analytic - numerical|`` there.
        max_rel_error: ``|analytic - numerical| / max(|analytic|, |numerical|)`` there (0 when
            both are 0).
        per_tensor: ``{name: largest relative error of that tensor}``.
        checked: the number of entries compared.
    """

    passed: bool
    worst_name: Optional[str] = None
    worst_index: Optional[Tuple[int, ...]] = None
    analytic: float = 0.0
    numerical: float = 0.0
    max_abs_error: float = 0.0
    max_rel_error: float = 0.0
    per_tensor: Dict[str, float] = field(default_factory=dict)
    checked: int = 0

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        head = "gradcheck passed" if self.passed else "gradcheck FAILED"
        if self.worst_name is None:
            return f"{head} (nothing to check)"
        where = f"{self.worst_name}{list(self.worst_index or ())}"
        return (f"{head}: {self.checked} entries; worst relative error {self.max_rel_error:.3g} "
                f"(absolute {self.max_abs_error:.3g}) at {where}"
                f": analytic {self.analytic!r}, numerical {self.numerical!r}")


class GradcheckError(RuntimeError):
    """Raised by :func:`gradcheck` (with ``raise_exception=True``) on a mismatch; ``.result``
    holds the :class:`GradcheckResult`."""

    def __init__(self, result: GradcheckResult) -> None:
        super().__init__(str(result))
        self.result = result


def _leaves(x: Any) -> List[np.ndarray]:
    """The float arrays of a (nested) output, in order; a PackedSequence counts as its data."""
    if isinstance(x, PackedSequence):
        return [x.data]
    if isinstance(x, (tuple, list)):
        return [a for v in x for a in _leaves(v)]
    if x is None:
        return []
    return [np.asarray(x, dtype=np.float64)]


def _like(x: Any, make: Callable[[np.ndarray], np.ndarray]) -> Any:
    """An upstream gradient shaped like output ``x`` (a PackedSequence gets its data's shape)."""
    if isinstance(x, PackedSequence):
        return make(x.data)
    if isinstance(x, tuple):
        return tuple(_like(v, make) for v in x)
    if isinstance(x, list):
        return [_like(v, make) for v in x]
    if x is None:
        return None
    return make(np.asarray(x))


def _pairs(inp: Any, grad: Any, name: str):
    """(name, input array, its analytic gradient) for every float64 array among the inputs."""
    if isinstance(inp, PackedSequence):
        if isinstance(grad, PackedSequence):
            grad = grad.data
        yield name, inp.data, grad
    elif isinstance(inp, (tuple, list)):
        for i, v in enumerate(inp):
            g = grad[i] if isinstance(grad, (tuple, list)) and i < len(grad) else None
            yield from _pairs(v, g, f"{name}[{i}]")
    elif isinstance(inp, np.ndarray) and inp.dtype == np.float64:
        yield name, inp, grad


def _is_rnn_module(m: Any) -> bool:
    from .modules import _RNNBase
    return isinstance(m, _RNNBase)


def gradcheck(func: Any, inputs: Any, *, backward: Optional[Callable[[Any], Any]] = None,
              eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              check_inputs: bool = True, check_parameters: bool = True,
              max_entries: Optional[int] = None, seed: int = 0,
              raise_exception: bool = True) -> GradcheckResult:
    """Check analytic gradients against float64 central differences.

    ``func`` is either a module (any minirnn module, cell or layer, or an object of your own
    with ``forward``/``__call__``, ``backward``, ``named_parameters()`` and ``grads``) or a
    plain function of the inputs with its ``backward`` given. The loss checked is
    ``L = sum_k sum(out_k * g_k)`` over every float output ``out_k`` (nested tuples and
    PackedSequences are walked) with random upstream gradients ``g_k`` from ``seed``.

    How the backward is called: ``backward(grads)`` when given, with ``grads`` shaped like the
    forward's output; otherwise a minirnn RNN/GRU/LSTM gets ``m.backward(*grads)`` (its
    forward returns ``(output, state)``) and every other module ``m.backward(grads)``. The
    backward returns the inputs' gradients in the inputs' structure (a single array for a
    single input; trailing extra gradients, such as ``grad_h0`` of an omitted ``h0``, are
    ignored). Inputs that are not float64 arrays (None, integer indices) are not checked.

    Parameters of a module are perturbed in place (and its ``_parameters_changed()`` called);
    its ``grads`` and parameters are restored afterwards. A module with dropout keeps its
    masks: its ``generator`` is rewound before every forward. Rows a module never updates
    (:class:`minirnn.Embedding`'s ``padding_idx`` row, whose gradient is zero by definition) are
    skipped.

    Args:
        func: the module or function.
        inputs: the forward's positional arguments (a tuple; a single array is one input).
        backward: the backward to call (required for a plain function).
        eps: the finite-difference step. Default 1e-6.
        atol, rtol: an entry passes when ``|analytic - numerical| <= atol + rtol *
            |numerical|`` (torch.autograd.gradcheck's defaults 1e-5, 1e-3).
        check_inputs, check_parameters: what to check. Default both.
        max_entries: check at most this many entries per tensor (chosen at random from
            ``seed``); None (default) checks every entry.
        seed: seeds the upstream gradients and the choice of entries.
        raise_exception: raise :class:`GradcheckError` on a mismatch (default); if False,
            return the failed result.

    Returns:
        A :class:`GradcheckResult` (truthy when passed) with the worst relative error and
        where it is.
    """
    if not isinstance(inputs, tuple):
        inputs = (inputs,)
    module = func if hasattr(func, "named_parameters") and hasattr(func, "grads") else None
    if module is None and backward is None:
        raise TypeError("gradcheck: a plain function needs its backward: gradcheck(f, inputs, "
                        "backward=f_backward)")
    for leaf in _leaves(list(inputs)):
        if leaf.dtype != np.float64 and np.issubdtype(leaf.dtype, np.floating):
            raise TypeError(f"gradcheck: inputs must be float64 (central differences need it), "
                            f"got an input of dtype {leaf.dtype}")
    params: List[Tuple[str, np.ndarray]] = []
    if module is not None:
        params = list(module.named_parameters())
        for n, p in params:
            if p.dtype != np.float64:
                raise TypeError(f"gradcheck: the module's parameters must be float64, {n} is "
                                f"{p.dtype}; build the module with dtype=numpy.float64")
            if check_parameters and not p.flags.writeable:
                is_frozen = getattr(module, "frozen", False)
                raise ValueError(
                    f"gradcheck: the module's parameter {n} is read-only"
                    f"{' (a frozen module, minirnn.freeze)' if is_frozen else ''}, and checking "
                    "parameter gradients perturbs it in place: pass check_parameters=False to "
                    "check the input gradients only, or check "
                    + ("the module it was frozen from" if is_frozen else "a writeable copy"))
    forward = getattr(module, "forward", None) or func
    frozen_rows = getattr(module, "_frozen_rows", None) or {}
    generator = getattr(module, "generator", None)
    gen_state = generator.bit_generator.state if isinstance(generator, np.random.Generator) \
        else None

    def run() -> Any:
        if gen_state is not None:
            generator.bit_generator.state = gen_state  # type: ignore[union-attr]
        return forward(*inputs)

    rng = np.random.default_rng(seed)
    changed = getattr(module, "_parameters_changed", None)
    saved_grads = {k: v.copy() for k, v in module.grads.items()} if module is not None else {}
    try:
        if module is not None:
            module.zero_grad()
        out = run()
        upstream = _like(out, lambda a: rng.standard_normal(a.shape).astype(a.dtype))
        g_leaves = _leaves(upstream)
        if backward is not None:
            grad_in = backward(upstream)
        elif _is_rnn_module(module):
            grad_in = module.backward(*upstream)  # type: ignore[union-attr]
        else:
            grad_in = module.backward(upstream)  # type: ignore[union-attr]
        if len(inputs) == 1 and not isinstance(grad_in, tuple):
            grad_in = (grad_in,)

        def loss() -> float:
            with no_grad():
                o = run()
            return float(sum(np.dot(a.ravel(), g.ravel()) for a, g in zip(_leaves(o), g_leaves)))

        checks: List[Tuple[str, np.ndarray, np.ndarray]] = []
        if check_inputs:
            for name, a, g in _pairs(inputs, grad_in, "input"):
                if g is None:
                    raise ValueError(f"gradcheck: the backward returned no gradient for {name}")
                checks.append((name, a, np.asarray(g, dtype=np.float64)))
        if check_parameters and module is not None:
            checks += [(n, p, module.grads[n].copy()) for n, p in params]

        result = GradcheckResult(passed=True)
        worst_ratio = -1.0
        for name, arr, ana in checks:
            if ana.shape != arr.shape:
                raise ValueError(f"gradcheck: the gradient of {name} has shape {ana.shape}, "
                                 f"expected {arr.shape}")
            frozen = frozen_rows.get(name, ()) if any(arr is p for _, p in params) else ()
            idxs = [i for i in np.ndindex(arr.shape) if not (frozen and i[0] in frozen)]
            if max_entries is not None and len(idxs) > max_entries:
                pick = rng.choice(len(idxs), size=max_entries, replace=False)
                idxs = [idxs[i] for i in sorted(pick)]
            rel_max = 0.0
            for idx in idxs:
                old = arr[idx]
                arr[idx] = old + eps
                if changed is not None:
                    changed()
                up = loss()
                arr[idx] = old - eps
                if changed is not None:
                    changed()
                down = loss()
                arr[idx] = old
                if changed is not None:
                    changed()
                num = (up - down) / (2 * eps)
                a = float(ana[idx])
                err = abs(a - num)
                scale = max(abs(a), abs(num))
                rel = err / scale if scale > 0 else 0.0
                rel_max = max(rel_max, rel)
                bound = atol + rtol * abs(num)
                ratio = err / bound
                if not err <= bound:
                    result.passed = False
                if ratio > worst_ratio:
                    worst_ratio = ratio
                    result.worst_name, result.worst_index = name, tuple(int(i) for i in idx)
                    result.analytic, result.numerical = a, num
                    result.max_abs_error, result.max_rel_error = err, rel
                result.checked += 1
            result.per_tensor[name] = rel_max
    finally:
        if module is not None:
            for k, v in saved_grads.items():
                module.grads[k][...] = v
            if hasattr(module, "clear_tape"):
                module.clear_tape()
    if not result.passed and raise_exception:
        raise GradcheckError(result)
    return result


"""Optimizers with ``torch.optim``'s formulas and defaults: SGD, Adam, AdamW, Adagrad, RMSprop.

An optimizer takes the *modules* it trains (any objects with ``named_parameters()`` and
``.grads``: every minirnn module, cell and layer), or torch-style parameter groups
``[{"params": [modules...], "lr": 0.1}, ...]``. ``step()`` reads each parameter's gradient from
its module's ``grads`` and updates the parameter array **in place**, so the compiled kernels see
the new weights, then calls each module's ``_parameters_changed()``. ``zero_grad()`` zeroes
every module's gradients. Hyperparameters live in ``param_groups`` (``opt.param_groups[0]["lr"]
= 0.01`` changes the learning rate of the next step, as in PyTorch, so schedulers work).

Every formula is PyTorch's single-tensor (non-foreach) CPU implementation, line by line, with
``g`` the gradient, ``p`` the parameter and ``t`` the step count (from 1).
"""
from __future__ import annotations

import copy
import math
import numbers
from typing import Any, Dict, Iterable, List, Tuple

import numpy as np

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "Adagrad", "RMSprop"]


def _real(name: str, value: Any, message: str, ok) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not ok(float(value)):
        raise ValueError(message.format(value))
    return float(value)


class Optimizer:
    """The base class: parameter groups, state, ``zero_grad``, ``state_dict``/``load_state_dict``.

    Subclasses define ``defaults`` (their hyperparameters) and ``_update(group, p, g, state)``
    for one parameter ``p`` with gradient ``g`` and its per-parameter ``state`` dict.
    """

    def __init__(self, modules: Iterable[Any], defaults: Dict[str, Any]) -> None:
        if hasattr(modules, "named_parameters") or isinstance(modules, np.ndarray):
            raise TypeError(f"{type(self).__name__}: modules must be an iterable of modules "
                            "(or of parameter-group dicts), got a single "
                            f"{type(modules).__name__}; pass [model] instead")
        try:
            items = list(modules)
        except TypeError:
            raise TypeError(f"{type(self).__name__}: modules must be an iterable of modules, "
                            f"got {type(modules).__name__}") from None
        if not items:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(items[0], dict):
            items = [{"params": items}]
        self.defaults = dict(defaults)
        #: the groups, as PyTorch: dicts of hyperparameters plus "params" (the live arrays)
        self.param_groups: List[Dict[str, Any]] = []
        self._slots: List[List[Tuple[Any, str]]] = []   # per group: (module, name) per param
        seen: set = set()
        for group in items:
            if not isinstance(group, dict) or "params" not in group:
                raise TypeError("a parameter group must be a dict with a 'params' entry, got "
                                f"{type(group).__name__}")
            unknown = set(group) - set(defaults) - {"params"}
            if unknown:
                raise ValueError(f"{type(self).__name__}: unknown hyperparameter(s) in a "
                                 f"parameter group: {sorted(unknown)}")
            mods = group["params"]
            mods = [mods] if hasattr(mods, "named_parameters") else list(mods)
            slots = []
            for m in mods:
                if not (hasattr(m, "named_parameters") and hasattr(m, "grads")):
                    raise TypeError(f"{type(self).__name__}: every entry of modules must have "
                                    f"named_parameters() and .grads, got {type(m).__name__}")
                if id(m) in seen:
                    raise ValueError("some parameters appear in more than one parameter group "
                                     f"(a {type(m).__name__} is listed twice)")
                seen.add(id(m))
                slots += [(m, name) for name, _ in m.named_parameters()]
            g = {k: group.get(k, v) for k, v in defaults.items()}
            self._check(g)
            live = {id(m): dict(m.named_parameters()) for m in mods}
            g["params"] = [live[id(m)][n] for m, n in slots]
            first = sum(len(s) for s in self._slots)       # (indices run over all groups)
            for i, (p, (m, n)) in enumerate(zip(g["params"], slots)):
                if isinstance(p, np.ndarray) and not p.flags.writeable:
                    raise ValueError(
                        f"{type(self).__name__}: parameter {first + i} "
                        f"({type(m).__name__}.{n}) is a read-only array; an optimizer updates "
                        "its parameters in place. "
                        + ("This module is frozen (minirnn.freeze): train the module it was "
                           "frozen from, then freeze a module with the new weights: "
                           "minirnn.freeze(m)" if getattr(m, "frozen", False) else
                           "Make it writeable (or pass a module whose parameters are)"))
            self.param_groups.append(g)
            self._slots.append(slots)
        self._modules = [m for slots in self._slots for m in dict.fromkeys(s[0] for s in slots)]
        #: per-parameter state, keyed by the parameter's index over all groups (as PyTorch's
        #: state_dict); empty until the first step
        self.state: Dict[int, Dict[str, Any]] = {}

    def _check(self, group: Dict[str, Any]) -> None:
        _real("lr", group["lr"], "Invalid learning rate: {}", lambda v: v >= 0)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in g.items() if k != "params"]
        return "\n".join(lines) + "\n)"

    def zero_grad(self) -> None:
        """Zero the gradients of every module (``m.zero_grad()``)."""
        for m in self._modules:
            m.zero_grad()

    def step(self) -> None:
        """Update every parameter once, in place, from its module's current ``grads``."""
        index = 0
        for group, slots in zip(self.param_groups, self._slots):
            for p, (m, name) in zip(group["params"], slots):
                g = m.grads[name]
                if group.get("maximize", False):
                    g = -g
                self._update(group, p, g, self.state.setdefault(index, {}))
                index += 1
        for m in self._modules:
            changed = getattr(m, "_parameters_changed", None)
            if changed is not None:
                changed()

    def _update(self, group, p, g, state) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- saving and restoring ------------------------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        """``{"state": {index: {name: value}}, "param_groups": [{hyperparameters, "params":
        [indices]}]}`` as PyTorch's (copies: NumPy arrays and numbers, picklable)."""
        groups, start = [], 0
        for g in self.param_groups:
            d = {k: copy.deepcopy(v) for k, v in g.items() if k != "params"}
            d["params"] = list(range(start, start + len(g["params"])))
            start += len(g["params"])
            groups.append(d)
        state = {i: {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in s.items()}
                 for i, s in self.state.items() if s}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved (into an optimizer over the same parameters).
        Hyperparameters come from the saved groups; state arrays are copied and cast to their
        parameter's dtype. Nothing changes when a check fails."""
        if not isinstance(state_dict, dict) or "state" not in state_dict \
                or "param_groups" not in state_dict:
            raise ValueError("state_dict must be a dict with 'state' and 'param_groups', as "
                             "returned by Optimizer.state_dict()")
        saved = state_dict["param_groups"]
        if len(saved) != len(self.param_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        params = []
        for g, s in zip(self.param_groups, saved):
            if len(s["params"]) != len(g["params"]):
                raise ValueError("loaded state dict contains a parameter group that doesn't "
                                 "match the size of optimizer's group")
            params += g["params"]
        new_state: Dict[int, Dict[str, Any]] = {}
        for i, s in state_dict["state"].items():
            i = int(i)
            if not 0 <= i < len(params):
                raise ValueError(f"loaded state dict has state for parameter {i}, the optimizer "
                                 f"has {len(params)} parameters")
            entry = {}
            for k, v in s.items():
                if isinstance(v, np.ndarray):
                    if v.shape != params[i].shape:
                        raise ValueError(f"loaded state {k!r} of parameter {i} has shape "
                                         f"{v.shape}, the parameter {params[i].shape}")
                    v = v.astype(params[i].dtype, copy=True)
                entry[k] = v
            new_state[i] = entry
        for g, s in zip(self.param_groups, saved):
            for k, v in s.items():
                if k != "params":
                    g[k] = copy.deepcopy(v)
        self.state = new_state


class SGD(Optimizer):
    """Stochastic gradient descent (optionally with momentum), as ``torch.optim.SGD``::

        g = g + weight_decay * p                      (if weight_decay != 0)
        b = g at the first step, else momentum * b + (1 - dampening) * g   (if momentum != 0)
        g = g + momentum * b if nesterov else b       (if momentum != 0)
        p = p - lr * g

    Args:
        modules: the modules to train (or parameter groups).
        lr: learning rate. Default 1e-3 (PyTorch's).
        momentum: momentum factor. Default 0.
        dampening: dampening for momentum. Default 0.
        weight_decay: L2 penalty. Default 0.
        nesterov: Nesterov momentum (needs momentum > 0 and dampening 0). Default False.
        maximize: maximize the objective (use ``-g``). Default False.

    State per parameter: ``momentum_buffer`` (with momentum only).
    """

    def __init__(self, modules: Iterable[Any], lr: float = 1e-3, momentum: float = 0,
                 dampening: float = 0, weight_decay: float = 0, nesterov: bool = False, *,
                 maximize: bool = False) -> None:
        super().__init__(modules, dict(lr=lr, momentum=momentum, dampening=dampening,
                                       weight_decay=weight_decay, nesterov=nesterov,
                                       maximize=maximize))

    def _check(self, g):
        super()._check(g)
        _real("momentum", g["momentum"], "Invalid momentum value: {}", lambda v: v >= 0)
        _real("dampening", g["dampening"], "Invalid dampening value: {}", lambda v: True)
        _real("weight_decay", g["weight_decay"], "Invalid weight_decay value: {}",
              lambda v: v >= 0)
        if g["nesterov"] and (g["momentum"] <= 0 or g["dampening"] != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")

    def _update(self, group, p, g, state):
        lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
        if wd != 0:
            g = g + wd * p                                     # g = g + wd * p
        if mu != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = g.copy()      # b_1 = g
            else:
                buf *= mu                                      # b = mu * b + (1 - damp) * g
                buf += (1 - group["dampening"]) * g
            g = g + mu * buf if group["nesterov"] else buf
        p -= lr * g                                            # p = p - lr * g


class Adam(Optimizer):
    """Adam, as ``torch.optim.Adam`` (bias-corrected moments, optional AMSGrad)::

        g = g + weight_decay * p                      (weight_decay != 0, not decoupled)
        p = p * (1 - lr * weight_decay)               (decoupled_weight_decay: AdamW)
        m = m + (1 - beta1) * (g - m)                 (lerp towards g)
        v = beta2 * v + (1 - beta2) * g * g
        v_max = max(v_max, v)                         (amsgrad; v_max replaces v below)
        denom = sqrt(v) / sqrt(1 - beta2^t) + eps
        p = p - lr / (1 - beta1^t) * m / denom

    Args:
        modules: the modules to train (or parameter groups).
        lr: learning rate. Default 1e-3.
        betas: ``(beta1, beta2)``, the moments' decay rates. Default (0.9, 0.999).
        eps: added to the denominator. Default 1e-8.
        weight_decay: L2 penalty (or decoupled decay). Default 0.
        amsgrad: use the maximum of the second moments so far. Default False.
        maximize: maximize the objective. Default False.
        decoupled_weight_decay: decay the weights directly (AdamW). Default False.

    State per parameter: ``step`` (float, as PyTorch's), ``exp_avg``, ``exp_avg_sq``
    (and ``max_exp_avg_sq`` with amsgrad).
    """

    def __init__(self, modules: Iterable[Any], lr: float = 1e-3,
                 betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, amsgrad: bool = False, *, maximize: bool = False,
                 decoupled_weight_decay: bool = False) -> None:
        super().__init__(modules, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                       amsgrad=amsgrad, maximize=maximize,
                                       decoupled_weight_decay=decoupled_weight_decay))

    def _check(self, g):
        super()._check(g)
        _real("eps", g["eps"], "Invalid epsilon value: {}", lambda v: v >= 0)
        betas = g["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        for i, b in enumerate(betas):
            _real("betas", b, f"Invalid beta parameter at index {i}: {{}}",
                  lambda v: 0 <= v < 1)
        g["betas"] = (float(betas[0]), float(betas[1]))
        _real("weight_decay", g["weight_decay"], "Invalid weight_decay value: {}",
              lambda v: v >= 0)

    def _update(self, group, p, g, state):
        lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], \
            group["weight_decay"]
        if not state:
            state["step"] = 0.0
            state["exp_avg"] = np.zeros_like(p)
            state["exp_avg_sq"] = np.zeros_like(p)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = np.zeros_like(p)
        state["step"] += 1
        t = state["step"]
        if wd != 0:
            if group["decoupled_weight_decay"]:
                p *= 1 - lr * wd                               # p = p (1 - lr wd)
            else:
                g = g + wd * p                                 # g = g + wd p
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m += (1 - beta1) * (g - m)                             # m = lerp(m, g, 1 - beta1)
        v *= beta2                                             # v = beta2 v + (1 - beta2) g^2
        v += (1 - beta2) * (g * g)
        bias_correction1 = 1 - beta1 ** t
        bias_correction2_sqrt = math.sqrt(1 - beta2 ** t)
        step_size = lr / bias_correction1
        if group["amsgrad"]:
            vmax = state["max_exp_avg_sq"]
            np.maximum(vmax, v, out=vmax)                      # v_max = max(v_max, v)
            denom = np.sqrt(vmax) / bias_correction2_sqrt + eps
        else:
            denom = np.sqrt(v) / bias_correction2_sqrt + eps
        p -= step_size * m / denom                             # p = p - lr/bc1 m / denom


class AdamW(Adam):
    """Adam with decoupled weight decay, as ``torch.optim.AdamW``: each step first decays
    ``p = p * (1 - lr * weight_decay)``, then takes Adam's step on the plain gradient (see
    :class:`Adam`).

    Args: as :class:`Adam`, with ``weight_decay`` defaulting to 1e-2.
    """

    def __init__(self, modules: Iterable[Any], lr: float = 1e-3,
                 betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False) -> None:
        Optimizer.__init__(self, modules, dict(lr=lr, betas=betas, eps=eps,
                                               weight_decay=weight_decay, amsgrad=amsgrad,
                                               maximize=maximize, decoupled_weight_decay=True))


class Adagrad(Optimizer):
    """Adagrad, as ``torch.optim.Adagrad``::

        g = g + weight_decay * p                      (if weight_decay != 0)
        clr = lr / (1 + (t - 1) * lr_decay)
        s = s + g * g                                 (s starts at initial_accumulator_value)
        p = p - clr * g / (sqrt(s) + eps)

    Args:
        modules: the modules to train (or parameter groups).
        lr: learning rate. Default 1e-2.
        lr_decay: learning-rate decay. Default 0.
        weight_decay: L2 penalty. Default 0.
        initial_accumulator_value: the starting value of ``s``. Default 0.
        eps: added to the denominator. Default 1e-10.
        maximize: maximize the objective. Default False.

    State per parameter: ``step``, ``sum``. As in PyTorch, the state exists from construction.
    """

    def __init__(self, modules: Iterable[Any], lr: float = 1e-2, lr_decay: float = 0,
                 weight_decay: float = 0, initial_accumulator_value: float = 0,
                 eps: float = 1e-10, *, maximize: bool = False) -> None:
        super().__init__(modules, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                       initial_accumulator_value=initial_accumulator_value,
                                       eps=eps, maximize=maximize))
        index = 0
        for group in self.param_groups:
            for p in group["params"]:
                self.state[index] = dict(
                    step=0.0, sum=np.full_like(p, group["initial_accumulator_value"]))
                index += 1

    def _check(self, g):
        super()._check(g)
        _real("lr_decay", g["lr_decay"], "Invalid lr_decay value: {}", lambda v: v >= 0)
        _real("weight_decay", g["weight_decay"], "Invalid weight_decay value: {}",
              lambda v: v >= 0)
        _real("initial_accumulator_value", g["initial_accumulator_value"],
              "Invalid initial_accumulator_value value: {}", lambda v: v >= 0)
        _real("eps", g["eps"], "Invalid epsilon value: {}", lambda v: v >= 0)

    def _update(self, group, p, g, state):
        state["step"] += 1
        t = state["step"]
        if group["weight_decay"] != 0:
            g = g + group["weight_decay"] * p                  # g = g + wd p
        clr = group["lr"] / (1 + (t - 1) * group["lr_decay"])
        s = state["sum"]
        s += g * g                                             # s = s + g^2
        std = np.sqrt(s) + group["eps"]
        p -= clr * g / std                                     # p = p - clr g / (sqrt(s) + eps)


class RMSprop(Optimizer):
    """RMSprop, as ``torch.optim.RMSprop``::

        g = g + weight_decay * p                      (if weight_decay != 0)
        v = alpha * v + (1 - alpha) * g * g
        ga = ga + (1 - alpha) * (g - ga);  avg = sqrt(v - ga * ga)     (centered)
        avg = sqrt(v)                                                  (not centered)
        avg = avg + eps
        b = momentum * b + g / avg;  p = p - lr * b   (momentum > 0)
        p = p - lr * g / avg                          (momentum = 0)

    Args:
        modules: the modules to train (or parameter groups).
        lr: learning rate. Default 1e-2.
        alpha: smoothing constant. Default 0.99.
        eps: added to the denominator. Default 1e-8.
        weight_decay: L2 penalty. Default 0.
        momentum: momentum factor. Default 0.
        centered: normalize by an estimate of the gradient's variance. Default False.
        maximize: maximize the objective. Default False.

    State per parameter: ``step``, ``square_avg`` (and ``momentum_buffer``, ``grad_avg``).
    """

    def __init__(self, modules: Iterable[Any], lr: float = 1e-2, alpha: float = 0.99,
                 eps: float = 1e-8, weight_decay: float = 0, momentum: float = 0,
                 centered: bool = False, *, maximize: bool = False) -> None:
        super().__init__(modules, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                       momentum=momentum, centered=centered,
                                       maximize=maximize))

    def _check(self, g):
        super()._check(g)
        _real("eps", g["eps"], "Invalid epsilon value: {}", lambda v: v >= 0)
        _real("momentum", g["momentum"], "Invalid momentum value: {}", lambda v: v >= 0)
        _real("weight_decay", g["weight_decay"], "Invalid weight_decay value: {}",
              lambda v: v >= 0)
        _real("alpha", g["alpha"], "Invalid alpha value: {}", lambda v: v >= 0)

    def _update(self, group, p, g, state):
        alpha, eps, mu = group["alpha"], group["eps"], group["momentum"]
        if not state:
            state["step"] = 0.0
            state["square_avg"] = np.zeros_like(p)
            if mu > 0:
                state["momentum_buffer"] = np.zeros_like(p)
            if group["centered"]:
                state["grad_avg"] = np.zeros_like(p)
        state["step"] += 1
        if group["weight_decay"] != 0:
            g = g + group["weight_decay"] * p                  # g = g + wd p
        v = state["square_avg"]
        v *= alpha                                             # v = alpha v + (1 - alpha) g^2
        v += (1 - alpha) * (g * g)
        if group["centered"]:
            ga = state["grad_avg"]
            ga += (1 - alpha) * (g - ga)                       # ga = lerp(ga, g, 1 - alpha)
            avg = np.sqrt(v - ga * ga)
        else:
            avg = np.sqrt(v)
        avg += eps
        if mu > 0:
            buf = state["momentum_buffer"]
            buf *= mu                                          # b = mu b + g / avg
            buf += g / avg
            p -= group["lr"] * buf                             # p = p - lr b
        else:
            p -= group["lr"] * g / avg                         # p = p - lr g / avg

"""Cell variants: what a layer computes besides PyTorch's cells.

PyTorch's ``RNN``/``GRU``/``LSTM`` compute one cell each. Other frameworks (ONNX, Keras,
oneDNN, TensorFlow) compute a few more; a :class:`Variant` says which of them a layer runs:

``reset_after`` (GRU)
    ``True`` (PyTorch, cuDNN, ONNX ``linear_before_reset=1``, Keras' default):
    ``n = g(W_in x + b_in + r * (W_hn h + b_hn))``. ``False`` (Cho et al. 2014, ONNX's default
    ``linear_before_reset=0``, Keras ``reset_after=False``): ``n = g(W_in x + b_in +
    W_hn (r * h) + b_hn)``.
``peephole`` (LSTM)
    the gates also see the cell state through a diagonal weight ``p`` (``weight_peephole``,
    ``(3H,)``, blocks i, f, o): ``i = f(... + p_i * c_{t-1})``, ``f = f(... + p_f * c_{t-1})``,
    ``o = f(... + p_o * c_t)``.
``coupled_input_forget`` (LSTM)
    ``f = 1 - i`` (ONNX ``input_forget=1``); the forget block of the weights is then unused
    (its gradient is zero).
``cell_clip``
    ``None`` or a positive float: every gate pre-activation (the input of every activation of
    the gate slots, ONNX's ``clip``) is clipped to ``[-clip, clip]`` before its activation.
    The LSTM's output activation ``h(c_t)`` is not clipped (onnxruntime does not clip it).
``activations``
    ``None`` (PyTorch's: sigmoid for gates, tanh for candidates and for ``h(c_t)``; the
    Elman mode's own tanh or relu) or, per direction, a tuple of :class:`Activation` in ONNX's
    slot order: LSTM ``(f, g, h)``, GRU ``(f, g)``, Elman ``(f,)``. ``f`` is the gates'
    activation, ``g`` the candidate's, ``h`` the one applied to ``c_t``.
``reverse``
    a unidirectional layer that runs from each row's last valid step to its first, writing
    its output in the input's time order (ONNX ``direction="reverse"``).

Every activation and its derivative are written here once, in NumPy; the C kernels mirror
the same formulas (the enum ids of ``csrc/activations.h`` are the indices in
:data:`ACTIVATIONS`). The derivative of each is computed from the activation's *output*
``y`` where that is exact, else from its *input* ``x``; :data:`DERIVATIVE_FROM_INPUT` lists
the latter, and the backward saves the pre-activations when a layer uses one of them or a
``cell_clip`` (whose derivative is the mask ``-clip <= x <= clip``, bounds included).

How a backend receives a variant: ``functional.rnn_forward(..., variant=v)`` passes ``None``
for PyTorch's cell (``v.is_default``) and calls ``_backend_c.rnn_forward(..., variant=v)``
(keyword) for another one, after ``_backend_c.unsupported(mode, v)`` returned None.
Peephole weights are ``params["weight_peephole_l{k}{_reverse}"]``
``(3H,)``, blocks i, f, o; their gradients go to ``grads`` under the same key. A packed batch
with empty sequences (``batch_sizes[0] < B``) never reaches a backend: ``functional`` runs
the ``batch_sizes[0]`` non-empty rows as a batch of their own and keeps ``h0``/``c0`` for
the others, so the kernels see ``batch_sizes[0] == B`` as before.
"""
from __future__ import annotations

import math
import numbers
from collections import namedtuple
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import numpy as np

from ._math import sigmoid

#: ONNX's activation names; the index in this tuple is the C enum id (csrc/activations.h)
ACTIVATIONS = ("Sigmoid", "Tanh", "Relu", "Affine", "LeakyRelu", "ThresholdedRelu",
               "ScaledTanh", "HardSigmoid", "Elu", "Softsign", "Softplus")

#: The default (alpha, beta) per activation (None where the activation takes none), as
#: onnxruntime computes an ONNX graph that leaves them out. ONNX says "the defaults of the
#: corresponding operators", which onnxruntime follows for LeakyRelu, HardSigmoid and Elu
#: but not for Affine, ScaledTanh and ThresholdedRelu: there it uses 0 (so a bare "Affine" is
#: the constant 0 and a bare "ThresholdedRelu" is relu); minirnn follows onnxruntime. Give
#: alpha and beta explicitly for those three to be unambiguous.
DEFAULT_ALPHA_BETA: Dict[str, Tuple[Optional[float], Optional[float]]] = {
    "Sigmoid": (None, None),
    "Tanh": (None, None),
    "Relu": (None, None),
    "Affine": (0.0, 0.0),
    "LeakyRelu": (0.01, None),
    "ThresholdedRelu": (0.0, None),
    "ScaledTanh": (0.0, 0.0),
    "HardSigmoid": (0.2, 0.5),
    "Elu": (1.0, None),
    "Softsign": (None, None),
    "Softplus": (None, None),
}

#: activations whose derivative needs the input x (for the others the output y suffices)
DERIVATIVE_FROM_INPUT = frozenset({"LeakyRelu", "ThresholdedRelu", "ScaledTanh", "Elu"})

#: number of activation slots per direction, ONNX's order (LSTM f, g, h; GRU f, g; RNN f)
SLOTS = {"RNN_TANH": 1, "RNN_RELU": 1, "GRU": 2, "LSTM": 3}
SLOT_NAMES = {"RNN_TANH": ("f",), "RNN_RELU": ("f",), "GRU": ("f", "g"),
              "LSTM": ("f", "g", "h")}


class Activation(namedtuple("Activation", "name alpha beta")):
    """One activation: ONNX's ``name`` and its ``alpha``/``beta`` (0.0 where unused, so the
    C side always gets two floats; ONNX's defaults filled in)."""

    __slots__ = ()

    @property
    def id(self) -> int:
        """The C enum id (index in :data:`ACTIVATIONS`)."""
        return ACTIVATIONS.index(self.name)

    def __repr__(self) -> str:
        a, b = DEFAULT_ALPHA_BETA[self.name]
        parts = [repr(self.name)]
        if a is not None:
            parts.append(repr(self.alpha))
        if b is not None:
            parts.append(repr(self.beta))
        return parts[0] if len(parts) == 1 else "(" + ", ".join(parts) + ")"


#: PyTorch's activations in ONNX's slot order, per mode
PYTORCH_ACTIVATIONS = {
    "RNN_TANH": ("Tanh",), "RNN_RELU": ("Relu",),
    "GRU": ("Sigmoid", "Tanh"), "LSTM": ("Sigmoid", "Tanh", "Tanh"),
}


def make_activation(spec: Any, where: str = "activations") -> Activation:
    """A name (any case: ``"tanh"``, ``"LeakyRelu"``), a ``(name,)``, ``(name, alpha)`` or
    ``(name, alpha, beta)``, or an :class:`Activation` -> an :class:`Activation` with ONNX's
    defaults filled in. ``where`` names the argument in error messages."""
    if isinstance(spec, Activation):
        name, alpha, beta = spec
        rest: Sequence[Any] = (alpha, beta)
    elif isinstance(spec, str):
        name, rest = spec, ()
    elif isinstance(spec, (tuple, list)) and 1 <= len(spec) <= 3 and isinstance(spec[0], str):
        name, rest = spec[0], tuple(spec[1:])
    else:
        raise TypeError(f"{where}: each activation must be a name or a (name, alpha, beta) "
                        f"tuple, got {spec!r}")
    canon = {n.lower(): n for n in ACTIVATIONS}.get(name.lower())
    if canon is None:
        raise ValueError(f"{where}: unknown activation {name!r}; expected one of "
                         f"{', '.join(ACTIVATIONS)}")
    defaults = DEFAULT_ALPHA_BETA[canon]
    takes = sum(d is not None for d in defaults)
    given = [v for v in rest if v is not None]
    if len(given) > takes and not isinstance(spec, Activation):
        raise ValueError(f"{where}: activation {canon} takes {takes} parameter(s) "
                         f"(alpha, beta), got {len(given)} in {spec!r}")
    values = []
    for k, d in enumerate(defaults):
        v = rest[k] if k < len(rest) and rest[k] is not None else d
        if d is None:
            values.append(0.0)
            continue
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
            raise ValueError(f"{where}: {('alpha', 'beta')[k]} of {canon} must be a finite "
                             f"number, got {v!r}")
        values.append(float(v))
    return Activation(canon, values[0], values[1])


# --------------------------------------------------------------------------- the math

def _forward_fns() -> Dict[str, Callable[[np.ndarray, float, float], np.ndarray]]:
    def softplus(x, a, b):
        # log(1 + e^x), written so that it neither overflows for large x nor loses
        # precision for very negative x: max(x, 0) + log1p(e^-|x|)
        return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))

    def elu(x, a, b):
        return np.where(x > 0, x, a * np.expm1(np.minimum(x, 0)))

    return {
        "Sigmoid": lambda x, a, b: sigmoid(x),                                  # 1/(1+e^-x)
        "Tanh": lambda x, a, b: np.tanh(x),
        "Relu": lambda x, a, b: np.maximum(x, 0),                              # max(0, x)
        "Affine": lambda x, a, b: a * x + b,                                   # alpha*x + beta
        "LeakyRelu": lambda x, a, b: np.where(x >= 0, x, a * x),               # x<0: alpha*x
        "ThresholdedRelu": lambda x, a, b: np.where(x > a, x, 0 * x),          # x>alpha: x
        "ScaledTanh": lambda x, a, b: a * np.tanh(b * x),                      # alpha*tanh(beta*x)
        "HardSigmoid": lambda x, a, b: np.clip(a * x + b, 0, 1),               # clip(ax+b, 0, 1)
        "Elu": elu,                                                            # x<=0: a(e^x-1)
        "Softsign": lambda x, a, b: x / (1 + np.abs(x)),                       # x/(1+|x|)
        "Softplus": softplus,                                                  # log(1+e^x)
    }


def _derivative_fns() -> Dict[str, Callable[..., np.ndarray]]:
    """name -> d(x, y, alpha, beta): dy/dx. Uses y (the output) unless the name is in
    DERIVATIVE_FROM_INPUT, then x (the input)."""
    one = np.ones_like
    return {
        "Sigmoid": lambda x, y, a, b: y * (1 - y),
        "Tanh": lambda x, y, a, b: 1 - y * y,
        "Relu": lambda x, y, a, b: (y > 0).astype(y.dtype),            # relu'(0) = 0
        "Affine": lambda x, y, a, b: a * one(y),
        "LeakyRelu": lambda x, y, a, b: np.where(x >= 0, 1, a).astype(x.dtype),
        "ThresholdedRelu": lambda x, y, a, b: (x > a).astype(x.dtype),
        "ScaledTanh": lambda x, y, a, b: a * b * (1 - np.tanh(b * x) ** 2),
        # the slope alpha strictly inside (0, 1); 0 where the output is clipped
        "HardSigmoid": lambda x, y, a, b: np.where((y > 0) & (y < 1), a, 0).astype(y.dtype),
        "Elu": lambda x, y, a, b: np.where(x > 0, 1, a * np.exp(np.minimum(x, 0))
                                           ).astype(x.dtype),
        "Softsign": lambda x, y, a, b: (1 - np.abs(y)) ** 2,          # 1/(1+|x|)^2
        "Softplus": lambda x, y, a, b: -np.expm1(-y),                  # sigmoid(x) = 1 - e^-y
    }


_FORWARD = _forward_fns()
_DERIVATIVE = _derivative_fns()


def activate(act: Activation, x: np.ndarray) -> np.ndarray:
    """``act(x)`` elementwise, in ``x``'s dtype."""
    y = _FORWARD[act.name](x, act.alpha, act.beta)
    return np.asarray(y, dtype=x.dtype)


def derivative(act: Activation, x: Optional[np.ndarray], y: np.ndarray) -> np.ndarray:
    """``d act(x) / dx`` given the output ``y = act(x)`` and, for the activations in
    :data:`DERIVATIVE_FROM_INPUT`, the input ``x`` (otherwise ``x`` may be None)."""
    d = _DERIVATIVE[act.name](x, y, act.alpha, act.beta)
    return np.asarray(d, dtype=y.dtype)


def clip(x: np.ndarray, cell_clip: Optional[float]) -> np.ndarray:
    """ONNX's ``clip``: ``min(max(x, -clip), clip)`` (``x`` itself when ``cell_clip`` is None)."""
    if cell_clip is None:
        return x
    return np.clip(x, -cell_clip, cell_clip)


def clip_mask(x: np.ndarray, cell_clip: Optional[float]) -> Any:
    """The derivative of :func:`clip`: 1 where ``-clip <= x <= clip`` (the bounds included,
    as ``torch.clamp``'s backward), else 0; the scalar 1 when ``cell_clip`` is None."""
    if cell_clip is None:
        return 1
    return ((x >= -cell_clip) & (x <= cell_clip)).astype(x.dtype)


# --------------------------------------------------------------------------- the description

@dataclass(frozen=True)
class Variant:
    """Which cell a layer computes (see the module docstring). ``Variant()`` is PyTorch's.

    Build it with :func:`make_variant`, which validates user arguments; the fields are then
    already normalised: ``activations`` is None (PyTorch's) or one tuple of
    :class:`Activation` per direction, ONNX's slot order.
    """

    reset_after: bool = True
    peephole: bool = False
    coupled_input_forget: bool = False
    cell_clip: Optional[float] = None
    activations: Optional[Tuple[Tuple[Activation, ...], ...]] = None
    reverse: bool = False

    @property
    def is_default(self) -> bool:
        """True when the layer computes PyTorch's cell (the kernels' fast path)."""
        return self == DEFAULT

    def acts(self, mode: str, direction: int = 0) -> Tuple[Activation, ...]:
        """The activations of one direction, in ONNX's slot order (PyTorch's when None)."""
        if self.activations is None:
            return tuple(make_activation(n) for n in PYTORCH_ACTIVATIONS[mode])
        return self.activations[direction]

    def needs_preactivations(self, mode: str) -> bool:
        """True when the backward needs the gates' inputs, not only their outputs (a clip,
        or an activation in :data:`DERIVATIVE_FROM_INPUT`)."""
        if self.cell_clip is not None:
            return True
        if self.activations is None:
            return False
        return any(a.name in DERIVATIVE_FROM_INPUT for d in self.activations for a in d)

    def describe(self) -> str:
        """The non-default fields as keyword arguments (for ``repr`` and ``explain``)."""
        parts = []
        if not self.reset_after:
            parts.append("reset_after=False")
        if self.peephole:
            parts.append("peephole=True")
        if self.coupled_input_forget:
            parts.append("coupled_input_forget=True")
        if self.cell_clip is not None:
            parts.append(f"cell_clip={self.cell_clip!r}")
        if self.activations is not None:
            flat = [a for d in self.activations for a in d]
            parts.append("activations=[" + ", ".join(map(repr, flat)) + "]")
        if self.reverse:
            parts.append("reverse=True")
        return ", ".join(parts)


DEFAULT = Variant()


def make_variant(mode: str, *, reset_after: Any = True, peephole: Any = False,
                 coupled_input_forget: Any = False, cell_clip: Any = None,
                 activations: Any = None, reverse: Any = False,
                 num_directions: int = 1) -> Variant:
    """Validate a module's variant arguments and build the :class:`Variant`.

    ``mode`` is 'RNN_TANH', 'RNN_RELU', 'GRU' or 'LSTM'. ``activations``: None or a sequence
    of ``SLOTS[mode]`` activations (each a name or ``(name, alpha, beta)``), or twice as many
    for a bidirectional layer (forward's then reverse's); one direction's list given to a
    bidirectional layer applies to both. Activations equal to PyTorch's normalise to None.
    Raises TypeError/ValueError naming the argument.
    """
    for name, value in (("reset_after", reset_after), ("peephole", peephole),
                        ("coupled_input_forget", coupled_input_forget), ("reverse", reverse)):
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{name} should be of type bool, got: {type(value).__name__}")
    if not reset_after and mode != "GRU":
        raise ValueError(f"reset_after=False is a GRU variant; mode {mode} has no reset gate")
    if peephole and mode != "LSTM":
        raise ValueError(f"peephole=True is an LSTM variant; mode {mode} has no cell state")
    if coupled_input_forget and mode != "LSTM":
        raise ValueError(f"coupled_input_forget=True is an LSTM variant; mode {mode} has no "
                         "forget gate")
    if reverse and num_directions != 1:
        raise ValueError("reverse=True is for a unidirectional module; a bidirectional one "
                         "already runs a reverse direction (got bidirectional=True)")
    if cell_clip is not None:
        if isinstance(cell_clip, bool) or not isinstance(cell_clip, numbers.Real):
            raise TypeError(f"cell_clip should be None or a positive float, got: "
                            f"{type(cell_clip).__name__}")
        value = float(cell_clip)
        if not (value > 0 and math.isfinite(value)):
            raise ValueError(f"cell_clip must be None or a positive finite number, got "
                             f"{cell_clip!r}")
        cell_clip = value
    acts = None
    if activations is not None:
        if isinstance(activations, (str, Activation)) or not isinstance(
                activations, (tuple, list)):
            raise TypeError(f"activations should be None or a list of activation names "
                            f"(one per slot: {', '.join(SLOT_NAMES[mode])}), got "
                            f"{activations!r}")
        k = SLOTS[mode]
        items = [make_activation(a) for a in activations]
        if len(items) == k:
            items = items * num_directions
        elif len(items) != k * num_directions or num_directions == 1:
            expect = f"{k}" if num_directions == 1 else f"{k} or {2 * k}"
            raise ValueError(f"activations: mode {mode} takes {expect} activation(s) "
                             f"({', '.join(SLOT_NAMES[mode])} per direction), got "
                             f"{len(items)}")
        acts = tuple(tuple(items[d * k:(d + 1) * k]) for d in range(num_directions))
        default = tuple(make_activation(n) for n in PYTORCH_ACTIVATIONS[mode])
        if all(a == default for a in acts):
            acts = None
    return Variant(reset_after=bool(reset_after), peephole=bool(peephole),
                   coupled_input_forget=bool(coupled_input_forget), cell_clip=cell_clip,
                   activations=acts, reverse=bool(reverse))

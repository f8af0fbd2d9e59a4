"""The user-facing classes: RNN, GRU, LSTM and RNNCell, GRUCell, LSTMCell.

They own the parameters (PyTorch's names, shapes, order and initialization),
validate every argument before any computation, convert between the caller's
layout (``batch_first``, unbatched) and the time-major layout of
:mod:`minirnn.functional`, and keep the backward *tape*: every forward run
outside :class:`minirnn.no_grad` pushes what its backward needs; ``backward``
pops the latest one (last in, first out), so a loop of cell steps or chunks of
truncated BPTT backpropagate in the natural reverse order.

The tape keeps private copies of the input, h0 and c0, and the caller gets a copy of the
output, so editing those in place between a forward and its backward changes no gradient.
Parameters must not be modified between a forward and its backward: the tape holds
references to them, not copies.

Changing a parameter: assign it (``m.weight_hh_l0 = arr``, ``cell.weight_ih = arr``),
call ``load_state_dict``, or use an optimizer. Assignment makes the checks of
``load_state_dict`` (the parameter's shape, real numbers cast to the module's dtype) and
copies the values *into* the existing array, so every reference to it (an optimizer's, or
``m.parameters()``) sees the new values; it never rebinds the name. Each of these paths
calls ``m._parameters_changed()``, which increments the integer ``m._param_version``;
code that keeps something derived from the parameters (packed weight panels) compares
versions to know it is stale. Whoever writes into a parameter array in place by other
means calls ``m._parameters_changed()`` afterwards.
"""
from __future__ import annotations

import math
import warnings
from typing import (TYPE_CHECKING, Any, Dict, Iterator, List, Mapping, Optional, Sequence,
                    Tuple, TypeVar, Union, cast, overload)

import numpy as np

from . import _backend_c, _extension, functional
from .variants import make_variant
from ._grad_mode import _enabled as _grad_enabled, is_grad_enabled
from ._validation import (canonical_dtype, check_array, check_bool, check_dropout, check_dtype,
                          check_parameter_bytes, check_shape, check_size)
from .cells import CELLS
from .packed import PackedSequence, packed_rows, padded_from_rows
from ._typing import ArrayLike, DType, FloatArray, Seed, StateIn, StatePair

#: an activation of a cell variant: ONNX's name, or ``(name, alpha, beta)``
Activation = Union[str, Tuple[Any, ...]]
#: a module's output or input gradient: an array, or a PackedSequence for packed input
ArrayOrPacked = Union[FloatArray, PackedSequence]
_M = TypeVar("_M", bound="_Module")

#: compute paths a module can use: ``"c"``, the compiled kernels (minirnn._kernels, the
#: default), and ``"numpy"``, the readable reference they are tested against
BACKENDS: Tuple[str, ...] = ("c", "numpy")
DEFAULT_BACKEND = "c"

_NOT_GIVEN: Any = object()     # proj_size of RNN/GRU when the caller did not give one


def _check_backend(backend):
    if backend is None:
        return DEFAULT_BACKEND
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS} or None (default), got {backend!r}")
    return backend


def _variant_backend(owner, backend, mode, variant):
    """The backend of a module computing ``variant``: the one asked for, or for None (the
    default) the compiled kernels when they compute this variant, else the NumPy path.
    ``backend="c"`` for a variant the kernels cannot compute yet is a NotImplementedError."""
    reason = _backend_c.unsupported(mode, variant)
    if backend is None and reason is not None:
        return "numpy"
    backend = _check_backend(backend)
    if backend == "c" and _backend_c._kernels is None:
        raise _extension.missing_error(f"{owner}: backend='c'")
    if backend == "c" and reason is not None:
        raise NotImplementedError(f"{owner}: backend='c': {reason}; use backend='numpy' (or "
                                  "leave backend=None, which picks it)")
    return backend


class _Module:
    """Parameters, gradients, the tape and the train/eval flag, shared by modules and cells."""

    #: the accumulated gradients, one array per parameter (keys as ``state_dict``)
    grads: Dict[str, FloatArray]
    #: training mode (dropout active); set by ``train()`` and ``eval()``
    training: bool
    dtype: np.dtype

    def _init_parameters(self, shapes, hidden_size, dtype, seed):
        # Every parameter ~ U(-1/sqrt(hidden_size), +1/sqrt(hidden_size)), drawn in
        # PyTorch's parameter order from numpy.random.default_rng(seed).
        try:
            rng = np.random.default_rng(seed)
        except (TypeError, ValueError) as e:
            raise type(e)(f"{type(self).__name__}: seed must be None, a non-negative int or a "
                          f"numpy.random.Generator, got {seed!r} ({e})") from None
        k = 1.0 / math.sqrt(hidden_size)
        self._params = {name: rng.uniform(-k, k, size=shape).astype(dtype)
                        for name, shape in shapes.items()}
        self.grads = {name: np.zeros_like(p) for name, p in self._params.items()}
        self._tape = []
        self._zeros = {}            # shape -> a read-only zero state, see _zero_state
        #: incremented by every API path that changes a parameter (see _parameters_changed)
        self._param_version = 0
        self.training = True
        return rng

    def _variant_arg(self):
        """``self.variant``, or None for PyTorch's cell: what the functional layer takes.
        Kept from call to call (``Variant.is_default`` compares dataclasses: 1 us of a
        streaming call); recomputed if ``self.variant`` is replaced."""
        d = self.__dict__
        v = d["variant"]
        if d.get("_variant_key") is not v:
            d["_variant_value"] = None if v.is_default else v
            d["_variant_key"] = v
        return d["_variant_value"]

    def _inference_plan(self):
        """What the short inference path of ``forward`` needs (see ``_inference_call``), built
        once for the module's current ``variant`` and ``backend``: (variant, backend, mode code
        or None where the short path does not apply, dtype, input_size, D, h width, c width)."""
        d = self.__dict__
        plan = d.get("_plan")
        if plan is None or plan[0] is not d["variant"] or plan[1] is not d["backend"]:
            ok = (d["backend"] == "c" and _backend_c._kernels is not None
                  and getattr(self, "num_layers", 1) == 1 and self._variant_arg() is None)
            D = 2 if getattr(self, "bidirectional", False) else 1
            P = getattr(self, "_h_width", self.hidden_size)
            plan = d["_plan"] = (
                d["variant"], d["backend"], _backend_c._kernels.MODES[self.mode] if ok else None,
                self.dtype, self.input_size, D, P,
                self.hidden_size if self.mode == "LSTM" else None)
        return plan

    def _zero_state(self, shape):
        """The default initial state (h0 or c0 of None): zeros of ``shape``. One read-only array
        per shape is kept from call to call, since nothing writes an initial state (the
        compiled kernels refuse to) and a fresh ``np.zeros`` costs as much as a step of a tiny
        model."""
        z = self._zeros.get(shape)
        if z is None:
            if len(self._zeros) >= 8:
                self._zeros.clear()
            z = self._zeros[shape] = np.zeros(shape, dtype=self.dtype)
            z.flags.writeable = False
        return z

    # -- parameters -------------------------------------------------------------------------
    _absent_parameters: tuple = ()     # names that read as None when the parameter does not exist

    def __getattr__(self, name: str) -> Any:
        # PyTorch-style attribute access to parameters: m.weight_ih_l0, cell.weight_hh
        params = self.__dict__.get("_params", {})
        if name in params:
            return params[name]
        if name in self._absent_parameters:
            return None
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        # m.weight_hh_l0 = arr copies into the live parameter (as load_state_dict does for one
        # key); it never creates an instance attribute hiding the parameter.
        params = self.__dict__.get("_params")
        if params is not None:
            if name in params:
                self._refuse_if_frozen(f"cannot assign {name}")
                v = self._checked_parameter_value(
                    name, value, params[name], f"{type(self).__name__}: assigning {name}")
                np.copyto(params[name], v, casting="unsafe")
                self._parameters_changed()
                return
            if name in self._absent_parameters:
                if value is None:
                    return
                raise ValueError(
                    f"{type(self).__name__}: cannot assign {name!r}: this module was built with "
                    f"bias=False, so it has no {name} parameter (construct it with bias=True)")
        object.__setattr__(self, name, value)

    @property
    def frozen(self) -> bool:
        """Whether this module is a frozen inference copy (:func:`minirnn.freeze`): its
        parameters can never change. False for every module built otherwise."""
        return self.__dict__.get("_frozen", False)

    def _refuse_if_frozen(self, what):
        """The error of a write into a frozen module's parameters (``what``: what was tried)."""
        if self.__dict__.get("_frozen", False):
            raise ValueError(
                f"{type(self).__name__}: {what}: this module is frozen (minirnn.freeze), its "
                "parameters cannot change. Freeze a module with the new weights: load or assign "
                "them in a trainable module m, then minirnn.freeze(m)")

    # A module is copied and pickled without what it derived from its parameters (the kernels'
    # weight tuples and packed panels, as large as the weights, and the short path's plan;
    # rebuilt by the next call), and
    # a frozen module's parameters are made immutable again (NumPy restores arrays as writable
    # copies).
    def __getstate__(self) -> Dict[str, Any]:
        from .freeze import DERIVED_STATE, frozen_state
        if self.__dict__.get("_frozen", False):
            return frozen_state(self.__dict__)
        return {k: v for k, v in self.__dict__.items() if k not in DERIVED_STATE}

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__dict__.update(state)
        if "dtype" in state:            # NumPy's own dtype object, not the copy: see canonical_dtype
            self.__dict__["dtype"] = canonical_dtype(state["dtype"])
        if state.get("_frozen", False):
            from .freeze import refreeze
            refreeze(self)

    @staticmethod
    def _checked_parameter_value(name, value, p, where):
        """``value`` as an array that may be copied into the parameter ``name`` (array ``p``):
        the checks of ``load_state_dict`` and of assignment; messages start with ``where``."""
        if value is None:
            raise TypeError(f"{where}: expected an array of shape {p.shape}, got None "
                            "(parameters cannot be removed)")
        try:
            v = np.asarray(value)
        except (ValueError, TypeError) as e:
            raise ValueError(f"{where}: expected an array of shape {p.shape}, got a "
                             f"{type(value).__name__} NumPy cannot turn into one ({e})") from None
        if not (np.issubdtype(v.dtype, np.floating) or np.issubdtype(v.dtype, np.integer)):
            raise TypeError(f"{where}: expected real numbers (cast to {p.dtype}), got dtype "
                            f"{v.dtype}")
        if v.shape != p.shape:
            raise ValueError(f"{where}: size mismatch for {name}: expected shape {p.shape}, "
                             f"got {v.shape}")
        return v

    def _parameters_changed(self) -> None:
        """Record that parameter values changed (increments ``_param_version``). Assignment,
        ``load_state_dict`` and optimizers call it; call it after writing into a parameter
        array in place by any other means."""
        self.__dict__["_param_version"] = self.__dict__.get("_param_version", 0) + 1

    def named_parameters(self) -> Iterator[Tuple[str, FloatArray]]:
        """(name, array) pairs in PyTorch's order. The arrays are the live parameters:
        updating them in place (``p -= lr * m.grads[name]``) updates the module; call
        ``m._parameters_changed()`` after such a write."""
        return iter(self._params.items())

    def parameters(self) -> List[FloatArray]:
        """The live parameter arrays, in PyTorch's order."""
        return list(self._params.values())

    def state_dict(self) -> Dict[str, FloatArray]:
        """{name: copy of the parameter}, PyTorch's names, shapes and order."""
        return {name: p.copy() for name, p in self._params.items()}

    def load_state_dict(self, state_dict: Mapping[str, ArrayLike]) -> None:
        """Copy parameters in, strictly: every key must be present, none unexpected,
        every shape equal. Values are cast to the module's dtype (so float32 weights
        load into a float64 module); they may be NumPy arrays or anything
        ``numpy.asarray`` accepts (e.g. CPU torch tensors). Nothing is changed when
        any check fails. A frozen module (:func:`minirnn.freeze`) refuses it."""
        self._refuse_if_frozen(f"cannot load_state_dict ({', '.join(self._params)})")
        if not hasattr(state_dict, "keys"):
            raise TypeError(f"state_dict must be a mapping of name -> array, got {type(state_dict).__name__}")
        missing = [k for k in self._params if k not in state_dict]
        unexpected = [k for k in state_dict if k not in self._params]
        if missing or unexpected:
            raise ValueError(
                f"Error(s) in loading state_dict for {type(self).__name__}: "
                f"missing key(s): {missing}; unexpected key(s): {unexpected}")
        values = {}
        for name, p in self._params.items():
            values[name] = self._checked_parameter_value(
                name, state_dict[name], p,
                f"Error(s) in loading state_dict for {type(self).__name__}: state_dict[{name!r}]")
        for name, v in values.items():
            np.copyto(self._params[name], v, casting="unsafe")
        self._parameters_changed()

    # -- gradients and tape -----------------------------------------------------------------
    def _check_grads(self):
        """Before a backward: ``self.grads`` still holds, for every parameter, a writeable
        C-contiguous array of its shape and dtype (backward accumulates into them)."""
        grads = self.grads
        for name, p in self._params.items():
            g = grads.get(name) if isinstance(grads, dict) else None
            if (type(g) is np.ndarray and g.shape == p.shape and g.dtype == p.dtype
                    and g.flags.c_contiguous and g.flags.writeable):
                continue
            if not isinstance(grads, dict):
                got = f"grads is a {type(grads).__name__}, not a dict"
            elif g is None:
                got = "it is missing" if name not in grads else "it is None"
            elif not isinstance(g, np.ndarray):
                got = f"got a {type(g).__name__}"
            else:
                got = (f"got shape {g.shape}, dtype {g.dtype}, "
                       f"{'C-contiguous' if g.flags.c_contiguous else 'not C-contiguous'}, "
                       f"{'writeable' if g.flags.writeable else 'read-only'}")
            raise ValueError(
                f"{type(self).__name__}.backward: grads[{name!r}] must be a writeable "
                f"C-contiguous numpy.ndarray of shape {p.shape} and dtype {p.dtype} (backward "
                f"accumulates into it); {got}. Restore it: m.grads[{name!r}] = "
                f"numpy.zeros_like(m.{name})")

    def zero_grad(self) -> None:
        """Set every accumulated gradient in ``grads`` to zero (in place)."""
        for g in self.grads.values():
            g.fill(0)

    @property
    def tape_size(self) -> int:
        """How many forwards are waiting for their backward."""
        return len(self._tape)

    def clear_tape(self) -> None:
        """Forget every forward not yet backpropagated (frees their saved activations)."""
        self._tape.clear()

    def _latest_tape_entry(self):
        """The entry backward will use (popped only once the incoming gradients pass their checks)."""
        self._check_grads()
        if not self._tape:
            raise RuntimeError(
                f"{type(self).__name__}.backward() called with nothing to backpropagate: every "
                "forward has already been backpropagated, or ran under minirnn.no_grad()")
        return self._tape[-1]

    # -- train / eval -----------------------------------------------------------------------
    def train(self: _M, mode: bool = True) -> _M:
        """Training mode (the default): dropout between layers is active. Returns self."""
        self.training = check_bool("mode", mode)
        return self

    def eval(self: _M) -> _M:
        """Evaluation mode: no dropout. Returns self."""
        return self.train(False)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)


def _pair(owner, name, value, names):
    """An LSTM state pair ``(h, c)`` or its gradient, as the caller gave it: None means
    ``(None, None)``; a non-tuple is a TypeError, a tuple of another length a ValueError."""
    if value is None:
        return None, None
    if not isinstance(value, (tuple, list)):
        raise TypeError(f"{owner}: {name} must be a tuple ({names}) (either may be None), got "
                        f"{type(value).__name__}")
    if len(value) != 2:
        raise ValueError(f"{owner}: {name} must be a tuple of two states ({names}), got "
                         f"{len(value)}")
    return value[0], value[1]


def _incoming_grad(owner, name, g, shape, dtype):
    """An incoming gradient: None means zeros; otherwise exactly the forward's shape and dtype."""
    if g is None:
        return np.zeros(shape, dtype=dtype)
    check_array(owner, name, g, dtype)
    return check_shape(owner, name, g, shape)


# =========================================================================================== modules

class _RNNBase(_Module):
    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0, *, dtype: DType = np.float32,
                 seed: Seed = None, backend: Optional[str] = None, **variant: Any) -> None:
        name = {"RNN_TANH": "RNN", "RNN_RELU": "RNN"}.get(mode, mode)
        self.mode = mode
        self.input_size = check_size("input_size", input_size)
        self.hidden_size = check_size("hidden_size", hidden_size)
        self.num_layers = check_size("num_layers", num_layers)
        self.bias = check_bool("bias", bias)
        self.batch_first = check_bool("batch_first", batch_first)
        self.bidirectional = check_bool("bidirectional", bidirectional)
        self.dropout = check_dropout(dropout)
        if self.dropout > 0 and self.num_layers == 1:
            warnings.warn(
                "dropout option adds dropout after all but last recurrent layer, so non-zero dropout "
                f"expects num_layers greater than 1, but got dropout={dropout} and "
                f"num_layers={num_layers}", UserWarning, stacklevel=3)
        if proj_size is not _NOT_GIVEN:
            if mode != "LSTM":
                raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
            if isinstance(proj_size, bool) or not isinstance(proj_size, int) or proj_size < 0:
                raise ValueError("proj_size should be a positive integer or zero to disable "
                                 f"projections, got {proj_size!r}")
            if proj_size >= self.hidden_size:
                raise ValueError(f"proj_size has to be smaller than hidden_size, got proj_size="
                                 f"{proj_size} and hidden_size={self.hidden_size}")
        self.proj_size = 0 if proj_size is _NOT_GIVEN else int(proj_size)
        self.dtype = check_dtype(dtype)
        #: the cell variant (minirnn.variants.Variant; Variant() = PyTorch's cell)
        self.variant = make_variant(mode, num_directions=self.num_directions, **variant)
        for k in variant:
            setattr(self, k, getattr(self.variant, k))
        self.backend = _variant_backend(name, backend, mode, self.variant)
        self._name = name
        G, H, P, D = CELLS[mode].gates, self.hidden_size, self._h_width, self.num_directions
        per_dir = G * H * (P + 2 * self.bias) + (P * H if self.proj_size else 0) + \
            (3 * H if self.variant.peephole else 0)           # all but W_ih
        count = D * (G * H * self.input_size + (self.num_layers - 1) * G * H * D * P +
                     self.num_layers * per_dir)
        sizes = [("input_size", self.input_size), ("hidden_size", H),
                 ("num_layers", self.num_layers)]
        check_parameter_bytes(name, sizes + ([("proj_size", P)] if self.proj_size else []),
                              count, self.dtype)
        shapes = functional.param_shapes(CELLS[mode].gates, self.input_size, self.hidden_size,
                                         self.num_layers, self.bidirectional, self.bias,
                                         self.proj_size, peephole=self.variant.peephole)
        # The generator that drew the parameters goes on to draw the dropout masks.
        #: numpy.random.Generator of the dropout masks (replace it to reseed them)
        self.generator = self._init_parameters(shapes, self.hidden_size, self.dtype, seed)
        # B -> (h0, c0) of hx=None, see _check_hx
        self._zero_hx: Dict[int, Tuple[FloatArray, Optional[FloatArray]]] = {}

    def _c_weights(self):
        """The compiled kernels' weight tuples (``_backend_c.model_weights``), built once: the
        parameter arrays never change identity (``load_state_dict`` and optimizer steps update
        them in place), and building them costs 0.5 us per layer of a call."""
        w = self.__dict__.get("_c_weights_cache")
        if w is None:
            w = self._c_weights_cache = _backend_c.model_weights(
                self._params, self.num_layers, self.num_directions)
        return w

    def _c_packs(self):
        """Where the kernels keep this module's packed weights between calls
        (``_backend_c.model_packs``): used again while the parameters hold the same numbers,
        which the kernels check on every call, so any change (assignment, load_state_dict, an
        optimizer step, a write into a parameter array) is seen."""
        p = self.__dict__.get("_c_packs_cache")
        if p is None:
            p = self._c_packs_cache = _backend_c.model_packs(self.num_layers)
        return p

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def _h_width(self):
        """The width of h (states, output per direction): proj_size, or else hidden_size."""
        return self.proj_size if self.proj_size > 0 else self.hidden_size

    def __repr__(self) -> str:
        s = f"{type(self).__name__}({self.input_size}, {self.hidden_size}"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if type(self) is RNN and self.nonlinearity != "tanh":
            s += f", nonlinearity={self.nonlinearity!r}"
        for attr, default in (("bias", True), ("batch_first", False), ("dropout", 0.0),
                              ("bidirectional", False)):
            if getattr(self, attr) != default:
                s += f", {attr}={getattr(self, attr)}"
        if not self.variant.is_default:
            s += ", " + self.variant.describe()
        if self.dtype != np.float32:
            s += f", dtype={self.dtype}"
        return s + ")"

    # -- forward ----------------------------------------------------------------------------
    def _check_input(self, input):
        name = self._name
        if input.__class__ is not np.ndarray or input.dtype is not self.dtype:
            check_array(name, "input", input, self.dtype)    # raises unless an equal dtype
        ndim = input.ndim
        if ndim == 3:                                  # batched: (L, N, H_in) or (N, L, H_in)
            X = input.transpose(1, 0, 2) if self.batch_first else input
        elif ndim == 2:                                # unbatched (L, H_in) -> (L, 1, H_in)
            X = input[:, None, :]
        else:
            raise ValueError(
                f"{name}: Expected input to be 2-D (L, H_in) or 3-D "
                f"({'N, L' if self.batch_first else 'L, N'}, H_in), got {ndim}-D array "
                f"of shape {input.shape}")
        L, _, I = X.shape
        if I != self.input_size:
            raise ValueError(
                f"{name}: input.shape[-1] must be equal to input_size. Expected "
                f"{self.input_size}, got {I} (input shape {input.shape})")
        if L == 0:
            raise ValueError(f"{name}: Expected sequence length to be larger than 0, got input "
                             f"of shape {input.shape}")
        return X, ndim == 3

    def _check_state(self, label, s, width, B, batched):
        """One initial state (h0 or c0): None -> zeros (L*D, B, width)."""
        LD = self.num_layers * (2 if self.bidirectional else 1)
        if s is None:
            return self._zero_state((LD, B, width))
        if s.__class__ is np.ndarray and s.dtype is self.dtype:   # the usual case, kept short
            if batched and s.shape == (LD, B, width):
                return s
            if not batched and s.shape == (LD, width):
                return s[:, None, :]
        name = self._name                              # else: the checks, one by one
        check_array(name, label, s, self.dtype)
        if batched and s.ndim != 3:
            raise ValueError(f"{name}: For batched 3-D input, {label} should also be 3-D "
                             f"(num_layers*num_directions, N, H) but got {s.ndim}-D array of "
                             f"shape {s.shape}")
        if not batched and s.ndim != 2:
            raise ValueError(f"{name}: For unbatched 2-D input, {label} should also be 2-D "
                             f"(num_layers*num_directions, H) but got {s.ndim}-D array of "
                             f"shape {s.shape}")
        check_shape(name, label, s, (LD, B, width) if batched else (LD, width))
        return s if batched else s[:, None, :]

    def _check_hx(self, hx, B, batched):
        if hx is None:                  # the usual case, kept short: the zero pair of this B
            pair = self._zero_hx.get(B)
            if pair is None:
                if len(self._zero_hx) >= 8:
                    self._zero_hx.clear()
                LD = self.num_layers * self.num_directions
                pair = self._zero_hx[B] = (
                    self._zero_state((LD, B, self._h_width)),
                    self._zero_state((LD, B, self.hidden_size)) if self.mode == "LSTM" else None)
            return pair
        H, P = self.hidden_size, self._h_width
        if self.mode == "LSTM":
            h0, c0 = hx if hx.__class__ is tuple and len(hx) == 2 else \
                _pair("LSTM", "hx", hx, "h0, c0")
            dt = self.dtype
            if (batched and h0.__class__ is np.ndarray and c0.__class__ is np.ndarray
                    and h0.dtype is dt and c0.dtype is dt):  # the usual case, kept short
                LD = self.num_layers * (2 if self.bidirectional else 1)
                if h0.shape == (LD, B, P) and c0.shape == (LD, B, H):
                    return h0, c0
            return (self._check_state("h0", h0, P, B, batched),
                    self._check_state("c0", c0, H, B, batched))
        if isinstance(hx, (tuple, list)):
            raise TypeError(f"{self._name}: hx must be an array h0 or None, got a "
                            f"{type(hx).__name__} (only LSTM takes a tuple (h0, c0))")
        return self._check_state("h0", hx, H, B, batched), None

    def forward(self, input: ArrayOrPacked, hx: StateIn = None
                ) -> Tuple[ArrayOrPacked, Union[FloatArray, StatePair]]:
        """Run the whole sequence. See the class docstring for shapes.

        Returns ``(output, h_n)`` (RNN, GRU) or ``(output, (h_n, c_n))`` (LSTM).
        """
        out = self._inference_call(input, hx)
        if out is not None:
            return out
        if isinstance(input, PackedSequence):
            return self._forward_packed(input, hx)
        X, batched = self._check_input(input)
        h0, c0 = self._check_hx(hx, X.shape[1], batched)
        masks = None
        if self.training and self.dropout > 0 and self.num_layers > 1:
            # every training forward draws fresh masks from self.generator (in eval() mode,
            # or with a single layer, there is no dropout and nothing is drawn)
            T, B = X.shape[:2]
            masks = functional.draw_dropout_masks(
                self.generator, self.dropout, self.num_layers - 1,
                (T, B, self.num_directions * self._h_width), self.dtype)
        record = is_grad_enabled()
        variant = self._variant_arg()
        if self.backend == "c":         # (what functional.rnn_forward would call: the module
            # checked at construction that the kernels compute its variant)
            out, h_n, c_n, tape = _backend_c.rnn_forward(
                self.mode, X, self._params, h0, c0, self.num_layers, self.bidirectional,
                record, masks, None, self._c_weights(), variant=variant, packs=self._c_packs())
        else:
            out, h_n, c_n, tape = functional.rnn_forward(
                self.mode, X, self._params, h0, c0, self.num_layers, self.bidirectional,
                need_tape=record, backend=self.backend, dropout_masks=masks, variant=variant)
        if record:
            self._tape.append(dict(tape=tape, batched=batched, out_shape=out.shape,
                                   state_shape=h_n.shape,
                                   cell_shape=None if c_n is None else c_n.shape))
        if batched and not self.batch_first:           # the layout of the kernels already
            return (out, (h_n, c_n)) if c_n is not None else (out, h_n)
        out, h_n, c_n = self._to_caller(out, batched), self._state_out(h_n, batched), \
            self._state_out(c_n, batched)
        return (out, (h_n, c_n)) if self.mode == "LSTM" else (out, h_n)

    def _inference_call(self, input, hx):
        """The usual streaming call, kept short: the full checks of ``forward`` were half of a
        one-step call of a small model. It applies to inference (``no_grad``) of one layer of
        PyTorch's cell on the compiled backend, time-major batched input and the state given,
        every array of the module's dtype and exactly the expected shape, and computes what
        the full path computes (the same kernel call). Anything else returns None: the full
        path then checks, explains and runs it."""
        d = self.__dict__
        plan = d.get("_plan")
        if plan is None or plan[0] is not d["variant"] or plan[1] is not d["backend"]:
            plan = self._inference_plan()
        _, _, code, dt, I, D, P, H = plan
        if (code is None or _grad_enabled.get() or d["batch_first"]
                or input.__class__ is not np.ndarray or input.dtype is not dt
                or input.ndim != 3 or input.shape[2] != I or input.shape[0] == 0):
            return None
        w, packs = d.get("_c_weights_cache"), d.get("_c_packs_cache")
        if w is None or packs is None:
            return None
        B = input.shape[1]
        if H is None:                                  # RNN, GRU: hx is h0
            if (hx.__class__ is not np.ndarray or hx.dtype is not dt
                    or hx.shape != (D, B, P)):
                return None
            Y, h_n, _ = _backend_c._kernels.infer_layer(code, input, w[0], hx, None, None,
                                                        packs[0])
            return Y, h_n
        if hx.__class__ is not tuple or len(hx) != 2:  # LSTM: hx is (h0, c0)
            return None
        h0, c0 = hx
        if (h0.__class__ is not np.ndarray or c0.__class__ is not np.ndarray
                or h0.dtype is not dt or c0.dtype is not dt
                or h0.shape != (D, B, P) or c0.shape != (D, B, H)):
            return None
        Y, h_n, c_n = _backend_c._kernels.infer_layer(code, input, w[0], h0, c0, None, packs[0])
        return Y, (h_n, c_n)

    def _forward_packed(self, packed, hx):
        """Packed input (see minirnn.packed): each sequence runs its own steps only.

        The packed rows are scattered into a zero-padded time-major batch of the *sorted*
        sequences (B = batch_sizes[0]), which the time loops run with ``batch_sizes``: at
        step t only the first batch_sizes[t] rows take a step, so a finished sequence's
        state stops changing and a reversed one starts from h0 at its own last step. h0/c0
        come in the caller's order and are sorted the same way; the output is gathered
        back from the valid positions, and h_n/c_n return in the caller's order.
        ``batch_first`` does not apply (a PackedSequence has one layout).
        """
        name = self._name
        data = check_array(name, "input.data", packed.data, self.dtype)
        if data.ndim != 2:
            raise ValueError(f"{name}: Expected the data of a PackedSequence to be 2-D "
                             f"(sum(lengths), H_in), got {data.ndim}-D array of shape "
                             f"{data.shape}")
        if data.shape[1] != self.input_size:
            raise ValueError(f"{name}: input.data.shape[-1] must be equal to input_size. "
                             f"Expected {self.input_size}, got {data.shape[1]}")
        bs, order, inverse = packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices
        T, B = len(bs), packed.batch_size              # B counts the empty sequences too
        h0, c0 = self._check_hx(hx, B, True)
        if order is not None:                          # states: caller's order -> sorted
            h0 = h0[:, order]
            c0 = None if c0 is None else c0[:, order]
        rows = packed_rows(bs, B)                      # where each data row sits in (T, B)
        X = padded_from_rows(data, rows, T, B)
        F = self.num_directions * self._h_width
        masks = None
        if self.training and self.dropout > 0 and self.num_layers > 1:
            # one mask element per valid (step, sequence, feature), in packed order, then
            # laid out like the padded batch (the padded positions carry nothing)
            masks = [padded_from_rows(m, rows, T, B) for m in functional.draw_dropout_masks(
                self.generator, self.dropout, self.num_layers - 1, (len(rows), F), self.dtype)]
        record = is_grad_enabled()
        variant = self._variant_arg()
        out, h_n, c_n, tape = functional.rnn_forward(
            self.mode, X, self._params, h0, c0, self.num_layers, self.bidirectional,
            need_tape=record, backend=self.backend, dropout_masks=masks, batch_sizes=bs,
            c_weights=self._c_weights(), variant=variant, c_packs=self._c_packs())
        out = out.reshape(T * B, F)[rows]
        if record:
            self._tape.append(dict(tape=tape, packed=packed, rows=rows,
                                   state_shape=h_n.shape,
                                   cell_shape=None if c_n is None else c_n.shape))
        if inverse is not None:                        # states: sorted -> caller's order
            h_n = h_n[:, inverse]
            c_n = None if c_n is None else c_n[:, inverse]
        out = PackedSequence(out, bs, order, inverse)
        return (out, (h_n, c_n)) if self.mode == "LSTM" else (out, h_n)

    def _to_caller(self, seq, batched):
        """time-major (L, N, F) -> the caller's layout."""
        if not batched:
            return seq[:, 0, :]
        if self.batch_first:
            return np.ascontiguousarray(seq.transpose(1, 0, 2))
        return seq

    def _from_caller(self, seq, batched):
        """the caller's layout -> time-major (L, N, F)."""
        if not batched:
            return seq[:, None, :]
        return seq.transpose(1, 0, 2) if self.batch_first else seq

    @staticmethod
    def _state_out(s, batched):
        if s is None or batched:
            return s
        return s[:, 0, :]

    # -- backward ---------------------------------------------------------------------------
    def backward(self, grad_output: Optional[ArrayOrPacked] = None, grad_state: StateIn = None
                 ) -> Tuple[ArrayOrPacked, Union[FloatArray, StatePair]]:
        """Backpropagate the latest forward not yet backpropagated.

        ``grad_output``: gradient of the loss w.r.t. ``output`` (same shape), or None; for a
        packed forward, a PackedSequence like ``output`` or its ``data`` array.
        ``grad_state``: gradient w.r.t. ``h_n`` (RNN, GRU) or a tuple ``(grad_h_n, grad_c_n)``
        (LSTM), each the shape of the forward's state, or None (zeros).
        Accumulates parameter gradients into ``self.grads`` and returns
        ``(grad_input, grad_h0)`` or, for LSTM, ``(grad_input, (grad_h0, grad_c0))``,
        in the shapes of the forward's input and states (``grad_h0`` is returned even
        when the forward had no ``h0``: it is the gradient w.r.t. the zero state).
        """
        name = self._name
        entry = self._latest_tape_entry()
        packed = entry.get("packed")
        batched = packed is not None or entry["batched"]
        LD, B, P = entry["state_shape"]
        if packed is not None:
            go = self._packed_grad_output(packed, grad_output)
        else:
            L, _, F = entry["out_shape"]
            out_shape = (L, F) if not batched else ((B, L, F) if self.batch_first else (L, B, F))
            go = _incoming_grad(name, "grad_output", grad_output, out_shape, self.dtype)
        state_shape = (LD, B, P) if batched else (LD, P)
        if self.mode == "LSTM":
            grad_state = _pair("LSTM", "grad_state", grad_state, "grad_h_n, grad_c_n")
            H = entry["cell_shape"][-1]
            cell_shape = (LD, B, H) if batched else (LD, H)
            gh = _incoming_grad(name, "grad_h_n", grad_state[0], state_shape, self.dtype)
            gc = _incoming_grad(name, "grad_c_n", grad_state[1], cell_shape, self.dtype)
        else:
            if isinstance(grad_state, (tuple, list)):
                raise TypeError(f"{name}: grad_state must be an array grad_h_n or None, got a "
                                f"{type(grad_state).__name__}")
            gh = _incoming_grad(name, "grad_h_n", grad_state, state_shape, self.dtype)
            gc = None
        if not batched:
            gh = gh[:, None, :]
            gc = None if gc is None else gc[:, None, :]
        if packed is not None:
            return self._backward_packed(entry, go, gh, gc)
        self._tape.pop()
        gx, gh0, gc0 = functional.rnn_backward(
            entry["tape"], self._from_caller(go, batched), gh, gc, self.grads)
        gx, gh0, gc0 = self._to_caller(gx, batched), self._state_out(gh0, batched), \
            self._state_out(gc0, batched)
        return (gx, (gh0, gc0)) if self.mode == "LSTM" else (gx, gh0)

    def _packed_grad_output(self, packed, grad_output):
        """The gradient of a packed output: a PackedSequence laid out like the output, its
        ``data`` array (sum(lengths), D*H_out), or None (zeros)."""
        name = self._name
        shape = (packed.data.shape[0], self.num_directions * self._h_width)
        if isinstance(grad_output, PackedSequence):
            if (not np.array_equal(grad_output.batch_sizes, packed.batch_sizes)
                    or _as_list(grad_output.sorted_indices) != _as_list(packed.sorted_indices)):
                raise ValueError(f"{name}: grad_output is a PackedSequence with batch_sizes "
                                 f"{grad_output.batch_sizes.tolist()} and sorted_indices "
                                 f"{_as_list(grad_output.sorted_indices)}; the forward's "
                                 f"output has {packed.batch_sizes.tolist()} and "
                                 f"{_as_list(packed.sorted_indices)}")
            grad_output = grad_output.data
        return _incoming_grad(name, "grad_output", grad_output, shape, self.dtype)

    def _backward_packed(self, entry, go, gh, gc):
        """The backward of _forward_packed: the same scatter, sort and gather, reversed."""
        packed, rows = entry["packed"], entry["rows"]
        bs, order, inverse = packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices
        T, B = len(bs), packed.batch_size
        if order is not None:                          # caller's order -> sorted
            gh = gh[:, order]
            gc = None if gc is None else gc[:, order]
        self._tape.pop()
        gx, gh0, gc0 = functional.rnn_backward(entry["tape"], padded_from_rows(go, rows, T, B),
                                               gh, gc, self.grads)
        gx = gx.reshape(T * B, gx.shape[-1])
        gx = PackedSequence(np.ascontiguousarray(gx[rows]), bs, order, inverse)
        if inverse is not None:                        # sorted -> caller's order
            gh0 = gh0[:, inverse]
            gc0 = None if gc0 is None else gc0[:, inverse]
        return (gx, (gh0, gc0)) if self.mode == "LSTM" else (gx, gh0)


def _as_list(a):
    return None if a is None else a.tolist()


_MODULE_DOC_COMMON = """
    Args:
        input_size: the number of features of ``x`` (``H_in``).
        hidden_size: the number of features of the state ``h`` (``H``).
        num_layers: the number of stacked layers; layer ``k > 0`` reads the
            outputs of layer ``k-1`` (both directions side by side). Default 1.
        bias: if False, there are no ``bias_ih``/``bias_hh`` parameters. Default True.
        batch_first: if True, ``input`` and ``output`` are ``(N, L, .)`` instead of
            ``(L, N, .)``. It never applies to the states ``h0``/``h_n``. Default False.
        dropout: probability ``p`` of zeroing each element of the outputs of each
            layer but the last, in training mode (``m.train()``, the default; ``m.eval()``
            turns it off). Kept elements are scaled by ``1/(1-p)``. The masks are fresh
            for every element, time step and call, drawn from ``m.generator`` (see
            Dropout below). A single layer with ``dropout > 0`` warns, as PyTorch.
            Default 0.0.
        bidirectional: if True, each layer also runs a second, reverse-time
            direction with its own parameters (suffix ``_reverse``). Default False.
        dtype: ``numpy.float32`` (default) or ``numpy.float64``. Inputs must have
            exactly this dtype: another is a ``TypeError``, never a silent cast.
        seed: seed (or ``numpy.random.Generator``) for ``numpy.random.default_rng``,
            which draws the initial parameters and then the dropout masks.
        backend: ``"c"`` (the compiled kernels), ``"numpy"`` (the readable reference
            path) or None (the default, ``"c"``). Both give the same results to rounding.

    Shapes (``L`` sequence length, ``N`` batch, ``D`` = 2 if bidirectional else 1):
        input:  ``(L, N, H_in)``, ``(N, L, H_in)`` if batch_first, or ``(L, H_in)`` unbatched
        h0, h_n: ``(D*num_layers, N, H)``, or ``(D*num_layers, H)`` unbatched (never batch-first)
        output: ``(L, N, D*H)``, ``(N, L, D*H)`` if batch_first, or ``(L, D*H)`` unbatched
        (an LSTM with ``proj_size = P > 0``: ``P`` instead of ``H`` in ``h0``, ``h_n`` and
        ``output``; ``c0``, ``c_n`` keep ``H``)

    ``output`` and ``h_n`` hold different things: ``output`` is the LAST layer at
    EVERY step, ``h_n`` is EVERY layer at the LAST step, indexed
    ``layer*D + direction`` (``h_n.reshape(num_layers, D, N, H)`` splits it). So
    ``output[-1, :, :H] == h_n[-D]`` (last layer, forward direction) and, for a
    bidirectional model, the reverse direction's final state is at the *first*
    step: ``output[0, :, H:] == h_n[-1]`` (``output[-1]`` is not it).
    ``output`` grows with the sequence length; ``h_n`` does not.

    Packed input (variable lengths): ``input`` may be a :class:`minirnn.PackedSequence`
    (from ``minirnn.pack_padded_sequence`` or ``pack_sequence``); ``output`` is then a
    PackedSequence laid out the same way, with ``data`` ``(sum(lengths), D*H)``. Each
    sequence runs only its own steps, as if alone: ``h_n`` holds each one's own last step,
    the reverse direction starts at each one's own last step, and ``h0``/``h_n`` are in the
    caller's batch order ``(D*num_layers, N, H)``. ``batch_first`` does not apply. The
    backward takes the output gradient as a PackedSequence (or its ``data``) and returns
    the input gradient as one.

    Initialization: every parameter is drawn from U(-k, k), k = 1/sqrt(hidden_size),
    in the order of ``state_dict()``, from ``numpy.random.default_rng(seed)``.

    Dropout: ``m.generator`` is that same generator, continuing after the parameters.
    Each training-mode forward of a model with ``dropout = p > 0`` and more than one
    layer draws, for each layer but the last in order, ``m.generator.random((L, N,
    D*H_out))`` (time-major whatever ``batch_first``; float64 whatever the dtype) and
    keeps an element where the number is ``>= p``; the mask (0 or ``1/(1-p)``, all
    zeros for ``p = 1``) multiplies that layer's output and is kept for the backward.
    Evaluation mode and single-layer models draw nothing. So the same seed and the
    same calls give the same masks on both backends and in both dtypes; assign
    ``m.generator = numpy.random.default_rng(s)`` to reseed the masks alone.

    Backward: ``m.backward(grad_output, grad_state)`` backpropagates the latest
    forward not yet backpropagated (a last-in-first-out tape), accumulates the
    parameter gradients into ``m.grads`` (keys as ``state_dict``) and returns the
    gradients of the input and of the initial state. ``m.zero_grad()`` clears
    ``m.grads``. Under ``minirnn.no_grad()`` a forward records nothing.

    Empty sequences: a PackedSequence made with ``allow_empty=True`` may hold sequences
    of length 0; for those ``h_n``/``c_n`` are their ``h0``/``c0``, they add nothing to
    the output, and the backward passes ``grad_h_n`` straight to ``grad_h0``.

    Cell variants (keyword-only; the defaults compute PyTorch's cell, see
    :mod:`minirnn.variants`): ``cell_clip=None`` (a positive float clips every gate
    pre-activation to ``[-cell_clip, cell_clip]``, ONNX's ``clip``), ``activations=None``
    (ONNX's names, one per slot: LSTM ``f, g, h``, GRU ``f, g``, RNN ``f``; twice as many
    for a bidirectional module, forward's first; each a name or ``(name, alpha, beta)``),
    ``reverse=False`` (a unidirectional module run from each sequence's last step to its
    first, output in the input's time order), and per mode ``GRU(reset_after=True)``,
    ``LSTM(peephole=False, coupled_input_forget=False)``. With ``backend=None`` a variant
    the compiled kernels cannot compute yet runs on the NumPy path (``m.backend`` says
    which); ``backend="c"`` for it raises NotImplementedError.
"""


class RNN(_RNNBase):
    __doc__ = """Elman RNN with tanh or ReLU, stacked and optionally bidirectional.

    For each element of the input sequence, each layer computes::

        h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)

    where ``act`` is tanh or relu, ``h_t`` is the state at time ``t`` and ``x_t``
    the layer's input (the sequence for layer 0, the previous layer's outputs
    above it). ``weight_ih`` is the textbook's ``W``, ``weight_hh`` its ``U``.

    Parameters (``k`` the layer, suffix ``_reverse`` for the reverse direction):
        weight_ih_l{k}: ``(H, H_in)`` for k = 0, else ``(H, D*H)``
        weight_hh_l{k}: ``(H, H)``
        bias_ih_l{k}, bias_hh_l{k}: ``(H,)``

    nonlinearity: ``'tanh'`` (default) or ``'relu'`` (its derivative at 0 is 0).
    """ + _MODULE_DOC_COMMON

    if TYPE_CHECKING:           # what a type checker sees: the output's type follows the input's
        @overload
        def forward(self, input: PackedSequence, hx: StateIn = None
                    ) -> Tuple[PackedSequence, FloatArray]: ...
        @overload
        def forward(self, input: FloatArray, hx: StateIn = None
                    ) -> Tuple[FloatArray, FloatArray]: ...
        def forward(self, input: ArrayOrPacked, hx: StateIn = None
                    ) -> Tuple[ArrayOrPacked, FloatArray]: ...
        __call__ = forward

        def backward(self, grad_output: Optional[ArrayOrPacked] = None,
                     grad_state: StateIn = None) -> Tuple[ArrayOrPacked, FloatArray]: ...

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, *,
                 dtype: DType = np.float32, seed: Seed = None, backend: Optional[str] = None,
                 proj_size: int = _NOT_GIVEN, cell_clip: Optional[float] = None,
                 activations: Optional[Sequence[Activation]] = None,
                 reverse: bool = False) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity {nonlinearity!r}. Select from 'tanh' or 'relu'.")
        self.nonlinearity = nonlinearity
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size,
                         hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, dtype=dtype, seed=seed, backend=backend,
                         cell_clip=cell_clip, activations=activations, reverse=reverse)


class GRU(_RNNBase):
    __doc__ = """Gated recurrent unit, stacked and optionally bidirectional.

    For each element of the input sequence, each layer computes::

        r_t = sigmoid(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
        z_t = sigmoid(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
        n_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn))
        h_t = (1 - z_t) * n_t + z_t * h_{t-1}

    ``r``, ``z``, ``n`` are the reset gate, update gate and candidate. The reset
    gate multiplies ``W_hn h + b_hn`` after the product ("reset after", as PyTorch
    and cuDNN; Cho et al. put it inside: ``W_hn (r * h)``).

    Gate order **r, z, n**: rows ``k*H:(k+1)*H`` of ``weight_ih`` are
    ``W_ir | W_iz | W_in``, of ``weight_hh`` ``W_hr | W_hz | W_hn``.

    Parameters:
        weight_ih_l{k}: ``(3H, H_in)`` for k = 0, else ``(3H, D*H)``
        weight_hh_l{k}: ``(3H, H)``
        bias_ih_l{k}, bias_hh_l{k}: ``(3H,)``

    reset_after: ``True`` (default) is the form above; ``False`` computes Cho et al.'s
    ``n_t = tanh(W_in x_t + b_in + W_hn (r_t * h_{t-1}) + b_hn)`` (ONNX's default
    ``linear_before_reset=0``, Keras ``reset_after=False``), with the same parameters.
    """ + _MODULE_DOC_COMMON

    if TYPE_CHECKING:           # what a type checker sees: the output's type follows the input's
        @overload
        def forward(self, input: PackedSequence, hx: StateIn = None
                    ) -> Tuple[PackedSequence, FloatArray]: ...
        @overload
        def forward(self, input: FloatArray, hx: StateIn = None
                    ) -> Tuple[FloatArray, FloatArray]: ...
        def forward(self, input: ArrayOrPacked, hx: StateIn = None
                    ) -> Tuple[ArrayOrPacked, FloatArray]: ...
        __call__ = forward

        def backward(self, grad_output: Optional[ArrayOrPacked] = None,
                     grad_state: StateIn = None) -> Tuple[ArrayOrPacked, FloatArray]: ...

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, *, dtype: DType = np.float32, seed: Seed = None,
                 backend: Optional[str] = None, proj_size: int = _NOT_GIVEN,
                 reset_after: bool = True, cell_clip: Optional[float] = None,
                 activations: Optional[Sequence[Activation]] = None,
                 reverse: bool = False) -> None:
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, proj_size, dtype=dtype, seed=seed, backend=backend,
                         reset_after=reset_after, cell_clip=cell_clip, activations=activations,
                         reverse=reverse)


class LSTM(_RNNBase):
    __doc__ = """Long short-term memory, stacked and optionally bidirectional.

    For each element of the input sequence, each layer computes::

        i_t = sigmoid(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)
        f_t = sigmoid(W_if x_t + b_if + W_hf h_{t-1} + b_hf)
        g_t = tanh(W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)
        o_t = sigmoid(W_io x_t + b_io + W_ho h_{t-1} + b_ho)
        c_t = f_t * c_{t-1} + i_t * g_t
        h_t = o_t * tanh(c_t)

    ``i``, ``f``, ``g``, ``o`` are the input, forget, cell and output gates.

    Gate order **i, f, g, o**: rows ``k*H:(k+1)*H`` of ``weight_ih`` are the
    paper's ``W_i | W_f | W_g | W_o``, of ``weight_hh`` its ``U_i | U_f | U_g | U_o``;
    one ``(4H, .)`` product computes all four.

    Parameters:
        weight_ih_l{k}: ``(4H, H_in)`` for k = 0, else ``(4H, D*H_out)``
        weight_hh_l{k}: ``(4H, H_out)``
        bias_ih_l{k}, bias_hh_l{k}: ``(4H,)``
        weight_hr_l{k}: ``(P, H)``, only with ``proj_size = P > 0``

    The state is a pair: ``m(x, (h0, c0))`` returns ``output, (h_n, c_n)``.
    ``hx=None``, or either of ``h0``/``c0`` None, means zeros.

    proj_size: with ``P = proj_size > 0`` (``0 <= P < hidden_size``), each step's
    ``o_t * tanh(c_t)`` is projected to ``P`` features, ``h_t = (o_t * tanh(c_t))
    W_hr^T`` (no bias), and that ``h_t`` is both the output and the recurrent state:
    ``H_out = P`` in ``h0``, ``h_n``, ``output`` and ``W_hh`` (``(4H, P)``), the layers
    above the first read ``D*P`` features, while ``c0``/``c_n`` stay ``H`` wide.
    ``weight_hr`` starts in ±1/sqrt(hidden_size) like every parameter. Without
    projections ``H_out = H``.

    peephole: if True, each layer and direction also has ``weight_peephole_l{k}``
    ``(3H,)`` (blocks ``p_i | p_f | p_o``, drawn like the others, after ``weight_hr``)
    and the gates see the cell state: ``i_t = sigmoid(... + p_i * c_{t-1})``,
    ``f_t = sigmoid(... + p_f * c_{t-1})``, ``o_t = sigmoid(... + p_o * c_t)``.
    coupled_input_forget: if True, ``f_t = 1 - i_t`` (ONNX ``input_forget=1``); the forget
    gate's rows of the weights are then unused (zero gradient).
    """ + _MODULE_DOC_COMMON

    if TYPE_CHECKING:           # what a type checker sees: the output's type follows the input's
        @overload
        def forward(self, input: PackedSequence, hx: StateIn = None
                    ) -> Tuple[PackedSequence, StatePair]: ...
        @overload
        def forward(self, input: FloatArray, hx: StateIn = None
                    ) -> Tuple[FloatArray, StatePair]: ...
        def forward(self, input: ArrayOrPacked, hx: StateIn = None
                    ) -> Tuple[ArrayOrPacked, StatePair]: ...
        __call__ = forward

        def backward(self, grad_output: Optional[ArrayOrPacked] = None,
                     grad_state: StateIn = None) -> Tuple[ArrayOrPacked, StatePair]: ...

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0, *, dtype: DType = np.float32,
                 seed: Seed = None, backend: Optional[str] = None, peephole: bool = False,
                 coupled_input_forget: bool = False, cell_clip: Optional[float] = None,
                 activations: Optional[Sequence[Activation]] = None,
                 reverse: bool = False) -> None:
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, proj_size, dtype=dtype, seed=seed, backend=backend,
                         peephole=peephole, coupled_input_forget=coupled_input_forget,
                         cell_clip=cell_clip, activations=activations, reverse=reverse)


# =========================================================================================== cells

class _CellBase(_Module):
    """One time step. Runs the same code as one step of a 1-layer module."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, bias: bool = True, *,
                 dtype: DType = np.float32, seed: Seed = None, backend: Optional[str] = None,
                 **variant: Any) -> None:
        self.mode = mode
        self.input_size = check_size("input_size", input_size)
        self.hidden_size = check_size("hidden_size", hidden_size)
        self.bias = check_bool("bias", bias)
        self.dtype = check_dtype(dtype)
        #: the cell variant (minirnn.variants.Variant; Variant() = PyTorch's cell)
        self.variant = make_variant(mode, **variant)
        for k in variant:
            setattr(self, k, getattr(self.variant, k))
        self.backend = _variant_backend(type(self).__name__, backend, mode, self.variant)
        G, H = CELLS[mode].gates, self.hidden_size
        check_parameter_bytes(
            type(self).__name__, [("input_size", self.input_size), ("hidden_size", H)],
            G * H * (self.input_size + H + 2 * self.bias) + (3 * H if self.variant.peephole else 0),
            self.dtype)
        shapes: Dict[str, Tuple[int, ...]] = {"weight_ih": (G * H, self.input_size),
                                              "weight_hh": (G * H, H)}
        if self.bias:
            shapes.update(bias_ih=(G * H,), bias_hh=(G * H,))
        if self.variant.peephole:
            shapes["weight_peephole"] = (3 * H,)
        self._init_parameters(shapes, H, self.dtype, seed)

    # as PyTorch's cells: without bias, the biases are registered as None
    _absent_parameters = ("bias_ih", "bias_hh")


    def _c_weights(self):
        """The compiled kernels' weight tuples of this cell (as a module's ``_c_weights``),
        built once: the parameter arrays never change identity."""
        w = self.__dict__.get("_c_weights_cache")
        if w is None:
            w = self._c_weights_cache = _backend_c.model_weights(
                self._layer_params(self._params), 1, 1)
        return w

    def _c_packs(self):
        """Where the kernels keep this cell's packed weights between steps (as a module's
        ``_c_packs``): used again while the parameters hold the same numbers."""
        p = self.__dict__.get("_c_packs_cache")
        if p is None:
            p = self._c_packs_cache = _backend_c.model_packs(1)
        return p

    def __repr__(self) -> str:
        s = f"{type(self).__name__}({self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity}"
        if not self.variant.is_default:
            s += ", " + self.variant.describe()
        if self.dtype != np.float32:
            s += f", dtype={self.dtype}"
        return s + ")"

    def _layer_params(self, d):
        """{cell name: x} -> {layer-0 module name: x}, as functional.rnn_forward expects."""
        return {f"{k}_l0": v for k, v in d.items()}

    def _check_cell_state(self, label, s, B, batched):
        H = self.hidden_size
        if s is None:
            return self._zero_state((B, H))
        if s.__class__ is np.ndarray and s.dtype is self.dtype:   # the usual case, kept short
            if batched and s.shape == (B, H):
                return s
            if not batched and s.shape == (H,):
                return s[None, :]
        name = type(self).__name__                     # else: the checks, one by one
        check_array(name, label, s, self.dtype)
        if s.ndim not in (1, 2):
            raise ValueError(f"{name}: Expected {label} to be 1-D (H,) or 2-D (N, H), got "
                             f"{s.ndim}-D array of shape {s.shape}")
        expected = (B, H) if batched else (H,)
        if s.shape != expected:
            raise ValueError(f"{name}: Expected {label} of shape {expected} for input of "
                             f"{'batch ' + str(B) if batched else 'unbatched shape'}, got {s.shape}")
        return s if batched else s[None, :]

    def forward(self, input: FloatArray, hx: StateIn = None) -> Union[FloatArray, StatePair]:
        """One step: returns ``h'`` (RNNCell, GRUCell) or ``(h', c')`` (LSTMCell)."""
        out = self._inference_step(input, hx)
        if out is not None:
            return out
        name = type(self).__name__
        if input.__class__ is not np.ndarray or input.dtype is not self.dtype:
            check_array(name, "input", input, self.dtype)    # raises unless an equal dtype
        if input.ndim not in (1, 2):
            raise ValueError(f"{name}: Expected input to be 1-D (H_in,) or 2-D (N, H_in), got "
                             f"{input.ndim}-D array of shape {input.shape}")
        if input.shape[-1] != self.input_size:
            raise ValueError(f"{name}: input.shape[-1] must be equal to input_size. Expected "
                             f"{self.input_size}, got {input.shape[-1]} (input shape {input.shape})")
        batched = input.ndim == 2
        X = input[None] if batched else input[None, None]            # (1, N, H_in)
        B = X.shape[1]
        if self.mode == "LSTM":
            if hx.__class__ is not tuple or len(hx) != 2:
                hx = _pair("LSTMCell", "hx", hx, "h, c")
            h0 = self._check_cell_state("h", hx[0], B, batched)
            c0 = self._check_cell_state("c", hx[1], B, batched)[None]
        else:
            if isinstance(hx, (tuple, list)):
                raise TypeError(f"{name}: hx must be an array h or None, got a "
                                f"{type(hx).__name__} (only LSTMCell takes a tuple (h, c))")
            h0, c0 = self._check_cell_state("h", hx, B, batched), None
        record = is_grad_enabled()
        if self.backend == "c":         # (what functional.rnn_forward would call, with the
            # weight tuples and panels kept: the cell checked at construction that the kernels
            # compute its variant)
            _, h_n, c_n, tape = _backend_c.rnn_forward(
                self.mode, X, None, h0[None], c0, 1, False, record, None, None,
                self._c_weights(), variant=self._variant_arg(), packs=self._c_packs())
        else:
            _, h_n, c_n, tape = functional.rnn_forward(
                self.mode, X, self._layer_params(self._params), h0[None], c0, 1, False,
                need_tape=record, backend=self.backend, variant=self._variant_arg())
        if record:
            self._tape.append(dict(tape=tape, batched=batched, B=B))
        h = h_n[0] if batched else h_n[0, 0]
        if self.mode == "LSTM":
            c = cast(FloatArray, c_n)                  # an LSTM's rnn_forward returns c_n
            return h, (c[0] if batched else c[0, 0])
        return h

    def _inference_step(self, input, hx):
        """The usual streaming step, kept short (as a module's ``_inference_call``): inference
        of PyTorch's cell on the compiled backend, batched input (N, H_in) and the state given,
        every array of the cell's dtype and shape. Anything else returns None (the full path)."""
        d = self.__dict__
        plan = d.get("_plan")
        if plan is None or plan[0] is not d["variant"] or plan[1] is not d["backend"]:
            plan = self._inference_plan()
        _, _, code, dt, I, _, H, C = plan
        if (code is None or _grad_enabled.get() or input.__class__ is not np.ndarray
                or input.dtype is not dt or input.ndim != 2 or input.shape[1] != I):
            return None
        w, packs = d.get("_c_weights_cache"), d.get("_c_packs_cache")
        if w is None or packs is None:
            return None
        shape = (input.shape[0], H)
        if C is None:                                  # RNNCell, GRUCell: hx is h
            if hx.__class__ is not np.ndarray or hx.dtype is not dt or hx.shape != shape:
                return None
            _, h_n, _ = _backend_c._kernels.infer_layer(code, input[None], w[0], hx[None],
                                                        None, None, packs[0])
            return h_n[0]
        if hx.__class__ is not tuple or len(hx) != 2:  # LSTMCell: hx is (h, c)
            return None
        h, c = hx
        if (h.__class__ is not np.ndarray or c.__class__ is not np.ndarray
                or h.dtype is not dt or c.dtype is not dt or h.shape != shape
                or c.shape != shape):
            return None
        _, h_n, c_n = _backend_c._kernels.infer_layer(code, input[None], w[0], h[None],
                                                      c[None], None, packs[0])
        return h_n[0], c_n[0]

    def backward(self, grad: StateIn) -> Tuple[FloatArray, Union[FloatArray, StatePair]]:
        """Backpropagate the latest step not yet backpropagated.

        ``grad``: gradient w.r.t. the step's ``h`` (RNNCell, GRUCell) or a tuple
        ``(grad_h, grad_c)`` (LSTMCell); None means zeros. Accumulates into
        ``self.grads``; returns ``(grad_input, grad_h_prev)`` or, for LSTMCell,
        ``(grad_input, (grad_h_prev, grad_c_prev))``.
        """
        name = type(self).__name__
        entry = self._latest_tape_entry()
        batched, B, H = entry["batched"], entry["B"], self.hidden_size
        shape = (B, H) if batched else (H,)
        if self.mode == "LSTM":
            grad = _pair("LSTMCell", "grad", grad, "grad_h, grad_c")
            gh = _incoming_grad(name, "grad_h", grad[0], shape, self.dtype)
            gc = _incoming_grad(name, "grad_c", grad[1], shape, self.dtype).reshape(1, B, H)
        else:
            if isinstance(grad, (tuple, list)):
                raise TypeError(f"{name}: grad must be an array grad_h or None, got a "
                                f"{type(grad).__name__}")
            gh, gc = _incoming_grad(name, "grad_h", grad, shape, self.dtype), None
        self._tape.pop()
        gx, gh0, gc0 = functional.rnn_backward(
            entry["tape"], np.zeros((1, B, H), dtype=self.dtype), gh.reshape(1, B, H), gc,
            self._layer_params(self.grads))
        gx = gx[0] if batched else gx[0, 0]
        unb = (lambda s: s[0]) if batched else (lambda s: s[0, 0])
        if self.mode == "LSTM":
            return gx, (unb(gh0), unb(gc0))
        return gx, unb(gh0)


_CELL_DOC_COMMON = """
    Args:
        input_size: the number of features of ``x`` (``H_in``).
        hidden_size: the number of features of ``h`` (``H``).
        bias: if False, there are no biases (``cell.bias_ih is None``). Default True.
        dtype, seed, backend: as for the modules.

    Shapes: ``x`` is ``(N, H_in)`` or unbatched ``(H_in,)``; states are ``(N, H)``
    or ``(H,)``. A cell is one step: no ``num_layers``, no direction and no time axis,
    unlike the modules (whose input is ``(L, N, H_in)`` and states ``(D*num_layers, N, H)``).
    A state of None means zeros.

    Initialization: every parameter from U(-k, k), k = 1/sqrt(hidden_size), in the
    order weight_ih, weight_hh, bias_ih, bias_hh (, weight_peephole).

    Cell variants (keyword-only, as for the modules; the defaults are PyTorch's cells):
    ``cell_clip=None``, ``activations=None`` (one per slot: LSTMCell ``f, g, h``, GRUCell
    ``f, g``, RNNCell ``f``), ``GRUCell(reset_after=True)``, ``LSTMCell(peephole=False,
    coupled_input_forget=False)`` (the peepholes are ``weight_peephole (3H,)``, blocks i, f, o).

    Backward: each ``backward`` call backpropagates the latest step not yet
    backpropagated, so after a loop of ``T`` steps, call it ``T`` times in reverse
    order, adding the returned state gradient to the next (earlier) step's.
"""


class RNNCell(_CellBase):
    __doc__ = """One step of an Elman RNN: ``h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh)``.

    ``h = cell(x, h)``; ``grad_x, grad_h_prev = cell.backward(grad_h)``.

    Parameters: ``weight_ih (H, H_in)``, ``weight_hh (H, H)``, ``bias_ih (H,)``,
    ``bias_hh (H,)``. nonlinearity: ``'tanh'`` (default) or ``'relu'``.
    """ + _CELL_DOC_COMMON

    if TYPE_CHECKING:           # what a type checker sees: a step returns h'
        def forward(self, input: FloatArray, hx: StateIn = None) -> FloatArray: ...
        __call__ = forward

        def backward(self, grad: StateIn) -> Tuple[FloatArray, FloatArray]: ...

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", *, dtype: DType = np.float32, seed: Seed = None,
                 backend: Optional[str] = None, cell_clip: Optional[float] = None,
                 activations: Optional[Sequence[Activation]] = None) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity {nonlinearity!r}. Select from 'tanh' or 'relu'.")
        self.nonlinearity = nonlinearity
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size,
                         hidden_size, bias, dtype=dtype, seed=seed, backend=backend,
                         cell_clip=cell_clip, activations=activations)


class GRUCell(_CellBase):
    __doc__ = """One step of a GRU (equations as :class:`GRU`, gate order r, z, n).

    ``h = cell(x, h)``; ``grad_x, grad_h_prev = cell.backward(grad_h)``.

    Parameters: ``weight_ih (3H, H_in)``, ``weight_hh (3H, H)``, ``bias_ih (3H,)``,
    ``bias_hh (3H,)``.
    """ + _CELL_DOC_COMMON

    if TYPE_CHECKING:           # what a type checker sees: a step returns h'
        def forward(self, input: FloatArray, hx: StateIn = None) -> FloatArray: ...
        __call__ = forward

        def backward(self, grad: StateIn) -> Tuple[FloatArray, FloatArray]: ...

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *,
                 dtype: DType = np.float32, seed: Seed = None, backend: Optional[str] = None,
                 reset_after: bool = True, cell_clip: Optional[float] = None,
                 activations: Optional[Sequence[Activation]] = None) -> None:
        super().__init__("GRU", input_size, hidden_size, bias, dtype=dtype, seed=seed,
                         backend=backend, reset_after=reset_after, cell_clip=cell_clip,
                         activations=activations)


class LSTMCell(_CellBase):
    __doc__ = """One step of an LSTM (equations as :class:`LSTM`, gate order i, f, g, o).

    ``h, c = cell(x, (h, c))``;
    ``grad_x, (grad_h_prev, grad_c_prev) = cell.backward((grad_h, grad_c))``.

    Parameters: ``weight_ih (4H, H_in)``, ``weight_hh (4H, H)``, ``bias_ih (4H,)``,
    ``bias_hh (4H,)``.
    """ + _CELL_DOC_COMMON

    if TYPE_CHECKING:           # what a type checker sees: a step returns (h', c')
        def forward(self, input: FloatArray, hx: StateIn = None) -> StatePair: ...
        __call__ = forward

        def backward(self, grad: StateIn) -> Tuple[FloatArray, StatePair]: ...

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *,
                 dtype: DType = np.float32, seed: Seed = None, backend: Optional[str] = None,
                 peephole: bool = False, coupled_input_forget: bool = False,
                 cell_clip: Optional[float] = None,
                 activations: Optional[Sequence[Activation]] = None) -> None:
        super().__init__("LSTM", input_size, hidden_size, bias, dtype=dtype, seed=seed,
                         backend=backend, peephole=peephole,
                         coupled_input_forget=coupled_input_forget, cell_clip=cell_clip,
                         activations=activations)

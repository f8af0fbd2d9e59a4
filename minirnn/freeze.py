"""``minirnn.freeze``: an inference copy of a module whose weights cannot change.

A module's parameters are plain writable NumPy arrays, so the compiled kernels cannot know
whether a parameter was written in place since they packed it into panels: on every call they
read the weights once more to compare a fingerprint of their bytes (``csrc/fingerprint.h``).
In a streaming call (batch 1, one step per call) that read costs about as much as the step's
product itself.

A frozen module holds its parameters in memory that belongs to an immutable ``bytes`` object
(``numpy.frombuffer``): NumPy refuses to make such an array, or any view of it, writeable, so
nothing in the process can change those numbers. The kernels recognise these arrays (their
chain of bases ends in a ``bytes`` object) and, given the very weight tuple they packed from,
use the panels without reading the weights again. Like ``torch.jit.freeze``: for serving.

What a frozen module refuses, each with an error naming the module, the parameter and what to
do: assigning a parameter (``m.weight_hh_l0 = w``), ``load_state_dict``, an optimizer over it
(the optimizers refuse any read-only parameter array), ``gradcheck`` of its parameters. A write
into the array itself (``m.weight_hh_l0[...] = 0``) is NumPy's own ``ValueError: assignment
destination is read-only``. Forward and backward work as on any module: gradients with
respect to the input and the initial state are computed, and the parameter gradients still
accumulate into ``m.grads`` (writable arrays).
"""
from __future__ import annotations

import copy
from typing import Any, Dict, TypeVar

import numpy as np

from ._validation import canonical_dtype
from .modules import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell, _Module

__all__ = ["freeze"]

_FREEZABLE = (RNN, GRU, LSTM, RNNCell, GRUCell, LSTMCell)
_M = TypeVar("_M", RNN, GRU, LSTM, RNNCell, GRUCell, LSTMCell)

#: what a module keeps derived from its parameters and settings: a copy starts without it (the
#: kernels' weight tuples and packed panels must be those of the new arrays; the short path's plan)
DERIVED_STATE = ("_c_weights_cache", "_c_packs_cache", "_plan")
#: caches rebuilt on first use, started empty in a frozen copy
EMPTY_CACHES = ("_zeros", "_zero_hx")


def frozen_state(d: Dict[str, Any]) -> Dict[str, Any]:
    """A copy of a module's ``__dict__`` d without DERIVED_STATE, with EMPTY_CACHES emptied:
    what a frozen module copies or pickles."""
    return {k: ({} if k in EMPTY_CACHES else v) for k, v in d.items() if k not in DERIVED_STATE}


def is_immutable(a: Any) -> bool:
    """Whether ``a`` is a read-only ndarray whose memory belongs to a ``bytes`` object (its chain
    of bases ends in one): no write can ever change its numbers. The kernels make the same
    test, in C, before they skip the weights' fingerprint."""
    if not isinstance(a, np.ndarray) or a.flags.writeable:
        return False
    while isinstance(a, np.ndarray):
        a = a.base
    return type(a) is bytes


def immutable_copy(a: np.ndarray) -> np.ndarray:
    """``a`` itself if it is immutable, else a C-contiguous copy of it over a new ``bytes``
    object (read-only, and NumPy refuses to make it writeable)."""
    if is_immutable(a) and a.flags.c_contiguous:
        return a
    return np.frombuffer(np.ascontiguousarray(a).tobytes(), dtype=a.dtype).reshape(a.shape)


def freeze(module: _M) -> _M:
    """A new module of the same class whose parameters can never change, for inference.

    ``module``: an :class:`~minirnn.RNN`, :class:`~minirnn.GRU`, :class:`~minirnn.LSTM` or a
    cell (:class:`~minirnn.RNNCell`, :class:`~minirnn.GRUCell`, :class:`~minirnn.LSTMCell`).
    It is not changed and stays trainable.

    The copy has the same configuration, training flag, cell variant, dtype, backend and
    dropout generator state (an independent generator in the same state), and parameters equal
    to the original's in read-only arrays over immutable ``bytes`` objects; its ``grads`` are
    zeros and its tape is empty. Its outputs are bitwise equal to the original's. Because its
    weights cannot change, the compiled kernels skip re-reading them on every call (the
    fingerprint of "pack once"): a streaming LSTM call (batch 1, one step) is about a quarter
    faster at hidden size 128 (see docs/performance.md, "Frozen weights").

    ``m.frozen`` tells a frozen module. Assigning a parameter, ``load_state_dict`` and building
    an optimizer over it raise a ValueError; to serve other weights, load them into a
    trainable module and freeze that one again. Writing into a parameter array in place raises
    NumPy's ``ValueError: assignment destination is read-only``. A frozen module stays frozen
    through ``copy.deepcopy`` and pickle (and so in multiprocessing workers), and freezing it
    again returns another frozen copy.
    """
    if not isinstance(module, _FREEZABLE):
        raise TypeError("minirnn.freeze: module must be an RNN, GRU, LSTM, RNNCell, GRUCell or "
                        f"LSTMCell, got {type(module).__name__}")
    params = module._params
    frozen = {name: immutable_copy(p) for name, p in params.items()}
    # Copy everything else, with every reference to a parameter array (in a cache we do not
    # know of, say) turned into its immutable copy; a new module backpropagates nothing yet.
    state = frozen_state(module.__dict__)
    memo: Dict[int, Any] = {id(p): frozen[name] for name, p in params.items()}
    memo[id(params)] = frozen
    memo[id(state["_tape"])] = []
    memo[id(state["grads"])] = {name: np.zeros_like(p) for name, p in frozen.items()}
    new = object.__new__(type(module))
    memo[id(state["dtype"])] = canonical_dtype(state["dtype"])   # not a copy: the short paths
    new.__dict__.update(copy.deepcopy(state, memo))                # compare dtypes by identity
    new.__dict__["_frozen"] = True
    return new


def refreeze(module: _Module) -> None:
    """After un-pickling or ``copy.deepcopy`` of a frozen module (its state was
    :func:`frozen_state`; NumPy restores arrays as writable copies): its parameters back into
    immutable arrays."""
    d = module.__dict__
    d["_params"] = {name: immutable_copy(p) for name, p in d["_params"].items()}

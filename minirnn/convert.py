"""Weight conversion between minirnn (PyTorch's layout) and other frameworks.

Plain functions on NumPy arrays, both directions. minirnn's parameters are PyTorch's: for
layer ``k`` and direction suffix ``''`` (forward) or ``'_reverse'``:

======================================  ====================  ===============================
name                                    shape                 content
======================================  ====================  ===============================
``weight_ih_l{k}{sfx}``                 ``(G*H, I_k)``        gate blocks stacked on rows
``weight_hh_l{k}{sfx}``                 ``(G*H, H)``
``bias_ih_l{k}{sfx}``                   ``(G*H,)``            absent with ``bias=False``
``bias_hh_l{k}{sfx}``                   ``(G*H,)``            absent with ``bias=False``
``weight_peephole_l{k}{sfx}``           ``(3*H,)``            LSTM ``peephole=True``: i, f, o
``weight_hr_l{k}{sfx}``                 ``(P, H)``            LSTM ``proj_size=P`` only
======================================  ====================  ===============================

``G`` is the number of gates (Elman RNN 1, GRU 3, LSTM 4), ``I_0`` the input size and
``I_k = D*H`` above the first layer. The gate blocks (``H`` rows each) are stacked in
PyTorch's order: LSTM **i, f, g, o**, GRU **r, z, n**. Every matrix is applied as
``x @ W.T``.

Gate orders elsewhere (``g``, ``c``, ``c~`` are names of the LSTM cell candidate; ``n``,
``h``, ``o`` of the GRU's):

============================  ================  ==============
framework                     LSTM              GRU
============================  ================  ==============
PyTorch, minirnn, cuDNN       i, f, g, o        r, z, n
ONNX                          i, o, f, c        z, r, h
Keras 3                       i, f, c, o        z, r, h
oneDNN                        i, f, c~, o       u, r, o  (u = z)
============================  ================  ==============

Every function checks its arguments (types, keys, shapes, consistent sizes) and raises
``ValueError``/``TypeError`` naming the argument, what it got and what it expected. Outputs
are new arrays (never views of the inputs) in the dtype of the inputs. A conversion and its
inverse give back the original arrays exactly (only block moves and transposes), except where
a format merges the two biases (Keras LSTM/SimpleRNN, oneDNN's ``ldgo``): there the way back
is one of many splits, documented with the function.
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

__all__ = [
    "GATES", "block_permute", "gate_order",
    "to_onnx", "from_onnx",
]

#: number of gate blocks per mode
GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "RNN": 1, "GRU": 3, "LSTM": 4}

_MODES = ("RNN_TANH", "RNN_RELU", "RNN", "GRU", "LSTM")

#: gate names of each framework, in its stacking order
_ORDERS: Dict[Tuple[str, str], Tuple[str, ...]] = {
    ("torch", "LSTM"): ("i", "f", "g", "o"), ("torch", "GRU"): ("r", "z", "n"),
    ("onnx", "LSTM"): ("i", "o", "f", "g"), ("onnx", "GRU"): ("z", "r", "n"),
    ("keras", "LSTM"): ("i", "f", "g", "o"), ("keras", "GRU"): ("z", "r", "n"),
    ("cudnn", "LSTM"): ("i", "f", "g", "o"), ("cudnn", "GRU"): ("r", "z", "n"),
    ("onednn", "LSTM"): ("i", "f", "g", "o"), ("onednn", "GRU"): ("z", "r", "n"),
}


# --------------------------------------------------------------------------- helpers

def _mode(mode: object) -> str:
    if not isinstance(mode, str):
        raise TypeError(f"mode must be a str, one of {', '.join(_MODES)}; got "
                        f"{type(mode).__name__}")
    m = mode.upper()
    if m not in GATES:
        raise ValueError(f"mode must be one of {', '.join(_MODES)}, got {mode!r}")
    return m


def _family(mode: str) -> str:
    return "RNN" if GATES[mode] == 1 else mode


def gate_order(framework: str, mode: str) -> List[int]:
    """``order`` such that ``block_permute(torch_array, order)`` is ``framework``'s stacking.

    ``order[j]`` is the index of PyTorch's gate block that goes to position ``j``. For
    example ``gate_order("onnx", "LSTM") == [0, 3, 1, 2]`` (PyTorch i, f, g, o to ONNX
    i, o, f, c). Frameworks: ``torch``, ``onnx``, ``keras``, ``cudnn``, ``onednn``.
    """
    m = _family(_mode(mode))
    if m == "RNN":
        return [0]
    key = (str(framework).lower(), m)
    if key not in _ORDERS:
        raise ValueError(f"framework must be one of torch, onnx, keras, cudnn, onednn, got "
                         f"{framework!r}")
    torch_order = _ORDERS[("torch", m)]
    return [torch_order.index(g) for g in _ORDERS[key]]


def _inverse(order: Sequence[int]) -> List[int]:
    return [int(k) for k in np.argsort(order)]


def block_permute(a: np.ndarray, order: Sequence[int], axis: int = 0) -> np.ndarray:
    """Split ``a`` along ``axis`` into ``len(order)`` equal gate blocks and stack them in
    ``order`` (``order[j]`` = the block that goes to position ``j``). Returns a new array."""
    a = np.asarray(a)
    n = len(order)
    if a.ndim == 0 or a.shape[axis] % n:
        raise ValueError(f"cannot split an array of shape {a.shape} into {n} gate blocks "
                         f"along axis {axis}")
    parts = np.split(a, n, axis=axis)
    return np.concatenate([parts[k] for k in order], axis=axis)


def _array(name: str, value: object, ndim: int) -> np.ndarray:
    if not isinstance(value, np.ndarray):
        if isinstance(value, (list, tuple)) or np.isscalar(value):
            value = np.asarray(value)
        else:
            raise TypeError(f"{name} must be a NumPy array, got {type(value).__name__}")
    if value.dtype.kind != "f":
        raise TypeError(f"{name} must be a floating-point array, got dtype {value.dtype}")
    if value.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {value.shape}")
    return value


def _shape(name: str, a: np.ndarray, expected: Tuple[int, ...], what: str = "") -> None:
    if tuple(a.shape) != tuple(expected):
        raise ValueError(f"{name} has shape {tuple(a.shape)}, expected {tuple(expected)}"
                         + (f" ({what})" if what else ""))


def _sfx(direction: int) -> str:
    return "_reverse" if direction else ""


def _layer_params(params: Mapping[str, np.ndarray], mode: str, layer: int,
                  argname: str = "params") -> Tuple[int, List[Dict[str, np.ndarray]], int, int]:
    """Pick layer ``layer``'s parameters out of a PyTorch state dict and check them.

    Returns (D, [per-direction {short name: array}], H, I); short names weight_ih,
    weight_hh, bias_ih, bias_hh, weight_peephole, weight_hr (those present)."""
    if not isinstance(params, Mapping):
        raise TypeError(f"{argname} must be a dict of NumPy arrays (a state_dict), got "
                        f"{type(params).__name__}")
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or layer < 0:
        raise ValueError(f"layer must be a non-negative int, got {layer!r}")
    G = GATES[mode]
    dirs = []
    for d in (0, 1):
        key = f"weight_ih_l{layer}{_sfx(d)}"
        if key not in params:
            if d == 0:
                have = ", ".join(sorted(params)) or "nothing"
                raise ValueError(f"{argname} has no {key!r} (layer {layer}); it has {have}")
            break
        p = {}
        for short in ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_peephole",
                      "weight_hr"):
            k = f"{short}_l{layer}{_sfx(d)}"
            if k in params:
                p[short] = _array(f"{argname}[{k!r}]", params[k],
                                  2 if short.startswith("weight_") and short != "weight_peephole"
                                  else 1)
        dirs.append(p)
    D = len(dirs)
    w = dirs[0]["weight_ih"]
    if w.shape[0] % G:
        raise ValueError(f"{argname}['weight_ih_l{layer}'] has shape {w.shape}: its rows must "
                         f"be {G} gate blocks of hidden_size rows (mode {mode})")
    H, I = w.shape[0] // G, w.shape[1]
    for d, p in enumerate(dirs):
        s = f"_l{layer}{_sfx(d)}"
        if "weight_hh" not in p:
            raise ValueError(f"{argname} has no 'weight_hh{s}'")
        if "weight_hr" in p:
            raise ValueError(f"{argname} has 'weight_hr{s}' (an LSTM with projections): this "
                             "format has no projection")
        _shape(f"{argname}['weight_ih{s}']", p["weight_ih"], (G * H, I))
        _shape(f"{argname}['weight_hh{s}']", p["weight_hh"], (G * H, H))
        if ("bias_ih" in p) != ("bias_hh" in p):
            raise ValueError(f"{argname} must hold both 'bias_ih{s}' and 'bias_hh{s}' or "
                             "neither")
        for b in ("bias_ih", "bias_hh"):
            if b in p:
                _shape(f"{argname}['{b}{s}']", p[b], (G * H,))
        if "weight_peephole" in p:
            if mode != "LSTM":
                raise ValueError(f"{argname} has 'weight_peephole{s}' but mode is {mode}")
            _shape(f"{argname}['weight_peephole{s}']", p["weight_peephole"], (3 * H,))
    if D == 2 and (("bias_ih" in dirs[0]) != ("bias_ih" in dirs[1])
                   or ("weight_peephole" in dirs[0]) != ("weight_peephole" in dirs[1])):
        raise ValueError(f"{argname}: the two directions of layer {layer} must have the same "
                         "parameters (biases, peepholes)")
    return D, dirs, H, I


def num_layers_of(params: Mapping[str, np.ndarray]) -> int:
    """The number of layers of a PyTorch/minirnn module's state dict (``weight_ih_l{k}``)."""
    n = 0
    while f"weight_ih_l{n}" in params:
        n += 1
    if n == 0:
        raise ValueError("params has no 'weight_ih_l0': not a state_dict of an RNN/GRU/LSTM "
                         "module")
    return n


# --------------------------------------------------------------------------- ONNX

#: ONNX's peephole vector P is ordered i, o, f; minirnn's weight_peephole i, f, o
_P_ORDER = [0, 2, 1]


def to_onnx(params: Mapping[str, np.ndarray], mode: str, layer: int = 0
            ) -> Dict[str, Optional[np.ndarray]]:
    """One layer of a minirnn/PyTorch state dict -> the tensors of ONNX's ``RNN``/``GRU``/
    ``LSTM`` operator (one node per layer, both directions in one node).

    Returns ``{"W", "R", "B", "P"}``:

    - ``W`` ``[D, G*H, I]``: ``weight_ih_l{layer}`` (then ``..._reverse``), gate blocks
      reordered to ONNX's (LSTM i, o, f, c = PyTorch's blocks ``[0, 3, 1, 2]``; GRU z, r, h
      = ``[1, 0, 2]``; Elman: one block).
    - ``R`` ``[D, G*H, H]``: ``weight_hh``, reordered the same way.
    - ``B`` ``[D, 2*G*H]``: reordered ``bias_ih`` then reordered ``bias_hh`` (ONNX's
      ``Wb`` then ``Rb``); ``None`` with ``bias=False`` (ONNX then uses zeros).
    - ``P`` ``[D, 3*H]``: the LSTM peepholes in ONNX's order i, o, f (minirnn's
      ``weight_peephole`` is i, f, o); ``None`` without peepholes.

    ``D`` is 2 when the dict has ``weight_ih_l{layer}_reverse`` (ONNX
    ``direction="bidirectional"``), else 1. ``mode``: ``"RNN_TANH"``, ``"RNN_RELU"``
    (or ``"RNN"``), ``"GRU"``, ``"LSTM"``. The node must be given the matching attributes:
    a PyTorch GRU is ``linear_before_reset=1`` (``GRU(reset_after=False)`` is 0),
    an Elman RNN ``activations=["Tanh"]``/``["Relu"]`` per direction. An LSTM with
    projections (``weight_hr``) has no ONNX equivalent: ValueError.
    """
    m = _mode(mode)
    D, dirs, H, I = _layer_params(params, m, layer)
    order = gate_order("onnx", m)
    W = np.stack([block_permute(p["weight_ih"], order) for p in dirs])
    R = np.stack([block_permute(p["weight_hh"], order) for p in dirs])
    B = None
    if "bias_ih" in dirs[0]:
        B = np.stack([np.concatenate([block_permute(p["bias_ih"], order),
                                      block_permute(p["bias_hh"], order)]) for p in dirs])
    P = None
    if "weight_peephole" in dirs[0]:
        P = np.stack([block_permute(p["weight_peephole"], _P_ORDER) for p in dirs])
    return {"W": W, "R": R, "B": B, "P": P}


def from_onnx(W: np.ndarray, R: np.ndarray, B: Optional[np.ndarray] = None,
              P: Optional[np.ndarray] = None, *, mode: str, layer: int = 0,
              bias: bool = True) -> Dict[str, np.ndarray]:
    """ONNX ``RNN``/``GRU``/``LSTM`` tensors -> one layer of a minirnn/PyTorch state dict.

    The inverse of :func:`to_onnx`. ``W`` ``[D, G*H, I]``, ``R`` ``[D, G*H, H]``, ``B``
    ``[D, 2*G*H]`` (input biases then recurrent biases, ONNX's gate order), ``P``
    ``[D, 3*H]`` (LSTM peepholes, order i, o, f). ``D = 2`` gives the ``_reverse``
    parameters too. Returns ``weight_ih_l{layer}``, ``weight_hh_l{layer}``, ``bias_ih_l{layer}``,
    ``bias_hh_l{layer}`` (, ``weight_peephole_l{layer}``) (``_reverse`` for direction 1) in
    PyTorch's gate order; load them into a module built with the same sizes (and
    ``peephole=True`` when ``P`` is given, ``reset_after=False`` for a GRU with
    ``linear_before_reset=0``).

    ``B`` absent means zeros in ONNX: with ``bias=True`` (default) zero biases are returned
    (so a ``bias=True`` module loads them); with ``bias=False`` no bias keys are returned, and
    a ``B`` that is given must then be all zeros (else ValueError: the model needs biases).
    """
    m = _mode(mode)
    G = GATES[m]
    W = _array("W", W, 3)
    R = _array("R", R, 3)
    D = W.shape[0]
    if D not in (1, 2):
        raise ValueError(f"W has shape {W.shape}: its first axis (num_directions) must be 1 "
                         "or 2")
    if W.shape[1] % G or W.shape[1] == 0:
        raise ValueError(f"W has shape {W.shape}: axis 1 must be {G} gate blocks of "
                         f"hidden_size rows (mode {m})")
    H = W.shape[1] // G
    _shape("R", R, (D, G * H, H), "[num_directions, G*hidden_size, hidden_size]")
    if B is not None:
        B = _array("B", B, 2)
        _shape("B", B, (D, 2 * G * H), "[num_directions, 2*G*hidden_size]")
    if P is not None:
        if m != "LSTM":
            raise ValueError(f"P (peepholes) is an LSTM input, but mode is {m}")
        P = _array("P", P, 2)
        _shape("P", P, (D, 3 * H), "[num_directions, 3*hidden_size]")
    if not isinstance(bias, (bool, np.bool_)):
        raise TypeError(f"bias should be of type bool, got: {type(bias).__name__}")
    if not bias and B is not None and np.any(B != 0):
        raise ValueError("bias=False but B holds nonzero biases; use bias=True")
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or layer < 0:
        raise ValueError(f"layer must be a non-negative int, got {layer!r}")
    back = _inverse(gate_order("onnx", m))
    out: Dict[str, np.ndarray] = {}
    for d in range(D):
        s = f"_l{layer}{_sfx(d)}"
        out[f"weight_ih{s}"] = block_permute(W[d], back)
        out[f"weight_hh{s}"] = block_permute(R[d], back)
        if bias:
            Bd = B[d] if B is not None else np.zeros(2 * G * H, W.dtype)
            out[f"bias_ih{s}"] = block_permute(Bd[:G * H], back)
            out[f"bias_hh{s}"] = block_permute(Bd[G * H:], back)
        if P is not None:
            out[f"weight_peephole{s}"] = block_permute(P[d], _inverse(_P_ORDER))
    return out

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
    "to_onnx", "from_onnx", "to_keras", "from_keras", "to_keras_layers", "from_keras_layers",
    "to_cudnn", "from_cudnn", "to_onednn", "from_onednn", "num_layers_of",
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


# --------------------------------------------------------------------------- Keras 3

def _keras_mode(mode: str, reset_after: object) -> str:
    m = _mode(mode)
    if not isinstance(reset_after, (bool, np.bool_)):
        raise TypeError(f"reset_after should be of type bool, got: {type(reset_after).__name__}")
    if not reset_after and m != "GRU":
        raise ValueError(f"reset_after=False is a GRU option, but mode is {m}")
    return m


def to_keras(params: Mapping[str, np.ndarray], mode: str, layer: int = 0, *,
             reset_after: bool = True) -> List[np.ndarray]:
    """One layer of a minirnn/PyTorch state dict -> the weight list of a Keras 3 layer
    (``layer.set_weights(...)``; the order of ``layer.get_weights()``).

    - ``LSTM``: ``kernel = W_ih.T`` ``(I, 4H)``, ``recurrent_kernel = W_hh.T`` ``(H, 4H)``,
      ``bias = b_ih + b_hh`` ``(4H,)``;
    - ``GRU``: ``kernel = blocks(W_ih, zrh).T`` ``(I, 3H)``, ``recurrent_kernel =
      blocks(W_hh, zrh).T`` ``(H, 3H)``, ``bias = [blocks(b_ih, zrh); blocks(b_hh, zrh)]``
      ``(2, 3H)``; with ``reset_after=False`` ``bias = blocks(b_ih + b_hh, zrh)`` ``(3H,)``;
    - ``RNN_*``: ``kernel = W_ih.T`` ``(I, H)``, ``recurrent_kernel = W_hh.T`` ``(H, H)``,
      ``bias = b_ih + b_hh`` ``(H,)``.

    Keras' columns are gate blocks of ``H``: LSTM i, f, c, o (PyTorch's order), GRU z, r, h
    (PyTorch's blocks ``[1, 0, 2]``). ``RNN_*`` is ``keras.layers.SimpleRNN`` with
    ``activation="tanh"`` or ``"relu"``; ``GRU`` needs ``reset_after=True`` (Keras' default,
    PyTorch's GRU); ``reset_after=False`` converts a ``minirnn.GRU(reset_after=False)`` to a
    Keras ``GRU(reset_after=False)``.

    **Summed biases.** Keras' LSTM, SimpleRNN and reset-before GRU have one bias per gate
    where PyTorch has two that are always added together (the reset-before GRU's ``b_hn``
    is added outside ``r * ...``): the Keras bias is their sum, which computes the same
    function; which part came from ``b_ih`` is lost (see :func:`from_keras`). The
    reset-after GRU keeps both (``bias[0]`` input, ``bias[1]`` recurrent), exactly.

    With ``weight_ih_l{layer}_reverse`` present (a bidirectional layer) the list is the
    forward layer's weights then the backward layer's, as ``keras.layers.Bidirectional``
    holds them (its backward layer runs with ``go_backwards=True`` and the wrapper
    re-reverses its output, so ``merge_mode="concat"`` gives PyTorch's output). Without
    biases (``bias=False``) each direction has only ``[kernel, recurrent_kernel]``
    (Keras ``use_bias=False``). An LSTM with projections or peepholes has no Keras
    equivalent: ValueError.
    """
    m = _keras_mode(mode, reset_after)
    D, dirs, H, I = _layer_params(params, m, layer)
    if "weight_peephole" in dirs[0]:
        raise ValueError("params has peepholes (weight_peephole): Keras' LSTM has none")
    order = gate_order("keras", m)
    out: List[np.ndarray] = []
    for p in dirs:
        out.append(np.ascontiguousarray(block_permute(p["weight_ih"], order).T))
        out.append(np.ascontiguousarray(block_permute(p["weight_hh"], order).T))
        if "bias_ih" in p:
            if m == "GRU" and reset_after:
                out.append(np.stack([block_permute(p["bias_ih"], order),
                                     block_permute(p["bias_hh"], order)]))
            else:
                out.append(block_permute(p["bias_ih"] + p["bias_hh"], order))
    return out


def from_keras(weights: Sequence[np.ndarray], mode: str, layer: int = 0, *,
               bidirectional: bool = False, reset_after: bool = True,
               bias_split: str = "input") -> Dict[str, np.ndarray]:
    """The weight list of a Keras 3 ``LSTM``/``GRU``/``SimpleRNN`` (or a ``Bidirectional``
    of one, with ``bidirectional=True``) -> layer ``layer`` of a minirnn/PyTorch state dict.

    The inverse of :func:`to_keras` (layouts there). ``weights`` is ``layer.get_weights()``
    (or ``[w.numpy() for w in layer.weights]``): per direction ``[kernel,
    recurrent_kernel, bias]``, or ``[kernel, recurrent_kernel]`` for ``use_bias=False``
    (no bias keys are then returned). ``reset_after`` must be the Keras GRU's (a bias of
    shape ``(2, 3H)`` means True, ``(3H,)`` False); load a ``reset_after=False`` result into
    ``minirnn.GRU(..., reset_after=False)``.

    **Where Keras has one bias** (LSTM, SimpleRNN, reset-before GRU), PyTorch's two are not
    determined: only ``b_ih + b_hh`` is. ``bias_split="input"`` (default) returns
    ``b_ih = bias, b_hh = 0``; ``"half"`` returns ``b_ih = b_hh = bias / 2`` (exact in binary
    floating point). Both compute the same function as the Keras layer, and the gradients of
    the two biases of an LSTM or Elman RNN are equal, so training either split gives the
    same model. Keras' ``unit_forget_bias=True`` (default) only initialises the forget block
    of a *new* LSTM's bias to 1; it is part of the bias values converted here, nothing else.
    """
    m = _keras_mode(mode, reset_after)
    if bias_split not in ("input", "half"):
        raise ValueError(f"bias_split must be 'input' or 'half', got {bias_split!r}")
    if not isinstance(bidirectional, (bool, np.bool_)):
        raise TypeError(f"bidirectional should be of type bool, got: "
                        f"{type(bidirectional).__name__}")
    if isinstance(weights, np.ndarray) or not isinstance(weights, (list, tuple)):
        raise TypeError(f"weights must be a list of NumPy arrays (layer.get_weights()), got "
                        f"{type(weights).__name__}")
    D = 2 if bidirectional else 1
    if len(weights) not in (2 * D, 3 * D):
        raise ValueError(f"weights has {len(weights)} arrays; a Keras {m} layer"
                         f"{' (Bidirectional)' if D == 2 else ''} has {3 * D} "
                         f"([kernel, recurrent_kernel, bias] per direction) or {2 * D} "
                         "(use_bias=False)")
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or layer < 0:
        raise ValueError(f"layer must be a non-negative int, got {layer!r}")
    per = len(weights) // D
    G = GATES[m]
    back = _inverse(gate_order("keras", m))
    out: Dict[str, np.ndarray] = {}
    I, H = 0, 0
    for d in range(D):
        s = f"_l{layer}{_sfx(d)}"
        k = _array(f"weights[{d * per}] (kernel)", weights[d * per], 2)
        if k.shape[1] % G or k.shape[1] == 0:
            raise ValueError(f"weights[{d * per}] (kernel) has shape {k.shape}: its columns "
                             f"must be {G} gate blocks of units (mode {m})")
        if d == 0:
            I, H = k.shape[0], k.shape[1] // G
        _shape(f"weights[{d * per}] (kernel)", k, (I, G * H), "(input_dim, G*units)")
        rk = _array(f"weights[{d * per + 1}] (recurrent_kernel)", weights[d * per + 1], 2)
        _shape(f"weights[{d * per + 1}] (recurrent_kernel)", rk, (H, G * H),
               "(units, G*units)")
        out[f"weight_ih{s}"] = block_permute(k.T, back)
        out[f"weight_hh{s}"] = block_permute(rk.T, back)
        if per == 3:
            name = f"weights[{d * per + 2}] (bias)"
            b = weights[d * per + 2]
            b = _array(name, b, np.ndim(b))
            if m == "GRU" and reset_after:
                _shape(name, b, (2, 3 * H), "(2, 3*units): reset_after=True; a (3*units,) "
                       "bias means reset_after=False")
                out[f"bias_ih{s}"] = block_permute(b[0], back)
                out[f"bias_hh{s}"] = block_permute(b[1], back)
            else:
                _shape(name, b, (G * H,), "(G*units,)" + (": a (2, 3*units) bias means "
                                                          "reset_after=True" if m == "GRU"
                                                          else ""))
                b = block_permute(b, back)
                if bias_split == "input":
                    out[f"bias_ih{s}"], out[f"bias_hh{s}"] = b, np.zeros_like(b)
                else:
                    out[f"bias_ih{s}"], out[f"bias_hh{s}"] = b / 2, b / 2
    return out


def to_keras_layers(params: Mapping[str, np.ndarray], mode: str, *,
                    reset_after: bool = True) -> List[List[np.ndarray]]:
    """A whole (stacked) minirnn/PyTorch model -> one Keras weight list per layer
    (:func:`to_keras` of each layer). Build the Keras model as one layer (or one
    ``Bidirectional``) per PyTorch layer with ``return_sequences=True`` on all but where
    you read the output; Keras layers have no inter-layer dropout in inference."""
    m = _keras_mode(mode, reset_after)
    return [to_keras(params, m, k, reset_after=reset_after) for k in range(num_layers_of(params))]


def from_keras_layers(layers: Sequence[Sequence[np.ndarray]], mode: str, *,
                      bidirectional: bool = False, reset_after: bool = True,
                      bias_split: str = "input") -> Dict[str, np.ndarray]:
    """One Keras weight list per stacked layer -> a whole minirnn/PyTorch state dict
    (:func:`from_keras` of each, layer ``k`` from ``layers[k]``), checked for consistent
    sizes: layer ``k > 0`` must read ``D*H`` features."""
    if not isinstance(layers, (list, tuple)) or not layers:
        raise TypeError("layers must be a non-empty list of weight lists (one "
                        "layer.get_weights() per stacked layer)")
    out: Dict[str, np.ndarray] = {}
    D = 2 if bidirectional else 1
    for k, w in enumerate(layers):
        part = from_keras(w, mode, k, bidirectional=bidirectional, reset_after=reset_after,
                          bias_split=bias_split)
        if k > 0:
            H = out["weight_hh_l0"].shape[1]
            got = part[f"weight_ih_l{k}"].shape[1]
            if got != D * H:
                raise ValueError(f"layers[{k}] reads {got} features, expected {D * H} "
                                 f"(the {'two directions' if D == 2 else 'output'} of "
                                 "the layer below)")
        out.update(part)
    return out


# --------------------------------------------------------------------------- cuDNN

def to_cudnn(params: Mapping[str, np.ndarray], mode: str) -> Tuple[np.ndarray,
                                                                    List[List[np.ndarray]]]:
    """A minirnn/PyTorch state dict -> cuDNN's RNN weights: ``(flat, per_pseudo_layer)``.

    cuDNN computes PyTorch's cells exactly (PyTorch's GRU is cuDNN's, reset after the
    product, two biases) and uses PyTorch's gate orders; it addresses each gate's matrix
    and bias by a *linear layer id* within a *pseudo-layer* ``layer*D + direction``:

    ==========  ===============================  ===============================
    mode        ids ``0..G-1`` (input ``W``)     ids ``G..2G-1`` (recurrent ``R``)
    ==========  ===============================  ===============================
    RNN         0                                1
    LSTM        0 i, 1 f, 2 c (g), 3 o           4 i, 5 f, 6 c, 7 o
    GRU         0 r, 1 z (update), 2 h (n)       3 r, 4 z, 5 h
    ==========  ===============================  ===============================

    Each matrix is ``(H, in)`` row-major (``in`` = I or H), each bias ``(H,)``: the rows
    ``k*H:(k+1)*H`` of PyTorch's ``weight_ih`` are id ``k``, of ``weight_hh`` id ``G+k``.
    ``per_pseudo_layer[p]`` is the list of the ``2G`` matrices by id then (with biases)
    the ``2G`` biases by id. ``flat`` is their concatenation over pseudo-layers, each
    array row-major: the canonical flat order in which PyTorch's ``flatten_parameters``
    lays out cuDNN's weight buffer (for each pseudo-layer ``w_ih, w_hh, b_ih, b_hh``).
    cuDNN itself only promises the per-id addresses it returns from
    ``cudnnGetRNNWeightParams``; copy per id into a buffer cuDNN allocated, using this
    function's per-id arrays. Projections (``weight_hr``, cuDNN's ``projSize``) and
    peepholes are not supported here: ValueError.
    """
    m = _mode(mode)
    L = num_layers_of(params)
    G = GATES[m]
    pseudo: List[List[np.ndarray]] = []
    for k in range(L):
        D, dirs, H, I = _layer_params(params, m, k)
        if "weight_peephole" in dirs[0]:
            raise ValueError("params has peepholes (weight_peephole): cuDNN's LSTM has none")
        for p in dirs:
            mats = list(np.split(p["weight_ih"], G)) + list(np.split(p["weight_hh"], G))
            arrs = [np.array(a) for a in mats]
            if "bias_ih" in p:
                arrs += [np.array(a) for a in np.split(p["bias_ih"], G)]
                arrs += [np.array(a) for a in np.split(p["bias_hh"], G)]
            pseudo.append(arrs)
    flat = np.concatenate([a.ravel() for arrs in pseudo for a in arrs])
    return flat, pseudo


def from_cudnn(flat: np.ndarray, mode: str, input_size: int, hidden_size: int,
               num_layers: int = 1, bidirectional: bool = False, bias: bool = True
               ) -> Dict[str, np.ndarray]:
    """cuDNN's canonical flat weight vector (the layout of :func:`to_cudnn`) -> a
    minirnn/PyTorch state dict for the given sizes (PyTorch's constructor arguments).
    ``flat`` must have exactly the number of parameters of that model."""
    m = _mode(mode)
    flat = _array("flat", flat, 1)
    for name, v in (("input_size", input_size), ("hidden_size", hidden_size),
                    ("num_layers", num_layers)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    G, H, D = GATES[m], int(hidden_size), 2 if bidirectional else 1
    sizes = []
    for k in range(num_layers):
        I = input_size if k == 0 else D * H
        sizes.append((I, (G * H * I + G * H * H + (2 * G * H if bias else 0)) * D))
    total = sum(n for _, n in sizes)
    if flat.size != total:
        raise ValueError(f"flat has {flat.size} values, expected {total} for {m} "
                         f"input_size={input_size}, hidden_size={H}, num_layers={num_layers}, "
                         f"bidirectional={bool(bidirectional)}, bias={bool(bias)}")
    out: Dict[str, np.ndarray] = {}
    pos = 0

    def take(shape: Tuple[int, ...]) -> np.ndarray:
        nonlocal pos
        n = int(np.prod(shape))
        a = flat[pos:pos + n].reshape(shape).copy()
        pos += n
        return a

    for k, (I, _) in enumerate(sizes):
        for d in range(D):
            s = f"_l{k}{_sfx(d)}"
            out[f"weight_ih{s}"] = np.concatenate([take((H, I)) for _ in range(G)])
            out[f"weight_hh{s}"] = np.concatenate([take((H, H)) for _ in range(G)])
            if bias:
                out[f"bias_ih{s}"] = np.concatenate([take((H,)) for _ in range(G)])
                out[f"bias_hh{s}"] = np.concatenate([take((H,)) for _ in range(G)])
    return out


# --------------------------------------------------------------------------- oneDNN

def to_onednn(params: Mapping[str, np.ndarray], mode: str, *, format: str = "ldigo",
              reset_after: bool = True) -> Dict[str, np.ndarray]:
    """A minirnn/PyTorch state dict -> oneDNN's RNN primitive tensors.

    Returns ``{"weights_layer", "weights_iter", "bias"}`` for oneDNN's
    ``vanilla_rnn``/``vanilla_lstm``/``vanilla_gru``/``lbr_gru`` (``L`` layers, ``D``
    directions: 0 left-to-right, 1 right-to-left, ``G`` gates, ``O = H``):

    - ``format="ldigo"`` (oneDNN's plain layout): ``weights_layer`` ``[L, D, I, G, O]``,
      ``weights_iter`` ``[L, D, H, G, O]`` (the transposed PyTorch matrices);
      ``format="ldgoi"``: ``[L, D, G, O, I]`` and ``[L, D, G, O, H]`` (PyTorch's rows).
    - ``bias`` ``ldgo`` ``[L, D, Gb, O]``: oneDNN has **one** bias per gate, ``b = b_ih +
      b_hh`` (exactly the same function), except the linear-before-reset GRU
      (``reset_after=True``, PyTorch's GRU = oneDNN ``lbr_gru``): ``Gb = 4``,
      ``[b_iz + b_hz, b_ir + b_hr, b_in, b_hn]`` (oneDNN's ``u, r, o, u'``; the last one is
      added inside ``r * (U_o h + b_u')``).

    Gate orders (oneDNN's documentation): LSTM **i, f, c~, o** (PyTorch's), GRU **u, r, o**
    (update, reset, candidate = PyTorch's z, r, n: blocks ``[1, 0, 2]``); Elman one gate
    (``vanilla_rnn`` with ``eltwise_tanh`` or ``eltwise_relu``, alpha 0).
    ``reset_after=False`` converts a ``minirnn.GRU(reset_after=False)`` to oneDNN's
    ``vanilla_gru`` (``o = tanh(W_o x + U_o (r * h) + b_o)``, ``b_o = b_in + b_hn``).

    oneDNN's stacked layers share one ``weights_layer`` shape, so every layer must read the
    same number of features (``I == D*H`` when ``L > 1``, which is also what oneDNN's
    layer-to-layer data flow requires); otherwise convert each layer by itself (a dict
    holding only that layer, renamed to ``_l0``) and run one primitive per layer.
    Projections and peepholes: oneDNN's LSTM has both (``weights_projection``,
    ``weights_peephole``) but they are not converted here: ValueError.
    """
    m = _keras_mode(mode, reset_after)
    if format not in ("ldigo", "ldgoi"):
        raise ValueError(f"format must be 'ldigo' or 'ldgoi', got {format!r}")
    L = num_layers_of(params)
    G = GATES[m]
    order = gate_order("onednn", m)
    wl, wi, bs = [], [], []
    I0 = None
    has_bias = None
    for k in range(L):
        D, dirs, H, I = _layer_params(params, m, k)
        if I0 is None:
            I0 = I
        elif I != I0:
            raise ValueError(f"layer {k} reads {I} features but layer 0 reads {I0}: oneDNN's "
                             "stacked layers share one weights_layer shape; convert each "
                             "layer by itself")
        if "weight_peephole" in dirs[0]:
            raise ValueError("params has peepholes (weight_peephole): not converted to "
                             "oneDNN by this function")
        has_bias = "bias_ih" in dirs[0]
        lw, li, lb = [], [], []
        for p in dirs:
            # (G*H, in) in oneDNN's gate order -> (G, O, in) = ldgoi per (l, d)
            lw.append(block_permute(p["weight_ih"], order).reshape(G, H, I))
            li.append(block_permute(p["weight_hh"], order).reshape(G, H, H))
            if has_bias:
                bi, bh = (block_permute(p[b], order).reshape(G, H) for b in ("bias_ih",
                                                                              "bias_hh"))
                if m == "GRU" and reset_after:          # u, r, o, u'
                    lb.append(np.concatenate([bi[:2] + bh[:2], bi[2:], bh[2:]]))
                else:
                    lb.append(bi + bh)
            else:
                lb.append(np.zeros((G + (m == "GRU" and reset_after), H),
                                   p["weight_ih"].dtype))
        wl.append(lw)
        wi.append(li)
        bs.append(lb)
    weights_layer = np.array(wl)            # [L, D, G, O, I]
    weights_iter = np.array(wi)
    if format == "ldigo":
        weights_layer = np.ascontiguousarray(weights_layer.transpose(0, 1, 4, 2, 3))
        weights_iter = np.ascontiguousarray(weights_iter.transpose(0, 1, 4, 2, 3))
    return {"weights_layer": weights_layer, "weights_iter": weights_iter,
            "bias": np.array(bs)}


def from_onednn(weights_layer: np.ndarray, weights_iter: np.ndarray,
                bias: Optional[np.ndarray] = None, *, mode: str, format: str = "ldigo",
                reset_after: bool = True, bias_split: str = "input") -> Dict[str, np.ndarray]:
    """oneDNN's RNN tensors (layouts in :func:`to_onednn`) -> a minirnn/PyTorch state dict.

    oneDNN's single bias per gate is ``b_ih + b_hh``; PyTorch's split is **not unique**.
    ``bias_split="input"`` (default) returns ``b_ih = b, b_hh = 0`` for every summed gate;
    ``"half"`` returns ``b/2`` each. For the linear-before-reset GRU (``Gb = 4``) the
    candidate's two biases are separate in oneDNN and come back exactly (``b_in = b_o``,
    ``b_hn = b_u'``); only the update and reset gates' sums are split. Both splits compute
    the same function. ``bias=None`` gives a state dict without biases (``bias=False``).
    """
    m = _keras_mode(mode, reset_after)
    if format not in ("ldigo", "ldgoi"):
        raise ValueError(f"format must be 'ldigo' or 'ldgoi', got {format!r}")
    if bias_split not in ("input", "half"):
        raise ValueError(f"bias_split must be 'input' or 'half', got {bias_split!r}")
    G = GATES[m]
    wl = _array("weights_layer", weights_layer, 5)
    wi = _array("weights_iter", weights_iter, 5)
    if format == "ldigo":
        wl, wi = wl.transpose(0, 1, 3, 4, 2), wi.transpose(0, 1, 3, 4, 2)   # -> ldgoi
    L, D, g, H, I = wl.shape
    if g != G or D not in (1, 2):
        raise ValueError(f"weights_layer has shape {weights_layer.shape}: expected "
                         f"{'[L, D, I, G, O]' if format == 'ldigo' else '[L, D, G, O, I]'} "
                         f"with G={G} gates (mode {m}) and D 1 or 2")
    exp = (L, D, H, G, H) if format == "ldigo" else (L, D, G, H, H)
    _shape("weights_iter", weights_iter, exp, format)
    lbr = m == "GRU" and reset_after
    Gb = G + lbr
    if bias is not None:
        bias = _array("bias", bias, 4)
        _shape("bias", bias, (L, D, Gb, H), "ldgo")
    back = _inverse(gate_order("onednn", m))
    out: Dict[str, np.ndarray] = {}
    for k in range(L):
        for d in range(D):
            s = f"_l{k}{_sfx(d)}"
            out[f"weight_ih{s}"] = block_permute(wl[k, d].reshape(G * H, I), back)
            out[f"weight_hh{s}"] = block_permute(wi[k, d].reshape(G * H, H), back)
            if bias is None:
                continue
            b = bias[k, d]
            summed = b[:2] if lbr else b
            bi = summed if bias_split == "input" else summed / 2
            bh = np.zeros_like(summed) if bias_split == "input" else summed / 2
            if lbr:
                bi, bh = np.concatenate([bi, b[2:3]]), np.concatenate([bh, b[3:4]])
            out[f"bias_ih{s}"] = block_permute(bi.reshape(G * H), back)
            out[f"bias_hh{s}"] = block_permute(bh.reshape(G * H), back)
    return out

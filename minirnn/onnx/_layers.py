"""One ONNX ``RNN``/``GRU``/``LSTM`` node as a minirnn module, and back.

An ONNX recurrent node is one layer, one or both directions::

    inputs   X [T, N, I] (layout 0) or [N, T, I] (layout 1)
             W [D, G*H, I]   R [D, G*H, H]   B [D, 2*G*H] (optional: input biases Wb, then
             recurrent biases Rb)   sequence_lens [N] (optional)   initial_h [D, N, H]
             (layout 1: [N, D, H])   LSTM: initial_c like initial_h, P [D, 3*H] (peepholes)
    outputs  Y [T, D, N, H] (layout 1: [N, T, D, H])   Y_h [D, N, H]   LSTM: Y_c like Y_h

with ``G`` = 1, 3, 4 gates, directions stacked forward first. The gate blocks of ``W``, ``R``
and each half of ``B`` are in ONNX's order, which is not PyTorch's:

    LSTM  ONNX i, o, f, c    minirnn/PyTorch i, f, g, o   (minirnn block k: ONNX's [0, 2, 3, 1][k])
    GRU   ONNX z, r, h       minirnn/PyTorch r, z, n      (minirnn block k: ONNX's [1, 0, 2][k])
    P     ONNX i, o, f       minirnn weight_peephole i, f, o

The attributes map onto a minirnn :class:`~minirnn.variants.Variant`: ``direction="reverse"``
is ``reverse=True``, ``linear_before_reset`` (GRU, default 0) is ``reset_after``, ``clip``
is ``cell_clip``, ``input_forget`` (LSTM) is ``coupled_input_forget``, ``P`` is
``peephole=True``, and ``activations`` with ``activation_alpha``/``activation_beta`` are the
variant's activations (ONNX's slot order is minirnn's). The alpha (beta) list holds one value
per activation that takes an alpha (a beta), in the order of ``activations``: onnxruntime's
reading; an activation left without one gets its default
(:data:`minirnn.variants.DEFAULT_ALPHA_BETA`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from .. import convert, modules
from .._grad_mode import no_grad
from ..packed import pack_padded_sequence, pad_packed_sequence
from ..variants import DEFAULT_ALPHA_BETA, PYTORCH_ACTIVATIONS, SLOTS, Variant, make_activation

#: gates per ONNX op
GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
#: the attributes ONNX defines for each op (opset 7 and later; layout since 14)
ATTRIBUTES = {
    "RNN": {"activation_alpha", "activation_beta", "activations", "clip", "direction",
            "hidden_size", "layout"},
    "GRU": {"activation_alpha", "activation_beta", "activations", "clip", "direction",
            "hidden_size", "layout", "linear_before_reset"},
    "LSTM": {"activation_alpha", "activation_beta", "activations", "clip", "direction",
             "hidden_size", "layout", "input_forget"},
}
DIRECTIONS = ("forward", "reverse", "bidirectional")


@dataclass
class LayerSpec:
    """What an ONNX recurrent node computes, read from its attributes (weights apart)."""

    op: str                                    # "RNN", "GRU" or "LSTM"
    hidden_size: Optional[int]                 # None: taken from R
    direction: str = "forward"
    layout: int = 0
    mode: str = "RNN_TANH"                     # minirnn's mode
    variant_kwargs: Dict[str, Any] = field(default_factory=dict)

    @property
    def num_directions(self) -> int:
        return 2 if self.direction == "bidirectional" else 1


def _activations(op: str, names: List[str], alphas: List[float], betas: List[float],
                 D: int, where: str) -> List[Any]:
    """ONNX's activation lists -> minirnn activation specs (name, alpha, beta)."""
    k = SLOTS["LSTM" if op == "LSTM" else "GRU" if op == "GRU" else "RNN_TANH"]
    if len(names) not in (k, k * D):
        raise ValueError(f"{where}: attribute activations must list {k * D} functions "
                         f"({k} per direction), got {len(names)}: {names}")
    ia = ib = 0
    out = []
    for name in names:
        act = make_activation(name, where=f"{where}: activations")
        takes_a, takes_b = (d is not None for d in DEFAULT_ALPHA_BETA[act.name])
        a = b = None
        if takes_a and ia < len(alphas):
            a, ia = alphas[ia], ia + 1
        if takes_b and ib < len(betas):
            b, ib = betas[ib], ib + 1
        out.append(make_activation((act.name, a, b), where=f"{where}: activations"))
    if ia < len(alphas) or ib < len(betas):
        raise ValueError(f"{where}: activation_alpha/activation_beta hold more values "
                         f"({len(alphas)}/{len(betas)}) than the activations {names} take")
    return out


def layer_spec(op: str, attrs: Dict[str, Any], where: str) -> LayerSpec:
    """Read and check a recurrent node's attributes; ``where`` names the node in errors."""
    unknown = sorted(set(attrs) - ATTRIBUTES[op])
    if unknown:
        raise ValueError(f"{where}: unknown attribute(s) {unknown} for ONNX {op} "
                         f"(expected some of {sorted(ATTRIBUTES[op])})")
    direction = attrs.get("direction", "forward")
    if isinstance(direction, bytes):
        direction = direction.decode()
    if direction not in DIRECTIONS:
        raise ValueError(f"{where}: attribute direction must be one of {DIRECTIONS}, got "
                         f"{direction!r}")
    layout = int(attrs.get("layout", 0))
    if layout not in (0, 1):
        raise ValueError(f"{where}: attribute layout must be 0 or 1, got {layout}")
    hidden = attrs.get("hidden_size")
    if hidden is not None and int(hidden) <= 0:
        raise ValueError(f"{where}: attribute hidden_size must be positive, got {hidden}")
    D = 2 if direction == "bidirectional" else 1
    kw: Dict[str, Any] = {}
    if direction == "reverse":
        kw["reverse"] = True
    if "clip" in attrs:
        clip = float(attrs["clip"])
        if not clip > 0:
            raise ValueError(f"{where}: attribute clip must be positive, got {clip}")
        kw["cell_clip"] = clip
    if op == "GRU":
        lbr = int(attrs.get("linear_before_reset", 0))
        if lbr not in (0, 1):
            raise ValueError(f"{where}: attribute linear_before_reset must be 0 or 1, got {lbr}")
        if lbr == 0:
            kw["reset_after"] = False
    if op == "LSTM":
        forget = int(attrs.get("input_forget", 0))
        if forget not in (0, 1):
            raise ValueError(f"{where}: attribute input_forget must be 0 or 1, got {forget}")
        if forget:
            kw["coupled_input_forget"] = True
    mode = {"RNN": "RNN_TANH"}.get(op, op)
    names = [n.decode() if isinstance(n, bytes) else n for n in attrs.get("activations", [])]
    alphas = [float(v) for v in attrs.get("activation_alpha", [])]
    betas = [float(v) for v in attrs.get("activation_beta", [])]
    if names:
        acts = _activations(op, names, alphas, betas, D, where)
        if op == "RNN" and all(a.name == "Relu" for a in acts):
            mode = "RNN_RELU"                          # PyTorch's relu RNN
        elif [a for a in acts] != [make_activation(n) for n in PYTORCH_ACTIVATIONS[mode]] * (
                len(acts) // SLOTS[mode]):
            kw["activations"] = list(acts)
    elif alphas or betas:
        raise ValueError(f"{where}: activation_alpha/activation_beta given without activations")
    return LayerSpec(op=op, hidden_size=None if hidden is None else int(hidden),
                     direction=direction, layout=layout, mode=mode, variant_kwargs=kw)


def _as_real(name: str, a: Any, where: str) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype not in (np.float32, np.float64):
        raise TypeError(f"{where}: input {name} must be float32 or float64 (minirnn computes "
                        f"those two), got dtype {a.dtype}")
    return a


def build_module(spec: LayerSpec, W: Any, R: Any, B: Any = None, P: Any = None,
                 where: str = "node") -> modules._RNNBase:
    """The minirnn module (one layer) computing the node with weights ``W``, ``R`` and
    optional ``B``, ``P`` (ONNX layouts), the weights converted to PyTorch's (exact: the
    values are only moved)."""
    op, D = spec.op, spec.num_directions
    G = GATES[op]
    W, R = _as_real("W", W, where), _as_real("R", R, where)
    dtype = W.dtype
    for name, a in (("R", R), ("B", B), ("P", P)):
        if a is not None and _as_real(name, a, where).dtype != dtype:
            raise TypeError(f"{where}: input {name} has dtype {np.asarray(a).dtype}, "
                            f"but W has {dtype} (ONNX requires one type)")
    if W.ndim != 3 or R.ndim != 3:
        raise ValueError(f"{where}: W and R must be 3-D [num_directions, {G}*hidden_size, "
                         f"...], got shapes {W.shape} and {R.shape}")
    H = R.shape[2] if spec.hidden_size is None else spec.hidden_size
    I = W.shape[2]
    for name, a, shape in (("W", W, (D, G * H, I)), ("R", R, (D, G * H, H)),
                           ("B", B, (D, 2 * G * H)), ("P", P, (D, 3 * H))):
        if a is not None and np.shape(a) != shape:
            raise ValueError(f"{where}: input {name} must have shape {list(shape)} "
                             f"(num_directions={D}, hidden_size={H}, {G} gate(s)), got "
                             f"{list(np.shape(a))}")
    cls = {"RNN": modules.RNN, "GRU": modules.GRU, "LSTM": modules.LSTM}[op]
    kw = dict(spec.variant_kwargs)
    if op == "RNN":
        kw["nonlinearity"] = "relu" if spec.mode == "RNN_RELU" else "tanh"
    if P is not None:
        kw["peephole"] = True
    m = cls(I, H, num_layers=1, bias=B is not None, batch_first=spec.layout == 1,
            bidirectional=D == 2, dtype=dtype, backend=None, **kw)
    # the gate blocks reordered from ONNX's (iofc, zrh; P i, o, f) to PyTorch's
    m.load_state_dict(convert.from_onnx(
        W, R, None if B is None else np.asarray(B), None if P is None else np.asarray(P),
        mode=op, bias=B is not None))
    return m


def onnx_weights(module: modules._RNNBase, layer: int) -> Dict[str, np.ndarray]:
    """Layer ``layer`` of a minirnn module as ONNX tensors ``W``, ``R`` (and ``B``, ``P``
    when the module has biases, peepholes): the inverse of :func:`build_module`."""
    tensors = convert.to_onnx(module.state_dict(), module.mode, layer)
    return {name: a for name, a in tensors.items() if a is not None}


def onnx_attributes(module: modules._RNNBase) -> Dict[str, Any]:
    """The ONNX node attributes of one layer of ``module`` (hidden_size and direction
    included); a variant ONNX cannot express is a ValueError."""
    v: Variant = module.variant
    mode, D = module.mode, module.num_directions
    if getattr(module, "proj_size", 0):
        raise ValueError(f"ONNX's LSTM has no projection: cannot export an LSTM with "
                         f"proj_size={module.proj_size} (its recurrent state is the "
                         "projected h, which no ONNX LSTM attribute expresses)")
    attrs: Dict[str, Any] = {"hidden_size": module.hidden_size,
                             "direction": "bidirectional" if D == 2 else
                             ("reverse" if v.reverse else "forward")}
    if mode == "GRU":
        attrs["linear_before_reset"] = 1 if v.reset_after else 0
    if v.coupled_input_forget:
        attrs["input_forget"] = 1
    # clip, alpha and beta are float32 attributes in ONNX: a value float32 cannot hold is
    # written as its nearest float32 (what onnxruntime computes with in any case)
    if v.cell_clip is not None:
        attrs["clip"] = float(np.float32(v.cell_clip))
    if v.activations is not None or mode == "RNN_RELU":
        flat = [a for d in range(D) for a in v.acts(mode, d)]
        attrs["activations"] = [a.name for a in flat]
        alphas = [a.alpha for a in flat if DEFAULT_ALPHA_BETA[a.name][0] is not None]
        betas = [a.beta for a in flat if DEFAULT_ALPHA_BETA[a.name][1] is not None]
        for key, vals in (("activation_alpha", alphas), ("activation_beta", betas)):
            if vals:
                attrs[key] = [float(np.float32(x)) for x in vals]
    return attrs


def _state_in(name: str, s: Any, spec: LayerSpec, N: int, H: int, dtype: Any,
              where: str) -> Optional[np.ndarray]:
    """initial_h/initial_c in ONNX's layout -> minirnn's (D, N, H), checked."""
    if s is None:
        return None
    s = np.asarray(s)
    D = spec.num_directions
    shape = (N, D, H) if spec.layout == 1 else (D, N, H)
    if s.shape != shape:
        raise ValueError(f"{where}: input {name} must have shape {list(shape)} (layout="
                         f"{spec.layout}), got {list(s.shape)}")
    if s.dtype != dtype:
        raise TypeError(f"{where}: input {name} has dtype {s.dtype}, expected {dtype} (the "
                        "weights' type)")
    return np.ascontiguousarray(s.transpose(1, 0, 2)) if spec.layout == 1 else s


def run_layer(spec: LayerSpec, m: modules._RNNBase, X: Any, sequence_lens: Any = None,
              initial_h: Any = None, initial_c: Any = None,
              where: str = "node") -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """Evaluate the node: ``(Y, Y_h, Y_c)`` in ONNX's layouts (``Y_c`` None but for LSTM).

    ``sequence_lens``: a row runs its first ``sequence_lens[n]`` steps only (the reverse
    direction from its own last one); ``Y`` is 0 past them. A row of length 0 gets 0 in
    ``Y_h``/``Y_c`` (onnxruntime's answer; minirnn's modules keep ``h0`` there).
    """
    X = np.asarray(X)
    if X.ndim != 3:
        want = "[N, T, I]" if spec.layout else "[T, N, I]"
        raise ValueError(f"{where}: input X must be 3-D {want}, got shape {list(X.shape)}")
    if X.dtype != m.dtype:
        raise TypeError(f"{where}: input X has dtype {X.dtype}, expected {np.dtype(m.dtype)} "
                        "(the weights' type)")
    T, N = (X.shape[1], X.shape[0]) if spec.layout == 1 else X.shape[:2]
    if X.shape[2] != m.input_size:
        raise ValueError(f"{where}: input X has {X.shape[2]} features, W expects "
                         f"{m.input_size}")
    if T == 0:
        raise ValueError(f"{where}: input X has 0 time steps (minirnn needs at least one)")
    D, H = m.num_directions, m.hidden_size
    h0 = _state_in("initial_h", initial_h, spec, N, H, m.dtype, where)
    c0 = _state_in("initial_c", initial_c, spec, N, H, m.dtype, where)
    if spec.op == "LSTM":
        if h0 is None and c0 is not None:
            h0 = np.zeros_like(c0)
        if c0 is None and h0 is not None:
            c0 = np.zeros_like(h0)
        hx: Any = None if h0 is None else (h0, c0)
    else:
        hx = h0
    lengths = None
    if sequence_lens is not None:
        lens = np.asarray(sequence_lens)
        if not np.issubdtype(lens.dtype, np.integer) or lens.shape != (N,):
            raise ValueError(f"{where}: input sequence_lens must be an integer vector of "
                             f"shape [{N}] (batch size), got dtype {lens.dtype}, shape "
                             f"{list(lens.shape)}")
        if lens.size and (lens.min() < 0 or lens.max() > T):
            raise ValueError(f"{where}: input sequence_lens must lie in [0, {T}] (the "
                             f"sequence length), got {lens.tolist()}")
        if not np.all(lens == T):
            lengths = lens.astype(np.int64)
    Xm = np.ascontiguousarray(X)
    with no_grad():
        if lengths is None:
            out, state = m(Xm, hx)
        else:
            packed = pack_padded_sequence(Xm, lengths, batch_first=m.batch_first,
                                          enforce_sorted=False, allow_empty=True)
            out_p, state = m(packed, hx)
            out, _ = pad_packed_sequence(out_p, batch_first=m.batch_first, total_length=T)
    h_n, c_n = state if spec.op == "LSTM" else (state, None)
    if lengths is not None and np.any(lengths == 0):
        empty = lengths == 0                       # onnxruntime: zeros, not initial_h
        h_n = h_n.copy()
        h_n[:, empty] = 0
        if c_n is not None:
            c_n = c_n.copy()
            c_n[:, empty] = 0
    if spec.layout == 1:                           # out (N, T, D*H) -> Y [N, T, D, H]
        Y = out.reshape(N, T, D, H)
        Y_h = h_n.transpose(1, 0, 2)
        Y_c = None if c_n is None else c_n.transpose(1, 0, 2)
    else:                                          # out (T, N, D*H) -> Y [T, D, N, H]
        Y = out.reshape(T, N, D, H).transpose(0, 2, 1, 3)
        Y_h, Y_c = h_n, c_n
    Y, Y_h = np.ascontiguousarray(Y), np.ascontiguousarray(Y_h)
    return Y, Y_h, (None if Y_c is None else np.ascontiguousarray(Y_c))

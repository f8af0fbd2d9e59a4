"""The small ONNX operators that join recurrent nodes, evaluated in NumPy.

An exporter writes a stack of recurrent layers as one ``RNN``/``GRU``/``LSTM`` node per layer
with a little tensor plumbing between them: ``Transpose`` and ``Reshape`` (or ``Squeeze``)
from a node's ``Y [T, D, N, H]`` to the next layer's ``X [T, N, D*H]``, ``Slice``/``Gather``
of each layer's initial state out of ``h0``, ``Concat`` of the layers' ``Y_h``, and shape
arithmetic (``Shape``, ``Gather``, ``Unsqueeze``, ``ConstantOfShape``, ``Expand``) when no
initial state is given. Each function here computes one of those operators as the ONNX
specification defines it, for the opset versions that change its signature (attributes that
became inputs at opset 10 or 13). Anything else is not evaluated: :data:`GLUE_OPS` lists
what is.

Each function takes ``(inputs, attrs, opset)``: the input arrays in the node's order (None
for an omitted optional input), a dict of the node's attributes as Python values, the
model's default-domain opset; it returns the list of outputs.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

import numpy as np

Inputs = List[Any]          # arrays, None for an omitted optional input
Attrs = Dict[str, Any]

#: ONNX TensorProto element types -> NumPy dtypes (the ones shape glue and RNNs use)
ONNX_DTYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 4: np.uint16, 5: np.int16,
               6: np.int32, 7: np.int64, 9: np.bool_, 10: np.float16, 11: np.float64,
               12: np.uint32, 13: np.uint64}


def _ints(a: Optional[np.ndarray]) -> List[int]:
    return [] if a is None else [int(v) for v in np.asarray(a).reshape(-1)]


def _axes(axes: List[int], rank: int, op: str) -> List[int]:
    out = []
    for a in axes:
        if not -rank <= a < rank:
            raise ValueError(f"{op}: axis {a} is out of range for a tensor of rank {rank}")
        out.append(a % rank)
    return out


def _identity(x: Inputs, attrs: Attrs, opset: int) -> list:
    return [x[0]]


def _constant(x: Inputs, attrs: Attrs, opset: int) -> list:
    for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
        if key in attrs:
            v = attrs[key]
            if key.startswith("value_float"):
                return [np.asarray(v, dtype=np.float32)]
            if key.startswith("value_int"):
                return [np.asarray(v, dtype=np.int64)]
            return [np.asarray(v)]
    raise NotImplementedError("Constant: only a dense tensor, float(s) or int(s) value is "
                              f"supported, got attributes {sorted(attrs)}")


def _transpose(x: Inputs, attrs: Attrs, opset: int) -> list:
    perm = attrs.get("perm")
    return [np.transpose(x[0], None if perm is None else list(perm))]


def _squeeze(x: Inputs, attrs: Attrs, opset: int) -> list:
    data = x[0]
    axes = attrs.get("axes") if opset < 13 else (None if len(x) < 2 else x[1])
    if axes is None:
        return [np.squeeze(data)]
    ax = _axes(_ints(np.asarray(axes)), data.ndim, "Squeeze")
    for a in ax:
        if data.shape[a] != 1:
            raise ValueError(f"Squeeze: axis {a} has size {data.shape[a]}, expected 1")
    return [np.squeeze(data, axis=tuple(ax))]


def _unsqueeze(x: Inputs, attrs: Attrs, opset: int) -> list:
    data = x[0]
    axes = _ints(np.asarray(attrs.get("axes", [])) if opset < 13 else x[1])
    rank = data.ndim + len(axes)
    ax = sorted(_axes(axes, rank, "Unsqueeze"))
    out = data
    for a in ax:
        out = np.expand_dims(out, a)
    return [out]


def _concat(x: Inputs, attrs: Attrs, opset: int) -> list:
    parts = [a for a in x if a is not None]
    return [np.concatenate(parts, axis=int(attrs["axis"]))]


def _reshape(x: Inputs, attrs: Attrs, opset: int) -> list:
    data = x[0]
    shape = _ints(x[1]) if opset >= 5 else [int(s) for s in attrs["shape"]]
    allowzero = int(attrs.get("allowzero", 0))
    if not allowzero:        # 0 copies the input's dimension at that position
        shape = [data.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return [data.reshape(shape)]


def _flatten(x: Inputs, attrs: Attrs, opset: int) -> list:
    data = x[0]
    axis = int(attrs.get("axis", 1)) % (data.ndim + 1) if data.ndim else 0
    lead = int(np.prod(data.shape[:axis], dtype=np.int64))
    return [data.reshape(lead, -1)]


def _slice(x: Inputs, attrs: Attrs, opset: int) -> list:
    data = x[0]
    if opset < 10:
        starts, ends = list(attrs["starts"]), list(attrs["ends"])
        axes = list(attrs.get("axes", range(len(starts))))
        steps = [1] * len(starts)
    else:
        starts, ends = _ints(x[1]), _ints(x[2])
        axes = _ints(x[3]) if len(x) > 3 and x[3] is not None else list(range(len(starts)))
        steps = _ints(x[4]) if len(x) > 4 and x[4] is not None else [1] * len(starts)
    index: list = [slice(None)] * data.ndim
    for a, s, e, st in zip(_axes(axes, data.ndim, "Slice"), starts, ends, steps):
        dim = data.shape[a]
        if st == 0:
            raise ValueError("Slice: a step of 0 is invalid")
        s = s + dim if s < 0 else s
        e = e + dim if e < 0 else e
        if st > 0:      # clamp as the specification says: start, end in [0, dim]
            index[a] = slice(min(max(s, 0), dim), min(max(e, 0), dim), st)
        else:           # start in [0, dim - 1], end in [-1, dim - 1] (-1: past index 0)
            s, e = min(max(s, 0), dim - 1), min(max(e, -1), dim - 1)
            index[a] = slice(s, None if e < 0 else e, st)
    return [data[tuple(index)]]


def _shape(x: Inputs, attrs: Attrs, opset: int) -> list:
    shape = np.asarray(x[0].shape, dtype=np.int64)
    start, end = attrs.get("start", 0), attrs.get("end")
    return [shape[start:end]]


def _size(x: Inputs, attrs: Attrs, opset: int) -> list:
    return [np.asarray(x[0].size, dtype=np.int64)]


def _gather(x: Inputs, attrs: Attrs, opset: int) -> list:
    data, idx = x[0], np.asarray(x[1]).astype(np.int64)
    axis = _axes([int(attrs.get("axis", 0))], data.ndim, "Gather")[0]
    dim = data.shape[axis]
    if np.any(idx < -dim) or np.any(idx >= dim):
        raise ValueError(f"Gather: an index is out of range for axis {axis} of size {dim}")
    return [np.take(data, np.where(idx < 0, idx + dim, idx), axis=axis)]


def _cast(x: Inputs, attrs: Attrs, opset: int) -> list:
    to = int(attrs["to"])
    if to not in ONNX_DTYPES:
        raise NotImplementedError(f"Cast: target element type {to} is not supported")
    return [x[0].astype(ONNX_DTYPES[to])]


def _constant_of_shape(x: Inputs, attrs: Attrs, opset: int) -> list:
    value = np.asarray(attrs.get("value", np.zeros(1, np.float32)))
    return [np.full(_ints(x[0]), value.reshape(-1)[0], dtype=value.dtype)]


def _expand(x: Inputs, attrs: Attrs, opset: int) -> list:
    shape = np.broadcast_shapes(x[0].shape, tuple(_ints(x[1])))
    return [np.array(np.broadcast_to(x[0], shape))]


def _split(x: Inputs, attrs: Attrs, opset: int) -> list:
    data = x[0]
    axis = _axes([int(attrs.get("axis", 0))], data.ndim, "Split")[0]
    split = attrs.get("split") if opset < 13 else (x[1] if len(x) > 1 else None)
    if split is None:
        n = int(attrs.get("num_outputs") or attrs.get("_num_outputs") or 1)
        size = -(-data.shape[axis] // n)              # ceil, as opset 18 specifies
        split = [min(size, data.shape[axis] - k * size) for k in range(n)]
    bounds = np.cumsum(_ints(np.asarray(split)))[:-1]
    return list(np.split(data, bounds, axis=axis))


def _binary(fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Callable:
    def op(x: Inputs, attrs: Attrs, opset: int) -> list:
        a, b = x[0], x[1]
        return [np.asarray(fn(a, b)).astype(np.result_type(a, b))]
    return op


def _divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if np.issubdtype(a.dtype, np.integer):            # integer division truncates (C's)
        return np.trunc(np.true_divide(a, b))
    return np.true_divide(a, b)


def _dropout(x: Inputs, attrs: Attrs, opset: int) -> list:
    training = len(x) > 2 and x[2] is not None and bool(np.asarray(x[2]))
    if training:
        raise NotImplementedError("Dropout: training_mode=True is not evaluated (inference only)")
    return [x[0], np.ones(x[0].shape, dtype=np.bool_)]


#: op type -> evaluator, every glue operator the graph evaluator computes
GLUE_OPS: Dict[str, Callable[[Inputs, Attrs, int], list]] = {
    "Identity": _identity, "Constant": _constant, "Transpose": _transpose,
    "Squeeze": _squeeze, "Unsqueeze": _unsqueeze, "Concat": _concat, "Reshape": _reshape,
    "Flatten": _flatten, "Slice": _slice, "Shape": _shape, "Size": _size, "Gather": _gather,
    "Cast": _cast, "ConstantOfShape": _constant_of_shape, "Expand": _expand, "Split": _split,
    "Add": _binary(np.add), "Sub": _binary(np.subtract), "Mul": _binary(np.multiply),
    "Div": _binary(_divide), "Dropout": _dropout,
}

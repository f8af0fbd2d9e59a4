"""``export``: a minirnn module or cell as an ONNX model, one recurrent node per layer."""
from __future__ import annotations

import os
from typing import Any, List, Optional

import numpy as np

from .. import modules
from . import _layers
from ._dep import require_onnx

onnx = require_onnx()             # this module is imported by minirnn.onnx.export only
TensorProto, helper, numpy_helper = onnx.TensorProto, onnx.helper, onnx.numpy_helper

#: the oldest opset written (``layout`` and Squeeze/Unsqueeze axes as inputs need >= 14)
MIN_OPSET = 14
DEFAULT_OPSET = 17


def _elem_type(dtype: Any) -> int:
    return TensorProto.DOUBLE if np.dtype(dtype) == np.float64 else TensorProto.FLOAT


def _op(module: Any) -> str:
    return {"RNN_TANH": "RNN", "RNN_RELU": "RNN"}.get(module.mode, module.mode)


class _Builder:
    def __init__(self) -> None:
        self.nodes: List[Any] = []
        self.inits: List[Any] = []

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(self, op: str, inputs: List[str], outputs: List[str], **attrs: Any) -> None:
        self.nodes.append(helper.make_node(op, inputs, outputs, name=outputs[0] + "_" + op,
                                           **attrs))


def _as_module(cell: modules._CellBase) -> modules._RNNBase:
    """A one-layer module computing the cell (same weights), for one step."""
    cls = {"RNN_TANH": modules.RNN, "RNN_RELU": modules.RNN, "GRU": modules.GRU,
           "LSTM": modules.LSTM}[cell.mode]
    kw: dict = {}
    if cls is modules.RNN:
        kw["nonlinearity"] = "relu" if cell.mode == "RNN_RELU" else "tanh"
    v = cell.variant
    if cls is modules.GRU and not v.reset_after:
        kw["reset_after"] = False
    if cls is modules.LSTM:
        kw.update(peephole=v.peephole, coupled_input_forget=v.coupled_input_forget)
    if v.cell_clip is not None:
        kw["cell_clip"] = v.cell_clip
    if v.activations is not None:
        kw["activations"] = list(v.activations[0])
    m = cls(cell.input_size, cell.hidden_size, bias=cell.bias, dtype=cell.dtype, **kw)
    m.load_state_dict({k + "_l0": a for k, a in cell.state_dict().items()})
    return m


def export(module: Any, path: Optional[Any] = None, *, opset: int = DEFAULT_OPSET,
           sequence_lens: bool = False, initial_states: bool = True,
           graph_name: Optional[str] = None) -> Any:
    """See :func:`minirnn.onnx.export`."""
    latest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= latest:
        raise ValueError(f"export: opset must be an int in [{MIN_OPSET}, {latest}] (the "
                         f"installed onnx's latest), got {opset!r}")
    if isinstance(module, modules._CellBase):
        return _export_cell(module, path, opset, graph_name)
    if not isinstance(module, modules._RNNBase):
        raise TypeError(f"export: expected a minirnn RNN, GRU, LSTM or cell, got "
                        f"{type(module).__name__}")
    attrs = _layers.onnx_attributes(module)            # raises for what ONNX cannot express
    op, et = _op(module), _elem_type(module.dtype)
    L, D, H, I = module.num_layers, module.num_directions, module.hidden_size, \
        module.input_size
    lstm = op == "LSTM"
    b = _Builder()
    T_, N_ = "seq_len", "batch"
    in_shape = [N_, T_, I] if module.batch_first else [T_, N_, I]
    inputs = [helper.make_tensor_value_info("input", et, in_shape)]
    if initial_states:
        inputs.append(helper.make_tensor_value_info("h0", et, [L * D, N_, H]))
        if lstm:
            inputs.append(helper.make_tensor_value_info("c0", et, [L * D, N_, H]))
    if sequence_lens:
        inputs.append(helper.make_tensor_value_info("sequence_lens", TensorProto.INT32, [N_]))
    x = "input"
    if module.batch_first:
        b.node("Transpose", ["input"], ["input_time_major"], perm=[1, 0, 2])
        x = "input_time_major"
    y_hs, y_cs = [], []
    for k in range(L):
        w = _layers.onnx_weights(module, k)
        ins = [x, b.const(f"W_l{k}", w["W"]), b.const(f"R_l{k}", w["R"]),
               b.const(f"B_l{k}", w["B"]) if "B" in w else "",
               "sequence_lens" if sequence_lens else ""]
        states = ("h0", "c0") if lstm else ("h0",)
        for s in states:
            if not initial_states:
                ins.append("")
            elif L == 1:
                ins.append(s)
            else:
                starts = b.const(f"{s}_l{k}_starts", np.array([k * D], np.int64))
                ends = b.const(f"{s}_l{k}_ends", np.array([(k + 1) * D], np.int64))
                axes = b.const(f"{s}_l{k}_axes", np.array([0], np.int64))
                b.node("Slice", [s, starts, ends, axes], [f"{s}_l{k}"])
                ins.append(f"{s}_l{k}")
        if lstm:
            ins.append(b.const(f"P_l{k}", w["P"]) if "P" in w else "")
        while ins and ins[-1] == "":
            ins.pop()
        last = k == L - 1
        outs = [f"Y_l{k}", "h_n" if L == 1 else f"h_n_l{k}"]
        if lstm:
            outs.append("c_n" if L == 1 else f"c_n_l{k}")
        b.nodes.append(helper.make_node(op, ins, outs, name=f"{op}_l{k}", **attrs))
        y_hs.append(outs[1])
        if lstm:
            y_cs.append(outs[2])
        # Y [T, D, N, H] -> [T, N, D*H], the next layer's input (PyTorch's output)
        out = "output" if last and not module.batch_first else f"output_l{k}"
        if D == 1:
            b.node("Squeeze", [f"Y_l{k}", b.const(f"Y_l{k}_axes", np.array([1], np.int64))],
                   [out])
        else:
            b.node("Transpose", [f"Y_l{k}"], [f"Y_l{k}_t"], perm=[0, 2, 1, 3])
            b.node("Reshape", [f"Y_l{k}_t", b.const(f"Y_l{k}_shape",
                                                   np.array([0, 0, -1], np.int64))], [out])
        x = out
    if module.batch_first:
        b.node("Transpose", [x], ["output"], perm=[1, 0, 2])
    if L > 1:
        b.node("Concat", y_hs, ["h_n"], axis=0)
        if lstm:
            b.node("Concat", y_cs, ["c_n"], axis=0)
    out_shape = [N_, T_, D * H] if module.batch_first else [T_, N_, D * H]
    outputs = [helper.make_tensor_value_info("output", et, out_shape),
               helper.make_tensor_value_info("h_n", et, [L * D, N_, H])]
    if lstm:
        outputs.append(helper.make_tensor_value_info("c_n", et, [L * D, N_, H]))
    return _finish(b, inputs, outputs, graph_name or f"minirnn_{type(module).__name__}",
                   opset, path, repr(module))


def _export_cell(cell: Any, path: Any, opset: int, graph_name: Optional[str]) -> Any:
    m = _as_module(cell)
    attrs = _layers.onnx_attributes(m)
    op, et, H = _op(m), _elem_type(m.dtype), m.hidden_size
    lstm = op == "LSTM"
    b = _Builder()
    N_ = "batch"
    inputs = [helper.make_tensor_value_info("input", et, [N_, m.input_size]),
              helper.make_tensor_value_info("h", et, [N_, H])]
    if lstm:
        inputs.append(helper.make_tensor_value_info("c", et, [N_, H]))
    zero = b.const("axes0", np.array([0], np.int64))
    b.node("Unsqueeze", ["input", zero], ["X"])                     # [1, N, I]: one step
    b.node("Unsqueeze", ["h", zero], ["initial_h"])                 # [1, N, H]: D = 1
    w = _layers.onnx_weights(m, 0)
    ins = ["X", b.const("W", w["W"]), b.const("R", w["R"]),
           b.const("B", w["B"]) if "B" in w else "", "", "initial_h"]
    if lstm:
        b.node("Unsqueeze", ["c", zero], ["initial_c"])
        ins += ["initial_c", b.const("P", w["P"]) if "P" in w else ""]
        while ins[-1] == "":
            ins.pop()
    outs = ["", "Y_h"] + (["Y_c"] if lstm else [])
    b.nodes.append(helper.make_node(op, ins, outs, name=op, **attrs))
    b.node("Squeeze", ["Y_h", zero], ["h_next"])
    outputs = [helper.make_tensor_value_info("h_next", et, [N_, H])]
    if lstm:
        b.node("Squeeze", ["Y_c", zero], ["c_next"])
        outputs.append(helper.make_tensor_value_info("c_next", et, [N_, H]))
    return _finish(b, inputs, outputs, graph_name or f"minirnn_{type(cell).__name__}",
                   opset, path, repr(cell))


def _finish(b: _Builder, inputs: list, outputs: list, name: str, opset: int, path: Any,
            doc: str) -> Any:
    graph = helper.make_graph(b.nodes, name, inputs, outputs, initializer=b.inits,
                              doc_string=f"minirnn {doc}")
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="minirnn",
                              ir_version=helper.find_min_ir_version_for(opsets))
    onnx.checker.check_model(model)
    if path is not None:
        onnx.save(model, os.fspath(path))
    return model

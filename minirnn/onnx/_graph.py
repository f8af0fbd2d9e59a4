"""``load``: an ONNX model's recurrent nodes as minirnn modules, and the graph as a callable."""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Sequence, Set

import numpy as np

from .. import modules as _modules
from . import _layers
from ._dep import require_onnx
from ._ops import GLUE_OPS, ONNX_DTYPES

RECURRENT_OPS = ("RNN", "GRU", "LSTM")
#: the node input slots of each recurrent op, in order
SLOTS = {"RNN": ("X", "W", "R", "B", "sequence_lens", "initial_h"),
         "GRU": ("X", "W", "R", "B", "sequence_lens", "initial_h"),
         "LSTM": ("X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P")}
WEIGHT_SLOTS = ("W", "R", "B", "P")


def _attrs(node: Any) -> Dict[str, Any]:
    onnx = require_onnx()
    out = {}
    for a in node.attribute:
        v = onnx.helper.get_attribute_value(a)
        if a.type == onnx.AttributeProto.TENSOR:
            v = onnx.numpy_helper.to_array(v)
        elif isinstance(v, bytes):
            v = v.decode()
        elif isinstance(v, list) and v and isinstance(v[0], bytes):
            v = [s.decode() for s in v]
        out[a.name] = v
    return out


class ONNXLayer:
    """One recurrent node of the graph and the minirnn module computing it.

    Attributes: ``name`` (the node's name, or ``"<op> #k"``), ``op_type`` (``"RNN"``,
    ``"GRU"``, ``"LSTM"``), ``direction``, ``layout``, ``inputs``/``outputs`` (the node's
    tensor names by slot: ``{"X": ..., "W": ..., "Y_h": ...}``), ``module`` (a one-layer
    minirnn ``RNN``/``GRU``/``LSTM``, ``batch_first`` for ``layout=1``; None when its weights
    are graph inputs not given to :func:`load`: it is then built from the fed weights at each
    call), ``weight_inputs`` (the graph inputs its weights come from, if any).
    """

    def __init__(self, node: Any, index: int, spec: _layers.LayerSpec) -> None:
        self.node = node
        self.name = node.name or f"{node.op_type} #{index}"
        self.op_type = node.op_type
        self.spec = spec
        self.direction = spec.direction
        self.layout = spec.layout
        slots = SLOTS[node.op_type]
        self.inputs = {s: n for s, n in zip(slots, node.input) if n}
        self.outputs = {s: n for s, n in zip(("Y", "Y_h", "Y_c"), node.output) if n}
        self.module: Optional[_modules._RNNBase] = None
        self.weight_inputs: List[str] = []

    @property
    def where(self) -> str:
        return f"{self.op_type} node {self.name!r}"

    def __repr__(self) -> str:
        return f"ONNXLayer({self.name!r}, {self.op_type}, direction={self.direction!r}, " \
               f"layout={self.layout}, module={self.module!r})"


class ONNXModel:
    """An ONNX model read by :func:`load`: its recurrent nodes as minirnn modules
    (``layers``, ``modules``) and the graph as a function of its inputs.

    ``model(x, ...)`` (inputs by position in ``input_names`` order, or by name) returns the
    graph's outputs, a tuple in ``output_names`` order (one array when the graph has one
    output). ``model.run(output_names, feeds)`` is onnxruntime's form: a list.
    Evaluating needs every node to be a recurrent node or one of the glue operators
    :data:`minirnn.onnx.GLUE_OPS`; ``unsupported_ops`` lists the others (a call raises
    NotImplementedError naming them).
    """

    def __init__(self, model: Any, weights: Optional[Dict[str, Any]] = None) -> None:
        to_array = require_onnx().numpy_helper.to_array
        graph = model.graph
        self.model = model
        self.opset = next((o.version for o in model.opset_import
                           if o.domain in ("", "ai.onnx")), 0)
        self._nodes = list(graph.node)
        init_names = {t.name for t in graph.initializer}
        # initializers also listed as graph inputs (IR < 4) are defaults a feed may override
        self.input_names = [i.name for i in graph.input if i.name not in init_names]
        self._defaults: Dict[str, np.ndarray] = {}
        self._input_types = {i.name: i.type.tensor_type.elem_type for i in graph.input}
        listed = {i.name for i in graph.input}
        self._constants: Dict[str, np.ndarray] = {}
        for t in graph.initializer:
            (self._defaults if t.name in listed else self._constants)[t.name] = \
                to_array(t)
        self.output_names = [o.name for o in graph.output]
        self.unsupported_ops = sorted({
            (n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}::{n.op_type}")
            for n in self._nodes
            if not (n.domain in ("", "ai.onnx")
                    and (n.op_type in RECURRENT_OPS or n.op_type in GLUE_OPS))})
        given = dict(weights or {})
        unknown = sorted(set(given) - set(self.input_names))
        if unknown:
            raise ValueError(f"load: weights {unknown} are not graph inputs (graph inputs: "
                             f"{self.input_names})")
        self._fold_constants()
        self.layers: List[ONNXLayer] = []
        for k, node in enumerate(self._nodes):
            if node.domain not in ("", "ai.onnx") or node.op_type not in RECURRENT_OPS:
                continue
            if 0 < self.opset < 7:
                raise NotImplementedError(f"{node.op_type} node {node.name!r}: opset "
                                          f"{self.opset} is not supported (opset 7 or later)")
            spec = _layers.layer_spec(node.op_type, _attrs(node),
                                      f"{node.op_type} node {node.name or '#' + str(k)!r}")
            layer = ONNXLayer(node, k, spec)
            known = dict(self._constants)
            known.update(self._defaults)           # initializers a feed may override
            known.update({n: np.asarray(v) for n, v in given.items()})
            for s in WEIGHT_SLOTS:
                n = layer.inputs.get(s)
                if n is not None and n not in self._constants:
                    layer.weight_inputs.append(n)
            for s in ("W", "R"):
                if s not in layer.inputs:
                    raise ValueError(f"{layer.where}: input {s} is required")
            vals = {s: known.get(layer.inputs[s]) for s in WEIGHT_SLOTS if s in layer.inputs}
            if all(v is not None for v in vals.values()):
                layer.module = _layers.build_module(spec, vals["W"], vals["R"], vals.get("B"),
                                                    vals.get("P"), where=layer.where)
            self.layers.append(layer)

    # -- load-time constant folding -----------------------------------------------------
    def _fold_constants(self) -> None:
        """Evaluate the glue whose inputs are all constants (initializers that no feed can
        override, Constant nodes), so weights computed from constants are known at load."""
        self._folded: Set[int] = set()
        for k, node in enumerate(self._nodes):
            if node.domain not in ("", "ai.onnx") or node.op_type not in GLUE_OPS:
                continue
            if not all(n == "" or n in self._constants for n in node.input):
                continue
            try:
                outs = self._glue(node, [self._constants.get(n) if n else None
                                         for n in node.input])
            except Exception:             # noqa: BLE001  (the call reports it, with feeds)
                continue
            for name, v in zip(node.output, outs):
                if name:
                    self._constants[name] = v
            self._folded.add(k)

    def _glue(self, node: Any, inputs: List[Optional[np.ndarray]]) -> list:
        attrs = _attrs(node)
        if node.op_type == "Split":
            attrs["_num_outputs"] = len(node.output)
        return GLUE_OPS[node.op_type](inputs, attrs, self.opset)

    # -- the modules ----------------------------------------------------------------------
    @property
    def modules(self) -> List[Optional[_modules._RNNBase]]:
        """The minirnn module of every recurrent node, in graph order (None for a node whose
        weights are graph inputs that were not given to :func:`load`)."""
        return [layer.module for layer in self.layers]

    def to_module(self, batch_first: Optional[bool] = None) -> _modules._RNNBase:
        """The recurrent nodes as *one* minirnn module of ``len(layers)`` layers: what a
        stack exported from ``torch.nn.LSTM(num_layers=k)`` (or by :func:`export`) is.

        The nodes must be one op with one variant, hidden size, directions, dtype and bias
        presence, each fed (through glue) by the previous one's ``Y``; a ValueError says
        which condition fails. ``batch_first`` defaults to ``layout == 1`` (an exporter
        writing a batch-first model with layout 0 and Transposes around it: pass True).
        """
        if not self.layers:
            raise ValueError("to_module: the graph has no RNN/GRU/LSTM node")
        missing = [la.name for la in self.layers if la.module is None]
        if missing:
            raise ValueError(f"to_module: the weights of {missing} are graph inputs; give "
                             "them to load(..., weights={name: array})")
        first = self.layers[0]
        m0 = first.module
        assert m0 is not None
        for k, la in enumerate(self.layers[1:], 1):
            m = la.module
            assert m is not None
            same = (la.op_type == first.op_type and m.mode == m0.mode
                    and m.variant == m0.variant and m.hidden_size == m0.hidden_size
                    and m.bidirectional == m0.bidirectional and m.dtype == m0.dtype
                    and m.bias == m0.bias and la.layout == first.layout)
            if not same:
                raise ValueError(f"to_module: node {la.name!r} differs from {first.name!r} "
                                 f"({m!r} vs {m0!r}); one module holds one kind of layer")
            if m.input_size != m0.num_directions * m0.hidden_size:
                raise ValueError(f"to_module: node {la.name!r} takes {m.input_size} inputs, "
                                 f"not the {m0.num_directions * m0.hidden_size} outputs of a "
                                 "layer")
            if self.layers[k - 1].outputs.get("Y") not in self._ancestors(la.inputs["X"]):
                raise ValueError(f"to_module: node {la.name!r}'s input X does not come from "
                                 f"node {self.layers[k - 1].name!r}'s output Y")
        cls = type(m0)
        kw: Dict[str, Any] = {}
        if cls is _modules.RNN:
            kw["nonlinearity"] = m0.nonlinearity
        for key in ("reset_after", "peephole", "coupled_input_forget", "cell_clip",
                    "reverse"):
            if key in first.spec.variant_kwargs or (key == "peephole" and m0.variant.peephole):
                kw[key] = getattr(m0.variant, key)
        if m0.variant.activations is not None:
            kw["activations"] = [a for d in m0.variant.activations for a in d]
        out = cls(m0.input_size, m0.hidden_size, num_layers=len(self.layers), bias=m0.bias,
                  batch_first=first.layout == 1 if batch_first is None else batch_first,
                  bidirectional=m0.bidirectional, dtype=m0.dtype, **kw)
        state = {}
        for k, la in enumerate(self.layers):
            assert la.module is not None
            for name, v in la.module.state_dict().items():
                state[name.replace("_l0", f"_l{k}", 1)] = v
        out.load_state_dict(state)
        return out

    def _ancestors(self, name: str) -> Set[str]:
        """Every tensor ``name`` is computed from (itself included)."""
        producer = {o: n for n in self._nodes for o in n.output if o}
        seen, todo = set(), [name]
        while todo:
            t = todo.pop()
            if t in seen:
                continue
            seen.add(t)
            n = producer.get(t)
            if n is not None and n.op_type not in RECURRENT_OPS:
                todo.extend(i for i in n.input if i)
            elif n is not None:
                seen.update(o for o in n.output if o)
        return seen

    # -- evaluation -----------------------------------------------------------------------
    def run(self, output_names: Optional[Sequence[str]], feeds: Dict[str, Any]) -> list:
        """Evaluate the graph (onnxruntime's signature): ``feeds`` maps input names to
        arrays; returns the outputs named in ``output_names`` (None: all), a list."""
        if self.unsupported_ops:
            raise NotImplementedError(
                f"minirnn.onnx cannot evaluate this graph: operator(s) "
                f"{', '.join(self.unsupported_ops)} are not supported (it evaluates RNN, GRU, "
                f"LSTM and the glue ops {', '.join(sorted(GLUE_OPS))}); the recurrent "
                "nodes' modules are in .layers")
        unknown = sorted(set(feeds) - set(self.input_names) - set(self._defaults))
        if unknown:
            raise ValueError(f"unknown input(s) {unknown}; the graph's inputs are "
                             f"{self.input_names}")
        missing = [n for n in self.input_names if n not in feeds]
        if missing:
            weights = {n for la in self.layers for n in la.weight_inputs}
            note = "" if not weights & set(missing) else (
                f" ({sorted(weights & set(missing))} are weights of recurrent nodes, graph "
                "inputs in this model: feed them, or give them to load(..., weights=...))")
            raise ValueError(f"missing input(s) {missing}{note}")
        values: Dict[str, np.ndarray] = dict(self._constants)
        values.update(self._defaults)
        for n, v in feeds.items():
            a = np.asarray(v)
            want = ONNX_DTYPES.get(self._input_types.get(n, 0))
            if want is not None and a.dtype != want:
                raise TypeError(f"input {n!r} has dtype {a.dtype}, the graph declares "
                                f"{np.dtype(want)}")
            values[n] = a
        fed_weights = set(feeds)
        layer_of = {id(la.node): la for la in self.layers}
        for k, node in enumerate(self._nodes):
            if k in self._folded:
                continue
            ins = []
            for n in node.input:
                if n and n not in values:
                    raise ValueError(f"{node.op_type} node {node.name!r}: input {n!r} is "
                                     "not computed before it (nodes must be in topological "
                                     "order)")
                ins.append(values[n] if n else None)
            if node.op_type in RECURRENT_OPS:
                outs = self._run_layer(layer_of[id(node)], ins, fed_weights)
            else:
                try:
                    outs = self._glue(node, ins)
                except (ValueError, IndexError, TypeError, KeyError) as e:
                    raise ValueError(f"{node.op_type} node {node.name!r}: {e}") from e
            for name, v in zip(node.output, outs):
                if name:
                    if v is None:
                        raise ValueError(f"{node.op_type} node {node.name!r}: output "
                                         f"{name!r} is not defined for this op")
                    values[name] = v
        names = self.output_names if output_names is None else list(output_names)
        bad = [n for n in names if n not in values]
        if bad:
            raise ValueError(f"unknown output(s) {bad}; the graph's outputs are "
                             f"{self.output_names}")
        return [values[n] for n in names]

    def _run_layer(self, layer: ONNXLayer, ins: List[Optional[np.ndarray]],
                   fed: Set[str]) -> list:
        slot = dict(zip(SLOTS[layer.op_type], ins))
        m = layer.module
        if m is None or any(n in fed for n in layer.weight_inputs):
            m = _layers.build_module(layer.spec, slot["W"], slot["R"], slot.get("B"),
                                     slot.get("P"), where=layer.where)
        Y, Y_h, Y_c = _layers.run_layer(layer.spec, m, slot["X"], slot.get("sequence_lens"),
                                        slot.get("initial_h"), slot.get("initial_c"),
                                        where=layer.where)
        return [Y, Y_h, Y_c]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if len(args) > len(self.input_names):
            raise TypeError(f"the graph takes {len(self.input_names)} input(s) "
                            f"{self.input_names}, got {len(args)} positional")
        feeds = dict(zip(self.input_names, args))
        twice = sorted(set(feeds) & set(kwargs))
        if twice:
            raise TypeError(f"input(s) {twice} given by position and by name")
        feeds.update(kwargs)
        outs = self.run(None, feeds)
        return outs[0] if len(outs) == 1 else tuple(outs)

    def __repr__(self) -> str:
        return (f"ONNXModel(inputs={self.input_names}, outputs={self.output_names}, "
                f"layers={[la.name for la in self.layers]})")


def load(model_or_path: Any, *, weights: Optional[Dict[str, Any]] = None) -> ONNXModel:
    """Read an ONNX model (a ``ModelProto``, a path, or the serialized bytes) into an
    :class:`ONNXModel`: a minirnn module per ``RNN``/``GRU``/``LSTM`` node, weights converted
    to PyTorch's layout, and the graph callable.

    Weights that are initializers or ``Constant`` nodes (or glue computed from them) are read
    at load; weights that are *graph inputs* are fed at each call, or given here as
    ``weights={input_name: array}`` to build the modules now.
    """
    onnx = require_onnx()
    if isinstance(model_or_path, (str, os.PathLike)):
        model = onnx.load(os.fspath(model_or_path))
    elif isinstance(model_or_path, (bytes, bytearray)):
        model = onnx.load_from_string(bytes(model_or_path))
    elif isinstance(model_or_path, onnx.ModelProto):
        model = model_or_path
    else:
        raise TypeError(f"load: expected an onnx.ModelProto, a path or bytes, got "
                        f"{type(model_or_path).__name__}")
    return ONNXModel(model, weights)

"""A conformance adapter for minirnn itself (any backend): the interface, end to end.

    python -m minirnn conformance --impl examples/numpy_adapter.py:make_adapter

``make_adapter`` runs minirnn's readable NumPy backend; ``make_adapter_c`` the compiled one.
Copy this file to wrap another NumPy-based implementation.
"""
import numpy as np

import minirnn
from minirnn.packed import PackedSequence, pack_padded_sequence, pad_packed_sequence


def make_adapter(case, backend="numpy"):
    """The adapter factory (see minirnn.conformance_runner): a model from the case."""
    m = getattr(minirnn, case.cls)(**case.config, dtype=case.dtype, backend=backend)
    m.load_state_dict(case.params)
    return MinirnnAdapter(m, case)


def make_adapter_c(case):
    return make_adapter(case, backend="c")


class MinirnnAdapter:
    def __init__(self, module, case):
        self.m, self.case = module, case
        self.lstm = case.mode == "LSTM"

    def forward(self, inputs):
        case, x = self.case, inputs["input"]
        if case.kind == "cell":
            h, c = inputs["h0"], inputs.get("c0")
            hs, cs = [], []
            for xt in x:
                if self.lstm:
                    h, c = self.m(xt, (h, c))
                    cs.append(c)
                else:
                    h = self.m(xt, h)
                hs.append(h)
            return {"h": np.stack(hs), **({"c": np.stack(cs)} if self.lstm else {})}
        hx = inputs["h0"]
        if self.lstm:
            hx = None if hx is None else (hx, inputs["c0"])
        bf = case.config.get("batch_first", False)
        if case.kind == "packed":
            self.T = x.shape[1 if bf else 0]
            x = pack_padded_sequence(x, inputs["lengths"], batch_first=bf,
                                     enforce_sorted=False)
            out, state = self.m(x, hx)
            self.packed = out
            out, _ = pad_packed_sequence(out, batch_first=bf, total_length=self.T)
        else:
            out, state = self.m(x, hx)
        h_n, c_n = state if self.lstm else (state, None)
        return {"output": out, "h_n": h_n, **({"c_n": c_n} if self.lstm else {})}

    def backward(self, grads):
        case = self.case
        if case.kind == "cell":
            gh = gc = 0
            gx = [None] * len(grads["grad_h"])
            for t in reversed(range(len(gx))):      # the gradient reaching h_t: loss + step t+1
                if self.lstm:
                    gx[t], (gh, gc) = self.m.backward((grads["grad_h"][t] + gh,
                                                       grads["grad_c"][t] + gc))
                else:
                    gx[t], gh = self.m.backward(grads["grad_h"][t] + gh)
            res = {"grad_input": np.stack(gx), "grad_h0": gh}
            if self.lstm:
                res["grad_c0"] = gc
        else:
            go = grads["grad_output"]
            bf = case.config.get("batch_first", False)
            if case.kind == "packed":
                p = pack_padded_sequence(go, case.meta["lengths"], batch_first=bf,
                                         enforce_sorted=False)
                go = PackedSequence(p.data, self.packed.batch_sizes,
                                    self.packed.sorted_indices, self.packed.unsorted_indices)
            gs = (grads["grad_h_n"], grads["grad_c_n"]) if self.lstm else grads["grad_h_n"]
            gx, g0 = self.m.backward(go, gs)
            if case.kind == "packed":
                gx, _ = pad_packed_sequence(gx, batch_first=bf, total_length=self.T)
            res = {"grad_input": gx}
            res["grad_h0"], res["grad_c0"] = g0 if self.lstm else (g0, None)
        res.update({f"grad.{k}": v for k, v in self.m.grads.items()})
        return res

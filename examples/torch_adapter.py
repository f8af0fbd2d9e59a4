"""A conformance adapter for PyTorch: run minirnn's reference cases against ``torch.nn``.

    python -m minirnn conformance --impl examples/torch_adapter.py:make_adapter
    python examples/torch_adapter.py [PATTERN]      # the same, optionally only some cases

The cases were written by PyTorch, so this is the adapter interface's proof: it must pass.
It is also a model for wrapping any other implementation: build the model from
``case.cls``/``case.config``, load ``case.params`` (PyTorch's names), run
``forward(inputs)``, and return the gradients from ``backward(grads)``. Without torch
installed it prints a note and exits 0. (Use ``torch==2.13.0``, the CPU wheel.)
"""
import sys


def make_adapter(case):
    """The adapter factory: ``case`` is a :class:`minirnn.conformance_runner.Case`."""
    import numpy as np
    import torch
    dtype = torch.float64 if case.dtype == np.float64 else torch.float32
    m = getattr(torch.nn, case.cls)(**case.config, dtype=dtype)
    with torch.no_grad():
        for name, p in m.named_parameters():
            p.copy_(torch.from_numpy(np.ascontiguousarray(case.params[name])))
    return TorchAdapter(m, case, dtype)


class TorchAdapter:
    def __init__(self, module, case, dtype):
        self.m, self.case, self.dtype = module, case, dtype
        self.lstm = case.mode == "LSTM"

    def _leaf(self, a, shape=None):
        import torch
        t = (torch.zeros(shape, dtype=self.dtype) if a is None
             else torch.from_numpy(a.copy()))
        return t.requires_grad_(True)

    def forward(self, inputs):
        import torch
        from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
        case, cfg = self.case, self.case.config
        x = self._leaf(inputs["input"])
        if case.kind == "cell":
            steps = x.shape[0]
            H = cfg["hidden_size"]
            shape = x.shape[1:-1] + (H,)
            h, c = self._leaf(inputs["h0"], shape), None
            if self.lstm:
                c = self._leaf(inputs["c0"], shape)
            self.state0 = [h] + ([c] if self.lstm else [])
            hs, cs = [], []
            for t in range(steps):
                if self.lstm:
                    h, c = self.m(x[t], (h, c))
                    cs.append(c)
                else:
                    h = self.m(x[t], h)
                hs.append(h)
            self.outs = {"h": torch.stack(hs), **({"c": torch.stack(cs)} if self.lstm else {})}
        else:
            D = 2 if cfg.get("bidirectional") else 1
            Hr = cfg.get("proj_size", 0) or cfg["hidden_size"]
            unbatched = x.dim() == 2
            N = 1 if unbatched else x.shape[0 if cfg.get("batch_first") else 1]
            lead = (D * cfg.get("num_layers", 1),) + (() if unbatched else (N,))
            h0 = self._leaf(inputs["h0"], lead + (Hr,))
            c0 = self._leaf(inputs.get("c0"), lead + (cfg["hidden_size"],)) if self.lstm \
                else None
            self.state0 = [h0] + ([c0] if self.lstm else [])
            hx = (h0, c0) if self.lstm else h0
            if case.kind == "packed":
                bf = cfg.get("batch_first", False)
                packed = pack_padded_sequence(x, inputs["lengths"], batch_first=bf,
                                              enforce_sorted=False)
                out, state = self.m(packed, hx)
                out, _ = pad_packed_sequence(out, batch_first=bf,
                                             total_length=x.shape[1 if bf else 0])
            else:
                out, state = self.m(x, hx)
            h_n, c_n = state if self.lstm else (state, None)
            self.outs = {"output": out, "h_n": h_n, **({"c_n": c_n} if self.lstm else {})}
        self.x = x
        return {k: v.detach().numpy() for k, v in self.outs.items()}

    def backward(self, grads):
        import torch
        loss = sum((self.outs[k[5:]] * torch.from_numpy(g)).sum() for k, g in grads.items())
        names = [n for n, _ in self.m.named_parameters()]
        leaves = [self.x] + self.state0 + [p for _, p in self.m.named_parameters()]
        g = torch.autograd.grad(loss, leaves, allow_unused=True)
        res = {"grad_input": g[0], "grad_h0": g[1]}
        if self.lstm:
            res["grad_c0"] = g[2]
        for n, gp in zip(names, g[len(self.state0) + 1:]):
            res[f"grad.{n}"] = gp
        return {k: (None if v is None else v.numpy()) for k, v in res.items()}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    try:
        import torch  # noqa: F401
    except ImportError:
        print("torch is not installed: skipping (pip install torch==2.13.0, the CPU wheel)")
        return 0
    try:
        import minirnn  # noqa: F401
    except ImportError:           # run from a source checkout without installing minirnn
        import os
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from minirnn.conformance_runner import run_conformance
    rep = run_conformance(make_adapter, only=argv[0] if argv else None)
    return 0 if rep.ok else 1


if __name__ == "__main__":
    sys.exit(main())

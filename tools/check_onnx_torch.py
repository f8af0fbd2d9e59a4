"""Check ``minirnn.onnx.load`` on models written by ``torch.onnx.export``.

For ``nn.RNN`` (tanh, relu), ``nn.GRU`` and ``nn.LSTM`` in several shapes (layers,
bidirectional, batch_first, bias, with and without an initial state), torch exports the
module with both of its exporters (the TorchScript one, ``dynamo=False``, and the
``torch.export`` one, ``dynamo=True``, which needs onnxscript) and computes the reference
outputs; minirnn then loads each file, evaluates the graph and compares, and rebuilds one
module with ``to_module()`` whose ``state_dict`` must equal torch's bit for bit.

torch runs in a child process (this script with ``--torch-side DIR``): torch's OpenMP
runtime and minirnn's must not share a process.

    pip install torch==2.13.0 onnx onnxscript      # the CPU wheel
    python tools/check_onnx_torch.py               # exits 1 on any mismatch
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
T, N, I, H = 5, 3, 4, 6
CONFIGS = [
    ("LSTM", dict()),
    ("LSTM", dict(num_layers=2, bidirectional=True)),
    ("LSTM", dict(num_layers=3, batch_first=True)),
    ("LSTM", dict(bias=False, bidirectional=True)),
    ("GRU", dict()),
    ("GRU", dict(num_layers=2, bidirectional=True, batch_first=True)),
    ("GRU", dict(bias=False, num_layers=2)),
    ("RNN", dict()),
    ("RNN", dict(nonlinearity="relu", num_layers=2, bidirectional=True)),
    ("RNN", dict(num_layers=2, batch_first=True, bias=False)),
]
#: float32, relative to max|torch|: two float32 implementations (measured: <= 3e-7)
TOLERANCE = 1e-5


def case_name(k: int, cls: str, kw: dict, with_h0: bool, dynamo: bool) -> str:
    return f"{k:02d}_{cls}_{'h0' if with_h0 else 'noh0'}_{'dynamo' if dynamo else 'ts'}"


def torch_side(out_dir: str) -> None:
    import warnings

    import torch
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    meta = []
    for k, (cls, kw) in enumerate(CONFIGS):
        m = getattr(torch.nn, cls)(I, H, **kw).eval()
        with torch.no_grad():                      # distinct, nonzero biases and weights
            for p in m.parameters():
                p.uniform_(-0.6, 0.6)
        D = 2 if kw.get("bidirectional") else 1
        LD = D * kw.get("num_layers", 1)
        x = torch.randn((N, T, I) if kw.get("batch_first") else (T, N, I))
        h0, c0 = torch.randn(LD, N, H), torch.randn(LD, N, H)
        state = {n: p.detach().numpy() for n, p in m.state_dict().items()}
        for with_h0 in (True, False):
            hx = ((h0, c0) if cls == "LSTM" else h0) if with_h0 else None
            args = (x, hx) if with_h0 else (x,)
            with torch.no_grad():
                out, hn = m(*args)
            outs = [out, *(hn if cls == "LSTM" else (hn,))]
            names = ["x"] + (["h0", "c0"] if cls == "LSTM" else ["h0"]) * with_h0
            for dynamo in (False, True):
                name = case_name(k, cls, kw, with_h0, dynamo)
                path = os.path.join(out_dir, name + ".onnx")
                try:
                    torch.onnx.export(m, args, path, input_names=names, dynamo=dynamo,
                                      output_names=["y", "h_n", "c_n"][:len(outs)],
                                      **({} if dynamo else dict(opset_version=17)))
                except Exception as e:              # noqa: BLE001
                    meta.append(dict(name=name, error=f"{type(e).__name__}: {e}"[:300]))
                    continue
                feeds = {"x": x.numpy()}
                if with_h0:
                    feeds["h0"] = h0.numpy()
                    if cls == "LSTM":
                        feeds["c0"] = c0.numpy()
                np.savez(os.path.join(out_dir, name + ".npz"),
                         **{f"in.{n}": v for n, v in feeds.items()},
                         **{f"out.{j}": o.numpy() for j, o in enumerate(outs)},
                         **{f"state.{n}": v for n, v in state.items()})
                meta.append(dict(name=name, cls=cls, config=kw,
                                 batch_first=bool(kw.get("batch_first"))))
    meta_info = dict(torch=torch.__version__, cases=meta)
    with open(os.path.join(out_dir, "meta.json"), "w") as f:
        json.dump(meta_info, f)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--torch-side", metavar="DIR", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.torch_side:
        torch_side(args.torch_side)
        return 0
    sys.path.insert(0, str(ROOT))
    import onnx

    import minirnn.onnx as mo
    failures = skipped = 0
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([sys.executable, __file__, "--torch-side", d], check=True)
        with open(os.path.join(d, "meta.json")) as f:
            info = json.load(f)
        print(f"torch {info['torch']}, onnx {onnx.__version__}")
        worst = 0.0
        for c in info["cases"]:
            if "error" in c:
                print(f"  {c['name']:28s} torch could not export: {c['error']}")
                continue
            model = onnx.load(os.path.join(d, c["name"] + ".onnx"))
            ref = np.load(os.path.join(d, c["name"] + ".npz"))
            feeds = {k[3:]: ref[k] for k in ref.files if k.startswith("in.")}
            want = [ref[f"out.{j}"] for j in range(sum(k.startswith("out.") for k in ref.files))]
            ops = sorted({n.op_type for n in model.graph.node})
            loaded = mo.load(model)
            if not loaded.layers:
                # the exporter wrote the recurrence as plain tensor ops (no RNN/GRU/LSTM
                # node): there is nothing for minirnn.onnx to load, and load says so
                skipped += 1
                print(f"  {c['name']:28s} no recurrent node (the exporter unrolled it into "
                      f"{', '.join(ops)}): not loadable, as expected")
                continue
            got = loaded.run(None, feeds)
            errs = [float(np.abs(g - w).max() / np.abs(w).max()) if g.shape == w.shape
                    else float("inf") for g, w in zip(got, want)]
            m = loaded.to_module(batch_first=c["batch_first"])
            sd = m.state_dict()
            state = {k[6:]: ref[k] for k in ref.files if k.startswith("state.")}
            exact = list(sd) == list(state) and all(
                np.array_equal(sd[k], state[k]) and sd[k].dtype == state[k].dtype
                for k in state)
            ok = max(errs) <= TOLERANCE and exact
            failures += not ok
            worst = max(worst, max(errs))
            print(f"  {c['name']:28s} {'ok  ' if ok else 'FAIL'} max rel err "
                  f"{max(errs):.1e}, state_dict {'bit-exact' if exact else 'DIFFERS'}; "
                  f"ops {', '.join(ops)}")
        print(f"{len(info['cases'])} exported models, {skipped} without a recurrent node, "
              f"{failures} failed; worst error "
              f"{worst:.1e} (tolerance {TOLERANCE:g})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

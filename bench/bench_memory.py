#!/usr/bin/env python
"""Peak memory of one training step (forward + backward), against what must be saved.

For each mode at one size (default: the benchmark's ``medium``, T=100, B=64, I=128, H=256,
one layer, float32) the script prints:

- ``minimum``: the theoretical minimum of saved activations, what the backward formulas read
  without recomputing anything (per step and batch row: Elman h_t; GRU h_t, r, z, n and
  W_hn h_{t-1} + b_hn; LSTM h_t, c_t, i, f, g, o), in MB;
- ``saved``: what minirnn's forward keeps on its tape for the backward (the arrays of the
  tape, not counting the caller's input, which the tape only references);
- ``peak``: the largest extra memory minirnn allocated during the step (``tracemalloc``
  follows NumPy's allocations, and every buffer of minirnn is a NumPy array), measured from
  a cold start (``minirnn.release_buffers()`` first) and again warm (the second of two steps:
  the buffers kept from the first are then counted in the baseline, not in the peak);
- ``rss``: the growth of the process's peak resident memory (VmHWM, Linux) over one cold
  training step, measured in a fresh subprocess per library, for minirnn and (if it is
  installed) PyTorch, which ``tracemalloc`` cannot see.

Usage::

    python bench/bench_memory.py                          # medium, float32, every mode
    python bench/bench_memory.py --size 100,64,128,256 --dtype float64 --no-torch
"""
import argparse
import json
import os
import subprocess
import sys
import tracemalloc

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

MODES = ("rnn", "gru", "lstm")
# per step and batch row, in units of H: what the backward must read
MINIMUM_WIDTH = {"rnn": 1, "gru": 5, "lstm": 6}


def _model_and_data(lib, mode, T, B, I, H, dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, I)).astype(dtype)
    g = rng.standard_normal((T, B, H)).astype(dtype)
    if lib == "minirnn":
        import minirnn
        cls = {"rnn": minirnn.RNN, "gru": minirnn.GRU, "lstm": minirnn.LSTM}[mode]
        return cls(I, H, dtype=dtype, seed=0), x, g
    import torch
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    cls = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[mode]
    tdt = torch.float32 if dtype == "float32" else torch.float64
    return cls(I, H, dtype=tdt), torch.from_numpy(x).requires_grad_(), torch.from_numpy(g)


def _train_step(lib, m, x, g):
    if lib == "minirnn":
        out, _ = m(x)
        m.backward(g)
    else:
        out, _ = m(x)
        (out * g).sum().backward()


def _vm_hwm_kib():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))


def _rss_child(lib, mode, T, B, I, H, dtype):
    """Run in a fresh process: peak RSS growth (MB) over one cold training step. Linux:
    the peak (VmHWM) is reset to the current RSS first (getrusage's ru_maxrss cannot be
    reset, and a child starts with its parent's)."""
    m, x, g = _model_and_data(lib, mode, T, B, I, H, dtype)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")                                  # reset VmHWM to the current RSS
    before = _vm_hwm_kib()
    _train_step(lib, m, x, g)
    print(json.dumps((_vm_hwm_kib() - before) * 1024 / 1e6))


def rss_growth(lib, mode, T, B, I, H, dtype):
    code = (f"import sys; sys.path.insert(0, {os.path.dirname(HERE)!r}); "
            f"sys.path.insert(0, {HERE!r}); import bench_memory as b; "
            f"b._rss_child({lib!r}, {mode!r}, {T}, {B}, {I}, {H}, {dtype!r})")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if r.returncode != 0:
        return float("nan")
    return json.loads(r.stdout.strip().splitlines()[-1])


def tape_bytes(m):
    """Bytes of the arrays minirnn's latest tape entry keeps (the caller's input excluded)."""
    tape = m._tape[-1]["tape"]
    seen, total = set(), 0
    for layer in tape["layers"]:
        for key, a in layer.items():
            if key in ("X", "w", "h0", "c0") or not isinstance(a, np.ndarray):
                continue
            if id(a) not in seen:
                seen.add(id(a))
                total += a.nbytes
    return total


def traced_peak(m, x, g, cold):
    """Peak extra bytes allocated during one training step (after one untimed step if warm)."""
    import minirnn
    minirnn.release_buffers()
    if not cold:
        _train_step("minirnn", m, x, g)
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    out, _ = m(x)
    saved = tape_bytes(m)
    m.backward(g)
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return peak, saved


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="100,64,128,256", help="T,B,I,H (default: medium)")
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--no-torch", action="store_true")
    opt = p.parse_args(argv)
    T, B, I, H = (int(v) for v in opt.size.split(","))
    item = np.dtype(opt.dtype).itemsize
    try:
        import torch  # noqa: F401
        have_torch = not opt.no_torch
    except ImportError:
        have_torch = False
    MB = 1e6
    print(f"training step (forward + backward), T={T} B={B} I={I} H={H}, 1 layer, {opt.dtype}; MB")
    print(f"input x: {T * B * I * item / MB:.1f} MB, output: {T * B * H * item / MB:.1f} MB")
    head = (f"{'mode':5} {'minimum':>8} {'saved':>8} {'saved/min':>9} {'peak cold':>10} "
            f"{'peak warm':>10} {'rss minirnn':>12}" + (f" {'rss torch':>10}" if have_torch else ""))
    print(head)
    print("-" * len(head))
    for mode in opt.modes.split(","):
        m, x, g = _model_and_data("minirnn", mode, T, B, I, H, opt.dtype)
        minimum = MINIMUM_WIDTH[mode] * T * B * H * item
        cold, saved = traced_peak(m, x, g, cold=True)
        warm, _ = traced_peak(m, x, g, cold=False)
        line = (f"{mode:5} {minimum / MB:8.1f} {saved / MB:8.1f} {saved / minimum:9.2f} "
                f"{cold / MB:10.1f} {warm / MB:10.1f} "
                f"{rss_growth('minirnn', mode, T, B, I, H, opt.dtype):12.1f}")
        if have_torch:
            line += f" {rss_growth('torch', mode, T, B, I, H, opt.dtype):10.1f}"
        print(line)


if __name__ == "__main__":
    main()

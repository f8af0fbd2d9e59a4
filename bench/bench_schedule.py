#!/usr/bin/env python
"""The time loops' schedules at small batch: batch slices against blocks of hidden units.

For each shape, each thread count and each schedule ("slices", "blocks", forced through the
kernels' private switch, and "auto", what the kernels choose by shape) the script times warm
back-to-back calls of minirnn's compiled backend (float32) and prints the median per call.
Inference rows time a forward under ``minirnn.no_grad()``; training rows a forward and a
backward with fixed upstream gradients. Every schedule's answer is compared with the first
one's, to the bit (the schedules must not change a result).

Run it against another checkout (for example the code before the small-batch schedule, which
has no switch: its row is labelled "built-in") with ``PYTHONPATH=/path/to/that/checkout``.

Usage:
    python bench/bench_schedule.py                       # every shape, 1 and 2 threads
    python bench/bench_schedule.py --shapes gru512,lstm512 --threads 2 --reps 40
    python bench/bench_schedule.py --list
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import minirnn
from minirnn import _kernels

# name: (mode, input size, hidden size, batch, steps, directions, phase)
SHAPES = {
    "gru512": ("GRU", 512, 512, 1, 25, 1, "infer"),
    "lstm512": ("LSTM", 512, 512, 1, 25, 1, "infer"),
    "lstm1024": ("LSTM", 1024, 1024, 1, 25, 1, "infer"),
    "lstm1024n4": ("LSTM", 1024, 1024, 4, 25, 1, "infer"),
    "lstm256t150": ("LSTM", 256, 256, 1, 150, 1, "infer"),
    "rnn64t96": ("RNN_TANH", 64, 64, 1, 96, 1, "infer"),
    "gru128t1000": ("GRU", 128, 128, 1, 1000, 1, "infer"),
    "gru96t1000": ("GRU", 96, 96, 1, 1000, 1, "infer"),
    "lstm64t1000": ("LSTM", 64, 64, 1, 1000, 1, "infer"),
    "gru64t1000": ("GRU", 64, 64, 1, 1000, 1, "infer"),
    "lstm128t1000": ("LSTM", 128, 128, 1, 1000, 1, "infer"),
    "lstm512bi": ("LSTM", 512, 512, 1, 25, 2, "infer"),
    "train_lstm256n1": ("LSTM", 256, 256, 1, 50, 1, "train"),
    "train_lstm256n2": ("LSTM", 256, 256, 2, 50, 1, "train"),
    "train_lstm256n4": ("LSTM", 256, 256, 4, 50, 1, "train"),
    "train_lstm256n8": ("LSTM", 256, 256, 8, 50, 1, "train"),
    "train_gru512n1": ("GRU", 512, 512, 1, 25, 1, "train"),
    "train_gru512n4": ("GRU", 512, 512, 4, 25, 1, "train"),
}


def make(shape):
    mode, I, H, B, T, D, phase = SHAPES[shape]
    cls = {"GRU": minirnn.GRU, "LSTM": minirnn.LSTM}.get(mode)
    if cls is None:
        m = minirnn.RNN(I, H, nonlinearity="tanh", bidirectional=D == 2, dtype=np.float32,
                        seed=0)
    else:
        m = cls(I, H, bidirectional=D == 2, dtype=np.float32, seed=0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    g = rng.standard_normal((T, B, D * H)).astype(np.float32)

    def call():
        if phase == "infer":
            with minirnn.no_grad():
                out, _ = m(x)
            return out
        m.zero_grad()
        out, _ = m(x)
        gx, _ = m.backward(g)
        return np.concatenate([out.ravel(), gx.ravel()]
                              + [v.ravel() for v in m.grads.values()])
    return call


def timed(call, reps, stat):
    for _ in range(3):
        call()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return (min(times) if stat == "min" else statistics.median(times)) * 1e3


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shapes", default=",".join(SHAPES))
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--schedules", default="slices,blocks,auto")
    ap.add_argument("--reps", type=int, default=25)
    ap.add_argument("--rounds", type=int, default=3,
                    help="interleaved rounds; the best round's median is kept")
    ap.add_argument("--stat", choices=["median", "min"], default="median",
                    help="min: the fastest call, what the code can do when the machine is "
                    "not shared (on a loaded machine the median mostly measures the load)")
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args()
    if args.list:
        for k, v in SHAPES.items():
            print(k, v)
        return
    has_switch = hasattr(_kernels, "_set_schedule")
    schedules = args.schedules.split(",") if has_switch else ["built-in"]
    print(f"{'shape':18s} {'thr':>3s} " + " ".join(f"{s:>9s}" for s in schedules)
          + ("   slices/blocks  auto picks" if has_switch else ""))
    for shape in args.shapes.split(","):
        call = make(shape)
        for nt in map(int, args.threads.split(",")):
            minirnn.set_num_threads(nt)
            best = {s: float("inf") for s in schedules}
            ref = None
            picked = "?"
            for _ in range(args.rounds):
                for s in schedules:
                    if has_switch:
                        _kernels._set_schedule("auto" if s == "auto" else s)
                    out = call()
                    if ref is None:
                        ref = out
                    elif not np.array_equal(out, ref):
                        raise SystemExit(f"{shape}: schedule {s} changed the result")
                    if s == "auto":
                        picked = _kernels._schedule_of_last_call()
                    best[s] = min(best[s], timed(call, args.reps, args.stat))
            if has_switch:
                _kernels._set_schedule("auto")
            row = f"{shape:18s} {nt:3d} " + " ".join(f"{best[s]:9.3f}" for s in schedules)
            if has_switch and "slices" in best and "blocks" in best:
                row += f"   {best['slices'] / best['blocks']:13.2f}  {picked}"
            print(row, flush=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Resident memory of a training loop whose batches vary in length (the buffer pool's bound).

Trains a model (default: a 2-layer GRU, 64 -> 256, B = 32, float32) for ``--calls`` forward +
backward calls on batches whose length is drawn uniformly from ``--lengths`` (default 10..200),
padded or packed, and prints the process's resident memory (VmRSS, Linux) every ``--every``
calls, the bytes the pool keeps and its bound, then RSS again after
``minirnn.release_buffers()``. For scale it also prints what the tape of one call of the
largest length holds.

Usage::

    python bench/bench_pool.py                       # 300 calls, padded batches
    python bench/bench_pool.py --packed --calls 120
    python bench/bench_pool.py --mode lstm --hidden 512 --calls 100
"""
import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import minirnn  # noqa: E402
from minirnn import _backend_c  # noqa: E402


def rss_mb():
    """The resident memory of this process in MB (Linux), or nan."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def pool_mb():
    """(kept, bound) of this thread's pool in MB, or (nan, nan) when the build has no bound."""
    stats = getattr(_backend_c, "pool_stats", None)
    if stats is None:
        return float("nan"), float("nan")
    s = stats()
    return s["bytes"] / 2**20, s["bound"] / 2**20


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mode", default="gru", choices=["rnn", "gru", "lstm"])
    ap.add_argument("--input", type=int, default=64)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lengths", default="10,200", help="shortest,longest")
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--packed", action="store_true", help="packed batches of varying lengths")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    lo, hi = (int(v) for v in args.lengths.split(","))
    cls = {"rnn": minirnn.RNN, "gru": minirnn.GRU, "lstm": minirnn.LSTM}[args.mode]
    m = cls(args.input, args.hidden, num_layers=args.layers, seed=args.seed)
    rng = np.random.default_rng(args.seed)
    B = args.batch
    print(f"{args.mode.upper()} {args.input}->{args.hidden}, {args.layers} layers, B={B}, "
          f"lengths {lo}..{hi}, {'packed' if args.packed else 'padded'}, float32, "
          f"{minirnn.get_num_threads()} threads")
    out, _ = m(np.zeros((hi, B, args.input), np.float32))
    tape_mb = sum(a.nbytes for lt in m._tape[-1]["tape"]["layers"] for a in lt.values()
                  if isinstance(a, np.ndarray)) / 2**20 if isinstance(m._tape[-1], dict) and \
        "tape" in m._tape[-1] else float("nan")
    m.clear_tape()
    minirnn.release_buffers()
    print(f"start: RSS {rss_mb():.0f} MB; one call of length {hi}: tape {tape_mb:.0f} MB")
    print(f"{'calls':>6} {'RSS MB':>8} {'pool MB':>8} {'bound MB':>9} {'s':>6}")
    t0 = time.perf_counter()
    for call in range(1, args.calls + 1):
        T = int(rng.integers(lo, hi + 1))
        x = rng.standard_normal((T, B, args.input)).astype(np.float32)
        if args.packed:
            lengths = np.sort(rng.integers(1, T + 1, size=B))[::-1].copy()
            lengths[0] = T
            x = minirnn.pack_padded_sequence(x, lengths)
        out, h = m(x)
        g = (out._replace(data=np.ones_like(out.data)) if args.packed else np.ones_like(out))
        m.backward(g)
        if call % args.every == 0 or call == args.calls:
            kept, bound = pool_mb()
            print(f"{call:6d} {rss_mb():8.0f} {kept:8.0f} {bound:9.0f} "
                  f"{time.perf_counter() - t0:6.1f}")
    minirnn.release_buffers()
    print(f"after release_buffers(): RSS {rss_mb():.0f} MB")


if __name__ == "__main__":
    main()

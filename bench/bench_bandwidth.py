#!/usr/bin/env python
"""Read bandwidth of L1, L2, L3 and memory, at the footprints W_hh takes.

At batch 1-4, each step of the recurrence reads all of W_hh (G*H x H numbers) once and does
only 1-4 multiply-adds per weight, so a step is bound by how fast W_hh can be read from
wherever it lives, not by the FMA peak (bench/peak_flops.py). This script measures that
ceiling with ``bench/bandwidth.c`` (compiled here with ``cc``/``$CC``, ``-O3 -mavx2 -mfma
-fopenmp``; 512-bit loads where the CPU has AVX-512F): for 1 thread and for every core,
the read bandwidth of a footprint of each size — a sweep from 16 KiB to 256 MiB, and the
W_hh of every LSTM/GRU/RNN hidden size of bench/bench_shapes.py in float32 and float64.
With several threads each reads its own slice (footprint / threads), the way a schedule that
splits W_hh's columns over the threads reads it. The cache sizes come from
/sys/devices/system/cpu/cpu0/cache: a footprint is labelled with the level its
per-thread slice fits in (L3 is shared: the whole footprint must fit).

Usage:
    python bench/bench_bandwidth.py                      # 1 thread and all cores, a table
    python bench/bench_bandwidth.py --json bw.json       # for bench/roofline.py

The best of 80 timings of ~1 ms each per footprint: on a shared machine a timing that lands
in a time slice of its own gives the figure (the load average is printed with the table).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from bench_shapes import GATES, SIZES  # noqa: E402
from peak_flops import cpu_name  # noqa: E402


def cache_sizes():
    """{level name: (bytes, shared by how many logical CPUs)} of cpu0's data caches."""
    out = {}
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        entries = sorted(os.listdir(base))
    except OSError:
        return out
    for e in entries:
        d = os.path.join(base, e)
        try:
            level = open(os.path.join(d, "level")).read().strip()
            kind = open(os.path.join(d, "type")).read().strip()
            size = open(os.path.join(d, "size")).read().strip()
            shared = open(os.path.join(d, "shared_cpu_list")).read().strip()
        except OSError:
            continue
        if kind == "Instruction":
            continue
        mult = {"K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}.get(size[-1], 1)
        n = int(size.rstrip("KMG")) * mult
        cpus = sum((int(b) - int(a) + 1) if "-" in part else 1
                   for part in shared.split(",") for a, _, b in [part.partition("-")]
                   if part)
        out[f"L{level}"] = (n, cpus)
    return out


def level_of(footprint, threads, caches):
    """The level a footprint read by ``threads`` threads (each its slice) lives in."""
    for name in sorted(caches):
        size, shared = caches[name]
        # a private cache holds one thread's slice; a shared one the slices of its sharers
        per = footprint / threads * (min(threads, shared) if shared > 1 else 1)
        if per <= size:
            return name
    return "memory"


def w_hh_footprints():
    """{bytes: [labels]} of the W_hh of every hidden size in the benchmark shapes."""
    out = {}
    for s in SIZES.values():
        for mode in s.modes:
            for dt, item in (("f32", 4), ("f64", 8)):
                b = GATES[mode] * s.H * s.H * item
                out.setdefault(b, set()).add(f"{mode.upper()} H={s.H} {dt}")
    return {b: sorted(v) for b, v in sorted(out.items())}


def measure(threads, footprints):
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise SystemExit("bench_bandwidth: no C compiler (cc or $CC)")
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, "bandwidth")
        subprocess.run([cc, "-O3", "-mavx2", "-mfma", "-fopenmp",
                        os.path.join(HERE, "bandwidth.c"), "-o", exe], check=True)
        out = {}
        for t in threads:
            run = subprocess.run([exe, str(t)] + [str(b) for b in footprints],
                                 capture_output=True, text=True, check=True)
            out[t] = [float(line.split()[1]) for line in run.stdout.split("\n") if line.strip()]
        return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    p.add_argument("--threads", default=",".join(sorted({"1", str(cores)})),
                   help="comma list of thread counts (default: 1 and all cores)")
    p.add_argument("--json", metavar="PATH", help="also write the results to PATH as JSON")
    p.add_argument("--no-w-hh", action="store_true", help="only the 16 KiB - 256 MiB sweep")
    opt = p.parse_args(argv)
    threads = sorted(int(t) for t in opt.threads.split(","))
    sweep = [2 ** k for k in range(14, 29)]
    whh = {} if opt.no_w_hh else w_hh_footprints()
    footprints = sorted(set(sweep) | set(whh))
    t0 = time.perf_counter()
    bw = measure(threads, footprints)
    caches = cache_sizes()
    print(f"read bandwidth, GB/s (1e9 bytes/s), best of 80 ~1 ms timings; {cpu_name()}")
    print("caches: " + ", ".join(f"{k} {v[0] // 1024} KiB (shared by {v[1]} CPUs)"
                                 for k, v in sorted(caches.items())))
    print(f"{'footprint':>12}  " + "  ".join(f"{'level':>7} {str(t) + ' thr':>8}"
                                            for t in threads) + "  W_hh of")
    rows = []
    for i, b in enumerate(footprints):
        cells = [(level_of(b, t, caches), bw[t][i]) for t in threads]
        label = ", ".join(whh.get(b, [])[:4]) + (" ..." if len(whh.get(b, [])) > 4 else "")
        print(f"{b / 1024:>9.0f} Ki  " + "  ".join(f"{lv:>7} {g:8.1f}" for lv, g in cells)
              + f"  {label}")
        rows.append(dict(bytes=b, w_hh_of=whh.get(b, []), gbs={str(t): bw[t][i] for t in threads},
                         level={str(t): level_of(b, t, caches) for t in threads}))
    if hasattr(os, "getloadavg"):
        print("load average %.2f %.2f %.2f (other processes share these cores)"
              % os.getloadavg())
    print(f"({time.perf_counter() - t0:.0f} s)")
    if opt.json:
        with open(opt.json, "w") as f:
            json.dump(dict(cpu=cpu_name(), caches=caches, threads=threads, rows=rows,
                           loadavg=os.getloadavg() if hasattr(os, "getloadavg") else None,
                           date=time.strftime("%Y-%m-%d %H:%M:%S")), f, indent=1)
        print(f"written to {opt.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

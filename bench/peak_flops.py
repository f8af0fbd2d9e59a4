#!/usr/bin/env python
"""The ceilings of this machine: its FMA peak and what a tuned BLAS product reaches.

Every RNN call here is mostly matrix products, so its speed is bounded by the machine's peak
of multiply-adds. This script measures, for 1 and for N threads:

- ``fma``: the FMA peak, from ``bench/peak_flops.c`` (12 independent chains of FMAs per
  thread, no memory traffic) at 256 bits and, where the CPU has AVX-512F, at 512 bits: the
  widest is *the* peak (``float32``/``float64``). Zen 4 splits a 512-bit FMA into two 256-bit
  halves (the same peak at both widths); Intel cores with two 512-bit FMA units reach twice
  their 256-bit peak. The best of 200 short runs (~3 ms each), so that a run landing in a
  time slice of its own on a shared machine gives the figure. Compiled here with the
  system's C compiler (``cc``, or ``$CC``) with ``-O3 -mavx2 -mfma -fopenmp`` (the 512-bit
  functions by a target attribute). No number when it cannot be built (no compiler, or not
  x86-64);
- ``numpy``: NumPy's matrix product (its BLAS, OpenBLAS in the PyPI wheels) on a square
  product of ``--n`` (1024), the best of 25 calls: the "SGEMM/DGEMM peak" of a tuned
  library.

Usage:
    python bench/peak_flops.py                       # 1 thread and all cores, a table
    python bench/peak_flops.py --threads 1,2 --json peak.json

``bench/plot_bench.py --markdown RESULTS --peak peak.json`` uses the JSON to say how close to
the ceiling each benchmark row runs (GFLOP/s and % of the FMA peak).
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


def fma_peak(threads_list):
    """{threads: {"float32_256": GFLOP/s, ..., "float32": the widest, "width": bits}} from
    peak_flops.c, or None."""
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        print("  fma: no C compiler (cc or $CC): not measured", file=sys.stderr)
        return None
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, "peak_flops")
        build = subprocess.run([cc, "-O3", "-mavx2", "-mfma", "-fopenmp",
                                os.path.join(HERE, "peak_flops.c"), "-o", exe],
                               capture_output=True, text=True)
        if build.returncode != 0:
            print(f"  fma: peak_flops.c did not build: {build.stderr.strip()[:300]}",
                  file=sys.stderr)
            return None
        out = {}
        for n in threads_list:
            run = subprocess.run([exe, str(n)], capture_output=True, text=True, check=True)
            out[n] = {k: float(v) for k, v in (line.split() for line in run.stdout.split("\n")
                                                if line.strip())}
        return out


def cpu_name():
    """The CPU's model name (Linux), else platform.processor()."""
    import platform
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def numpy_peak(threads_list, n):
    """{threads: {dtype: GFLOP/s}} of NumPy's n x n x n matrix product, each thread count in a
    fresh process (BLAS reads its thread count once, when it loads)."""
    out = {}
    code = f"""
import json, time
import numpy as np
res = {{}}
for dt in ("float32", "float64"):
    a = np.random.default_rng(0).standard_normal(({n}, {n})).astype(dt)
    b = a.T.copy()
    a @ b
    best = float("inf")
    for _ in range(25):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    res[dt] = 2.0 * {n} ** 3 / best / 1e9
print(json.dumps(res))
"""
    for t in threads_list:
        env = dict(os.environ, OMP_NUM_THREADS=str(t), OPENBLAS_NUM_THREADS=str(t),
                   MKL_NUM_THREADS=str(t))
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env=env, check=True)
        out[t] = json.loads(run.stdout)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    p.add_argument("--threads", default=",".join(sorted({"1", str(cores)})),
                   help="comma list of thread counts (default: 1 and all cores)")
    p.add_argument("--n", type=int, default=1024, help="size of NumPy's square product")
    p.add_argument("--json", metavar="PATH", help="also write the results to PATH as JSON")
    opt = p.parse_args(argv)
    threads = sorted(int(t) for t in opt.threads.split(","))
    t0 = time.perf_counter()
    fma = fma_peak(threads)
    blas = numpy_peak(threads, opt.n)
    print(f"GFLOP/s (2 flops per multiply-add); fma = peak_flops.c at 256 and 512 bits, "
          f"numpy = {opt.n}^3 product; {cpu_name()}")
    heads = ["fma256 f32", "fma256 f64", "fma512 f32", "fma512 f64", "numpy f32", "numpy f64"]
    print(f"{'threads':>7}  " + "  ".join(f"{h:>10}" for h in heads))
    for t in threads:
        f = fma.get(t, {}) if fma else {}
        cells = [f.get("float32_256"), f.get("float64_256"), f.get("float32_512"),
                 f.get("float64_512"), blas[t]["float32"], blas[t]["float64"]]
        print(f"{t:>7}  " + "  ".join("-".rjust(10) if v is None else f"{v:10.1f}"
                                       for v in cells))
    if hasattr(os, "getloadavg"):
        print("load average %.2f %.2f %.2f (other processes share these cores)"
              % os.getloadavg())
    print(f"({time.perf_counter() - t0:.0f} s)")
    if opt.json:
        with open(opt.json, "w") as f:
            json.dump({"cpu": cpu_name(), "fma": {str(k): v for k, v in (fma or {}).items()},
                       "numpy": {str(k): v for k, v in blas.items()},
                       "numpy_n": opt.n, "date": time.strftime("%Y-%m-%d %H:%M:%S")}, f,
                      indent=1)
        print(f"written to {opt.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""How close each benchmark row runs to its ceiling: the FMA peak or the bandwidth of W_hh.

Reads the JSON of ``bench_rnn.py --json`` (any number of files), of ``peak_flops.py --json``
and of ``bench_bandwidth.py --json``, and prints two Markdown tables:

- **compute-bound rows** (batch >= ``--min-batch``, 32): GFLOP/s of the matrix products
  (``gflop`` of each row, 2 per multiply-add) for minirnn and each contender, as a
  percentage of the widest FMA peak measured for that thread count (512-bit where the CPU
  has AVX-512F);
- **bandwidth-bound rows** (batch <= ``--max-batch``, 4; inference): each step reads all of
  W_hh (G*H x H numbers per layer and direction), so ``T * layers * D * bytes(W_hh) / time``
  is the rate at which the call streamed W_hh, counting the whole call as that stream (the
  input product and the gate math are in the time too: a lower bound of the product's own
  rate). It is given as a percentage of the read bandwidth of the level W_hh lives in
  (bench_bandwidth.py at the nearest footprint at least as large, for that thread count).

``--best`` uses each contender's fastest timed call instead of the median: on a machine shared
with other jobs, the call that ran undisturbed is the one that shows what the code reaches
when it has the cores (the peak and bandwidth figures are best-of timings too).

Usage:
    python bench/roofline.py results_1t.json results_2t.json --peak peak.json --bandwidth bw.json
"""
import argparse
import json
import sys

GATES = {"rnn": 1, "gru": 3, "lstm": 4}


def _pct(v, top):
    return "-" if v is None or not top else f"{100 * v / top:.0f} %"


def _ms(r, name, best):
    if best:
        t = r.get("times_ms", {}).get(name)
        return min(t) if t else None
    return r["ms"].get(name)


def compute_table(docs, peak, min_batch, best=False):
    lines = ["| threads | row | mode | dtype | phase | GFLOP | minirnn GFLOP/s | % peak | "
             "torch % peak | ORT % peak |", "|---|---|---|---|---|---|---|---|---|---|"]
    for doc in docs:
        th = str(doc["meta"]["threads"])
        fma = (peak or {}).get("fma", {}).get(th, {})
        for r in doc["results"]:
            if r["shape"]["B"] < min_batch or r["shape"].get("lengths"):
                continue
            top = fma.get(r["dtype"])

            def rate(name):
                ms = _ms(r, name, best)
                return r["gflop"] / (ms / 1e3) if ms else None
            c = rate("c")
            lines.append(f"| {th} | {r['size']} | {r['mode']} | {r['dtype']} | {r['phase']} | "
                         f"{r['gflop']:.2f} | {'-' if c is None else f'{c:.0f}'} | "
                         f"{_pct(c, top)} | {_pct(rate('torch'), top)} | "
                         f"{_pct(rate('ort'), top)} |")
    return "\n".join(lines)


def _bandwidth_at(bw, nbytes, threads):
    rows = sorted(bw["rows"], key=lambda r: r["bytes"])
    row = next((r for r in rows if r["bytes"] >= nbytes), rows[-1])
    return row["level"].get(threads), row["gbs"].get(threads)


def bandwidth_table(docs, bw, max_batch, best=False):
    lines = ["| threads | row | mode | dtype | W_hh | lives in | level GB/s | minirnn GB/s | "
             "% of level | torch % | ORT % |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for doc in docs:
        th = str(doc["meta"]["threads"])
        for r in doc["results"]:
            s = r["shape"]
            if s["B"] > max_batch or r["phase"] != "infer" or s.get("lengths"):
                continue
            item = 4 if r["dtype"] == "float32" else 8
            w = GATES[r["mode"]] * s["H"] * s["H"] * item
            D = 2 if s["bidirectional"] else 1
            streamed = s["T"] * s["layers"] * D * w
            level, top = _bandwidth_at(bw, w, th) if bw else (None, None)

            def rate(name):
                ms = _ms(r, name, best)
                return streamed / (ms / 1e3) / 1e9 if ms else None
            c = rate("c")
            lines.append(f"| {th} | {r['size']} | {r['mode']} | {r['dtype']} | "
                         f"{w / 2 ** 20:.2f} MiB | {level or '-'} | "
                         f"{'-' if top is None else f'{top:.0f}'} | "
                         f"{'-' if c is None else f'{c:.1f}'} | {_pct(c, top)} | "
                         f"{_pct(rate('torch'), top)} | {_pct(rate('ort'), top)} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("results", nargs="+", help="bench_rnn.py --json files")
    p.add_argument("--peak", help="peak_flops.py --json file")
    p.add_argument("--bandwidth", help="bench_bandwidth.py --json file")
    p.add_argument("--min-batch", type=int, default=32)
    p.add_argument("--max-batch", type=int, default=4)
    p.add_argument("--best", action="store_true",
                   help="each contender's fastest timed call instead of its median")
    opt = p.parse_args(argv)
    docs = [json.load(open(f)) for f in opt.results]
    peak = json.load(open(opt.peak)) if opt.peak else None
    bw = json.load(open(opt.bandwidth)) if opt.bandwidth else None
    if peak:
        print(f"FMA peak ({peak.get('cpu', '?')}; widest width): " + ", ".join(
            f"{t} thread(s) {v.get('float32', 0):.0f} / {v.get('float64', 0):.0f} GFLOP/s "
            f"(f32/f64, {int(v.get('width', 256))}-bit)" for t, v in peak["fma"].items()))
        print()
    print(f"times: {'the fastest timed call' if opt.best else 'the median'} of each contender")
    print(compute_table(docs, peak, opt.min_batch, opt.best))
    print()
    print(bandwidth_table(docs, bw, opt.max_batch, opt.best))
    return 0


if __name__ == "__main__":
    sys.exit(main())

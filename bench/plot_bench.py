#!/usr/bin/env python
"""Draw the speed ratios written by ``bench_rnn.py --json`` as bar charts (needs matplotlib).

One panel per (JSON file, dtype) row and per phase column (inference, training = forward +
backward). In each panel, bars grouped by size, one bar per mode (RNN, GRU, LSTM). A bar
runs from 1 to ``other's median ms / minirnn's median ms`` (other = torch by default, or the
NumPy path with ``--vs numpy``): up means minirnn is faster, down slower. The y axis is
logarithmic (2x faster and 2x slower are the same distance from 1). A bar with a red edge
and hatching is a row whose answer failed the correctness check; a pale bar was measured
while other processes kept the machine busy (the table's '~'). With ``--targets`` a dashed
black tick across each size marks the speed target against torch (docs/performance.md).

Typical use, one JSON per thread count:

    python bench/bench_rnn.py --threads 1 --json bench/results_1t.json
    python bench/bench_rnn.py --threads 2 --json bench/results_2t.json
    python bench/plot_bench.py bench/results_1t.json bench/results_2t.json -o bench/ratios.png
"""
import argparse
import json
import math
import sys

MODE_COLORS = {"rnn": "#4C72B0", "gru": "#DD8452", "lstm": "#55A868"}
PHASE_TITLES = {"infer": "inference (forward, no_grad)", "train": "training (forward + backward)"}
# The project's speed targets against torch (docs/performance.md): torch ms / minirnn ms per
# size, for float32 inference and training; float64 asks for 1.3x at every size.
TARGETS = {
    ("float32", "infer"): dict(tiny=8, small=2.5, medium=1.2, large=1.0, bidir=1.3, long=1.5,
                               seed=1.5),
    ("float32", "train"): dict(tiny=5, small=1.5, medium=1.1, large=1.0, bidir=1.3, long=1.5,
                               seed=1.5),
}
F64_TARGET = 1.3


def target(dtype, phase, size):
    if dtype == "float64":
        return F64_TARGET
    return TARGETS.get((dtype, phase), {}).get(size)


def load(path):
    with open(path) as f:
        doc = json.load(f)
    if "results" not in doc or "meta" not in doc:
        sys.exit(f"{path}: not a bench_rnn.py --json file")
    return doc


def panel(ax, rows, sizes, modes, vs, subject, busy, targets=None, fontsize=6):
    """Bars for one panel: rows of one (file, dtype, phase); ``targets`` {size: ratio} are
    drawn as a black tick across each size's group of bars; ``fontsize``: of the values
    written on the bars."""
    width = 0.8 / len(modes)
    heights = []
    for j, mode in enumerate(modes):
        for i, size in enumerate(sizes):
            row = next((r for r in rows if r["size"] == size and r["mode"] == mode), None)
            ratio = row and row["ratio"].get(vs)
            if not ratio:
                continue
            x = i - 0.4 + width * (j + 0.5)
            bad = not row.get("ok", True)
            loaded = (row.get("other_load") or 0.0) > busy
            # the bar runs from the line at 1 up (minirnn faster) or down (slower) to the ratio
            ax.bar(x, ratio - 1.0, width, bottom=1.0, color=MODE_COLORS.get(mode, "grey"),
                   alpha=0.4 if loaded else 1.0,
                   edgecolor="red" if bad else "none", hatch="//" if bad else None, linewidth=1.5)
            ax.text(x, ratio, f"{ratio:.2g}", ha="center",
                    va="bottom" if ratio >= 1 else "top", fontsize=fontsize)
            heights.append(ratio)
    for i, size in enumerate(sizes):
        if targets and targets.get(size):
            ax.hlines(targets[size], i - 0.45, i + 0.45, color="black", linewidth=1.6,
                      linestyles="dashed")
            heights.append(targets[size])
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_yscale("log", base=2)
    if heights:
        lo, hi = min(heights + [1.0]), max(heights + [1.0])
        ax.set_ylim(2 ** (math.floor(math.log2(lo)) - 0.3), 2 ** (math.ceil(math.log2(hi)) + 0.3))
    ax.yaxis.set_major_formatter(_ratio_formatter())
    ax.set_xticks(range(len(sizes)))
    many = len(sizes) > 8                   # a --set run: long names, rotated
    ax.set_xticklabels(sizes, rotation=60 if many else 0, ha="right" if many else "center",
                       fontsize=7 if many else None)
    ax.set_xlim(-0.6, len(sizes) - 0.4)
    ax.set_ylabel(f"{vs} ms / minirnn-{subject} ms")
    ax.grid(axis="y", which="major", alpha=0.3)


def _ratio_formatter():
    from matplotlib.ticker import FuncFormatter
    return FuncFormatter(lambda v, _: f"{v:g}x")


#: the size groups of the split figure: ratios of tens and ratios near 1 get their own scale
SIZE_GROUPS = (("tiny", "small"), ("medium", "large", "bidir", "long", "seed"))


def draw_split(runs, out, vs="torch", targets=True, title=None):
    """The ratios as a grid that can be read at a page's width: one row of panels per
    (phase, thread count), and in each row one panel per group of sizes (SIZE_GROUPS), each
    with its own logarithmic scale, so the rows near 1x are not squeezed by the tiny sizes'
    20-70x. ``runs`` is a list of ``(threads, dtype, rows)`` with ``rows`` in the JSON's
    result format (``size``, ``mode``, ``phase``, ``ratio``, optionally ``ok`` and
    ``other_load``)."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    phases = [ph for ph in PHASE_TITLES if any(r["phase"] == ph for _, _, rows in runs
                                                for r in rows)]
    grid = [(ph, threads, dtype, rows) for ph in phases for threads, dtype, rows in runs]
    sizes = list(dict.fromkeys(r["size"] for _, _, rows in runs for r in rows))
    groups = [[s for s in g if s in sizes] for g in SIZE_GROUPS]
    groups = [g for g in groups if g] + [[s for s in sizes
                                          if not any(s in g for g in SIZE_GROUPS)]]
    groups = [g for g in groups if g]
    modes = [m for m in MODE_COLORS if any(r["mode"] == m for _, _, rows in runs
                                           for r in rows)]
    fig, axes = plt.subplots(len(grid), len(groups), squeeze=False,
                             figsize=(10, 2.9 * len(grid) + 0.6),
                             gridspec_kw={"width_ratios": [len(g) for g in groups]})
    for r, (phase, threads, dtype, rows) in enumerate(grid):
        for c, group in enumerate(groups):
            ax = axes[r][c]
            mine = [x for x in rows if x["phase"] == phase and x["size"] in group]
            goals = ({size: target(dtype, phase, size) for size in group}
                     if targets and vs == "torch" else None)
            panel(ax, mine, group, modes, vs, "c", 0.2, goals, fontsize=9)
            ax.tick_params(labelsize=10)
            ax.set_ylabel(f"{vs} ms / minirnn ms" if c == 0 else "", fontsize=10)
            ax.set_title(f"{PHASE_TITLES.get(phase, phase)}, {threads} thread"
                         f"{'s' if str(threads) != '1' else ''}", fontsize=11)
    axes[0][0].legend(handles=[Patch(color=MODE_COLORS[m], label=m.upper()) for m in modes]
                      + ([Patch(facecolor="white", edgecolor="black", linestyle="--",
                                label="target")] if targets else []),
                      fontsize=9, loc="upper right")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.98 if title else 1))
    fig.savefig(out, dpi=110)
    plt.close(fig)


def markdown_table(doc, vs="torch"):
    """The ratios against ``vs`` as a Markdown table, one line per (size, mode); each cell
    ``ratio`` with a check mark when it meets its target (see TARGETS), a cross when not, and
    a warning sign when other processes kept the machine busy while it was measured (its
    ``other_load`` above the run's ``busy`` option): such a cell is not counted as met."""
    cols = [(d, ph) for d in ("float32", "float64") for ph in ("infer", "train")]
    busy = doc.get("meta", {}).get("options", {}).get("busy", 0.2)
    rows = {}
    loaded = set()
    for r in doc["results"]:
        ratio = r["ratio"].get(vs)
        if ratio:
            rows.setdefault((r["size"], r["mode"]), {})[(r["dtype"], r["phase"])] = ratio
            if (r.get("other_load") or 0.0) > busy:
                loaded.add((r["size"], r["mode"], r["dtype"], r["phase"]))
    lines = ["| size | mode | " + " | ".join(f"f{d[5:]} {ph}" for d, ph in cols) + " |",
             "|---|---|" + "---|" * len(cols)]
    met = total = n_loaded = 0
    for (size, mode), cells in rows.items():
        out = []
        for col in cols:
            ratio = cells.get(col)
            goal = target(col[0], col[1], size)
            if ratio is None:
                out.append("-")
                continue
            under_load = (size, mode) + col in loaded
            ok = goal is None or ratio >= goal
            met, total = met + (ok and not under_load and goal is not None), total + (goal is not None)
            out.append(f"{ratio:.2f}" + ("" if goal is None else (" ✓" if ok else " ✗"))
                       + (" ⚠" if under_load else ""))
            n_loaded += under_load
        lines.append(f"| {size} | {mode} | " + " | ".join(out) + " |")
    lines.append(f"\n{met} of {total} targets met ({vs} ms / minirnn ms; ✓ at or above its "
                 "target)." + (f" ⚠: {n_loaded} cell(s) measured while other processes kept more "
                               f"than {busy:g} of a core busy; not counted as met, rerun them on a "
                               "quiet machine." if n_loaded else ""))
    return "\n".join(lines)


def ceiling_table(doc, peak, vs="torch", every_row=False):
    """How close to the machine's ceiling each row missing its target runs (every row with
    ``every_row``): the GFLOP of its matrix products (bench_rnn.matmul_gflop), the GFLOP/s of
    minirnn and of ``vs``, and what the target asks: ``target * vs's GFLOP/s``, each as a
    percentage of the FMA peak at the run's thread count (``peak``: the JSON of
    bench/peak_flops.py). Above 100 %, the target cannot be met by any code that does those
    products; near it, only by one with no time left for anything else."""
    threads = str(doc["meta"].get("threads"))
    fma = (peak or {}).get("fma", {}).get(threads, {})
    subject = doc["meta"].get("subject", "c")
    lines = ["| size | mode | dtype | phase | ratio | target | GFLOP | minirnn GFLOP/s | "
             f"{vs} GFLOP/s | the target needs |", "|---|---|---|---|---|---|---|---|---|---|"]

    def rate(gflop, ms, dtype):
        g = gflop / (ms / 1e3)
        top = fma.get(dtype)
        return f"{g:.1f}" + (f" ({100 * g / top:.0f} %)" if top else "")

    for r in doc["results"]:
        ratio, goal, gflop = r["ratio"].get(vs), target(r["dtype"], r["phase"], r["size"]), \
            r.get("gflop")
        if not ratio or gflop is None or goal is None or (ratio >= goal and not every_row):
            continue
        ms_sub, ms_vs = r["ms"][subject], r["ms"][vs]
        lines.append(f"| {r['size']} | {r['mode']} | {r['dtype']} | {r['phase']} | "
                     f"{ratio:.2f} | {goal:g} | {gflop:.3g} | {rate(gflop, ms_sub, r['dtype'])} | "
                     f"{rate(gflop, ms_vs, r['dtype'])} | {rate(gflop, ms_vs / goal, r['dtype'])} |")
    if fma:
        lines.append(f"\nFMA peak at {threads} thread(s): " + ", ".join(
            f"{d} {v:.1f} GFLOP/s" for d, v in fma.items()) + " (bench/peak_flops.py).")
    return "\n".join(lines)


def rows_table(docs, best=False):
    """Every row of one or more runs as Markdown: minirnn's ms and the ratio of each other
    contender (other ms / minirnn ms); a ratio below 1 (minirnn behind) is in bold. With
    ``best``, each contender's fastest timed call instead of its median (on a shared machine,
    the calls that ran undisturbed)."""
    names = []
    for doc in docs:
        subject = doc["meta"].get("subject", "c")
        names += [n for n in doc["meta"].get("contenders", []) if n != subject
                  and n not in names]
    lines = ["| threads | row | mode | dtype | phase | minirnn ms | "
             + " | ".join(f"{n}/minirnn" for n in names) + " | load |",
             "|---" * (7 + len(names)) + "|"]
    for doc in docs:
        meta = doc["meta"]
        busy = meta.get("options", {}).get("busy", 0.2)
        subject = meta.get("subject", "c")
        for r in doc["results"]:
            if best:
                t = {n: min(v) for n, v in r.get("times_ms", {}).items() if v}
                ratio = {n: t[n] / t[subject] if n in t and subject in t else None
                         for n in names}
                ms = t.get(subject)
            else:
                ratio, ms = r["ratio"], r["ms"].get(subject)
            cells = []
            for n in names:
                v = ratio.get(n)
                cells.append("-" if v is None else (f"**{v:.2f}**" if v < 1 else f"{v:.2f}"))
            load = r.get("other_load")
            lines.append(f"| {meta.get('threads')} | {r['size']} | {r['mode']} | {r['dtype']} | "
                         f"{r['phase']} | {'-' if ms is None else f'{ms:.3g}'} | "
                         + " | ".join(cells) + " | "
                         + ("-" if load is None else f"{load:.1f}" + (" ~" if load > busy
                                                                       else "")) + " |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("json", nargs="+", help="files written by bench_rnn.py --json")
    p.add_argument("-o", "--out", default="bench/ratios.png", help="PNG to write")
    p.add_argument("--vs", default="torch",
                   help="contender to compare with: torch (default) or numpy")
    p.add_argument("--dtypes", default=None,
                   help="comma list of dtypes to draw (default: all in the files)")
    p.add_argument("--phases", default="infer,train", help="comma list of infer,train")
    p.add_argument("--targets", action="store_true",
                   help="draw the speed targets against torch (dashed ticks)")
    p.add_argument("--split", action="store_true",
                   help="one row of panels per (phase, file), the sizes split in groups with "
                        "their own scale (readable at a page's width; first dtype only)")
    p.add_argument("--markdown", action="store_true",
                   help="print the ratios and targets as a Markdown table instead of plotting")
    p.add_argument("--peak", metavar="JSON",
                   help="with --markdown: also a table of GFLOP/s against the FMA peak "
                        "measured by bench/peak_flops.py --json JSON, for the rows that miss "
                        "their target")
    p.add_argument("--all-rows", action="store_true",
                   help="with --peak: every row, not only those missing their target")
    p.add_argument("--rows", action="store_true",
                   help="print every row of the files as one Markdown table (minirnn's ms, "
                        "each contender's ratio; below 1 in bold) instead of plotting")
    p.add_argument("--best", action="store_true",
                   help="with --rows: the fastest timed call of each contender, not the median")
    opt = p.parse_args(argv)
    if opt.rows:
        print(rows_table([load(path) for path in opt.json], opt.best))
        return
    if opt.markdown:
        peak = None
        if opt.peak:
            with open(opt.peak) as f:
                peak = json.load(f)
        for path in opt.json:
            doc = load(path)
            print(f"{path}: {doc['meta'].get('threads')} thread(s)\n")
            print(markdown_table(doc, opt.vs) + "\n")
            if peak is not None:
                print(ceiling_table(doc, peak, opt.vs, opt.all_rows) + "\n")
        return
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("plot_bench.py needs matplotlib: python -m pip install matplotlib")

    docs = [(path, load(path)) for path in opt.json]
    phases = [s for s in opt.phases.split(",") if s]
    # one figure row per (file, dtype) that has data against --vs
    panels = []
    for path, doc in docs:
        dtypes = list(dict.fromkeys(r["dtype"] for r in doc["results"]))
        if opt.dtypes:
            dtypes = [d for d in dtypes if d in opt.dtypes.split(",")]
        for dtype in dtypes:
            panels.append((path, doc, dtype))
    if not panels:
        sys.exit("nothing to draw (check --dtypes)")

    if opt.split:
        runs = [(doc["meta"].get("threads"), dtype,
                 [x for x in doc["results"] if x["dtype"] == dtype and x["phase"] in phases])
                for path, doc, dtype in panels]
        seen = set()
        runs = [r for r in runs if not (r[0] in seen or seen.add(r[0]))]
        draw_split(runs, opt.out, opt.vs, opt.targets)
        print(f"wrote {opt.out}")
        return
    n_sizes = max(len({x["size"] for x in doc["results"]}) for _, doc in docs)
    fig, axes = plt.subplots(len(panels), len(phases), squeeze=False,
                             figsize=(max(6.5, 0.45 * n_sizes) * len(phases),
                                      (4.2 if n_sizes > 8 else 3.2) * len(panels)))
    for r, (path, doc, dtype) in enumerate(panels):
        meta = doc["meta"]
        subject = meta.get("subject", "c")
        if opt.vs not in meta.get("contenders", []) or opt.vs == subject:
            sys.exit(f"{path}: no contender {opt.vs!r} besides the subject "
                     f"(contenders: {meta.get('contenders')})")
        sizes = list(dict.fromkeys(x["size"] for x in doc["results"]))
        modes = [m for m in MODE_COLORS if any(x["mode"] == m for x in doc["results"])]
        for c, phase in enumerate(phases):
            ax = axes[r][c]
            rows = [x for x in doc["results"] if x["dtype"] == dtype and x["phase"] == phase]
            goals = ({size: target(dtype, phase, size) for size in sizes}
                     if opt.targets and opt.vs == "torch" else None)
            panel(ax, rows, sizes, modes, opt.vs, subject,
                  meta.get("options", {}).get("busy", 0.2), goals)
            ax.set_title(f"{PHASE_TITLES.get(phase, phase)}, {dtype}, "
                         f"{meta.get('threads')} thread(s)", fontsize=10)
            if r == 0 and c == 0:          # legend in full colour even if a bar is pale
                from matplotlib.patches import Patch
                ax.legend(handles=[Patch(color=MODE_COLORS[m], label=m.upper()) for m in modes],
                          fontsize=8, loc="best")
    first = docs[0][1]["meta"]
    fig.suptitle(f"minirnn-{first.get('subject')} vs {opt.vs}: >1x = minirnn faster   "
                 f"({first.get('cpu')}, minirnn {first.get('minirnn')}, torch "
                 f"{first.get('torch')}, {first.get('date', '')})", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(opt.out, dpi=120)
    print(f"wrote {opt.out}")


if __name__ == "__main__":
    main()

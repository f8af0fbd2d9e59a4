"""The cost of the tape's private copies (the input, h0, c0 and the output are copied so that
editing them between forward and backward cannot change a gradient): forward + backward of an
LSTM and a GRU, tiny (H=32) and medium (H=256), float32, compiled backend.

    python bench/bench_tape.py                     # this tree: median microseconds per call
    python bench/bench_tape.py --before OLD_TREE   # the same, interleaved with OLD_TREE (a
                                                   # checkout with a built extension): ratios

Each tree runs in its own process (rounds alternate between them, so both see the same load).
"""
import argparse
import json
import os
import subprocess
import sys

SIZES = [  # (name, mode, T, B, I, H)
    ("tiny LSTM", "LSTM", 16, 1, 32, 32),
    ("tiny GRU", "GRU", 16, 1, 32, 32),
    ("medium LSTM", "LSTM", 64, 16, 256, 256),
    ("medium GRU", "GRU", 64, 16, 256, 256),
]

CHILD = r"""
import json, sys, time
import numpy as np
import minirnn
res = {}
for name, mode, T, B, I, H, reps in json.loads(sys.argv[1]):
    m = getattr(minirnn, mode)(I, H, seed=0)
    x = np.random.default_rng(0).standard_normal((T, B, I)).astype(np.float32)
    go = np.ones((T, B, H), np.float32)
    for _ in range(3):
        out, _ = m(x); m.backward(go, None)
    best = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(reps):
            out, _ = m(x); m.backward(go, None)
        best.append((time.perf_counter() - t0) / reps * 1e6)
    res[name] = sorted(best)[2]
print(json.dumps(res))
"""


def run(tree):
    cases = [(n, mode, T, B, I, H, 400 if H <= 32 else 4) for n, mode, T, B, I, H in SIZES]
    env = dict(os.environ, PYTHONPATH=tree)
    r = subprocess.run([sys.executable, "-c", CHILD, json.dumps(cases)], env=env, cwd=tree,
                       capture_output=True, text=True, check=True)
    return json.loads(r.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--before", help="a tree to compare with (its minirnn built)")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    trees = {"after": here} if not args.before else {"before": args.before, "after": here}
    runs = {k: [] for k in trees}
    for _ in range(args.rounds):
        for k, tree in trees.items():
            runs[k].append(run(tree))
    med = {k: {n: sorted(r[n] for r in rs)[len(rs) // 2] for n, *_ in SIZES}
           for k, rs in runs.items()}
    head = f"{'case':<14}" + "".join(f"{k + ' us':>12}" for k in trees)
    print(head + (f"{'after/before':>14}" if args.before else ""))
    for n, *_ in SIZES:
        row = f"{n:<14}" + "".join(f"{med[k][n]:>12.1f}" for k in trees)
        if args.before:
            row += f"{med['after'][n] / med['before'][n]:>14.3f}"
        print(row)


if __name__ == "__main__":
    main()

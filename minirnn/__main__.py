"""``python -m minirnn``: the seeds' example, then the shipped conformance dumps.

1. Builds the example that prompted the project (GRU, input 8, hidden 50,
   3 layers, batch_first, bidirectional), runs it on random data, prints the
   shapes of everything and checks, on the numbers, which slices of ``output``
   equal which slices of ``h_n``.
2. Runs every PyTorch reference dump (``minirnn/data``, installed with the
   package, or ``--dumps DIR``) on every backend in float64 and float32 and prints a
   pass/fail table with the worst error of each case.

Exits with status 1 if any check fails.

``python -m minirnn explain [options]`` prints, for any configuration, the shapes of
everything, the parameter table (which rows are which gate's W/U block) and which
slices of ``output`` equal which rows of ``h_n``, verified on real numbers
(``python -m minirnn explain --help``).
"""
import argparse
import os
import sys
import time

import numpy as np

from . import BACKENDS, GRU, __version__, _explain
from .conformance import DATA_DIR, TOLERANCE, find_cases, load_case, run_case


def _default_dumps():
    return DATA_DIR


def demo(seed=0):
    """The seed example: which slices of output are which slices of h_n. Returns ok."""
    N, L, I, H, layers = 4, 7, 8, 50, 3
    m = GRU(I, H, num_layers=layers, batch_first=True, bidirectional=True, seed=seed)
    x = np.random.default_rng(seed).standard_normal((N, L, I)).astype(np.float32)
    out, h_n = m(x)
    print(f"minirnn {__version__}: {m}")
    print(f"  input  x    {str(x.shape):>14}   (N, L, H_in)          batch_first=True")
    print(f"  output      {str(out.shape):>14}   (N, L, D*H)           last layer, every step")
    print(f"  h_n         {str(h_n.shape):>14}   (layers*D, N, H)      every layer, last step; "
          "never batch-first")
    nparams = sum(p.size for p in m.parameters())
    print(f"  parameters  {nparams:>14}   in {len(m.state_dict())} arrays, "
          "e.g. weight_ih_l0 (3H, H_in) = W_ir|W_iz|W_in")
    hv = h_n.reshape(layers, 2, N, H)                   # (layer, direction, N, H)
    checks = [
        ("output[:, -1, :H]", out[:, -1, :H], "h_n[-2]  (last layer, forward)", hv[-1, 0], True),
        ("output[:, 0, H:]", out[:, 0, H:], "h_n[-1]  (last layer, reverse)", hv[-1, 1], True),
        ("output[:, -1, H:]", out[:, -1, H:], "h_n[-1]  (reverse: NOT at the last step)", hv[-1, 1],
         False),
        ("output[:, -1, :H]", out[:, -1, :H], "h_n[0]   (layer 0 is not in output)", hv[0, 0], False),
    ]
    print(f"\n  {'slice of output':<20} {'slice of h_n':<42} {'max|diff|':>10}  {'equal?':<6} verdict")
    ok = True
    for a_name, a, b_name, b, expect in checks:
        diff = float(np.abs(a - b).max())
        equal = diff == 0.0
        ok &= equal == expect
        print(f"  {a_name:<20} {b_name:<42} {diff:>10.3g}  {str(equal):<6} "
              f"{'as expected' if equal == expect else 'UNEXPECTED'}")
    return ok


def conformance(directory, backends):
    """Run every dump; print one row per case. Returns ok."""
    paths = find_cases(directory)
    if not paths:
        print(f"\nno reference dumps found in {directory} (pass --dumps DIR)")
        return False
    dtypes = [np.float64, np.float32]
    cols = [(b, np.dtype(d)) for b in backends for d in dtypes]
    print(f"\nconformance against PyTorch reference dumps ({len(paths)} cases in {directory})")
    print("  worst max|diff|/max|ref| over all outputs and gradients; tolerance "
          + ", ".join(f"{d.name} {TOLERANCE[d]:.0e}" for d in map(np.dtype, dtypes)))
    header = "".join(f"{b + ' ' + d.name:>18}" for b, d in cols)
    print(f"  {'case':<36}{header}  result")
    n_fail, worst = 0, {c: 0.0 for c in cols}
    t0 = time.perf_counter()
    for path in paths:
        case = load_case(path)
        row, ok = "", True
        for col in cols:
            results = run_case(case, backend=col[0], dtype=col[1])
            err = max(c.error for c in results)
            worst[col] = max(worst[col], err)
            ok &= all(c.ok for c in results)
            row += f"{err:>18.2e}"
        n_fail += not ok
        print(f"  {os.path.basename(path)[:-4]:<36}{row}  {'pass' if ok else 'FAIL'}")
    print(f"  {'worst':<36}" + "".join(f"{worst[c]:>18.2e}" for c in cols))
    print(f"\n{len(paths) - n_fail} passed, {n_fail} failed "
          f"({len(paths)} cases x {len(cols)} backend/dtype runs, {time.perf_counter() - t0:.1f} s)")
    return n_fail == 0


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m minirnn", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dumps", default=_default_dumps(), help="folder of reference dumps "
                   "(default: the cases installed with minirnn)")
    # dest names of their own: explain has a --backend and a --seed too, and argparse would
    # let explain's defaults silently replace these
    p.add_argument("--backend", choices=BACKENDS, action="append", dest="check_backends",
                   help="backend(s) to check (default: all)")
    p.add_argument("--seed", type=int, default=None, dest="demo_seed",
                   help="seed of the demo's weights and data (default 0)")
    sub = p.add_subparsers(dest="command", metavar="{explain}",
                           help="explain: shapes, parameter table and output/h_n slices of any "
                           "configuration (without a command: the demo and the conformance table)")
    _explain.add_arguments(sub.add_parser(
        "explain", help="explain any configuration, verified on real numbers",
        description=_explain.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter))
    args = p.parse_args(argv)
    if args.command == "explain":
        given = [f for f, v in (("--backend", args.check_backends), ("--seed", args.demo_seed))
                 if v is not None]
        if given:
            p.error(f"{' and '.join(given)} before 'explain' would be ignored; put explain's "
                    f"options after it: python -m minirnn explain {given[0]} ...")
        return _explain.run(args)
    ok = demo(0 if args.demo_seed is None else args.demo_seed)
    ok &= conformance(args.dumps, args.check_backends or list(BACKENDS))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

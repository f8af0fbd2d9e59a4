"""``python -m minirnn``: see what minirnn computes, and check it against PyTorch.

Without a command it

1. builds a small model (a 3-layer bidirectional GRU with ``batch_first=True``), runs it on
   random numbers, prints the shape of every array and checks, on the numbers, which slices
   of ``output`` (the last layer's hidden state at every step) equal which rows of ``h_n``
   (every layer's hidden state at the last step);
2. runs the PyTorch reference cases installed with minirnn (``minirnn/data``: outputs, final
   states and every gradient that PyTorch computed for a few hundred configurations) on each
   backend in float64 and float32, and prints one line per mode, backend and dtype: how many
   cases, how many passed, the worst error. ``--verbose`` prints every case.

It exits with status 1 if anything differs from PyTorch beyond the tolerance.

``python -m minirnn explain [options]`` does step 1 for any configuration you choose
(``python -m minirnn explain --help``).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, Callable, List, Optional, Sequence

import numpy as np

from . import BACKENDS, GRU, __version__, _explain, _extension
from .conformance import (DATA_DIR, TOLERANCE, find_cases, format_comparison, load_case, run_cases,
                          summarize)


def _default_dumps():
    return DATA_DIR


def demo(seed: int = 0) -> bool:
    """The demo: a 3-layer bidirectional GRU; which slices of output are which slices of h_n,
    checked on the numbers. Returns ok."""
    N, L, I, H, layers = 4, 7, 8, 50, 3
    m = GRU(I, H, num_layers=layers, batch_first=True, bidirectional=True, seed=seed)
    x = np.random.default_rng(seed).standard_normal((N, L, I)).astype(np.float32)
    out, h_n = m(x)
    print(f"minirnn {__version__}, {_backend_line()}")
    print(f"\ndemo: m = minirnn.{m!r}; output, h_n = m(x)")
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
        ("output[:, -1, :H]", out[:, -1, :H], "h_n[0]   (layer 0 is not in output)", hv[0, 0],
         False),
    ]
    print(f"\n  {'slice of output':<20} {'slice of h_n':<42} {'max|diff|':>10}  {'equal?':<6} "
          "verdict")
    ok = True
    for a_name, a, b_name, b, expect in checks:
        diff = float(np.abs(a - b).max())
        equal = diff == 0.0
        ok &= equal == expect
        print(f"  {a_name:<20} {b_name:<42} {diff:>10.3g}  {str(equal):<6} "
              f"{'as expected' if equal == expect else 'UNEXPECTED'}")
    return ok


def _backend_line():
    """How this installation computes: the compiled kernels and their threads, or NumPy only."""
    k = _extension.kernels
    if k is None:
        return ("NumPy path only: the compiled kernels are not built "
                "(import minirnn says why and how to build them)")
    return (f"compiled kernels ({'OpenMP, ' if k.openmp_enabled() else 'serial build, '}"
            f"{k.get_num_threads()} thread{'s' if k.get_num_threads() > 1 else ''}, {k.get_isa()})")


def _fmt_used(used):
    """A share of the tolerance: 1.2%, 2.1e-05%, or inf."""
    return "inf" if not np.isfinite(used) else f"{100 * used:.2g}%"


def _fmt_error(err):
    return "inf" if not np.isfinite(err) else f"{err:.1e}"


def conformance(directory: str, backends: Sequence[str], verbose: bool = False,
                out: Callable[..., Any] = print) -> bool:
    """Run every dump in ``directory`` on ``backends`` in float64 and float32; print the
    summary (every case too with ``verbose``). Returns ok."""
    if not os.path.isdir(directory):
        out(f"\nno reference cases: {directory} is not a folder (pass --dumps DIR)")
        return False
    paths = find_cases(directory)
    if not paths:
        out(f"\nno reference cases (*.npz) found in {directory} (pass --dumps DIR)")
        return False
    dtypes: List[np.dtype] = [np.dtype(np.float64), np.dtype(np.float32)]
    t0 = time.perf_counter()
    results = run_cases(paths, backends, dtypes)
    seconds = time.perf_counter() - t0
    metas = [r for r in results if r.backend == backends[0] and r.dtype == dtypes[0]]
    kinds = {k: sum(r.kind == k for r in metas) for k in ("module", "packed", "cell")}
    torch_version = load_case(paths[0])[0].get("torch_version", "?")
    out(f"\nconformance: minirnn against PyTorch {torch_version}, {len(paths)} reference cases "
        f"{_shown_dir(directory)}")
    out(f"  ({kinds['module']} modules, {kinds['packed']} packed sequences, {kinds['cell']} cells "
        "stepped in a loop), each run on")
    out(f"  {' and '.join(backends)} in float64 and float32; each checks the outputs, final states "
        "and every gradient:")
    out("  error = max|minirnn - torch| / max|torch|, tolerance "
        + ", ".join(f"{d.name} {TOLERANCE[d]:.0e}" for d in dtypes))
    if verbose:
        _case_table(results, backends, dtypes, out)
    out("")
    out(f"  {'mode':<10} {'backend':<8} {'dtype':<8} {'cases':>5} {'passed':>6}  "
        f"{'worst error':>11}  {'tolerance used':>14}")
    for row in summarize(results):
        used = row.worst / row.tolerance
        out(f"  {row.mode:<10} {row.backend:<8} {row.dtype:<8} {row.cases:>5} {row.passed:>6}  "
            f"{_fmt_error(row.worst):>11}  {_fmt_used(used):>14}"
            + ("" if row.passed == row.cases else "  FAIL"))
    failed = [r for r in results if not r.ok]
    out("")
    if not failed:
        out(f"  all {len(paths)} cases pass on {' and '.join(backends)}, in "
            f"{' and '.join(d.name for d in dtypes)} ({len(results)} runs, {seconds:.1f} s)")
        if not verbose:
            out("  every case, one line each: python -m minirnn --verbose")
        return True
    n_cases = len({r.name for r in failed})
    out(f"  FAILED: {len(failed)} of {len(results)} runs ({n_cases} case{'s' * (n_cases > 1)}); "
        "the first mismatch of each, in dataflow order:")
    for r in failed[:20]:
        out(f"    {r.name} ({r.backend}, {r.dtype.name}): {format_comparison(r.first_failure)}")
    if len(failed) > 20:
        out(f"    ... and {len(failed) - 20} more (python -m minirnn --verbose lists every case)")
    return False


def _shown_dir(directory):
    """``directory`` as a reader wants to see it: the installed cases by their package name."""
    if os.path.abspath(directory) == os.path.abspath(DATA_DIR):
        return "installed with minirnn"
    return f"in {directory}"


def _case_table(results, backends, dtypes, out):
    """Every case, one line: its worst error per backend and dtype, and pass/FAIL."""
    cols = [(b, d.name) for b in backends for d in dtypes]
    by_case = {}
    for r in results:
        by_case.setdefault(r.name, {})[(r.backend, r.dtype.name)] = r
    width = max(len("case"), *map(len, by_case))
    out("")
    out(f"  {'case':<{width}}" + "".join(f"{b + ' ' + d:>14}" for b, d in cols) + "  result")
    for name, row in by_case.items():
        ok = all(r.ok for r in row.values())
        out(f"  {name:<{width}}" + "".join(f"{_fmt_error(row[c].error):>14}" for c in cols)
            + f"  {'pass' if ok else 'FAIL'}")


DESCRIPTION = """\
See what minirnn computes, and check it against PyTorch.

Without a command: a small demo (a 3-layer bidirectional GRU on random numbers: the
shape of every array, and which slices of `output` equal which rows of `h_n`), then
the PyTorch reference cases installed with minirnn, run on each backend in float64
and float32, summarised in one line per mode, backend and dtype. Exits with status 1
if anything differs from PyTorch beyond the tolerance."""

EPILOG = """\
examples:
  python -m minirnn                     the demo and the conformance summary
  python -m minirnn --verbose           ... and every reference case, one line each
  python -m minirnn --backend numpy     check only the pure-NumPy backend
  python -m minirnn explain --mode lstm --num-layers 2 --bidirectional
                                        shapes, parameters and output/h_n of any model

backends: "c" runs the compiled kernels (the default), "numpy" the readable NumPy
reference; both must give PyTorch's numbers."""


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line ``python -m minirnn [options] [explain ...]``; return the exit
    status."""
    p = argparse.ArgumentParser(prog="python -m minirnn", description=DESCRIPTION,
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"minirnn {__version__}")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="print every reference case (its worst error per backend and dtype), "
                   "not only the summary")
    # dest names of their own: explain has a --backend and a --seed too, and argparse would
    # let explain's defaults silently replace these
    p.add_argument("--backend", choices=BACKENDS, action="append", dest="check_backends",
                   help="backend to check; repeat for several (default: every backend built)")
    p.add_argument("--dumps", default=_default_dumps(), metavar="DIR",
                   help="folder of reference cases (*.npz) to run instead of the ones "
                   "installed with minirnn")
    p.add_argument("--seed", type=int, default=None, dest="demo_seed", metavar="N",
                   help="seed of the demo's weights and data (default 0)")
    sub = p.add_subparsers(dest="command", metavar="{explain,conformance}",
                           help="explain: shapes, parameter table and which slices of output "
                           "are which rows of h_n, for any configuration")
    explain_parser = _explain.add_arguments(sub.add_parser(
        "explain", help="explain any configuration, verified on real numbers",
        description=_explain.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter))
    from . import conformance_runner
    conformance_runner.add_arguments(sub.add_parser(
        "conformance", help="run the reference cases against another implementation "
        "(--impl MODULE:FUNCTION)", description=conformance_runner.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter))
    # unknown options after 'explain' are explain's mistake: its own usage, not the top level's
    args, unknown = p.parse_known_args(argv)
    if unknown:
        (explain_parser if args.command == "explain" else p).error(
            f"unrecognized arguments: {' '.join(unknown)}")
    if args.command == "conformance":
        return conformance_runner.main(args)
    if args.command == "explain":
        given = [f for f, v in (("--backend", args.check_backends), ("--seed", args.demo_seed),
                                ("--verbose", args.verbose or None)) if v is not None]
        if given:
            p.error(f"{' and '.join(given)} before 'explain' would be ignored; put explain's "
                    f"options after it: python -m minirnn explain {given[0]} ...")
        return _explain.run(args)
    ok = demo(0 if args.demo_seed is None else args.demo_seed)
    backends = args.check_backends or _built_backends()
    ok &= conformance(args.dumps, backends, verbose=args.verbose)
    return 0 if ok else 1


def _built_backends():
    """Every backend this installation can run (the NumPy one always)."""
    return [b for b in BACKENDS if b != "c" or _extension.kernels is not None]


if __name__ == "__main__":
    sys.exit(main())

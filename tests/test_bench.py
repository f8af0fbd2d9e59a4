"""The benchmark scripts parse, their shape sets are what they say, and a tiny run checks its
answers. Nothing here asserts a time."""
import importlib.util
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")


def _load(name):
    if BENCH not in sys.path:
        sys.path.insert(0, BENCH)
    spec = importlib.util.spec_from_file_location(name, os.path.join(BENCH, name + ".py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run(*args, timeout=300):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, os.path.join(BENCH, "bench_rnn.py"), *args],
                          capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT)


def test_help_and_list_sets():
    proc = _run("--help")
    assert proc.returncode == 0, proc.stderr
    for opt in ("--set", "--quick", "--no-ort", "--list-sets", "--streaming"):
        assert opt in proc.stdout
    proc = _run("--list-sets")
    assert proc.returncode == 0, proc.stderr
    for name in ("deepbench", "fastrnns", "gnmt", "deepspeech2", "odd", "pytorch81634",
                 "packed", "standard"):
        assert proc.stdout.count(f"{name}:") == 1


def test_unknown_set_is_an_error():
    proc = _run("--set", "deepbnch")
    assert proc.returncode == 2 and "--set: unknown ['deepbnch']" in proc.stderr


def test_sets_hold_the_published_shapes():
    sh = _load("bench_shapes")
    db = [sh.SIZES[s] for s in sh.SETS["deepbench"][1]]
    gated = {(s.modes[0], s.H, s.B, s.T) for s in db
             if s.modes[0] in ("lstm", "gru") and s.H >= 512}
    assert gated == {(m, H, N, T) for m in ("lstm", "gru") for H in (512, 1024, 1536, 2048)
                     for N in (1, 2, 4) for T in (25, 50, 150)}
    vanilla = {(s.H, s.B, s.T) for s in db if s.modes == ("rnn",) and s.B > 1}
    assert vanilla == {(H, N, 50) for H in (1760, 2048, 2560) for N in (16, 32)}
    device = {(s.modes[0], s.H, s.B, s.T) for s in db if s.B == 1 and s.H <= 256}
    assert device == {("rnn", 32, 1, 672), ("rnn", 64, 1, 96), ("lstm", 256, 1, 150)}
    assert all(s.I == s.H and s.phases == ("infer",) for s in db)
    assert sh.SIZES["fastrnns"][:4] == (100, 64, 512, 512)
    assert {sh.SIZES[s].H for s in sh.SETS["odd"][1]} == {17, 65, 85, 130}
    p = sh.SIZES["pytorch81634"]
    assert (p.layers, p.H, p.B, p.T) == (2, 256, 8, 2000)
    gnmt = [sh.SIZES[s] for s in sh.SETS["gnmt"][1]]
    assert {(s.H, s.bidirectional, s.I) for s in gnmt} == {
        (H, bi, H if bi else 2 * H) for H in (512, 1024) for bi in (True, False)}
    assert all(s.T == 30 for s in gnmt)
    packed = [sh.SIZES[s] for s in sh.SETS["packed"][1]]
    assert {s.lengths for s in packed} == {"uniform", "longtail"}
    for name, (desc, sizes, quick) in sh.SETS.items():
        assert sizes and quick and set(quick) <= set(sizes), name
        assert all(s in sh.SIZES for s in sizes)
    assert set(sh.SETS["standard"][1]) == {s for k in ("deepbench", "fastrnns", "gnmt",
                                                       "deepspeech2", "odd", "pytorch81634",
                                                       "packed") for s in sh.SETS[k][1]}


def test_lengths_are_in_range_and_reach_T():
    np = pytest.importorskip("numpy")
    sh = _load("bench_shapes")
    for name in sh.SETS["packed"][1]:
        s = sh.SIZES[name]
        lengths = sh.draw_lengths(s, np.random.default_rng(0))
        assert len(lengths) == s.B and min(lengths) >= 1 and max(lengths) == s.T
    tail = sh.draw_lengths(sh.SIZES["packed-gru-longtail"], np.random.default_rng(0))
    assert sorted(tail)[len(tail) // 2] < sh.SIZES["packed-gru-longtail"].T / 4


def test_quick_set_selects_the_quick_sizes():
    br = _load("bench_rnn")
    sh = _load("bench_shapes")
    opt = br.parse_args(["--set", "standard", "--quick"])
    assert opt.sizes == sh.SETS["standard"][2] and opt.no_numpy
    rows = br.rows_of(opt)
    assert ("fastrnns", "lstm", "default", "float32", ["infer"]) in rows
    assert ("odd-85", "gru", "default", "float64", ["infer", "train"]) in rows
    opt = br.parse_args(["--set", "gnmt,odd"])
    assert ("gnmt-bi-512-32", "lstm", "default", "float32", ["infer", "train"]) in \
        br.rows_of(opt)
    assert opt.sizes == sh.SETS["gnmt"][1] + sh.SETS["odd"][1]
    opt = br.parse_args([])
    assert opt.sizes == list(sh.DEFAULT_SIZES) and not opt.no_numpy


def test_tiny_run_checks_its_answers(tmp_path):
    pytest.importorskip("numpy")
    import minirnn
    if "c" not in minirnn.BACKENDS:
        pytest.skip("the compiled backend is not built")
    out = tmp_path / "r.json"
    proc = _run("--sizes", "tiny", "--modes", "gru", "--dtypes", "float32", "--no-torch",
                "--no-ort", "--reps", "1", "--rounds", "1", "--settle-ms", "0",
                "--threads", "1", "--json", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(out.read_text())
    rows = doc["results"]
    assert [(r["size"], r["phase"]) for r in rows] == [("tiny", "infer"), ("tiny", "train")]
    for r in rows:
        assert r["ok"] and r["err"]["c"] < 1e-5 and r["ms"]["c"] > 0 and r["ms"]["numpy"] > 0
    assert set(doc["meta"]["workers"]) == {"c", "numpy"}
    # the readers of the JSON: every row as a table, and the ceilings (no peak file: "-")
    env = dict(os.environ, PYTHONPATH=ROOT)
    for script, args, row in (("plot_bench.py", ["--rows"], "| 1 | tiny | gru | float32 | infer |"),
                              ("roofline.py", [], "| 1 | tiny | gru | float32 | 0.01 MiB |")):
        proc = subprocess.run([sys.executable, os.path.join(BENCH, script), *args, str(out)],
                              capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert row in proc.stdout

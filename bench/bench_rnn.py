#!/usr/bin/env python
"""Benchmark minirnn's RNN/GRU/LSTM against its NumPy path, PyTorch and ONNX Runtime.

Each contender runs **alone in a worker process of its own** (bench/bench_workers.py):
minirnn's compiled backend ``c`` (the *subject*), its NumPy path, torch and onnxruntime, so
no process holds two runtimes' thread pools. For every (size, mode, dtype, phase) the script

1. draws one input, one set of upstream gradients (and, for a packed row, the lengths) and
   minirnn's weights (seed 0), and gives the same arrays to every contender (onnxruntime
   gets the module's ONNX graph, ``minirnn.onnx.export``);
2. has each contender run once, untimed, and compares its answer with the reference (torch
   if it runs, else the NumPy path): the outputs and final states, and for training also the
   input and parameter gradients. A row whose answer differs by more than
   ``max|a - ref| / max|ref| > 1e-3`` (float32; 1e-8 in float64) is marked ``!`` —
   a benchmark that times a wrong answer is worthless;
3. times the contenders in turns (A, B, C, A, B, C, ...; ``--rounds``), so slow drifts of
   the machine hit all alike; in each turn the contender first runs untimed calls for
   ``--settle-ms`` (its threads wake up), then **warm back-to-back calls**, each timed alone
   with ``time.perf_counter``. Every other worker waits, idle, meanwhile;
4. reports the median per contender and the ratios ``other_ms / c_ms`` (> 1: minirnn's
   compiled backend is faster).

Sizes: the project's own (``--sizes``, the default) and the published benchmark shapes as
named sets (``--set deepbench``, ``fastrnns``, ``gnmt``, ``deepspeech2``, ``odd``,
``pytorch81634``, ``packed``; ``standard`` = all; ``--list-sets`` prints them; see
bench/bench_shapes.py). ``--quick`` runs a set's quick subset with shorter timing. Packed rows
time minirnn on a PackedSequence against torch's ``pack_padded_sequence`` path and against
minirnn on the same batch padded (``c-padded``: every sequence run to T).

Cell variants (``--variants``, see ``minirnn.variants``): a row of a variant times the
compiled backend on the variant and, in turns with it, the compiled backend on PyTorch's cell
of the same size and weights (the ``c-default`` column). ``--frozen`` adds ``c-frozen``:
the same module through ``minirnn.freeze`` (weights that cannot change, so no call checks
that they did), timed on the inference rows; onnxruntime's session is the like of it.

Phases: ``infer`` = forward under ``minirnn.no_grad()`` / ``torch.no_grad()`` (onnxruntime:
inference only, float32 only); ``train`` = zero the gradients, forward, backward with fixed
random upstream gradients for the output and every final state (and the input gradient).

Usage (see bench/README.md):
    python bench/bench_rnn.py                          # the project's sizes (several minutes)
    python bench/bench_rnn.py --set standard --quick   # the published shapes' quick subset
    python bench/bench_rnn.py --set deepbench --threads 1 --dtypes float32 --json db_1t.json
    python bench/bench_rnn.py --set packed
    python bench/bench_rnn.py --sizes medium --variants default,gru:reset_before,lstm:peephole
    python bench/bench_rnn.py --streaming --threads 1     # one step per call, state carried

Only NumPy is required; torch, onnx + onnxruntime (contenders) and matplotlib
(bench/plot_bench.py) are optional: a contender that cannot be imported is left out.
"""
import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from bench_shapes import (DEFAULT_SIZES, QUICK_PHASES, SETS, SIZES,  # noqa: E402
                          describe_size, draw_lengths, matmul_gflop)

# numpy and minirnn are imported in main(), after --threads has set the thread environment
# variables; the parent process never runs a kernel (the workers do), it only draws the
# weights and writes the ONNX graphs.
np = minirnn = None

MODES = {"rnn": "RNN", "gru": "GRU", "lstm": "LSTM"}      # our name -> class name
DTYPES = ("float32", "float64")
PHASES = ("infer", "train")
TOLERANCE = {"float32": 1e-3, "float64": 1e-8}            # max|a - ref| / max|ref|
UNCHECKED = ("c-default", "c-padded")        # timed next to a row, not the row's answer

# cell variants: name -> (the modes it applies to, the module's variant arguments)
VARIANTS = {
    "default": (("rnn", "gru", "lstm"), {}),
    "reset_before": (("gru",), dict(reset_after=False)),
    "peephole": (("lstm",), dict(peephole=True)),
    "coupled": (("lstm",), dict(coupled_input_forget=True)),
    "peephole_coupled": (("lstm",), dict(peephole=True, coupled_input_forget=True)),
    "clip": (("rnn", "gru", "lstm"), dict(cell_clip=3.0)),
    "reverse": (("rnn", "gru", "lstm"), dict(reverse=True)),
    "hard_sigmoid": (("gru", "lstm"), {}),      # activations filled in by variant_kwargs
    "softsign": (("rnn", "gru", "lstm"), {}),
}


def variant_kwargs(variant, mode):
    """The module arguments of a variant for a mode ({} for PyTorch's cell)."""
    if variant == "hard_sigmoid":        # ONNX's old Keras default for the gates
        return dict(activations=["HardSigmoid", "Tanh"] + (["Tanh"] if mode == "lstm" else []))
    if variant == "softsign":            # a candidate activation without exp
        return dict(activations={"rnn": ["Softsign"], "gru": ["Sigmoid", "Softsign"],
                                 "lstm": ["Sigmoid", "Softsign", "Softsign"]}[mode])
    return dict(VARIANTS[variant][1])




# ------------------------------------------------------------------------------ one case
def make_case(size, mode, dtype, variant, tmp, onnx_reason):
    """Draw a case and write it for the workers: returns (spec, path of the arrays).

    The weights are minirnn's initialisation with seed 0 (for peepholes, weight_peephole from
    the same generator); input and upstream gradients from seed 1234. ``onnx_reason`` is
    None when onnxruntime runs, else why not; the graph is written for float32 cells ONNX
    has (``minirnn.onnx.export``, zero initial states, ``sequence_lens`` for a packed row)."""
    s = SIZES[size]
    D = 2 if s.bidirectional else 1
    rng = np.random.default_rng(1234)
    x_shape = (s.B, s.T, s.I) if s.batch_first else (s.T, s.B, s.I)
    out_shape = x_shape[:2] + (D * s.H,)
    state_shape = (s.layers * D, s.B, s.H)
    arrays = dict(x=rng.standard_normal(x_shape).astype(dtype),
                  g_out=rng.standard_normal(out_shape).astype(dtype),
                  g_h=rng.standard_normal(state_shape).astype(dtype))
    if mode == "lstm":
        arrays["g_c"] = rng.standard_normal(state_shape).astype(dtype)
    lengths = draw_lengths(s, rng) if s.lengths else None
    if lengths is not None:
        arrays["lengths"] = np.asarray(lengths, np.int64)
    kw = dict(num_layers=s.layers, batch_first=s.batch_first, bidirectional=s.bidirectional,
              dtype=np.dtype(dtype), seed=0, backend="numpy")
    if mode == "rnn":
        kw["nonlinearity"] = "tanh"
    vkw = variant_kwargs(variant, mode)
    m = getattr(minirnn, MODES[mode])(s.I, s.H, **kw, **vkw)
    sd = m.state_dict()
    stem = os.path.join(tmp, f"{size}-{mode}-{dtype}-{variant}")
    np.savez(stem + ".npz", **arrays, **sd)
    spec = dict(size=size, mode=mode, dtype=dtype, variant=variant, T=s.T, B=s.B, I=s.I,
                H=s.H, layers=s.layers, bidirectional=s.bidirectional,
                batch_first=s.batch_first, variant_kwargs=vkw, lengths=lengths)
    if onnx_reason:
        spec["onnx_skip"] = onnx_reason
    elif dtype != "float32":
        spec["onnx_skip"] = "onnxruntime's CPU RNN kernels have no float64"
    else:
        try:
            import minirnn.onnx as mo
            mo.export(m, stem + ".onnx", initial_states=False,
                      sequence_lens=lengths is not None)
            spec["onnx_path"] = stem + ".onnx"
        except Exception as e:                    # a variant ONNX has no attribute for
            spec["onnx_skip"] = f"not exported: {type(e).__name__}: {e}"
    return spec, stem + ".npz"


def max_rel_error(ans, ref):
    """max over arrays of max|a - ref| / max|ref| (1.0 if a name or shape is missing)."""
    worst = 0.0
    for k, r in ref.items():
        a = ans.get(k)
        if a is None or a.shape != r.shape:
            return 1.0
        scale = float(np.max(np.abs(r))) if r.size else 0.0
        err = float(np.max(np.abs(a.astype(np.float64) - r))) if r.size else 0.0
        worst = max(worst, err / scale if scale > 0 else err)
    return worst


# ------------------------------------------------------------------------------ workers
class Worker:
    """A contender's process (bench_workers.worker_main), driven one JSON line at a time."""

    def __init__(self, name, threads, tmp):
        self.name, self.threads, self.tmp = name, threads, tmp
        self.timed = True
        self.start()

    def start(self):
        env = dict(os.environ, OMP_NUM_THREADS=str(self.threads),
                   OPENBLAS_NUM_THREADS=str(self.threads), MKL_NUM_THREADS=str(self.threads))
        # the workers import the parent's minirnn and bench_workers.py
        repo = os.path.dirname(os.path.dirname(os.path.abspath(minirnn.__file__)))
        env["PYTHONPATH"] = os.pathsep.join([repo, HERE] + [
            p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        self.err_path = os.path.join(self.tmp, f"worker-{self.name}.stderr")
        self.err = open(self.err_path, "a")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "import sys, bench_workers; "
             f"sys.exit(bench_workers.worker_main({self.name!r}))"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err, text=True,
            bufsize=1, env=env, cwd=repo)
        hello = self.recv()
        self.ok = bool(hello.get("ok"))
        self.info = hello.get("info", {})
        self.error = hello.get("error")

    def recv(self):
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            tail = open(self.err_path).read().strip().splitlines()[-1:] or ["no message"]
            return dict(ok=False, dead=True,
                        error=f"worker died (exit {self.proc.returncode}): {tail[0][:200]}")
        return json.loads(line)

    def ask(self, **cmd):
        if self.proc.poll() is not None:
            self.start()                        # died on an earlier row: a fresh process
            if not self.ok:
                return dict(ok=False, error=self.error)
        try:
            self.proc.stdin.write(json.dumps(cmd) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass
        return self.recv()

    def pid(self):
        return self.proc.pid if self.proc.poll() is None else None

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps(dict(cmd="quit")) + "\n")
                self.proc.stdin.close()
            except (BrokenPipeError, OSError):
                pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.err.close()


def measure(workers, spec, path, phase, opt, tmp):
    """Warm up, check and time the workers on one case, in turns.

    Returns {name: dict(ms=median or None, reps=..., times_ms=[...], err=..., note=...)}."""
    res = {w.name: dict(ms=None, reps=0, times_ms=[], err=None, note="") for w in workers}
    settle_s = opt.settle_ms / 1e3
    live, answers, est = [], {}, {}
    for w in workers:
        r = w.ask(cmd="prepare", spec=spec, path=path)
        if r.get("ok"):
            # 1. one call that also produces the answer for the check (it pays for first-time
            #    allocations); then settle and 3 warm calls whose median plans the reps (a call
            #    slower than min_time / min_reps gets min_reps reps: its first time will do)
            ans_path = os.path.join(tmp, f"answer-{w.name}.npz")
            r = w.ask(cmd="answer", phase=phase, path=ans_path)
            if r.get("ok"):
                with np.load(ans_path) as z:
                    answers[w.name] = {k: z[k] for k in z.files}
                os.unlink(ans_path)
                first = r["sec"]
                if not w.timed:
                    w.ask(cmd="release")
                    continue
                if first > opt.min_time / opt.min_reps and not opt.reps:
                    est[w.name] = first
                else:
                    r = w.ask(cmd="estimate", settle=settle_s, est=first)
                    est[w.name] = r.get("sec", first)
                if (w.name == "numpy" and opt.skip_numpy_above
                        and est[w.name] * 1e3 > opt.skip_numpy_above):
                    res[w.name]["note"] = f"skipped: one call took {est[w.name] * 1e3:.0f} ms"
                    w.ask(cmd="release")
                    continue
                live.append(w)
                continue
        if r.get("error"):
            res[w.name]["note"] = r["error"]
        w.ask(cmd="release")

    # 2. correctness: every checked contender against the reference (torch, else numpy)
    ref_name = "torch" if "torch" in answers else ("numpy" if "numpy" in answers else None)
    for name, ans in answers.items():
        if ref_name and name != ref_name and name not in UNCHECKED:
            res[name]["err"] = max_rel_error(ans, answers[ref_name])
    answers.clear()

    # 3. plan: reps so that each contender runs >= min_time seconds and >= min_reps calls;
    #    the turns are chunks of those reps (fewer turns for slow ones)
    plan = {}
    for w in live:
        n = opt.reps or max(opt.min_reps, math.ceil(opt.min_time / max(est[w.name], 1e-7)))
        plan[w.name] = min(n, opt.max_reps)
    rounds = min(opt.rounds, max(plan.values(), default=0))
    chunk = {name: math.ceil(n / rounds) for name, n in plan.items()} if rounds else {}

    # 4. turns: each worker settles, then times back-to-back calls; the others wait idle
    for _ in range(rounds):
        for w in live:
            todo = min(chunk[w.name], plan[w.name] - res[w.name]["reps"])
            if todo <= 0:
                continue
            r = w.ask(cmd="time", n=todo, settle=settle_s, est=est[w.name])
            if not r.get("ok"):
                res[w.name]["note"] = r.get("error", "failed")
                plan[w.name] = res[w.name]["reps"]
                continue
            res[w.name]["times_ms"] += [t * 1e3 for t in r["times"]]
            res[w.name]["reps"] += todo
    for w in live:
        w.ask(cmd="release")
    for r in res.values():
        if r["times_ms"]:
            r["ms"] = statistics.median(r["times_ms"])
    return res


# ------------------------------------------------------------------------------ other load
class OtherLoad:
    """How many cores *other* processes kept busy between start() and stop() (Linux only):
    busy CPU time of the whole machine (/proc/stat) minus the CPU time of this process and of
    its workers (``pids``), per second of wall time. OpenMP code with 2 threads on 2 cores is
    very sensitive to a third busy process (a thread waits a whole scheduler slice at each
    barrier: calls of ~0.1 ms were measured at a flat 8 ms), so rows measured under load are
    marked."""

    def __init__(self, pids=()):
        self.tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self.pids = pids

    def _ours(self):
        t = os.times()
        own = t.user + t.system
        for pid in self.pids():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                own += (int(fields[11]) + int(fields[12])) / self.tick    # utime, stime
            except (OSError, ValueError, IndexError):
                pass
        return own

    def _sample(self):
        try:
            with open("/proc/stat") as f:
                v = [int(x) for x in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        busy = (sum(v[:8]) - v[3] - v[4]) / self.tick      # all but idle and iowait
        return time.perf_counter(), busy, self._ours()

    def start(self):
        self.t0 = self._sample()

    def stop(self):
        t1 = self._sample()
        if self.t0 is None or t1 is None or t1[0] <= self.t0[0]:
            return None
        return max(0.0, ((t1[1] - self.t0[1]) - (t1[2] - self.t0[2])) / (t1[0] - self.t0[0]))


def wait_idle(load, busy, max_wait):
    """Wait (up to max_wait seconds) until other processes keep at most ``busy`` cores busy,
    sampled over half a second at a time."""
    t_end = time.perf_counter() + max_wait
    while True:
        load.start()
        time.sleep(0.5)
        other = load.stop()
        if other is None or other <= busy or time.perf_counter() >= t_end:
            return


# ------------------------------------------------------------------------------ reporting
def fmt_ms(v):
    if v is None:
        return "-"
    return f"{v:.3f}" if v < 1 else f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 100 else f"{v:.0f}"


def fmt_ratio(num, den):
    return f"{num / den:.2f}x" if num is not None and den else "-"


def cpu_name():
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f
                        if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return cpu


def machine_info(threads, workers, skipped):
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    info = dict(cpu=cpu_name(), cpu_count=os.cpu_count(), cores_available=cores,
                threads=threads, python=platform.python_version(),
                platform=platform.platform(), numpy=np.__version__,
                minirnn=getattr(minirnn, "__version__", "?"),
                minirnn_backends=list(minirnn.BACKENDS),
                loadavg_start=os.getloadavg() if hasattr(os, "getloadavg") else None,
                workers={w.name: w.info for w in workers}, left_out=skipped)
    try:
        with open("/proc/loadavg") as f:
            info["uptime_load"] = f.read().split()[:3]
    except OSError:
        pass
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info["numpy_blas"] = f"{blas.get('name')} {blas.get('version')}"
    except Exception:
        pass
    for name in ("torch", "onnxruntime"):
        info[name] = next((w.info[name] for w in workers if name in w.info),
                          "not used (" + skipped.get("ort" if name == "onnxruntime" else name,
                                                     "?") + ")")
    c = next((w for w in workers if w.name == "c"), None)
    if c is not None:
        info["minirnn_isa"] = c.info.get("isa")
    return info


def print_header(info, subject, names, opt):
    print("minirnn benchmark: median ms per call; ratios = other's ms / "
          f"{subject}'s ms (>1: minirnn-{subject} faster)")
    for k in ("cpu", "cores_available", "threads", "python", "numpy", "numpy_blas", "minirnn",
              "minirnn_backends", "minirnn_isa", "torch", "onnxruntime", "loadavg_start"):
        if k in info:
            print(f"  {k:19s} {info[k]}")
    for name, wi in info["workers"].items():
        print(f"  {'worker ' + name:19s} threads {wi.get('threads')}, loaded "
              f"{', '.join(wi.get('libs', [])) or '-'}")
    for name, why in info["left_out"].items():
        print(f"  {'left out ' + name:19s} {why}")
    print(f"  {'timing':19s} each contender alone in its own process; per turn "
          f"{opt.settle_ms:g} ms of untimed calls, then warm back-to-back calls, each timed; "
          f"min {opt.min_time:g} s and {opt.min_reps} calls per contender over {opt.rounds} "
          "turns; the median")
    print("  sizes:")
    for s in opt.sizes:
        print(f"    {s:22s} {describe_size(s)}")
    print(f"  check: max|a-ref|/max|ref| vs {'torch' if 'torch' in names else 'numpy'}; "
          "'!' marks a row above tolerance (float32 1e-3, float64 1e-8); c-padded and "
          "c-default are not checked (another computation)")
    print("  other load: cores kept busy by other processes while the row was measured; "
          f"'~' above {opt.busy:g} (its times are suspect)")
    print()


def table_columns(subject, names, variants):
    width = max([7] + [len(s) for s in SIZES_SHOWN])
    cols = [("size", width), ("mode", 5), ("dtype", 8), ("phase", 6)]
    if variants:
        cols.insert(2, ("variant", 16))
    cols += [(f"{n} ms" if n != subject else f"minirnn-{n} ms", 12) for n in names]
    cols += [(f"{n}/{subject}", 11) for n in names if n != subject]
    if variants:
        cols.append(("variant/default", 15))
    cols += [("reps", 14), ("max err", 9), ("other load", 10)]
    return cols


SIZES_SHOWN = []


def format_row(values, cols):
    left = 5 if cols[2][0] == "variant" else 4
    return "  ".join(str(v).rjust(w) if i >= left else str(v).ljust(w)
                     for i, (v, (_, w)) in enumerate(zip(values, cols)))


# ------------------------------------------------------------------------------ streaming
# A trained model used live: one chunk per call, the state (h, c) carried from call to call
# (Silero VAD's LSTM: I = H = 128, batch 1, one step per call). Each contender runs in a
# process of its own (no other runtime's thread pool in it), warm, back to back, on the same
# weights and the same chunks; the final states are checked against minirnn's NumPy path.
#   name: (I, H, steps per call, calls per timed block)
STREAMING = {
    "stream-lstm128": (128, 128, 1, 2000),
    "stream-lstm512": (512, 512, 1, 100),
}
# minirnn-frozen: the LSTM through minirnn.freeze (the kernels skip the weights' fingerprint)
STREAM_CONTENDERS = ("minirnn-LSTM", "minirnn-LSTMCell", "minirnn-frozen", "torch",
                     "onnxruntime")


def _stream_weights(I, H, seed=0):
    import numpy
    import minirnn as mr
    m = mr.LSTM(I, H, seed=seed)
    rng = numpy.random.default_rng(seed + 1)
    for p in m.state_dict().values():
        if p.ndim == 1:
            p += 0.3 * rng.standard_normal(p.shape).astype(p.dtype)
    return m.state_dict(), rng.standard_normal((64, 1, 1, I)).astype(numpy.float32)


def _onnx_lstm(sd, I, H):
    """An ONNX LSTM node with minirnn's weights (gates reordered i,f,g,o -> i,o,f,c)."""
    import numpy
    from onnx import TensorProto, helper, numpy_helper
    order = [0, 3, 1, 2]
    def reorder(w):
        return numpy.concatenate([w.reshape(4, H, -1)[k] for k in order]).reshape(4 * H, -1)
    W = reorder(sd["weight_ih_l0"])[None]
    R = reorder(sd["weight_hh_l0"])[None]
    B = numpy.concatenate([reorder(sd["bias_ih_l0"][:, None])[:, 0],
                           reorder(sd["bias_hh_l0"][:, None])[:, 0]])[None]
    inits = [numpy_helper.from_array(a.astype(numpy.float32), n) for a, n in
             ((W, "W"), (R, "R"), (B, "B"))]
    node = helper.make_node("LSTM", ["X", "W", "R", "B", "", "h0", "c0"], ["Y", "hT", "cT"],
                            hidden_size=H)
    f = TensorProto.FLOAT
    graph = helper.make_graph(
        [node], "stream", [helper.make_tensor_value_info("X", f, [None, 1, I]),
                           helper.make_tensor_value_info("h0", f, [1, 1, H]),
                           helper.make_tensor_value_info("c0", f, [1, 1, H])],
        [helper.make_tensor_value_info(n, f, None) for n in ("Y", "hT", "cT")], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    return model.SerializeToString()


def streaming_worker(name, size, threads, out_path):
    """Time one contender on one streaming size; write {us, h} to out_path (JSON)."""
    import numpy
    I, H, steps, calls = STREAMING[size]
    sd, xs = _stream_weights(I, H)
    xs = numpy.ascontiguousarray(numpy.repeat(xs, steps, axis=1))       # (64, steps, 1, I)
    zeros = numpy.zeros((1, 1, H), numpy.float32)
    if name.startswith("minirnn"):
        import minirnn as mr
        mr.set_num_threads(threads)
        if name in ("minirnn-LSTM", "minirnn-frozen"):
            m = mr.LSTM(I, H)
            m.load_state_dict(sd)
            if name == "minirnn-frozen":
                m = mr.freeze(m)
            def step(x, st):
                with mr.no_grad():
                    return m(x, st)[1]
            state = (zeros, zeros)
        else:
            m = mr.LSTMCell(I, H)
            m.load_state_dict({k[:-3]: v for k, v in sd.items()})
            xs = xs[:, 0]                                               # steps == 1: (N, I)
            def step(x, st):
                with mr.no_grad():
                    return m(x, st)
            state = (zeros[0], zeros[0])
    elif name == "torch":
        import torch
        torch.set_num_threads(threads)
        m = torch.nn.LSTM(I, H)
        m.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})
        xs = [torch.from_numpy(x) for x in xs]
        def step(x, st):
            with torch.no_grad():
                return m(x, st)[1]
        state = (torch.zeros(1, 1, H), torch.zeros(1, 1, H))
    else:
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(_onnx_lstm(sd, I, H), so, providers=["CPUExecutionProvider"])
        def step(x, st):
            _, h, c = sess.run(None, {"X": x, "h0": st[0], "c0": st[1]})
            return h, c
        state = (zeros, zeros)
    for k in range(len(xs)):                          # warm-up, and the answer to check
        state = step(xs[k], state)
    h_check = numpy.asarray(state[0]).reshape(-1).tolist()
    blocks = []
    for _ in range(7):
        t0 = time.perf_counter()
        for k in range(calls):
            state = step(xs[k % len(xs)], state)
        blocks.append((time.perf_counter() - t0) / calls * 1e6)
    with open(out_path, "w") as f:
        json.dump(dict(us=statistics.median(blocks), blocks=blocks, h=h_check), f)


def run_streaming(opt):
    """The streaming rows: every contender in its own process, minirnn's the reference."""
    import subprocess
    import tempfile
    import numpy
    import minirnn as mr
    threads = opt.threads or mr.get_num_threads()
    print(f"streaming: one step per call, (h, c) carried; float32, {threads} thread(s); each "
          "contender alone in its own process, warm back-to-back calls, median of 7 blocks")
    print(f"{'size':<16}" + "".join(f"{n:>18}" for n in STREAM_CONTENDERS)
          + f"{'ORT/minirnn':>13}{'ORT/frozen':>12}{'torch/minirnn':>15}  max err")
    results = {}
    for size in STREAMING:
        I, H, steps, _ = STREAMING[size]
        sd, xs = _stream_weights(I, H)
        ref = mr.LSTM(I, H, backend="numpy")
        ref.load_state_dict(sd)
        st = None
        with mr.no_grad():
            for k in range(len(xs)):
                st = ref(numpy.repeat(xs[k], steps, axis=0), st)[1]
        h_ref = st[0].reshape(-1)
        row, errs = {}, []
        for name in STREAM_CONTENDERS:
            with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as tf:
                path = tf.name
            env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path),
                       OMP_NUM_THREADS=str(threads),
                       OPENBLAS_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
            proc = subprocess.run([sys.executable, os.path.abspath(__file__),
                                   "--streaming-worker", name, "--streaming-size", size,
                                   "--threads", str(threads), "--json", path],
                                  env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                row[name] = None
                why = (proc.stderr.strip().splitlines() or ["failed"])[-1]
                print(f"    {name}: {why}", file=sys.stderr)
                continue
            with open(path) as f:
                r = json.load(f)
            os.unlink(path)
            row[name] = r["us"]
            errs.append(float(numpy.abs(numpy.asarray(r["h"]) - h_ref).max()
                              / numpy.abs(h_ref).max()))
        def ratio(n, of="minirnn-LSTM"):
            return f"{row[n] / row[of]:.2f}" if row.get(n) and row.get(of) else "-"
        print(f"{size:<16}" + "".join(
            f"{row[n]:>15.1f} us" if row.get(n) else f"{'-':>18}" for n in STREAM_CONTENDERS)
            + f"{ratio('onnxruntime'):>13}{ratio('onnxruntime', 'minirnn-frozen'):>12}"
            f"{ratio('torch'):>15}  {max(errs):.0e}", flush=True)
        results[size] = dict(us=row, err=max(errs), threads=threads)
    if opt.json:
        with open(opt.json, "w") as f:
            json.dump(dict(streaming=results, loadavg=os.getloadavg()), f, indent=1)
    return 0




# ------------------------------------------------------------------------------ main
def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--set", default=None,
                   help=f"comma list of named shape sets: {', '.join(SETS)} ('standard' = "
                        "every published set; default: the project's own sizes)")
    p.add_argument("--list-sets", action="store_true", help="print the sets and their sizes")
    p.add_argument("--sizes", default=None,
                   help="comma list of sizes (any size of any set; default: the --set's, "
                        f"else {', '.join(DEFAULT_SIZES)})")
    p.add_argument("--modes", default="rnn,gru,lstm", help="comma list of rnn,gru,lstm")
    p.add_argument("--dtypes", default="float32,float64", help="comma list of float32,float64")
    p.add_argument("--phases", default=None,
                   help="comma list of infer,train (default: each size's own; the DeepBench "
                        "rows, for instance, are inference only)")
    p.add_argument("--variants", default="default",
                   help="comma list of cell variants, each a name of VARIANTS (for every "
                        "mode it applies to) or mode:name, e.g. gru:reset_before (default: "
                        "default, PyTorch's cells only)")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for every contender (default: os.cpu_count() of the "
                        "cores this process may use)")
    p.add_argument("--no-torch", action="store_true", help="do not run torch")
    p.add_argument("--no-ort", action="store_true", help="do not run onnxruntime")
    p.add_argument("--frozen", action="store_true",
                   help="also time minirnn.freeze(module) on the inference rows (c-frozen: "
                        "weights that cannot change, as an onnxruntime session's)")
    p.add_argument("--no-numpy", action="store_true",
                   help="do not time the NumPy path (default for --set runs; it is still "
                        "the reference of the check when torch does not run)")
    p.add_argument("--numpy", action="store_true", help="time the NumPy path in a --set run")
    p.add_argument("--skip-numpy-above", type=float, default=None, metavar="MS",
                   help="do not time the NumPy path on a case where one call takes > MS ms "
                        "(its answer is still checked)")
    p.add_argument("--reps", type=int, default=None,
                   help="fixed number of timed calls per contender (default: adaptive)")
    p.add_argument("--min-time", type=float, default=0.3,
                   help="adaptive reps: at least this many seconds per contender (default 0.3)")
    p.add_argument("--min-reps", type=int, default=5,
                   help="adaptive reps: at least this many calls per contender (default 5)")
    p.add_argument("--max-reps", type=int, default=2000, help="cap on timed calls (default 2000)")
    p.add_argument("--rounds", type=int, default=3,
                   help="turns per contender the reps are spread over (default 3)")
    p.add_argument("--settle-ms", type=float, default=100.0,
                   help="untimed calls before each turn: the contender's threads wake up, "
                        "the previous contender's spinning pool goes idle (default 100; "
                        "OpenBLAS spins ~0.1 s)")
    p.add_argument("--quick", action="store_true",
                   help="a fast, noisier run: a --set's quick subset (the costliest sizes "
                        "inference only); min-time 0.05 s, 3 reps minimum, 2 turns, 50 ms "
                        "settle")
    p.add_argument("--busy", type=float, default=0.2, metavar="CORES",
                   help="mark a row '~' when other processes kept more than CORES cores busy "
                        "while it was measured (default 0.2)")
    p.add_argument("--wait-idle", type=float, default=0.0, metavar="SECONDS",
                   help="before each row, wait up to SECONDS for the other load to drop to "
                        "--busy (for a shared machine; default 0: do not wait)")
    p.add_argument("--json", metavar="PATH", help="also write all results to PATH as JSON")
    p.add_argument("--streaming", action="store_true",
                   help="run only the streaming rows (one step per call, state carried; "
                        "minirnn, torch, onnxruntime, each in its own process)")
    p.add_argument("--streaming-worker", help=argparse.SUPPRESS)
    p.add_argument("--streaming-size", help=argparse.SUPPRESS)
    opt = p.parse_args(argv)
    if opt.quick:
        opt.min_time, opt.min_reps, opt.rounds, opt.settle_ms = 0.05, 3, 2, 50.0
    sets = []
    if opt.set:
        sets = [v.strip() for v in opt.set.split(",") if v.strip()]
        bad = [v for v in sets if v not in SETS]
        if bad or not sets:
            p.error(f"--set: unknown {bad or 'empty list'}; choose from {', '.join(SETS)}")
    opt.set = sets
    if opt.sizes is None:
        if sets:
            chosen = [s for k in sets for s in SETS[k][2 if opt.quick else 1]]
            opt.sizes = ",".join(dict.fromkeys(chosen))
        else:
            opt.sizes = ",".join(DEFAULT_SIZES)
    for attr, allowed in (("sizes", SIZES), ("modes", MODES), ("dtypes", DTYPES),
                          ("phases", PHASES)):
        raw = getattr(opt, attr)
        if raw is None:
            continue
        vals = [v.strip() for v in raw.split(",") if v.strip()]
        bad = [v for v in vals if v not in allowed]
        if bad or not vals:
            shown = ", ".join(allowed) if attr != "sizes" else "a size of --list-sets"
            p.error(f"--{attr}: unknown {bad or 'empty list'}; choose from {shown}")
        setattr(opt, attr, vals)
    opt.variants = [v.strip() for v in opt.variants.split(",") if v.strip()]
    for v in opt.variants:
        mode, _, name = v.rpartition(":")
        if name not in VARIANTS or (mode and mode not in VARIANTS[name][0]):
            p.error(f"--variants: unknown {v!r}; choose from "
                    f"{', '.join(VARIANTS)} (optionally mode:name)")
    if opt.threads is not None and opt.threads < 1:
        p.error("--threads must be >= 1")
    if opt.rounds < 1 or opt.min_reps < 1 or (opt.reps is not None and opt.reps < 1):
        p.error("--rounds, --min-reps and --reps must be >= 1")
    if sets and not opt.numpy:
        opt.no_numpy = True
    return opt


def list_sets():
    for name, (desc, sizes, quick) in SETS.items():
        print(f"{name}: {desc} ({len(sizes)} sizes, --quick: {len(quick)})")
        if name in ("standard",):
            continue
        for s in sizes:
            print(f"    {s:24s} {describe_size(s)}{'  (quick)' if s in quick else ''}")
    return 0


def importable(module):
    """Why ``module`` cannot be used in a worker (None if it can), asked of a subprocess so
    that the parent never loads a contender's runtime."""
    proc = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True,
                          text=True)
    if proc.returncode == 0:
        return None
    return "not importable: " + ((proc.stderr.strip().splitlines() or ["?"])[-1])[:120]


def rows_of(opt):
    """(size, mode, variant, dtype, phases) for every row the options select."""
    out = []
    for size in opt.sizes:
        s = SIZES[size]
        for m in opt.modes:
            if m not in s.modes:
                continue
            for v in opt.variants:
                vmode, _, vname = v.rpartition(":")
                if m not in VARIANTS[vname][0] or vmode not in ("", m):
                    continue
                if s.lengths and vname != "default":
                    continue
                phases = opt.phases or list(
                    QUICK_PHASES.get(size, s.phases) if opt.quick and opt.set else s.phases)
                for d in opt.dtypes:
                    out.append((size, m, vname, d, phases))
    return out


def write_json(opt, argv, info, subject, names, results, total, partial=False):
    doc = dict(meta=dict(info, subject=subject, contenders=names, tolerance=TOLERANCE,
                         argv=sys.argv[1:] if argv is None else list(argv),
                         options={k: v for k, v in vars(opt).items()},
                         date=time.strftime("%Y-%m-%d %H:%M:%S"), total_seconds=total,
                         partial=partial),
               sizes={s: describe_size(s) for s in opt.sizes}, results=results)
    with open(opt.json + ".tmp", "w") as f:
        json.dump(doc, f, indent=1)
    os.replace(opt.json + ".tmp", opt.json)


def main(argv=None):
    global np, minirnn
    opt = parse_args(argv)
    if opt.list_sets:
        return list_sets()
    if opt.streaming_worker:
        streaming_worker(opt.streaming_worker, opt.streaming_size, opt.threads or 1, opt.json)
        return 0
    if opt.streaming:
        return run_streaming(opt)
    t_start = time.perf_counter()
    threads = opt.threads
    if threads is None:
        try:
            threads = len(os.sched_getaffinity(0))
        except AttributeError:
            threads = os.cpu_count() or 1
    # the parent's own BLAS stays at one thread: it only draws arrays and writes files
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    import numpy
    try:
        import minirnn as _minirnn
    except ImportError:                       # run from a checkout: the repository's minirnn
        sys.path.append(os.path.dirname(HERE))
        import minirnn as _minirnn
    np, minirnn = numpy, _minirnn
    rows = rows_of(opt)
    SIZES_SHOWN[:] = opt.sizes
    any_packed = any(SIZES[r[0]].lengths for r in rows)
    any_infer32 = any("infer" in r[4] and r[3] == "float32" and r[2] == "default"
                      for r in rows)

    # contenders: the subject first, then minirnn's companions, numpy, torch, onnxruntime
    skipped = {}
    names = ["c"] if "c" in minirnn.BACKENDS else []
    if not names:
        skipped["c"] = "minirnn's compiled backend is not built"
    if opt.variants != ["default"] and names:
        names.append("c-default")
    if any_packed and names:
        names.append("c-padded")
    if opt.frozen and names:
        names.append("c-frozen")
    timed_numpy = not opt.no_numpy or not names
    if timed_numpy:
        names.append("numpy")
    if opt.no_torch:
        skipped["torch"] = "--no-torch"
    else:
        why = importable("torch")
        if why:
            skipped["torch"] = why
        else:
            names.append("torch")
    if opt.no_ort:
        skipped["ort"] = "--no-ort"
    elif not any_infer32:
        skipped["ort"] = "no float32 inference row of a PyTorch cell selected"
    else:
        why = importable("onnxruntime") or importable("onnx")
        if why:
            skipped["ort"] = why
        else:
            names.append("ort")
    subject = names[0]
    tmp_dir = tempfile.TemporaryDirectory(prefix="bench_rnn_")
    tmp = tmp_dir.name
    workers = []
    try:
        for n in names:
            w = Worker(n, threads, tmp)
            if w.ok:
                workers.append(w)
            else:
                skipped[n] = w.error
                w.close()
        if "torch" not in [w.name for w in workers] and "numpy" not in names:
            ref = Worker("numpy", threads, tmp)   # the reference of the check, not timed
            ref.timed = False
            workers.append(ref)
        names = [w.name for w in workers if w.timed]
        subject = names[0]
        show_variants = opt.variants != ["default"]
        info = machine_info(threads, workers, skipped)
        print_header(info, subject, names, opt)
        cols = table_columns(subject, names, show_variants)
        print(format_row([c for c, _ in cols], cols))
        print(format_row(["-" * w for _, w in cols], cols), flush=True)

        # one-time costs (library initialisation, first allocations) are paid here, not by
        # the first row: every worker runs the tiny case of each selected mode and phase
        for mode in opt.modes:
            spec, path = make_case("tiny", mode, "float32", "default", tmp,
                                   skipped.get("ort"))
            for w in workers:
                if w.ask(cmd="prepare", spec=spec, path=path).get("ok"):
                    for phase in PHASES:
                        w.ask(cmd="answer", phase=phase, path=os.path.join(tmp, "warm.npz"))
                w.ask(cmd="release")

        results, bad_rows, busy_rows = [], 0, 0
        load = OtherLoad(lambda: [p for p in (w.pid() for w in workers) if p])
        for size, mode, variant, dtype, phases in rows:
            spec, path = make_case(size, mode, dtype, variant, tmp, skipped.get("ort"))
            for phase in phases:
                if opt.wait_idle:
                    wait_idle(load, opt.busy, opt.wait_idle)
                load.start()
                res = measure(workers, spec, path, phase, opt, tmp)
                other = load.stop()
                busy_rows += other is not None and other > opt.busy
                ms = {n: res[n]["ms"] for n in names}
                errs = [r["err"] for r in res.values() if r["err"] is not None]
                err = max(errs) if errs else None
                ok = err is None or err <= TOLERANCE[dtype]
                bad_rows += not ok
                values = [size, mode, dtype, phase] + [fmt_ms(ms[n]) for n in names]
                if show_variants:
                    values.insert(2, variant)
                values += [fmt_ratio(ms[n], ms[subject]) for n in names if n != subject]
                if show_variants:
                    values.append(fmt_ratio(ms[subject], ms.get("c-default")))
                values += ["/".join(str(res[n]["reps"]) for n in names),
                           "-" if err is None else f"{err:.0e}" + ("" if ok else " !"),
                           "-" if other is None else f"{other:.2f}" + (
                               " ~" if other > opt.busy else "")]
                print(format_row(values, cols), flush=True)
                for n, r in res.items():
                    if r["note"]:
                        print(f"    {n}: {r['note']}", flush=True)
                s = SIZES[size]
                results.append(dict(
                    size=size, mode=mode, variant=variant, dtype=dtype, phase=phase,
                    set=next((k for k in opt.set for _ in [0] if size in SETS[k][1]), None),
                    shape=dict(T=s.T, B=s.B, I=s.I, H=s.H, layers=s.layers,
                               bidirectional=s.bidirectional, batch_first=s.batch_first,
                               lengths=s.lengths),
                    lengths=spec["lengths"],
                    ms=ms, gflop=matmul_gflop(size, mode, phase, spec["lengths"]),
                    ratio={n: (ms[n] / ms[subject] if ms[n] and ms[subject] else None)
                           for n in names if n != subject},
                    reps={n: res[n]["reps"] for n in names},
                    times_ms={n: res[n]["times_ms"] for n in names},
                    err={n: r["err"] for n, r in res.items() if r["err"] is not None},
                    ok=ok, other_load=other,
                    notes={n: r["note"] for n, r in res.items() if r["note"]}))
                if opt.json:            # after every row: an interrupted run keeps its rows
                    write_json(opt, argv, info, subject, names, results,
                               time.perf_counter() - t_start, partial=True)
            for ext in (".npz", ".onnx"):
                stem = path[:-4]
                if os.path.exists(stem + ext):
                    os.unlink(stem + ext)
    finally:
        for w in workers:
            w.close()
        tmp_dir.cleanup()

    total = time.perf_counter() - t_start
    if hasattr(os, "getloadavg"):
        info["loadavg_end"] = os.getloadavg()
    print()
    print(f"{len(results)} rows, {bad_rows} with a wrong answer (!), {busy_rows} measured while "
          f"other processes kept more than {opt.busy:g} core busy (~); total time {total:.0f} s "
          f"({total / 60:.1f} min); load average at the end {info.get('loadavg_end')}")
    if opt.json:
        write_json(opt, argv, info, subject, names, results, total)
        print(f"results written to {opt.json}")
    return 1 if bad_rows else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Benchmark minirnn's RNN/GRU/LSTM against its NumPy path and (optionally) PyTorch.

For every (size, mode, dtype, phase) the script

1. builds one model per contender with the *same weights* (minirnn's ``state_dict`` loaded
   into the others) and draws one input and one set of upstream gradients;
2. runs each contender once, untimed (the warm-up), and compares its answer with the
   reference (torch if importable, else the NumPy path): the outputs and final states, and
   for training also the input and parameter gradients. A row whose answer differs by more
   than ``max|a - ref| / max|ref| > 1e-3`` (float32; 1e-8 in float64) is marked ``!`` —
   a benchmark that times a wrong answer is worthless;
3. times the contenders *interleaved*: in each round every contender runs a turn of a few
   calls (A, B, C, A, B, C, ...), each call timed on its own with ``time.perf_counter``,
   so slow drifts of the machine (other load, clock changes) hit all contenders alike.
   Each turn starts with ``settle()``: untimed calls (or a sleep, for slow calls) for
   ``--settle-ms``. Right after a call that used OpenBLAS's thread pool (the NumPy path),
   OpenBLAS's idle threads keep spinning for ~0.1 s, and on a small machine that spin
   slows the next contender's OpenMP threads 2-50x; and a contender whose threads went to
   sleep pays to wake them on its first call;
4. reports the median per contender and the ratios ``numpy_ms / subject_ms`` and
   ``torch_ms / subject_ms`` (> 1 means minirnn's subject backend is faster).

The *subject* is minirnn's compiled backend ``"c"`` when it exists, else the first
non-NumPy backend, else the NumPy path itself. Every backend in ``minirnn.BACKENDS`` is timed.

Cell variants (``--variants``, see ``minirnn.variants``): a row of a variant times the
compiled backend on the variant and, interleaved with it in the same run, the compiled
backend on PyTorch's cell of the same size and weights (the ``c-default`` column); the
``variant/default`` column is the variant's cost relative to the default cell. torch has no
such cells (its column stays empty), so the check is against the NumPy path.

Phases: ``infer`` = forward under ``minirnn.no_grad()`` / ``torch.no_grad()``;
``train`` = zero the gradients, forward, backward with fixed random upstream gradients for
the output and every final state (the input gradient is computed too: ``x.requires_grad``).

Usage (see bench/README.md):
    python bench/bench_rnn.py                          # the full table (several minutes)
    python bench/bench_rnn.py --sizes tiny,small --quick
    python bench/bench_rnn.py --threads 1 --dtypes float32 --json bench/results_1t.json
    python bench/bench_rnn.py --sizes medium --variants default,gru:reset_before,lstm:peephole
    python bench/bench_rnn.py --streaming --threads 1     # one step per call, state carried

Only NumPy is required; torch (a contender) and matplotlib (bench/plot_bench.py) are optional.
"""
import argparse
import gc
import json
import math
import os
import platform
import statistics
import sys
import time

# numpy, minirnn and torch are imported in main(), after --threads has set the thread
# environment variables (OpenMP and BLAS read them once, when their library loads).
np = minirnn = torch = None

# ------------------------------------------------------------------------------ problem sizes
#   name: (T seq len, B batch, I input, H hidden, layers, bidirectional, batch_first, modes)
SIZES = {
    "tiny":   (20,   1,    8,   32, 1, False, False, ("rnn", "gru", "lstm")),
    "small":  (50,   16,   32,  64, 1, False, False, ("rnn", "gru", "lstm")),
    "medium": (100,  64,  128, 256, 1, False, False, ("rnn", "gru", "lstm")),
    "large":  (100,  64,  512, 512, 2, False, False, ("rnn", "gru", "lstm")),
    "bidir":  (100,  32,  128, 128, 2, True,  False, ("rnn", "gru", "lstm")),
    "long":   (1000, 8,    32, 128, 1, False, False, ("rnn", "gru", "lstm")),
    # the example that started the project: a 3-layer bidirectional batch-first GRU
    "seed":   (112, 1024,   8,  50, 3, True,  True,  ("gru",)),
}
MODES = {"rnn": "RNN", "gru": "GRU", "lstm": "LSTM"}      # our name -> class name
DTYPES = ("float32", "float64")
PHASES = ("infer", "train")
TOLERANCE = {"float32": 1e-3, "float64": 1e-8}            # max|a - ref| / max|ref|

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


def describe_size(name):
    T, B, I, H, L, bi, bf, modes = SIZES[name]
    extra = (", bidirectional" if bi else "") + (", batch_first" if bf else "")
    only = "" if len(modes) == 3 else f"  [{'/'.join(m.upper() for m in modes)} only]"
    return f"T={T} B={B} I={I} H={H} layers={L}{extra}{only}"


GATES = {"rnn": 1, "gru": 3, "lstm": 4}


def matmul_gflop(size, mode, phase):
    """GFLOP (2 per multiply-add) of the matrix products of one call: the bulk of its work,
    and what the machine's FMA peak bounds (bench/peak_flops.py). Per layer and direction,
    with G gates and the layer's input width I_l: the forward's G_x = X W_ih^T and
    G_h = h W_hh^T over all T*B rows, 2*T*B*G*H*(I_l + H); training adds the backward's
    dX = dG W_ih and dh = dG W_hh, and the weight gradients dW_ih = dG^T X and
    dW_hh = dG^T H, twice as much again. The pointwise gate math is not counted."""
    T, B, I, H, L, bi, _, _ = SIZES[size]
    D = 2 if bi else 1
    fwd = sum(2 * T * B * GATES[mode] * H * ((I if layer == 0 else D * H) + H) * D
              for layer in range(L))
    return (fwd if phase == "infer" else 3 * fwd) / 1e9


# ------------------------------------------------------------------------------ one case
class Case:
    """One benchmark problem: shapes, the shared weights, input and upstream gradients."""

    def __init__(self, size, mode, dtype, variant="default"):
        self.size, self.mode, self.dtype, self.variant = size, mode, dtype, variant
        (self.T, self.B, self.I, self.H, self.layers, self.bidirectional, self.batch_first,
         _) = SIZES[size]
        D = 2 if self.bidirectional else 1
        rng = np.random.default_rng(1234)
        x_shape = (self.B, self.T, self.I) if self.batch_first else (self.T, self.B, self.I)
        out_shape = x_shape[:2] + (D * self.H,)
        state_shape = (self.layers * D, self.B, self.H)
        self.x = rng.standard_normal(x_shape).astype(dtype)
        # upstream gradients: for the output and every final state (h_n, and c_n for LSTM)
        self.g_out = rng.standard_normal(out_shape).astype(dtype)
        self.g_states = [rng.standard_normal(state_shape).astype(dtype)
                         for _ in range(2 if mode == "lstm" else 1)]
        # the weights every contender uses: minirnn's initialisation with seed 0
        # (and, for peepholes, weight_peephole drawn from the same generator)
        self.state_dict = self.minirnn_model("numpy").state_dict()

    def minirnn_model(self, backend, default_cell=False):
        cls = getattr(minirnn, MODES[self.mode])
        kw = dict(num_layers=self.layers, batch_first=self.batch_first,
                  bidirectional=self.bidirectional, dtype=np.dtype(self.dtype), seed=0,
                  backend=backend)
        if self.mode == "rnn":
            kw["nonlinearity"] = "tanh"
        if not default_cell:
            kw.update(variant_kwargs(self.variant, self.mode))
        return cls(self.I, self.H, **kw)


# ------------------------------------------------------------------------------ contenders
# A contender prepares a case, then offers ``call(phase)`` (the work that is timed) and
# ``answer(phase)`` (one untimed call whose results are compared across contenders).

class MinirnnContender:
    """minirnn on one backend; with ``default_cell``, PyTorch's cell of the case's size
    whatever its variant (timed next to a variant, never checked against it)."""

    def __init__(self, backend, default_cell=False):
        self.backend = backend
        self.default_cell = self.unchecked = default_cell
        # column name: "c", "numpy", ..., "c-default"
        self.name = backend + ("-default" if default_cell else "")

    def prepare(self, case):
        if self.default_cell and case.variant == "default":
            raise LookupError("not timed: the row is the default cell")
        self.case = case
        self.m = case.minirnn_model(self.backend, self.default_cell)
        self.m.load_state_dict({k: v for k, v in case.state_dict.items()
                                if k in self.m.state_dict()})
        self.lstm = case.mode == "lstm"
        self.g_state = tuple(case.g_states) if self.lstm else case.g_states[0]

    def call(self, phase):
        m, x = self.m, self.case.x
        if phase == "infer":
            with minirnn.no_grad():
                return m(x)
        m.zero_grad()                           # a training step starts from zero grads
        out, states = m(x)
        return out, states, m.backward(self.case.g_out, self.g_state)

    def answer(self, phase):
        res = self.call(phase)
        states = res[1] if self.lstm else (res[1],)
        ans = {"output": res[0], "h_n": states[0]}
        if self.lstm:
            ans["c_n"] = states[1]
        if phase == "train":
            ans["grad_input"] = res[2][0]
            ans.update({"grad_" + k: g for k, g in self.m.grads.items()})
        return {k: np.array(v) for k, v in ans.items()}

    def release(self):
        self.m = self.case = None


class TorchContender:
    name = "torch"

    def prepare(self, case):
        if case.variant != "default":
            raise LookupError(f"torch has no {case.variant} cell")
        self.case = case
        cls = getattr(torch.nn, MODES[case.mode])
        kw = dict(num_layers=case.layers, batch_first=case.batch_first,
                  bidirectional=case.bidirectional, dtype=getattr(torch, case.dtype))
        if case.mode == "rnn":
            kw["nonlinearity"] = "tanh"
        self.m = cls(case.I, case.H, **kw)
        self.m.load_state_dict({k: torch.from_numpy(v) for k, v in case.state_dict.items()})
        self.lstm = case.mode == "lstm"
        self.x = torch.from_numpy(case.x.copy())
        self.x_train = torch.from_numpy(case.x.copy()).requires_grad_(True)
        self.g_out = torch.from_numpy(case.g_out)
        self.g_states = [torch.from_numpy(g) for g in case.g_states]

    def call(self, phase):
        if phase == "infer":
            with torch.no_grad():
                return self.m(self.x)
        self.m.zero_grad(set_to_none=True)      # as an optimizer step would
        self.x_train.grad = None
        out, states = self.m(self.x_train)
        states = list(states) if self.lstm else [states]
        torch.autograd.backward([out] + states, [self.g_out] + self.g_states)
        return out, states

    def answer(self, phase):
        res = self.call(phase)
        states = res[1] if phase == "train" else (list(res[1]) if self.lstm else [res[1]])
        ans = {"output": res[0], "h_n": states[0]}
        if self.lstm:
            ans["c_n"] = states[1]
        if phase == "train":
            ans["grad_input"] = self.x_train.grad
            ans.update({"grad_" + k: p.grad for k, p in self.m.named_parameters()})
        return {k: v.detach().numpy().copy() for k, v in ans.items()}

    def release(self):
        self.m = self.case = self.x = self.x_train = None


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


# ------------------------------------------------------------------------------ timing
def time_calls(fn, n):
    """Run ``fn`` n times; return each call's wall time in seconds."""
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def settle(call, seconds, est):
    """Get a contender ready for a turn; returns nothing, its calls are not timed.

    Two effects make the first call of a turn slow, measured on a 2-core VM: the previous
    contender's thread pool may still be spinning (OpenBLAS's idle threads spin ~0.1 s
    after a multithreaded BLAS call: a 3 ms torch call took 7-60 ms right after a NumPy-path
    call, as fast as alone with OPENBLAS_NUM_THREADS=1), and a contender whose own OpenMP
    threads went to sleep pays to wake them (3 ms became 5-15 ms right after a sleep).
    So a cheap contender runs untimed calls for ``seconds`` (the other pool goes idle
    meanwhile, its own threads and caches get warm); one whose call takes longer than
    that just sleeps ``seconds`` (waking up is small against its call).
    """
    if est >= seconds:
        time.sleep(seconds)
        return
    t_end = time.perf_counter() + seconds
    call()
    while time.perf_counter() < t_end:
        call()


def measure(contenders, case, phase, opt):
    """Warm up, check and time the contenders on one case, interleaved.

    Returns {name: dict(ms=median or None, reps=..., times_ms=[...], err=..., note=...)}.
    """
    res = {c.name: dict(ms=None, reps=0, times_ms=[], err=None, note="") for c in contenders}
    settle_s = opt.settle_ms / 1e3
    live, answers, est = [], {}, {}
    for c in contenders:
        call = (lambda c=c: c.call(phase))
        try:
            c.prepare(case)
            # 1. warm-up: one call that also produces the answer for the check (it pays for
            #    first-time allocations), then untimed calls for the settle time, then up to
            #    3 calls whose median estimates the per-call time used to plan the reps.
            #    A call slower than min_time / min_reps gets min_reps reps whatever the
            #    estimate, so there the answer call's time is estimate enough.
            t0 = time.perf_counter()
            answers[c.name] = c.answer(phase)
            first = time.perf_counter() - t0
            if first > opt.min_time / opt.min_reps and not opt.reps:
                est[c.name] = first
            else:
                settle(call, settle_s, first)
                warm = []
                while len(warm) < 3 and sum(warm) < max(settle_s, 0.05):
                    warm += time_calls(call, 1)
                est[c.name] = statistics.median(warm)
        except LookupError:      # a contender this row does not time (see prepare)
            c.release()
            continue
        except Exception as e:   # a backend that does not support this case: report, go on
            res[c.name]["note"] = f"{type(e).__name__}: {e}"
            c.release()
            continue
        if (c.name == "numpy" and c is not contenders[0] and opt.skip_numpy_above
                and est[c.name] * 1e3 > opt.skip_numpy_above):
            res[c.name]["note"] = f"skipped: one call took {est[c.name] * 1e3:.0f} ms"
            continue
        live.append(c)

    # 2. correctness: every minirnn backend against the reference (torch, else numpy)
    ref_name = "torch" if "torch" in answers else ("numpy" if "numpy" in answers else None)
    unchecked = {c.name for c in contenders if getattr(c, "unchecked", False)}
    for name, ans in answers.items():
        if ref_name and name != ref_name and name not in unchecked:
            res[name]["err"] = max_rel_error(ans, answers[ref_name])
    answers.clear()

    # 3. plan: reps so that each contender runs >= min_time seconds and >= min_reps calls;
    #    the turns of the round-robin are chunks of those reps (fewer turns for slow ones)
    plan = {}
    for c in live:
        n = opt.reps or max(opt.min_reps, math.ceil(opt.min_time / max(est[c.name], 1e-7)))
        plan[c.name] = min(n, opt.max_reps)
    rounds = min(opt.rounds, max(plan.values(), default=0))
    chunk = {name: math.ceil(n / rounds) for name, n in plan.items()} if rounds else {}

    # 4. interleaved timing: round-robin turns, each after settle(), GC off
    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        for _ in range(rounds):
            for c in live:
                todo = min(chunk[c.name], plan[c.name] - res[c.name]["reps"])
                if todo <= 0:
                    continue
                call = (lambda c=c: c.call(phase))
                settle(call, settle_s, est[c.name])
                times = time_calls(call, todo)
                res[c.name]["times_ms"] += [t * 1e3 for t in times]
                res[c.name]["reps"] += todo
    finally:
        if gc_was_enabled:
            gc.enable()
    for c in contenders:
        r = res[c.name]
        if r["times_ms"]:
            r["ms"] = statistics.median(r["times_ms"])
        c.release()
    return res


# ------------------------------------------------------------------------------ other load
class OtherLoad:
    """How many cores *other* processes kept busy between start() and stop() (Linux only):
    busy CPU time of the whole machine (/proc/stat) minus this process's own CPU time, per
    second of wall time. OpenMP code with 2 threads on 2 cores is very sensitive to a third
    busy process (a thread waits a whole scheduler slice at each barrier: calls of ~0.1 ms
    were measured at a flat 8 ms), so rows measured under load are marked."""

    def __init__(self):
        self.tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def _sample(self):
        try:
            with open("/proc/stat") as f:
                v = [int(x) for x in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        busy = (sum(v[:8]) - v[3] - v[4]) / self.tick      # all but idle and iowait
        t = os.times()
        return time.perf_counter(), busy, t.user + t.system

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


def machine_info(threads, torch_error):
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), cpu)
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    info = dict(cpu=cpu, cpu_count=os.cpu_count(), cores_available=cores, threads=threads,
                python=platform.python_version(), platform=platform.platform(),
                numpy=np.__version__, minirnn=getattr(minirnn, "__version__", "?"),
                minirnn_backends=list(minirnn.BACKENDS),
                torch=torch.__version__ if torch else f"not used ({torch_error})",
                loadavg_start=os.getloadavg() if hasattr(os, "getloadavg") else None)
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info["numpy_blas"] = f"{blas.get('name')} {blas.get('version')}"
    except Exception:
        pass
    kernels = getattr(minirnn, "_kernels", None)
    if kernels is None:
        try:
            from minirnn import _kernels as kernels
        except ImportError:
            kernels = None
    if kernels is not None and hasattr(kernels, "build_info"):
        info["minirnn_build_info"] = kernels.build_info()
    if kernels is not None and hasattr(kernels, "get_isa"):
        info["minirnn_isa"] = kernels.get_isa()
    if hasattr(minirnn, "openmp_enabled"):
        info["minirnn_openmp"] = bool(minirnn.openmp_enabled())
    if hasattr(minirnn, "get_num_threads"):
        info["minirnn_threads"] = minirnn.get_num_threads()
    if torch:
        info["torch_threads"] = torch.get_num_threads()
    # which OpenMP/BLAS runtimes this process loaded (one libgomp means torch and minirnn
    # share the same OpenMP thread pool; see bench/README.md)
    try:
        with open("/proc/self/maps") as f:
            libs = {l.split()[-1] for l in f if "/" in l}
        info["runtimes_loaded"] = sorted(os.path.basename(p) + "  (" + os.path.dirname(p) + ")"
                                         for p in libs
                                         if any(s in os.path.basename(p) for s in
                                                ("gomp", "iomp", "omp.so", "openblas", "mkl_rt")))
    except OSError:
        pass
    return info


def print_header(info, subject, names, opt):
    print("minirnn benchmark: median ms per call; ratios = other's ms / "
          f"{subject}'s ms (>1: minirnn-{subject} faster)")
    for k in ("cpu", "cores_available", "threads", "python", "numpy", "numpy_blas", "minirnn",
              "minirnn_backends", "minirnn_build_info", "minirnn_isa", "minirnn_openmp",
              "minirnn_threads",
              "torch", "torch_threads", "loadavg_start"):
        if k in info:
            print(f"  {k:19s} {info[k]}")
    for lib in info.get("runtimes_loaded", []):
        print(f"  {'runtime':19s} {lib}")
    print(f"  {'timing':19s} min {opt.min_time:g} s and {opt.min_reps} calls per contender, "
          f"{opt.rounds} interleaved rounds, {opt.settle_ms:g} ms settle (untimed calls) before each turn")
    print("  sizes:")
    for s in opt.sizes:
        print(f"    {s:7s} {describe_size(s)}")
    print(f"  check: max|a-ref|/max|ref| vs {'torch' if 'torch' in names else 'numpy'}; "
          "'!' marks a row above tolerance (float32 1e-3, float64 1e-8)")
    print("  other load: cores kept busy by other processes while the row was measured; "
          f"'~' above {opt.busy:g} (its times are suspect)")
    print()


def table_columns(subject, names, variants):
    cols = [("size", 7), ("mode", 5), ("dtype", 8), ("phase", 6)]
    if variants:
        cols.insert(2, ("variant", 16))
    cols += [(f"{n} ms" if n != subject else f"minirnn-{n} ms", 12) for n in names]
    cols += [(f"{n}/{subject}", 11) for n in names if n != subject]
    if variants:
        cols.append(("variant/default", 15))
    cols += [("reps", 14), ("max err", 9), ("other load", 10)]
    return cols


def format_row(values, cols):
    left = 5 if cols[2][0] == "variant" else 4
    return "  ".join(str(v).rjust(w) if i >= left else str(v).ljust(w)
                     for i, (v, (_, w)) in enumerate(zip(values, cols)))


# ------------------------------------------------------------------------------ main
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
STREAM_CONTENDERS = ("minirnn-LSTM", "minirnn-LSTMCell", "torch", "onnxruntime")


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
        if name == "minirnn-LSTM":
            m = mr.LSTM(I, H)
            m.load_state_dict(sd)
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
          + f"{'ORT/minirnn':>13}{'torch/minirnn':>15}  max err")
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
        base = row.get("minirnn-LSTM")
        def ratio(n):
            return f"{row[n] / base:.2f}" if row.get(n) and base else "-"
        print(f"{size:<16}" + "".join(
            f"{row[n]:>15.1f} us" if row.get(n) else f"{'-':>18}" for n in STREAM_CONTENDERS)
            + f"{ratio('onnxruntime'):>13}{ratio('torch'):>15}  {max(errs):.0e}", flush=True)
        results[size] = dict(us=row, err=max(errs), threads=threads)
    if opt.json:
        with open(opt.json, "w") as f:
            json.dump(dict(streaming=results, loadavg=os.getloadavg()), f, indent=1)
    return 0


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default=",".join(SIZES),
                   help=f"comma list of {', '.join(SIZES)} (default: all)")
    p.add_argument("--modes", default="rnn,gru,lstm", help="comma list of rnn,gru,lstm")
    p.add_argument("--dtypes", default="float32,float64", help="comma list of float32,float64")
    p.add_argument("--phases", default="infer,train", help="comma list of infer,train")
    p.add_argument("--variants", default="default",
                   help="comma list of cell variants, each a name of VARIANTS (for every "
                        "mode it applies to) or mode:name, e.g. gru:reset_before (default: "
                        "default, PyTorch's cells only)")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for minirnn, torch and BLAS (default: "
                        "minirnn.get_num_threads() if it exists, else os.cpu_count())")
    p.add_argument("--no-torch", action="store_true", help="do not import or time torch")
    p.add_argument("--no-numpy", action="store_true",
                   help="do not time the NumPy path (unless it is the only backend)")
    p.add_argument("--skip-numpy-above", type=float, default=None, metavar="MS",
                   help="do not time the NumPy path on a case where one call takes > MS ms "
                        "(its answer is still checked)")
    p.add_argument("--reps", type=int, default=None,
                   help="fixed number of timed calls per contender (default: adaptive)")
    p.add_argument("--min-time", type=float, default=0.3,
                   help="adaptive reps: at least this many seconds per contender (default 0.3)")
    p.add_argument("--min-reps", type=int, default=3,
                   help="adaptive reps: at least this many calls per contender (default 3)")
    p.add_argument("--max-reps", type=int, default=2000, help="cap on timed calls (default 2000)")
    p.add_argument("--rounds", type=int, default=3,
                   help="round-robin rounds the reps are spread over (default 3)")
    p.add_argument("--settle-ms", type=float, default=150.0,
                   help="untimed calls (or sleep) before each turn, so the previous "
                        "contender's spinning thread pools go idle (default 150; OpenBLAS "
                        "spins ~0.1 s)")
    p.add_argument("--quick", action="store_true",
                   help="a fast, noisier run: min-time 0.05 s, 1 rep minimum, 2 rounds, "
                        "100 ms settle")
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
        opt.min_time, opt.min_reps, opt.rounds, opt.settle_ms = 0.05, 1, 2, 100.0
    for attr, allowed in (("sizes", SIZES), ("modes", MODES), ("dtypes", DTYPES),
                          ("phases", PHASES)):
        vals = [v.strip() for v in getattr(opt, attr).split(",") if v.strip()]
        bad = [v for v in vals if v not in allowed]
        if bad or not vals:
            p.error(f"--{attr}: unknown {bad or 'empty list'}; choose from {', '.join(allowed)}")
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
    return opt


def main(argv=None):
    global np, minirnn, torch
    opt = parse_args(argv)
    if opt.streaming_worker:
        streaming_worker(opt.streaming_worker, opt.streaming_size, opt.threads or 1, opt.json)
        return 0
    if opt.streaming:
        return run_streaming(opt)
    t_start = time.perf_counter()
    if opt.threads is not None:
        # before any library loads: OpenMP (minirnn, torch) and BLAS pools read these once
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(opt.threads)
    import numpy
    import minirnn as _minirnn
    np, minirnn = numpy, _minirnn
    try:
        # minirnn's extension first: its libgomp is loaded and torch then shares it
        # (the dynamic loader loads one libgomp.so.1 per process; see bench/README.md)
        import minirnn._kernels  # noqa: F401
    except ImportError:
        pass

    threads = opt.threads
    if threads is None:
        get = getattr(minirnn, "get_num_threads", None)
        threads = get() if get else os.cpu_count()
    set_threads = getattr(minirnn, "set_num_threads", None)
    if set_threads:
        set_threads(threads)

    torch_error = "--no-torch"
    if not opt.no_torch:
        try:
            import torch as _torch
            torch = _torch
            torch.set_num_threads(threads)
        except ImportError as e:
            torch_error = f"not importable: {e}"

    # contenders: the subject first, then the other minirnn backends, numpy last, then torch
    backends = list(minirnn.BACKENDS)
    subject = "c" if "c" in backends else next((b for b in backends if b != "numpy"), "numpy")
    names = [subject] + [b for b in backends if b not in (subject, "numpy")]
    if "numpy" in backends and subject != "numpy" and not opt.no_numpy:
        names.append("numpy")
    contenders = [MinirnnContender(b) for b in names]
    show_variants = opt.variants != ["default"]
    if show_variants and subject == "c":
        # PyTorch's cell on the compiled backend, timed interleaved with each variant row
        contenders.insert(1, MinirnnContender("c", default_cell=True))
        names.insert(1, "c-default")
    if torch:
        contenders.append(TorchContender())
        names.append("torch")

    info = machine_info(threads, torch_error)
    print_header(info, subject, names, opt)
    cols = table_columns(subject, names, show_variants)
    print(format_row([c for c, _ in cols], cols))
    print(format_row(["-" * w for _, w in cols], cols), flush=True)

    # one-time costs (library initialisation, first allocations) are paid here, not by the
    # first row: every contender runs the tiny case of each selected mode and phase
    for mode in opt.modes:
        case = Case("tiny", mode, "float32")
        for c in contenders:
            try:
                c.prepare(case)
                for phase in opt.phases:
                    time_calls(lambda: c.call(phase), 3)
            except Exception:
                pass                            # reported in the table when it happens again
            c.release()

    rows, bad_rows, busy_rows, load = [], 0, 0, OtherLoad()
    for size in opt.sizes:
        # each mode with each variant that applies to it, each dtype
        rows_of_size = [(m, v.rpartition(":")[2], d) for m in opt.modes if m in SIZES[size][7]
                        for v in opt.variants if m in VARIANTS[v.rpartition(":")[2]][0]
                        and v.rpartition(":")[0] in ("", m) for d in opt.dtypes]
        for mode, variant, dtype in rows_of_size:
            case = Case(size, mode, dtype, variant)
            for phase in opt.phases:
                if opt.wait_idle:
                    wait_idle(load, opt.busy, opt.wait_idle)
                load.start()
                res = measure(contenders, case, phase, opt)
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
                for n in names:
                    if res[n]["note"]:
                        print(f"    {n}: {res[n]['note']}", flush=True)
                rows.append(dict(
                    size=size, mode=mode, variant=variant, dtype=dtype, phase=phase,
                    shape=dict(zip(("T", "B", "I", "H", "layers", "bidirectional",
                                    "batch_first"), SIZES[size][:7])),
                    ms=ms, gflop=matmul_gflop(size, mode, phase),
                    ratio={n: (ms[n] / ms[subject] if ms[n] and ms[subject] else None)
                           for n in names if n != subject},
                    reps={n: res[n]["reps"] for n in names},
                    times_ms={n: res[n]["times_ms"] for n in names},
                    err={n: res[n]["err"] for n in names if res[n]["err"] is not None},
                    ok=ok, other_load=other, notes={n: res[n]["note"] for n in names if res[n]["note"]}))

    total = time.perf_counter() - t_start
    if hasattr(os, "getloadavg"):
        info["loadavg_end"] = os.getloadavg()
    print()
    print(f"{len(rows)} rows, {bad_rows} with a wrong answer (!), {busy_rows} measured while "
          f"other processes kept more than {opt.busy:g} core busy (~); total time {total:.0f} s "
          f"({total / 60:.1f} min)")
    if opt.json:
        doc = dict(meta=dict(info, subject=subject, contenders=names, tolerance=TOLERANCE,
                             argv=sys.argv[1:] if argv is None else list(argv),
                             options={k: v for k, v in vars(opt).items()},
                             date=time.strftime("%Y-%m-%d %H:%M:%S"), total_seconds=total),
                   sizes={s: describe_size(s) for s in opt.sizes}, results=rows)
        with open(opt.json, "w") as f:
            json.dump(doc, f, indent=1)
        print(f"results written to {opt.json}")
    return 1 if bad_rows else 0


if __name__ == "__main__":
    sys.exit(main())

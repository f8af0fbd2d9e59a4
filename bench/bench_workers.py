"""The contenders of bench/bench_rnn.py, each run in a worker process of its own.

One worker process per contender (minirnn's compiled backend, its NumPy path, torch,
onnxruntime, ...): no process holds two runtimes' thread pools, so no pool spins or sleeps
next to another's (measured on a 2-core VM: minirnn's LSTM H=512 N=1 T=25 took 4.6 ms alone
and 7.9 ms interleaved with torch and onnxruntime calls in one process). The parent
(bench_rnn.py) writes each case (weights, input, upstream gradients, lengths) to a ``.npz``
file, and drives the workers one at a time over a pipe, one JSON line per command:

- ``prepare``: build the model of the case with its weights (or reply ``skip``: this
  contender does not run this case, e.g. onnxruntime in float64 or in training);
- ``answer``: one untimed call, its results written to an ``.npz`` for the parent's check;
  replies the call's time;
- ``estimate``: settle, then a few warm calls; replies their median (plans the reps);
- ``time``: settle, then ``n`` calls back to back, each timed alone with
  ``time.perf_counter`` (garbage collector off); replies the times;
- ``release``, ``quit``.

*Settle* = untimed calls for ``settle`` seconds (one untimed call when a call is longer):
a runtime whose threads went to sleep pays to wake them, so the timed calls are warm
back-to-back calls. Only the standard library and NumPy are imported here at module level;
each worker imports its own runtime.
"""
from __future__ import annotations

import gc
import json
import os
import statistics
import sys
import time

import numpy as np

MODES = {"rnn": "RNN", "gru": "GRU", "lstm": "LSTM"}      # our name -> class name
CONTENDERS = ("c", "numpy", "c-default", "c-padded", "c-frozen", "torch", "ort")
_MINIRNN = ("c", "numpy", "c-default", "c-padded", "c-frozen")


# ------------------------------------------------------------------------------ the case
class Case:
    """One problem as a worker sees it: the spec (JSON) and the arrays (the case file)."""

    def __init__(self, spec: dict, path: str):
        self.spec = spec
        for k in ("size", "mode", "dtype", "variant", "T", "B", "I", "H", "layers",
                  "bidirectional", "batch_first", "variant_kwargs"):
            setattr(self, k, spec[k])
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files}
        self.x = arrays.pop("x")
        self.g_out = arrays.pop("g_out")
        self.g_states = [arrays.pop(k) for k in ("g_h", "g_c") if k in arrays]
        self.lengths = arrays.pop("lengths").tolist() if "lengths" in arrays else None
        self.state_dict = arrays
        self.lstm = self.mode == "lstm"

    def module_kwargs(self) -> dict:
        kw = dict(num_layers=self.layers, batch_first=self.batch_first,
                  bidirectional=self.bidirectional)
        if self.mode == "rnn":
            kw["nonlinearity"] = "tanh"
        return kw


def _answer(output, states, lstm, grads=None, grad_input=None) -> dict:
    ans = {"output": output, "h_n": states[0]}
    if lstm:
        ans["c_n"] = states[1]
    if grad_input is not None:
        ans["grad_input"] = grad_input
    ans.update({"grad_" + k: g for k, g in (grads or {}).items()})
    return ans


# ------------------------------------------------------------------------------ contenders
class MinirnnContender:
    """minirnn on one backend. ``default_cell``: PyTorch's cell of the case's size whatever
    its variant (timed next to a variant, not checked); ``padded``: a packed case run on the
    padded batch, every sequence to T (timed next to the packed call, not checked); ``frozen``:
    inference through ``minirnn.freeze`` of the module (weights that cannot change: no check
    per call that they did; training rows are not its to time)."""

    def __init__(self, name: str):
        import minirnn
        self.mr = minirnn
        self.backend = "numpy" if name == "numpy" else "c"
        self.default_cell = name == "c-default"
        self.padded = name == "c-padded"
        self.frozen = name == "c-frozen"

    def prepare(self, case: Case) -> None:
        mr = self.mr
        if self.default_cell and case.variant == "default":
            raise LookupError("the row is the default cell")
        if self.padded and case.lengths is None:
            raise LookupError("not a packed row")
        if self.backend not in mr.BACKENDS:
            raise LookupError(f"backend {self.backend!r} not built")
        if self.frozen and not hasattr(mr, "freeze"):
            raise LookupError("this minirnn has no minirnn.freeze")
        self.case = case
        kw = dict(case.module_kwargs(), dtype=np.dtype(case.dtype), backend=self.backend)
        if not self.default_cell:
            kw.update(case.variant_kwargs)
        self.m = getattr(mr, MODES[case.mode])(case.I, case.H, **kw)
        self.m.load_state_dict({k: v for k, v in case.state_dict.items()
                                if k in self.m.state_dict()})
        if self.frozen:
            self.m = mr.freeze(self.m)
        self.g_state = tuple(case.g_states) if case.lstm else case.g_states[0]
        self.x, self.g_out = case.x, case.g_out
        if case.lengths is not None and not self.padded:
            pack = mr.pack_padded_sequence
            bf = case.batch_first
            self.x = pack(case.x, case.lengths, batch_first=bf, enforce_sorted=False)
            self.g_out = pack(case.g_out, case.lengths, batch_first=bf,
                              enforce_sorted=False)

    def call(self, phase: str):
        m = self.m
        if self.frozen and phase != "infer":
            raise LookupError("frozen weights: inference only")
        if phase == "infer":
            with self.mr.no_grad():
                return m(self.x)
        m.zero_grad()                           # a training step starts from zero grads
        out, states = m(self.x)
        return out, states, m.backward(self.g_out, self.g_state)

    def answer(self, phase: str) -> dict:
        res = self.call(phase)
        out, states = res[0], (res[1] if self.case.lstm else (res[1],))
        gx = res[2][0] if phase == "train" else None
        if isinstance(out, self.mr.PackedSequence):       # compared padded, caller's order
            out = self.mr.pad_packed_sequence(out, batch_first=self.case.batch_first)[0]
            if gx is not None:
                gx = self.mr.pad_packed_sequence(gx, batch_first=self.case.batch_first)[0]
        return _answer(out, states, self.case.lstm,
                       self.m.grads if phase == "train" else None, gx)


class TorchContender:
    """torch.nn.RNN/GRU/LSTM with the same weights; a packed case goes through
    ``torch.nn.utils.rnn.pack_padded_sequence`` (packed once, outside the timed call)."""

    def __init__(self, name: str):
        import torch
        self.torch = torch

    def prepare(self, case: Case) -> None:
        torch = self.torch
        if case.variant != "default":
            raise LookupError(f"torch has no {case.variant} cell")
        self.case = case
        self.m = getattr(torch.nn, MODES[case.mode])(
            case.I, case.H, dtype=getattr(torch, case.dtype), **case.module_kwargs())
        self.m.load_state_dict({k: torch.from_numpy(v) for k, v in case.state_dict.items()})
        self.x = torch.from_numpy(case.x.copy())
        self.g_out = torch.from_numpy(case.g_out)
        self.g_states = [torch.from_numpy(g) for g in case.g_states]
        if case.lengths is None:
            self.x_train = torch.from_numpy(case.x.copy()).requires_grad_(True)
            return
        rnn = torch.nn.utils.rnn
        lengths = torch.tensor(case.lengths)
        bf = case.batch_first
        self.x = rnn.pack_padded_sequence(self.x, lengths, batch_first=bf, enforce_sorted=False)
        # the training input: the packed data itself is the leaf whose gradient is taken
        self.x_train = rnn.PackedSequence(self.x.data.detach().clone().requires_grad_(True),
                                          self.x.batch_sizes, self.x.sorted_indices,
                                          self.x.unsorted_indices)
        self.g_out = rnn.pack_padded_sequence(self.g_out, lengths, batch_first=bf,
                                              enforce_sorted=False).data

    def call(self, phase: str):
        torch = self.torch
        if phase == "infer":
            with torch.no_grad():
                return self.m(self.x)
        self.m.zero_grad(set_to_none=True)      # as an optimizer step would
        leaf = self.x_train.data if self.case.lengths else self.x_train
        leaf.grad = None
        out, states = self.m(self.x_train)
        states = list(states) if self.case.lstm else [states]
        data = out.data if self.case.lengths else out
        torch.autograd.backward([data] + states, [self.g_out] + self.g_states)
        return out, states

    def answer(self, phase: str) -> dict:
        torch = self.torch
        out, states = self.call(phase)
        if phase == "infer":
            states = list(states) if self.case.lstm else [states]
        gx, grads = None, None
        if phase == "train":
            grads = {k: p.grad for k, p in self.m.named_parameters()}
            gx = self.x_train.data.grad if self.case.lengths else self.x_train.grad
        if self.case.lengths:
            rnn, bf, T = torch.nn.utils.rnn, self.case.batch_first, self.case.T
            out = rnn.pad_packed_sequence(out, batch_first=bf, total_length=T)[0]
            if gx is not None:
                gx = rnn.pad_packed_sequence(rnn.PackedSequence(
                    gx, self.x.batch_sizes, self.x.sorted_indices, self.x.unsorted_indices),
                    batch_first=bf, total_length=T)[0]
        ans = _answer(out, states, self.case.lstm, grads, gx)
        return {k: v.detach().numpy().copy() for k, v in ans.items()}


class OrtContender:
    """onnxruntime (CPU) running the module's ONNX graph (``minirnn.onnx.export``, written by
    the parent: one RNN/GRU/LSTM node per layer, the weights as initializers; a packed case
    feeds the padded batch and ``sequence_lens``). Inference in float32 only: onnxruntime's
    CPU RNN/GRU/LSTM kernels have no float64."""

    def __init__(self, name: str):
        import onnxruntime
        self.ort = onnxruntime
        self.threads = int(os.environ.get("OMP_NUM_THREADS", "1"))

    def prepare(self, case: Case) -> None:
        if not case.spec.get("onnx_path"):
            raise LookupError(case.spec.get("onnx_skip", "no ONNX graph for this case"))
        so = self.ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.execution_mode = self.ort.ExecutionMode.ORT_SEQUENTIAL
        self.sess = self.ort.InferenceSession(case.spec["onnx_path"], so,
                                              providers=["CPUExecutionProvider"])
        self.case = case
        self.feed = {"input": case.x}
        if case.lengths is not None:
            self.feed["sequence_lens"] = np.asarray(case.lengths, np.int32)

    def call(self, phase: str):
        if phase != "infer":
            raise LookupError("onnxruntime: inference only")
        return self.sess.run(None, self.feed)

    def answer(self, phase: str) -> dict:
        res = self.call(phase)
        return _answer(res[0], res[1:], self.case.lstm)


def make_contender(name: str):
    if name in _MINIRNN:
        return MinirnnContender(name)
    if name == "torch":
        return TorchContender(name)
    if name == "ort":
        return OrtContender(name)
    raise ValueError(f"unknown contender {name!r}")


# ------------------------------------------------------------------------------ timing
def time_calls(fn, n: int) -> list:
    """Run ``fn`` n times back to back; return each call's wall time in seconds."""
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def settle(call, seconds: float, est: float) -> None:
    """Untimed calls for ``seconds`` (at least one): the runtime's threads wake up and its
    caches fill, and the previous worker's thread pool, which may still spin for a while
    after its last call (OpenBLAS's ~0.1 s), goes idle meanwhile. A call longer than
    ``seconds`` runs once."""
    t_end = time.perf_counter() + seconds
    call()
    while est < seconds and time.perf_counter() < t_end:
        call()


def worker_main(name: str) -> int:
    """The worker loop: one JSON command per line on stdin, one JSON reply per line."""
    reply_fd = os.dup(1)                 # replies go here; anything printed goes to stderr
    os.dup2(2, 1)
    reply = os.fdopen(reply_fd, "w", buffering=1)

    def send(**msg):
        reply.write(json.dumps(msg) + "\n")
        reply.flush()

    contender, case, phase = None, None, "infer"
    try:
        contender = make_contender(name)
        threads = int(os.environ.get("OMP_NUM_THREADS", "1"))
        if name in _MINIRNN and hasattr(contender.mr, "set_num_threads"):
            contender.mr.set_num_threads(threads)
        if name == "torch":
            contender.torch.set_num_threads(threads)
        send(ok=True, info=_runtime_info(name, contender))
    except Exception as e:                                   # not importable: the parent skips
        send(ok=False, error=f"{type(e).__name__}: {e}")
        return 0
    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd["cmd"]
        try:
            if op == "quit":
                break
            if op == "prepare":
                case = Case(cmd["spec"], cmd["path"])
                contender.prepare(case)
                send(ok=True)
            elif op == "answer":
                phase = cmd["phase"]
                t0 = time.perf_counter()
                ans = contender.answer(phase)
                dt = time.perf_counter() - t0
                np.savez(cmd["path"], **{k: np.asarray(v) for k, v in ans.items()})
                send(ok=True, sec=dt)
            elif op in ("estimate", "time"):
                call = (lambda: contender.call(phase))
                gc.collect()
                gc.disable()
                try:
                    settle(call, cmd["settle"], cmd["est"])
                    if op == "estimate":
                        warm = []
                        while len(warm) < 3 and sum(warm) < max(cmd["settle"], 0.05):
                            warm += time_calls(call, 1)
                        send(ok=True, sec=statistics.median(warm))
                    else:
                        send(ok=True, times=time_calls(call, cmd["n"]))
                finally:
                    gc.enable()
            elif op == "release":
                for attr in ("m", "x", "x_train", "sess", "feed", "case"):
                    if hasattr(contender, attr):
                        setattr(contender, attr, None)
                case = None
                send(ok=True)
        except LookupError as e:
            send(ok=False, skip=str(e))
        except Exception as e:
            send(ok=False, error=f"{type(e).__name__}: {e}")
    return 0


def _runtime_info(name: str, contender) -> dict:
    """What the worker runs on: versions, threads and the OpenMP/BLAS libraries it loaded."""
    info = {"threads_env": os.environ.get("OMP_NUM_THREADS")}
    if hasattr(contender, "mr"):
        mr = contender.mr
        info["minirnn"] = getattr(mr, "__version__", "?")
        info["threads"] = mr.get_num_threads() if hasattr(mr, "get_num_threads") else None
        try:
            from minirnn import _kernels
            info["isa"] = _kernels.get_isa() if hasattr(_kernels, "get_isa") else None
        except ImportError:
            pass
    if hasattr(contender, "torch"):
        info["torch"] = contender.torch.__version__
        info["threads"] = contender.torch.get_num_threads()
    if hasattr(contender, "ort"):
        info["onnxruntime"] = contender.ort.__version__
        info["threads"] = contender.threads
    try:
        with open("/proc/self/maps") as f:
            libs = {ln.split()[-1] for ln in f if "/" in ln}
        info["libs"] = sorted(os.path.basename(p) for p in libs if any(
            s in os.path.basename(p) for s in ("gomp", "iomp", "omp.so", "openblas", "mkl_rt")))
    except OSError:
        pass
    return info

#!/usr/bin/env python
"""Time one training step of examples/char_lm.py's model in minirnn and in PyTorch.

The model: characters (T, B) -> Embedding(vocab, 32) -> 2-layer LSTM(32, H) -> Linear(H, vocab)
-> cross entropy against the next characters -> backward -> clip_grad_norm_(1.0) -> Adam step,
the state carried from step to step (truncated BPTT), as char_lm.py trains it.

Each runtime runs in a process of its own (two OpenMP runtimes in one process can abort, and
their thread pools compete), with the same number of threads, the same initial weights (the
minirnn worker writes them, the torch worker loads them) and the same batches. The workers
alternate round by round (minirnn, torch, minirnn, torch, ...), so slow drifts of a shared
machine hit both alike; each round warms up before it times. The first step's loss of both
is compared (a benchmark that times a different computation is worthless).

For minirnn the step is also split by phase: the share of the step spent outside the RNN
module's forward and backward (embedding, linear head, loss, clipping, the optimizer and the
Python between them) is the toolkit's overhead.

    python bench/bench_train.py                      # char_lm's full size: T=64, B=32, H=128
    python bench/bench_train.py --hidden 256 --threads 1 --rounds 5

Needs torch for the comparison (pip install torch==2.13.0); without it, times minirnn alone.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

VOCAB, EMBED = 96, 32


def batches(np, n, T, B, seed):
    """n batches of (T+1, B) character indices: inputs are [:-1], targets [1:]."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, VOCAB, size=(T + 1, B)) for _ in range(n)]


def minirnn_worker(args, out):
    import numpy as np

    import minirnn

    minirnn.set_num_threads(args.threads)
    embed = minirnn.Embedding(VOCAB, EMBED, seed=args.seed)
    rnn = minirnn.LSTM(EMBED, args.hidden, num_layers=2, seed=args.seed + 1)
    head = minirnn.Linear(args.hidden, VOCAB, seed=args.seed + 2)
    modules = [embed, rnn, head]
    if args.weights:
        np.savez(args.weights, **{f"{i}.{k}": v for i, m in enumerate(modules)
                                  for k, v in m.state_dict().items()})
    opt = minirnn.optim.Adam(modules, lr=1e-3)
    data = batches(np, args.warmup + args.steps, args.seq, args.batch, args.seed)
    phases = {"rnn": [], "step": []}
    losses, state = [], None
    for i, chars in enumerate(data):
        x, y = chars[:-1], chars[1:]
        t0 = time.perf_counter()
        e = embed(x)
        t1 = time.perf_counter()
        out_, state = rnn(e, state)
        t2 = time.perf_counter()
        logits = head(out_)
        loss, grad = minirnn.cross_entropy(logits.reshape(-1, VOCAB), y.reshape(-1))
        opt.zero_grad()
        g = head.backward(grad.reshape(logits.shape))
        t3 = time.perf_counter()
        ge, _ = rnn.backward(g, None)
        t4 = time.perf_counter()
        embed.backward(ge)
        minirnn.clip_grad_norm_(modules, 1.0)
        opt.step()
        t5 = time.perf_counter()
        losses.append(float(loss))
        if i >= args.warmup:
            phases["rnn"].append((t2 - t1) + (t4 - t3))
            phases["step"].append(t5 - t0)
    json.dump({"step": phases["step"], "rnn": phases["rnn"], "loss0": losses[0]}, out)


def torch_worker(args, out):
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    embed = torch.nn.Embedding(VOCAB, EMBED)
    rnn = torch.nn.LSTM(EMBED, args.hidden, num_layers=2)
    head = torch.nn.Linear(args.hidden, VOCAB)
    modules = [embed, rnn, head]
    if args.weights:
        with np.load(args.weights) as f:
            for i, m in enumerate(modules):
                m.load_state_dict({k.split(".", 1)[1]: torch.from_numpy(f[k])
                                   for k in f.files if k.startswith(f"{i}.")})
    params = [p for m in modules for p in m.parameters()]
    opt = torch.optim.Adam(params, lr=1e-3)
    data = batches(np, args.warmup + args.steps, args.seq, args.batch, args.seed)
    times, losses, state = [], [], None
    for i, chars in enumerate(data):
        x, y = torch.from_numpy(chars[:-1]), torch.from_numpy(chars[1:])
        t0 = time.perf_counter()
        out_, state = rnn(embed(x), state)
        state = tuple(s.detach() for s in state)           # truncated BPTT
        loss = torch.nn.functional.cross_entropy(head(out_).reshape(-1, VOCAB), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        t1 = time.perf_counter()
        losses.append(loss.item())
        if i >= args.warmup:
            times.append(t1 - t0)
    json.dump({"step": times, "loss0": losses[0]}, out)


def run_worker(which, args, weights):
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", which, "--weights", weights]
    for k in ("threads", "hidden", "seq", "batch", "steps", "warmup", "seed"):
        cmd += [f"--{k}", str(getattr(args, k))]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the {which} worker failed:\n{done.stderr}")
    return json.loads(done.stdout)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--seq", type=int, default=64, help="T, steps per chunk")
    p.add_argument("--batch", type=int, default=32, help="B, streams")
    p.add_argument("--steps", type=int, default=20, help="timed steps per round")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps starting each round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--worker", choices=["minirnn", "torch"], help=argparse.SUPPRESS)
    p.add_argument("--weights", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        (minirnn_worker if args.worker == "minirnn" else torch_worker)(args, sys.stdout)
        return 0

    has_torch = importlib.util.find_spec("torch") is not None
    runs = {"minirnn": [], "torch": []}
    with tempfile.TemporaryDirectory() as tmp:
        weights = os.path.join(tmp, "weights.npz")
        for _ in range(args.rounds):
            runs["minirnn"].append(run_worker("minirnn", args, weights))
            if has_torch:
                runs["torch"].append(run_worker("torch", args, weights))

    def median_ms(key, name):
        return 1e3 * statistics.median(t for r in runs[name] for t in r[key])

    print(f"one training step, T={args.seq} B={args.batch} vocab={VOCAB} embed={EMBED} "
          f"2-layer LSTM H={args.hidden}, float32, {args.threads} thread(s), "
          f"{args.rounds} rounds x {args.steps} steps, medians")
    mr_ms = median_ms("step", "minirnn")
    rnn_share = statistics.median(a / b for r in runs["minirnn"]
                                  for a, b in zip(r["rnn"], r["step"]))
    print(f"{'runtime':10s} {'ms/step':>9s} {'torch/minirnn':>14s}")
    print(f"{'minirnn':10s} {mr_ms:9.2f} {'':>14s}")
    if has_torch:
        t_ms = median_ms("step", "torch")
        print(f"{'torch':10s} {t_ms:9.2f} {t_ms / mr_ms:13.2f}x")
        l0 = runs["minirnn"][0]["loss0"], runs["torch"][0]["loss0"]
        print(f"first step's loss: minirnn {l0[0]:.6f}, torch {l0[1]:.6f}")
        if abs(l0[0] - l0[1]) > 1e-4 * abs(l0[1]):
            print("!! the two runtimes computed different losses")
            return 1
    else:
        print("(torch is not installed: no comparison; pip install torch==2.13.0)")
    print(f"minirnn: the LSTM's forward + backward take {100 * rnn_share:.0f} % of a step; "
          f"the rest (embedding, head, loss, clipping, Adam) {100 * (1 - rnn_share):.0f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Run a trained torch.nn.LSTM in minirnn: same state_dict, same numbers.

PyTorch trains a small LSTM (next-step prediction of a noisy sine wave) in a child process
and saves its ``state_dict`` and its predictions on a test batch as NumPy arrays. This
process, which never imports torch, loads the weights into ``minirnn.LSTM`` with
``load_state_dict`` (PyTorch's names and shapes), runs the same batch and prints the largest
difference. Torch runs in its own process because two OpenMP runtimes in one process can
abort.

    python examples/from_torch.py [--quick] [--seed 0]

Skips (exit 0) when torch is not installed.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile

import numpy as np

HIDDEN, LAYERS = 32, 2


def make_batch(rng: np.random.Generator, n: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """x (length, n, 1): a noisy sine with a random phase per row; y: x one step ahead."""
    t = np.arange(length + 1)[:, None] * 0.2 + rng.uniform(0, 2 * np.pi, size=(1, n))
    s = np.sin(t) + 0.05 * rng.standard_normal(t.shape)
    s = s.astype(np.float32)[:, :, None]
    return s[:-1], s[1:]


def torch_side(path: str, steps: int, seed: int) -> None:
    """Child process: train torch.nn.LSTM + nn.Linear, save weights, test batch, predictions."""
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(1)
    rng = np.random.default_rng(seed)
    lstm = torch.nn.LSTM(1, HIDDEN, num_layers=LAYERS)
    head = torch.nn.Linear(HIDDEN, 1)
    opt = torch.optim.Adam(list(lstm.parameters()) + list(head.parameters()), lr=1e-2)
    losses = []
    for _ in range(steps):
        x, y = (torch.from_numpy(a) for a in make_batch(rng, 16, 50))
        out, _ = lstm(x)
        loss = torch.nn.functional.mse_loss(head(out), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    x, _ = make_batch(rng, 8, 80)
    with torch.no_grad():
        out, (h_n, c_n) = lstm(torch.from_numpy(x))
        pred = head(out)
    arrays = {"lstm." + k: v.numpy() for k, v in lstm.state_dict().items()}
    arrays.update({"head." + k: v.numpy() for k, v in head.state_dict().items()})
    np.savez(path, x=x, out=out.numpy(), h_n=h_n.numpy(), c_n=c_n.numpy(), pred=pred.numpy(),
             losses=np.array(losses), **arrays)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a few seconds of training")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--torch-child", metavar="NPZ", help=argparse.SUPPRESS)
    args = p.parse_args()
    steps = 60 if args.quick else 600
    if args.torch_child:
        torch_side(args.torch_child, steps, args.seed)
        return 0
    if importlib.util.find_spec("torch") is None:
        print("skipped: torch is not installed (pip install torch)")
        return 0

    import minirnn

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "torch_lstm.npz")
        cmd = [sys.executable, os.path.abspath(__file__), "--torch-child", path,
               "--seed", str(args.seed)] + (["--quick"] if args.quick else [])
        subprocess.run(cmd, check=True)
        with np.load(path) as f:
            saved = dict(f)

    # The state_dict uses PyTorch's names (weight_ih_l0, ...): it loads as it is.
    lstm = minirnn.LSTM(1, HIDDEN, num_layers=LAYERS)
    lstm.load_state_dict({k[5:]: v for k, v in saved.items() if k.startswith("lstm.")})
    with minirnn.no_grad():
        out, (h_n, c_n) = lstm(saved["x"])
    pred = out @ saved["head.weight"].T + saved["head.bias"]     # torch.nn.Linear: x W^T + b

    worst = 0.0
    for name, ours in [("out", out), ("h_n", h_n), ("c_n", c_n), ("pred", pred)]:
        diff = float(np.abs(ours - saved[name]).max())
        worst = max(worst, diff)
        print(f"max |minirnn - torch| of {name:5s} {diff:.2e}")
    losses = saved["losses"]
    if worst > 1e-4:        # float32: two implementations agree to ~1e-6
        print(f"FAILED: minirnn and torch differ by {worst:.2e}")
        return 1
    print(f"torch's training loss {losses[0]:.4f} -> {losses[-1]:.4f} over {len(losses)} steps")
    print(f"loss {losses[0]:.4f} -> {losses[-1]:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

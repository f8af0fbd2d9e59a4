"""Next-step regression: a GRU learns to predict a noisy sine wave one step ahead.

input (T, B, 1) -> minirnn.GRU -> minirnn.Linear -> prediction (T, B, 1), minirnn.mse_loss
against the series one step later, minirnn.optim.Adam. The noise (std 0.1) cannot be
predicted, so the loss can fall to about 0.01 and no further.

    python examples/sine.py [--quick] [--seed 0]
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

import minirnn


def noisy_sine(rng: np.random.Generator, batch: int, length: int) -> tuple[np.ndarray, ...]:
    """x, y of shape (length, batch, 1): y is x one step later; random phase and frequency."""
    freq = rng.uniform(0.1, 0.3, size=(1, batch))
    t = np.arange(length + 1)[:, None] * freq + rng.uniform(0, 2 * np.pi, size=(1, batch))
    s = (np.sin(t) + 0.1 * rng.standard_normal(t.shape)).astype(np.float32)[:, :, None]
    return s[:-1], s[1:]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a few seconds of training")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    steps = 60 if args.quick else 1500
    rng = np.random.default_rng(args.seed)

    rnn = minirnn.GRU(1, 32, seed=args.seed)
    head = minirnn.Linear(32, 1, seed=args.seed + 1)
    opt = minirnn.optim.Adam([rnn, head], lr=1e-2)
    losses = []
    for step in range(steps):
        x, y = noisy_sine(rng, batch=32, length=50)
        out, _ = rnn(x)                          # forward: (50, 32, 32)
        pred = head(out)                         # (50, 32, 1)
        loss, grad = minirnn.mse_loss(pred, y)   # the loss and d loss / d pred
        opt.zero_grad()
        rnn.backward(head.backward(grad), None)  # backward, in reverse order of the forward
        opt.step()
        losses.append(loss)
        if step % (steps // 10) == 0 or step == steps - 1:
            print(f"step {step:5d}  mse {loss:.4f}")
    print(f"loss {losses[0]:.4f} -> {losses[-1]:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

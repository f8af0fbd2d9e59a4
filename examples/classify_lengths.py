"""Classify variable-length sequences, reading each sequence's own last hidden state.

Each sequence has 5 to 40 steps of 3 noisy features; its class is the feature with the largest
mean over the sequence's own steps. The batch is packed with minirnn.pack_padded_sequence, so
each sequence runs only its own steps and ``h_n[-1]`` holds the top layer's state after its
own last step (``output[-1]`` of the padded batch would be a state after padding).

    padded (T, B, 3) + lengths -> pack_padded_sequence -> GRU -> h_n[-1] (B, 32)
        -> minirnn.Linear -> logits (B, 3) -> minirnn.cross_entropy -> minirnn.optim.Adam

    python examples/classify_lengths.py [--quick] [--seed 0]
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

import minirnn


def make_batch(rng: np.random.Generator, batch: int) -> tuple[np.ndarray, ...]:
    """padded (40, batch, 3) float32 (zeros past each length), lengths (batch,), labels (batch,)."""
    lengths = rng.integers(5, 41, size=batch)
    labels = rng.integers(0, 3, size=batch)
    x = np.zeros((40, batch, 3), np.float32)
    for b, (n, k) in enumerate(zip(lengths, labels)):
        means = np.zeros(3)
        means[k] = 0.5                                   # the class's feature is higher on average
        x[:n, b] = means + rng.standard_normal((n, 3))
    return x, lengths, labels


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a few seconds of training")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    steps = 60 if args.quick else 1000
    rng = np.random.default_rng(args.seed)

    rnn = minirnn.GRU(3, 32, seed=args.seed)
    head = minirnn.Linear(32, 3, seed=args.seed + 1)
    opt = minirnn.optim.Adam([rnn, head], lr=1e-2)
    losses = []
    for step in range(steps):
        x, lengths, labels = make_batch(rng, 64)
        packed = minirnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
        _, h_n = rnn(packed)                     # h_n (1, 64, 32), in the batch's own order
        logits = head(h_n[-1])                   # each sequence's own last state -> (64, 3)
        loss, grad = minirnn.cross_entropy(logits, labels)
        opt.zero_grad()
        grad_h_n = np.zeros_like(h_n)
        grad_h_n[-1] = head.backward(grad)       # the loss reaches the RNN only through h_n
        rnn.backward(None, grad_h_n)
        opt.step()
        losses.append(loss)
        if step % (steps // 10) == 0 or step == steps - 1:
            print(f"step {step:5d}  cross entropy {loss:.4f}")

    x, lengths, labels = make_batch(rng, 1000)
    with minirnn.no_grad():
        _, h_n = rnn(minirnn.pack_padded_sequence(x, lengths, enforce_sorted=False))
    accuracy = float((head(h_n[-1]).argmax(axis=1) == labels).mean())
    print(f"accuracy on 1000 new sequences: {accuracy:.3f} (chance: 0.333)")
    # first: the untrained model's loss; last: the mean of the last 10 batches (one is noisy)
    print(f"loss {losses[0]:.4f} -> {np.mean(losses[-10:]):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

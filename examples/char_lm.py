"""A character-level language model in the spirit of min-char-rnn, trained on Python's own
standard-library sources (every Python install has them; or pass --text FILE).

    characters (T, B) -> minirnn.Embedding -> 2-layer GRU or LSTM (--mode) -> minirnn.Linear
        -> logits (T, B, vocab) -> minirnn.cross_entropy against the next characters
        -> backward -> minirnn.clip_grad_norm_ -> minirnn.optim.Adam

Truncated backpropagation through time: the text is cut into B streams read side by side, T
characters at a time; the state at the end of one chunk starts the next one (the model reads
the whole text as one long sequence), but each backward stops at the chunk's start. Samples
are printed as it learns; a progress bar comes from tqdm when installed, and the loss curve is
saved as a PNG when matplotlib is installed (pip install "minirnn[plot]").

    python examples/char_lm.py [--mode gru|lstm] [--quick] [--seed 0] [--text FILE]
"""
from __future__ import annotations

import argparse
import builtins
import importlib
import inspect
import sys

import numpy as np

import minirnn

STDLIB_MODULES = ["textwrap", "string", "shlex", "fractions", "heapq", "bisect", "calendar",
                  "argparse", "dataclasses", "functools", "statistics", "difflib"]


def load_text(path: str | None, max_chars: int) -> str:
    """The file at ``path``, or else the sources of a few standard-library modules (or, on a
    Python installed without sources, the docstrings of the built-ins)."""
    if path:
        with open(path, encoding="utf-8") as f:
            return f.read()[:max_chars]
    parts = []
    for name in STDLIB_MODULES:
        try:
            parts.append(inspect.getsource(importlib.import_module(name)))
        except (OSError, TypeError):       # no .py file shipped
            pass
    if not parts:
        parts = [getattr(builtins, n).__doc__ or "" for n in sorted(dir(builtins))]
    return "\n".join(parts)[:max_chars]


class CharLM:
    """Embedding -> 2-layer RNN -> Linear; forward and backward in mirror order."""

    def __init__(self, vocab: int, mode: str, hidden: int, seed: int):
        rnn_class = {"gru": minirnn.GRU, "lstm": minirnn.LSTM}[mode]
        self.embed = minirnn.Embedding(vocab, 32, seed=seed)
        self.rnn = rnn_class(32, hidden, num_layers=2, seed=seed + 1)
        self.head = minirnn.Linear(hidden, vocab, seed=seed + 2)
        self.modules = [self.embed, self.rnn, self.head]

    def forward(self, chars: np.ndarray, state=None):
        """chars (T, B) int -> logits (T, B, vocab), the state after the last step."""
        out, state = self.rnn(self.embed(chars), state)
        return self.head(out), state

    def backward(self, grad_logits: np.ndarray) -> None:
        grad_out = self.head.backward(grad_logits)
        grad_embedded, _ = self.rnn.backward(grad_out, None)   # grad of the carried-in state:
        self.embed.backward(grad_embedded)                      # dropped (truncated BPTT)

    def sample(self, rng: np.random.Generator, prompt: np.ndarray, n: int,
               temperature: float = 0.8) -> list[int]:
        """Feed the prompt, then draw n characters one at a time from softmax(logits / T)."""
        out = []
        with minirnn.no_grad():
            logits, state = self.forward(prompt[:, None])
            for _ in range(n):
                z = logits[-1, 0].astype(np.float64) / temperature
                p = np.exp(z - z.max())
                c = int(rng.choice(len(p), p=p / p.sum()))
                out.append(c)
                logits, state = self.forward(np.array([[c]]), state)
        return out


def progress(steps: int):
    """tqdm's progress bar when installed; else a plain counter printed every 10 %."""
    try:
        from tqdm import tqdm
        bar = tqdm(total=steps, unit="step")
        return bar.update, bar.set_postfix_str, bar.write, bar.close
    except ImportError:
        done = [0]

        def update(k: int = 1) -> None:
            done[0] += k
            if done[0] % max(1, steps // 10) == 0 or done[0] == steps:
                print(f"[{done[0]}/{steps}] {last[0]}", flush=True)

        last = [""]
        return update, lambda s: last.__setitem__(0, s), print, lambda: None


def save_plot(losses: list[float], path: str) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print('(no loss curve: matplotlib is not installed; pip install "minirnn[plot]")')
        return
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(losses, lw=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel("cross entropy (nats per character)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"loss curve saved to {path}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mode", choices=["gru", "lstm"], default="lstm")
    p.add_argument("--quick", action="store_true", help="a few seconds of training")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--text", help="train on this UTF-8 file instead")
    p.add_argument("--plot", default="char_lm_loss.png", help="where the loss curve goes")
    args = p.parse_args()
    if args.quick:
        max_chars, hidden, T, B, steps, lr = 30_000, 64, 32, 16, 120, 1e-2
    else:
        max_chars, hidden, T, B, steps, lr = 400_000, 128, 64, 32, 1000, 3e-3

    text = load_text(args.text, max_chars)
    vocab = sorted(set(text))
    index = {c: i for i, c in enumerate(vocab)}
    data = np.array([index[c] for c in text], dtype=np.int64)
    streams = data[:len(data) // B * B].reshape(B, -1)      # B streams read side by side
    if streams.shape[1] <= T + 1:
        raise SystemExit(f"the text is too short for {B} streams of {T + 1} characters")
    print(f"{len(text)} characters, {len(vocab)} distinct; {args.mode.upper()} 2 x {hidden}, "
          f"chunks of {T} steps x {B} streams")

    rng = np.random.default_rng(args.seed)
    model = CharLM(len(vocab), args.mode, hidden, args.seed)
    opt = minirnn.optim.Adam(model.modules, lr=lr)
    update, show, write, close = progress(steps)
    losses, state, pos = [], None, 0
    for step in range(steps):
        if pos + T + 1 > streams.shape[1]:                  # end of the text: start over
            state, pos = None, 0
        x = streams[:, pos:pos + T].T                       # (T, B) characters
        y = streams[:, pos + 1:pos + T + 1].T               # the next character of each
        pos += T
        logits, state = model.forward(x, state)             # the state goes on to the next chunk
        loss, grad = minirnn.cross_entropy(logits.reshape(T * B, -1), y.reshape(-1))
        opt.zero_grad()
        model.backward(grad.reshape(logits.shape))
        minirnn.clip_grad_norm_(model.modules, max_norm=1.0)
        opt.step()
        losses.append(loss)
        show(f"loss {loss:.3f}")
        update(1)
        if (step + 1) % (steps // 4) == 0:
            text_out = "".join(vocab[c] for c in model.sample(rng, x[:, 0], 200))
            write(f"--- sample after {step + 1} steps (loss {loss:.3f}) ---\n{text_out}\n---")
    close()
    save_plot(losses, args.plot)
    # first: the untrained model's loss; last: the mean of the last 10 chunks
    print(f"loss {losses[0]:.4f} -> {np.mean(losses[-10:]):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

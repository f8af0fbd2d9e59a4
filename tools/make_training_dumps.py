#!/usr/bin/env python
"""Write the training reference dumps: a few optimizer steps of small models in PyTorch.

Each case trains a small model, ``Embedding -> RNN/GRU/LSTM -> Linear -> cross_entropy`` (class
indices in, a token to predict at every step) or ``input -> RNN/GRU/LSTM -> Linear ->
mse_loss``, in float64, for ``STEPS`` steps of one optimizer of ``torch.optim`` (with
nontrivial hyperparameters), optionally with ``torch.nn.utils.clip_grad_norm_`` between the
backward and the step, and records the parameters before the first and after every step, and
each step's loss. ``tests/test_training_dumps.py`` replays every case with minirnn on both
backends.

Output: ``minirnn/data/training/<case>.npz`` (package data), format in that folder's README.

    pip install torch==2.13.0               # the CPU wheel; never a bare `pip install torch`
    python tools/make_training_dumps.py     # (re)write every case, delete stale ones
    python tools/make_training_dumps.py --list

Every case is seeded with ``zlib.crc32(case_name)``; torch runs single-threaded.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import zipfile
import zlib

import numpy as np
import torch

FORMAT_VERSION = 1
STEPS = 4
V, E, I, H, C, L, N = 7, 3, 3, 4, 5, 5, 3     # vocab, embedding, input, hidden, classes, T, B
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "minirnn", "data",
                   "training")

OPTIMIZERS = {
    "sgd": ("SGD", dict(lr=0.5)),
    "sgd_momentum": ("SGD", dict(lr=0.3, momentum=0.9, dampening=0.1, weight_decay=0.01)),
    "sgd_nesterov": ("SGD", dict(lr=0.3, momentum=0.8, nesterov=True, weight_decay=0.02)),
    "adam": ("Adam", dict(lr=0.05)),
    "adam_amsgrad_wd": ("Adam", dict(lr=0.05, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1,
                                     amsgrad=True)),
    "adamw": ("AdamW", dict(lr=0.05, weight_decay=0.1)),
    "adamw_amsgrad": ("AdamW", dict(lr=0.05, betas=(0.85, 0.99), amsgrad=True)),
    "adagrad": ("Adagrad", dict(lr=0.2, lr_decay=0.1, weight_decay=0.05,
                                initial_accumulator_value=0.1)),
    "rmsprop": ("RMSprop", dict(lr=0.01)),
    "rmsprop_centered_momentum": ("RMSprop", dict(lr=0.01, alpha=0.9, momentum=0.5,
                                                  centered=True, weight_decay=0.01)),
}
MODELS = ("lstm_ce", "gru_mse", "rnn_tanh_ce")


def cases():
    out = []
    for k, opt in enumerate(OPTIMIZERS):
        for clip in (None, 0.5):
            model = MODELS[(k + (clip is not None)) % len(MODELS)]
            out.append(dict(name=f"{model}_{opt}" + ("_clip" if clip else ""), model=model,
                            optimizer=opt, clip=clip,
                            lr_scale_after_step=2 if opt == "adam" and clip else None))
    return out


def build(model):
    rnn_cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[model.split("_")[0]]
    ce = model.endswith("_ce")
    mods = {}
    if ce:
        mods["emb"] = torch.nn.Embedding(V, E, padding_idx=0, dtype=torch.float64)
    mods["rnn"] = rnn_cls(E if ce else I, H, dtype=torch.float64)
    mods["head"] = torch.nn.Linear(H, C if ce else 1, dtype=torch.float64)
    with torch.no_grad():                          # biases away from zero: the tests see them
        for n, p in mods["rnn"].named_parameters():
            if n.startswith("bias"):
                p.add_(0.3 * torch.randn_like(p))
    return mods


def snapshot(mods):
    return {f"{m}.{n}": p.detach().numpy().copy() for m, mod in mods.items()
            for n, p in mod.named_parameters()}


def run(case):
    torch.manual_seed(zlib.crc32(case["name"].encode()))
    mods = build(case["model"])
    ce = case["model"].endswith("_ce")
    if ce:
        x = torch.randint(0, V, (L, N))
        y = torch.randint(0, C, (L, N))
        y[1, 0] = -100                              # one ignored target
    else:
        x = torch.randn(L, N, I, dtype=torch.float64)
        y = torch.randn(L, N, 1, dtype=torch.float64)
    cls, kw = OPTIMIZERS[case["optimizer"]]
    params = [p for mod in mods.values() for p in mod.parameters()]
    opt = getattr(torch.optim, cls)(params, **kw)
    arrays = {"input": x.numpy(), "target": y.numpy()}
    arrays.update({f"init.{k}": v for k, v in snapshot(mods).items()})
    losses, norms = [], []
    for step in range(STEPS):
        if case["lr_scale_after_step"] is not None and step == case["lr_scale_after_step"]:
            opt.param_groups[0]["lr"] *= 0.5
        opt.zero_grad()
        h = mods["emb"](x) if ce else x
        out, _ = mods["rnn"](h)
        z = mods["head"](out)
        if ce:
            loss = torch.nn.functional.cross_entropy(z.reshape(L * N, C), y.reshape(-1))
        else:
            loss = torch.nn.functional.mse_loss(z, y)
        loss.backward()
        if case["clip"] is not None:
            norms.append(float(torch.nn.utils.clip_grad_norm_(params, case["clip"])))
        opt.step()
        losses.append(loss.item())
        arrays.update({f"step{step}.{k}": v for k, v in snapshot(mods).items()})
    arrays["loss"] = np.array(losses)
    if norms:
        arrays["grad_norm"] = np.array(norms)
    meta = dict(format_version=FORMAT_VERSION, torch_version=torch.__version__, steps=STEPS,
                sizes=dict(V=V, E=E, I=I, H=H, C=C, L=L, N=N), optimizer_class=cls,
                optimizer_kwargs=kw, modules=list(mods), padding_idx=0 if ce else None,
                seed=zlib.crc32(case["name"].encode()), **case)
    for k, v in arrays.items():
        assert np.all(np.isfinite(v)), (case["name"], k)
    return meta, arrays


def write_npz(path, meta, arrays):
    """np.savez_compressed with a fixed timestamp, so two runs give identical bytes."""
    buf = {"meta": np.array(json.dumps(meta, sort_keys=True)), **arrays}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for k in sorted(buf):
            b = io.BytesIO()
            np.lib.format.write_array(b, np.asarray(buf[k]), allow_pickle=False)
            info = zipfile.ZipInfo(k + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, b.getvalue())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=OUT)
    ap.add_argument("--list", action="store_true")
    a = ap.parse_args()
    if a.list:
        print("\n".join(c["name"] for c in cases()))
        return
    torch.set_num_threads(1)
    os.makedirs(a.out, exist_ok=True)
    names = set()
    for case in cases():
        meta, arrays = run(case)
        write_npz(os.path.join(a.out, case["name"] + ".npz"), meta, arrays)
        names.add(case["name"] + ".npz")
    for f in os.listdir(a.out):
        if f.endswith(".npz") and f not in names:
            os.remove(os.path.join(a.out, f))
    print(f"wrote {len(names)} cases to {os.path.normpath(a.out)}")


if __name__ == "__main__":
    main()

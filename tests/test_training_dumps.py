"""Replay PyTorch's training runs (minirnn/data/training, written by tools/make_training_dumps.py):
the same model, data and optimizer in minirnn must give the same loss at every step and the same
parameters after every step, on both backends, in float64."""
import glob
import json
import os

import numpy as np
import pytest

import minirnn
from minirnn.conformance import DATA_DIR
from helpers import BACKENDS

FILES = sorted(glob.glob(os.path.join(DATA_DIR, "training", "*.npz")))
TOL = 1e-10


def test_training_dumps_exist():
    assert len(FILES) >= 20


def _close(what, got, ref):
    scale = max(np.abs(ref).max(), 1e-300)
    err = np.abs(np.asarray(got) - ref).max() / scale
    assert err <= TOL, f"{what}: relative difference {err:.2e} > {TOL:.0e}"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("path", FILES, ids=lambda p: os.path.basename(p)[:-4])
def test_replay_training_dump(path, backend):
    z = np.load(path)
    meta = json.loads(str(z["meta"]))
    s = meta["sizes"]
    ce = meta["model"].endswith("_ce")
    kind = meta["model"].split("_")[0]
    f64 = np.float64
    mods = {}
    if ce:
        mods["emb"] = minirnn.Embedding(s["V"], s["E"], padding_idx=meta["padding_idx"],
                                        dtype=f64)
    cls = {"lstm": minirnn.LSTM, "gru": minirnn.GRU, "rnn": minirnn.RNN}[kind]
    mods["rnn"] = cls(s["E"] if ce else s["I"], s["H"], dtype=f64, backend=backend)
    mods["head"] = minirnn.Linear(s["H"], s["C"] if ce else 1, dtype=f64)
    for m, mod in mods.items():
        mod.load_state_dict({n: z[f"init.{m}.{n}"] for n, _ in mod.named_parameters()})
    kw = dict(meta["optimizer_kwargs"])
    if "betas" in kw:
        kw["betas"] = tuple(kw["betas"])
    opt = getattr(minirnn.optim, meta["optimizer_class"])(list(mods.values()), **kw)
    x, y = z["input"], z["target"]
    L, N = x.shape[:2]
    for step in range(meta["steps"]):
        if meta["lr_scale_after_step"] is not None and step == meta["lr_scale_after_step"]:
            opt.param_groups[0]["lr"] *= 0.5
        opt.zero_grad()
        h = mods["emb"](x) if ce else x
        out, _ = mods["rnn"](h)
        logits = mods["head"](out)
        if ce:
            loss, g = minirnn.cross_entropy(logits.reshape(L * N, -1), y.reshape(-1))
            g = g.reshape(logits.shape)
        else:
            loss, g = minirnn.mse_loss(logits, y)
        dout = mods["head"].backward(g)
        dx, _ = mods["rnn"].backward(dout, None)
        if ce:
            mods["emb"].backward(dx)
        _close(f"step {step} loss", loss, z["loss"][step])
        if meta["clip"] is not None:
            norm = minirnn.clip_grad_norm_(list(mods.values()), meta["clip"])
            _close(f"step {step} grad norm", norm, z["grad_norm"][step])
        opt.step()
        for m, mod in mods.items():
            for n, p in mod.named_parameters():
                _close(f"step {step} {m}.{n}", p, z[f"step{step}.{m}.{n}"])

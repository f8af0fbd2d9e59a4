"""minirnn.optim and gradient clipping: argument errors (PyTorch's messages), state_dict round
trips, param groups, lr changes, and clip_grad_norm_/clip_grad_value_ against NumPy norms.
(The update formulas against PyTorch are in test_training_dumps.py.)"""
import pickle

import numpy as np
import pytest

import minirnn
from minirnn import optim

ALL = [(optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
       (optim.Adam, dict(lr=0.01, amsgrad=True, weight_decay=0.1)),
       (optim.AdamW, dict(lr=0.01)),
       (optim.Adagrad, dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1)),
       (optim.RMSprop, dict(lr=0.01, momentum=0.5, centered=True))]


def _model(seed=0):
    return [minirnn.Linear(3, 4, dtype=np.float64, seed=seed),
            minirnn.GRU(4, 2, dtype=np.float64, seed=seed)]


def _train(mods, opt, steps, seed=1):
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        x = rng.standard_normal((5, 2, 3))
        opt.zero_grad()
        out, h = mods[1](mods[0](x))
        mods[0].backward(mods[1].backward(out, h)[0])   # loss = (|out|^2 + |h|^2) / 2
        opt.step()


@pytest.mark.parametrize("cls,kw", ALL, ids=lambda v: getattr(v, "__name__", ""))
def test_state_dict_round_trip_continues_exactly(cls, kw):
    a, b = _model(), _model()
    opt_a = cls(a, **kw)
    _train(a, opt_a, 3)
    sd = pickle.loads(pickle.dumps(opt_a.state_dict()))
    for ma, mb in zip(a, b):
        mb.load_state_dict(ma.state_dict())
    opt_b = cls(b, **kw)
    opt_b.load_state_dict(sd)
    _train(a, opt_a, 2, seed=5)
    _train(b, opt_b, 2, seed=5)
    for ma, mb in zip(a, b):
        for (n, pa), (_, pb) in zip(ma.named_parameters(), mb.named_parameters()):
            assert np.array_equal(pa, pb), n
    assert opt_a.param_groups[0]["lr"] == opt_b.param_groups[0]["lr"]


@pytest.mark.parametrize("cls,kw", ALL, ids=lambda v: getattr(v, "__name__", ""))
def test_step_updates_in_place_and_bumps_versions(cls, kw):
    mods = _model()
    ids = [id(p) for m in mods for p in m.parameters()]
    before = [p.copy() for m in mods for p in m.parameters()]
    opt = cls(mods, **kw)
    v = [getattr(m, "_param_version", None) for m in mods]
    _train(mods, opt, 1)
    assert ids == [id(p) for m in mods for p in m.parameters()]
    assert any(not np.array_equal(b, p) for b, p in zip(before, (p for m in mods
                                                                   for p in m.parameters())))
    assert mods[0]._param_version == v[0] + 1
    if v[1] is not None:
        assert mods[1]._param_version > v[1]


def test_sgd_plain_formula_and_lr_change():
    lin = minirnn.Linear(2, 2, dtype=np.float64, seed=0)
    opt = optim.SGD([lin], lr=0.5)
    lin.grads["weight"][:] = 1.0
    w0 = lin.weight.copy()
    opt.step()
    np.testing.assert_array_equal(lin.weight, w0 - 0.5)
    opt.param_groups[0]["lr"] = 0.25
    opt.step()
    np.testing.assert_array_equal(lin.weight, w0 - 0.5 - 0.25)
    opt.zero_grad()
    assert not lin.grads["weight"].any()


def test_maximize_and_param_groups():
    a, b = minirnn.Linear(2, 2, dtype=np.float64), minirnn.Linear(2, 2, dtype=np.float64)
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 2.0}], lr=1.0, maximize=True)
    for m in (a, b):
        m.grads["weight"][:] = 1.0
    wa, wb = a.weight.copy(), b.weight.copy()
    opt.step()
    np.testing.assert_array_equal(a.weight, wa + 1.0)
    np.testing.assert_array_equal(b.weight, wb + 2.0)
    assert [g["lr"] for g in opt.param_groups] == [1.0, 2.0]


@pytest.mark.parametrize("make,message", [
    (lambda m: optim.SGD(m, lr=-1), "Invalid learning rate: -1"),
    (lambda m: optim.SGD(m, lr=0.1, momentum=-0.5), "Invalid momentum value: -0.5"),
    (lambda m: optim.SGD(m, lr=0.1, weight_decay=-1), "Invalid weight_decay value: -1"),
    (lambda m: optim.SGD(m, lr=0.1, nesterov=True),
     "Nesterov momentum requires a momentum and zero dampening"),
    (lambda m: optim.Adam(m, eps=-1), "Invalid epsilon value: -1"),
    (lambda m: optim.Adam(m, betas=(1.0, 0.9)), "Invalid beta parameter at index 0: 1.0"),
    (lambda m: optim.AdamW(m, betas=(0.9, -0.1)), "Invalid beta parameter at index 1: -0.1"),
    (lambda m: optim.Adagrad(m, lr_decay=-1), "Invalid lr_decay value: -1"),
    (lambda m: optim.Adagrad(m, initial_accumulator_value=-1),
     "Invalid initial_accumulator_value value: -1"),
    (lambda m: optim.RMSprop(m, alpha=-1), "Invalid alpha value: -1"),
    (lambda m: optim.RMSprop(m, momentum=-1), "Invalid momentum value: -1"),
])
def test_bad_hyperparameters(make, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make([minirnn.Linear(2, 2)])


def test_bad_modules():
    lin = minirnn.Linear(2, 2)
    with pytest.raises(TypeError, match=r"pass \[model\]"):
        optim.Adam(lin)
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.Adam([])
    with pytest.raises(TypeError, match="named_parameters"):
        optim.Adam([np.zeros(3)])
    with pytest.raises(ValueError, match="more than one parameter group"):
        optim.Adam([lin, lin])
    opt = optim.Adam([lin])
    with pytest.raises(ValueError, match="different number of parameter groups"):
        opt.load_state_dict({"state": {}, "param_groups": []})


def _grads(mods):
    return np.concatenate([m.grads[n].ravel() for m in mods for n, _ in m.named_parameters()])


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, float("inf"), "inf"])
def test_clip_grad_norm(norm_type):
    rng = np.random.default_rng(0)
    mods = _model()
    for m in mods:
        for g in m.grads.values():
            g[...] = rng.standard_normal(g.shape)
    flat = _grads(mods)
    p = float(norm_type)
    ref = np.abs(flat).max() if p == np.inf else (np.abs(flat) ** p).sum() ** (1 / p)
    total = minirnn.clip_grad_norm_(mods, 0.5, norm_type=norm_type)
    np.testing.assert_allclose(total, ref, rtol=1e-12)
    np.testing.assert_allclose(_grads(mods), flat * 0.5 / (ref + 1e-6), rtol=1e-12)
    # a norm below max_norm leaves the gradients as they are
    before = _grads(mods)
    minirnn.clip_grad_norm_(mods, 1e9, norm_type=norm_type)
    np.testing.assert_array_equal(_grads(mods), before)


def test_clip_grad_norm_nonfinite_and_single_module():
    lin = minirnn.Linear(2, 2, dtype=np.float64)
    lin.grads["weight"][0, 0] = np.inf
    with pytest.raises(RuntimeError, match="non-finite"):
        minirnn.clip_grad_norm_(lin, 1.0, error_if_nonfinite=True)
    assert minirnn.clip_grad_norm_(lin, 1.0) == np.inf
    with pytest.raises(TypeError, match="iterable of modules"):
        minirnn.clip_grad_norm_(3, 1.0)


def test_clip_grad_value():
    lin = minirnn.Linear(3, 3, dtype=np.float64, seed=0)
    lin.grads["weight"][:] = np.arange(9).reshape(3, 3) - 4.0
    minirnn.clip_grad_value_([lin], 2.5)
    np.testing.assert_array_equal(lin.grads["weight"],
                                  np.clip(np.arange(9).reshape(3, 3) - 4.0, -2.5, 2.5))

"""cross_entropy and mse_loss: the returned gradient against central differences of the returned
loss, the reductions' relations, and argument errors. (The values against PyTorch are in
test_training_dumps.py.)"""
import numpy as np
import pytest

import minirnn
from helpers import assert_grad_close, numerical_grad

CE_CASES = [
    dict(shape=(6, 4), kw={}),
    dict(shape=(6, 4), kw=dict(reduction="sum")),
    dict(shape=(6, 4), kw=dict(reduction="none")),
    dict(shape=(6, 4), kw=dict(weight=True)),
    dict(shape=(6, 4), kw=dict(weight=True, label_smoothing=0.2)),
    dict(shape=(6, 4), kw=dict(label_smoothing=0.3, reduction="sum")),
    dict(shape=(3, 4, 2, 2), kw=dict(weight=True, label_smoothing=0.1)),
    dict(shape=(4,), kw=dict(label_smoothing=0.1)),
    dict(shape=(6, 4), kw=dict(probs=True)),
    dict(shape=(6, 4), kw=dict(probs=True, weight=True, label_smoothing=0.2)),
    dict(shape=(3, 4, 5), kw=dict(probs=True, reduction="none")),
]


def _targets(rng, shape, probs, ignore=True):
    C = shape[0] if len(shape) == 1 else shape[1]
    if probs:
        p = rng.random(shape)
        return p / p.sum(axis=0 if len(shape) == 1 else 1, keepdims=True)
    tshape = () if len(shape) == 1 else shape[:1] + shape[2:]
    t = rng.integers(0, C, size=tshape)
    if ignore and t.ndim:
        t.flat[1] = -100
    return t


@pytest.mark.parametrize("case", CE_CASES, ids=lambda c: f"{c['shape']}-{sorted(c['kw'])}")
def test_cross_entropy_gradient(case):
    rng = np.random.default_rng(0)
    shape, kw = case["shape"], dict(case["kw"])
    probs = kw.pop("probs", False)
    C = shape[0] if len(shape) == 1 else shape[1]
    if kw.pop("weight", False):
        kw["weight"] = rng.random(C) + 0.5
    x = 3 * rng.standard_normal(shape)
    t = _targets(rng, shape, probs)
    loss, grad = minirnn.cross_entropy(x, t, **kw)
    assert grad.shape == x.shape and grad.dtype == x.dtype

    def total():
        return float(np.sum(minirnn.cross_entropy(x, t, **kw)[0]))
    assert_grad_close("grad", grad, numerical_grad(total, x))


def test_cross_entropy_matches_definition_and_reductions():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 3))
    t = np.array([0, 2, -100, 1, 2])
    lp = x - np.log(np.exp(x).sum(1, keepdims=True))
    valid = t != -100
    nll = -lp[np.arange(5)[valid], t[valid]]
    none, _ = minirnn.cross_entropy(x, t, reduction="none")
    assert none.shape == (5,) and none[2] == 0
    np.testing.assert_allclose(none[valid], nll, rtol=1e-14)
    mean, _ = minirnn.cross_entropy(x, t)
    total, _ = minirnn.cross_entropy(x, t, reduction="sum")
    np.testing.assert_allclose(mean, nll.mean(), rtol=1e-14)
    np.testing.assert_allclose(total, nll.sum(), rtol=1e-14)
    w = np.array([0.5, 2.0, 1.0])
    wmean, _ = minirnn.cross_entropy(x, t, weight=w)
    np.testing.assert_allclose(wmean, (w[t[valid]] * nll).sum() / w[t[valid]].sum(), rtol=1e-14)


def test_cross_entropy_is_stable_and_all_ignored_is_nan():
    x = np.array([[1000.0, 0.0, -1000.0]])
    loss, grad = minirnn.cross_entropy(x, np.array([0]))
    assert loss == 0.0 and np.isfinite(grad).all()
    loss, grad = minirnn.cross_entropy(x, np.array([2]))
    assert loss == 2000.0
    loss, grad = minirnn.cross_entropy(x, np.array([-100]))
    assert np.isnan(loss)
    loss, _ = minirnn.cross_entropy(x, np.array([-100]), reduction="sum")
    assert loss == 0.0


def test_cross_entropy_float32():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 6)).astype(np.float32)
    t = rng.integers(0, 6, 4)
    loss, grad = minirnn.cross_entropy(x, t)
    ref, gref = minirnn.cross_entropy(x.astype(np.float64), t)
    assert loss.dtype == np.float32 and grad.dtype == np.float32
    np.testing.assert_allclose(loss, ref, rtol=1e-5)
    np.testing.assert_allclose(grad, gref, rtol=1e-4, atol=1e-6)


def test_cross_entropy_errors():
    x = np.zeros((3, 4))
    with pytest.raises(IndexError, match="Target 4 is out of bounds"):
        minirnn.cross_entropy(x, np.array([0, 4, 1]))
    with pytest.raises(IndexError, match="Target -1 is out of bounds"):
        minirnn.cross_entropy(x, np.array([0, -1, 1]))
    with pytest.raises(ValueError, match=r"Expected target of shape \(3,\)"):
        minirnn.cross_entropy(x, np.array([0, 1]))
    with pytest.raises(TypeError, match="class indices"):
        minirnn.cross_entropy(x, np.array([True, False, True]))
    with pytest.raises(ValueError, match="not a valid value for reduction"):
        minirnn.cross_entropy(x, np.array([0, 1, 2]), reduction="avg")
    with pytest.raises(ValueError, match="label_smoothing must be between 0.0 and 1.0"):
        minirnn.cross_entropy(x, np.array([0, 1, 2]), label_smoothing=1.5)
    with pytest.raises(ValueError, match=r"weight must be of shape \(4,\)"):
        minirnn.cross_entropy(x, np.array([0, 1, 2]), weight=np.ones(3))
    with pytest.raises(TypeError, match="input must be float32 or float64"):
        minirnn.cross_entropy(np.zeros((3, 4), dtype=np.int64), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="class-probability target must have input's shape"):
        minirnn.cross_entropy(x, np.zeros((3, 5)))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_gradient(reduction):
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    loss, grad = minirnn.mse_loss(x, y, reduction=reduction)
    expected = (x - y) ** 2
    np.testing.assert_allclose(loss, {"mean": expected.mean(), "sum": expected.sum(),
                                      "none": expected}[reduction], rtol=1e-14)

    def total():
        return float(np.sum(minirnn.mse_loss(x, y, reduction=reduction)[0]))
    assert_grad_close("grad", grad, numerical_grad(total, x))


def test_mse_broadcast_warns_and_sums_the_gradient_back():
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((3, 1)), rng.standard_normal((3, 4))
    with pytest.warns(UserWarning, match="different to the input size"):
        loss, grad = minirnn.mse_loss(x, y)
    assert grad.shape == x.shape

    def total():
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return float(minirnn.mse_loss(x, y)[0])
    assert_grad_close("grad", grad, numerical_grad(total, x))


def test_mse_errors():
    with pytest.raises(TypeError, match="target dtype"):
        minirnn.mse_loss(np.zeros(3), np.zeros(3, dtype=np.float32))
    with pytest.raises(ValueError, match="must match the size of input"):
        minirnn.mse_loss(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="not a valid value for reduction"):
        minirnn.mse_loss(np.zeros(3), np.zeros(3), reduction="max")

"""Linear and Embedding: shapes, initialization, the tape, gradients against central differences,
state_dict and parameter assignment, argument errors."""
import numpy as np
import pytest

import minirnn
from helpers import assert_grad_close, numerical_grad


def _weighted_sum_loss(layer, x, go):
    def loss():
        with minirnn.no_grad():
            return float((layer(x) * go).sum())
    return loss


@pytest.mark.parametrize("shape", [(5,), (3, 5), (2, 3, 5)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_gradients(shape, bias):
    rng = np.random.default_rng(0)
    lin = minirnn.Linear(5, 4, bias=bias, dtype=np.float64, seed=1)
    x = rng.standard_normal(shape)
    go = rng.standard_normal(shape[:-1] + (4,))
    y = lin(x)
    assert y.shape == shape[:-1] + (4,)
    expected = x @ lin.weight.T + (lin.bias if bias else 0)
    np.testing.assert_allclose(y, expected, rtol=1e-14)
    gx = lin.backward(go)
    loss = _weighted_sum_loss(lin, x, go)
    assert_grad_close("input", gx, numerical_grad(loss, x))
    for name, p in lin.named_parameters():
        assert_grad_close(name, lin.grads[name], numerical_grad(loss, p))
    assert lin.tape_size == 0


def test_linear_lifo_tape_and_accumulation():
    rng = np.random.default_rng(2)
    lin = minirnn.Linear(3, 2, dtype=np.float64, seed=0)
    x1, x2 = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    g1, g2 = rng.standard_normal((4, 2)), rng.standard_normal((4, 2))
    lin(x1)
    lin(x2)
    assert lin.tape_size == 2
    gx2 = lin.backward(g2)                  # the latest forward first
    gx1 = lin.backward(g1)
    np.testing.assert_allclose(gx2, g2 @ lin.weight, rtol=1e-14)
    np.testing.assert_allclose(gx1, g1 @ lin.weight, rtol=1e-14)
    np.testing.assert_allclose(lin.grads["weight"], g1.T @ x1 + g2.T @ x2, rtol=1e-13)
    np.testing.assert_allclose(lin.grads["bias"], g1.sum(0) + g2.sum(0), rtol=1e-13)
    with pytest.raises(RuntimeError, match="nothing to backpropagate"):
        lin.backward(g1)
    lin.zero_grad()
    assert not lin.grads["weight"].any() and not lin.grads["bias"].any()
    with minirnn.no_grad():
        lin(x1)
    assert lin.tape_size == 0


def test_linear_init_bounds_and_seed():
    lin = minirnn.Linear(16, 200, seed=3)
    k = 1 / np.sqrt(16)
    for p in lin.parameters():
        assert p.dtype == np.float32
        assert np.abs(p).max() <= k and np.abs(p).max() > 0.9 * k
    assert list(lin.state_dict()) == ["weight", "bias"]
    assert lin.weight.shape == (200, 16) and lin.bias.shape == (200,)
    again = minirnn.Linear(16, 200, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(lin.parameters(), again.parameters()))
    nob = minirnn.Linear(16, 2, bias=False)
    assert nob.bias is None and list(nob.state_dict()) == ["weight"]


def test_linear_state_dict_and_assignment_copy_in_place():
    lin = minirnn.Linear(3, 2, dtype=np.float64, seed=0)
    w = lin.weight
    v0 = lin._param_version
    lin.weight = np.ones((2, 3), dtype=np.float32)         # cast to the module's dtype
    assert lin.weight is w and np.all(w == 1) and w.dtype == np.float64
    assert lin._param_version == v0 + 1
    with pytest.raises(ValueError, match="size mismatch for weight"):
        lin.weight = np.ones((3, 3))
    assert np.all(w == 1)
    sd = lin.state_dict()
    other = minirnn.Linear(3, 2, dtype=np.float64, seed=9)
    other.load_state_dict(sd)
    assert all(np.array_equal(a, b) for a, b in zip(other.parameters(), lin.parameters()))
    with pytest.raises(ValueError, match="missing key"):
        other.load_state_dict({"weight": sd["weight"]})
    lin._parameters_changed()
    assert lin._param_version == v0 + 2


def test_linear_errors():
    lin = minirnn.Linear(3, 2)
    with pytest.raises(TypeError, match="dtype"):
        lin(np.ones((2, 3)))                                  # float64 into float32
    with pytest.raises(ValueError, match="in_features=3"):
        lin(np.ones((2, 4), dtype=np.float32))
    with pytest.raises(TypeError, match="numpy.ndarray"):
        lin([[1.0, 2.0, 3.0]])
    lin(np.ones((2, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"grad_output of shape \(2, 2\)"):
        lin.backward(np.ones((2, 3), dtype=np.float32))
    with pytest.raises(TypeError, match="in_features should be of type int"):
        minirnn.Linear(3.0, 2)
    with pytest.raises(ValueError, match="out_features must be"):
        minirnn.Linear(3, -1)


def test_linear_zero_in_features():
    lin = minirnn.Linear(0, 3, dtype=np.float64, seed=0)
    assert not lin.bias.any()                       # bound 0, as PyTorch
    assert lin(np.ones((2, 0))).shape == (2, 3)


@pytest.mark.parametrize("padding_idx", [None, 2, -1])
def test_embedding_forward_backward(padding_idx):
    rng = np.random.default_rng(4)
    emb = minirnn.Embedding(6, 3, padding_idx=padding_idx, dtype=np.float64, seed=0)
    idx = np.array([[0, 2, 5], [2, 2, 1]])
    out = emb(idx)
    assert out.shape == (2, 3, 3)
    np.testing.assert_array_equal(out, emb.weight[idx])
    pad = None if padding_idx is None else padding_idx % 6
    if pad is not None:
        assert not emb.weight[pad].any() and emb.padding_idx == pad
    go = rng.standard_normal(out.shape)
    assert emb.backward(go) is None
    expected = np.zeros_like(emb.weight)
    for n, i in np.ndenumerate(idx):
        if i != pad:
            expected[i] += go[n]
    np.testing.assert_allclose(emb.grads["weight"], expected, rtol=1e-14)
    loss = _weighted_sum_loss(emb, idx, go)
    numeric = numerical_grad(loss, emb.weight)
    if pad is not None:
        numeric[pad] = 0                             # the pad row never gets a gradient
    assert_grad_close("weight", emb.grads["weight"], numeric)


def test_embedding_init_statistics():
    emb = minirnn.Embedding(400, 50, seed=0, dtype=np.float64)
    w = emb.weight
    assert abs(w.mean()) < 0.02 and abs(w.std() - 1) < 0.02     # N(0, 1)


def test_embedding_errors():
    emb = minirnn.Embedding(5, 2)
    with pytest.raises(IndexError, match="index out of range"):
        emb(np.array([0, 5]))
    with pytest.raises(IndexError, match="holds -1"):
        emb(np.array([-1, 0]))
    with pytest.raises(TypeError, match="integer indices"):
        emb(np.array([0.0, 1.0]))
    with pytest.raises(TypeError, match="numpy.ndarray"):
        emb([0, 1])
    with pytest.raises(ValueError, match="Padding_idx must be within num_embeddings"):
        minirnn.Embedding(5, 2, padding_idx=5)
    with pytest.raises(ValueError, match="Padding_idx must be within num_embeddings"):
        minirnn.Embedding(5, 2, padding_idx=-6)
    emb(np.array([1, 2]))
    with pytest.raises(ValueError, match="grad_output of shape"):
        emb.backward(np.ones((3, 2), dtype=np.float32))


def test_embedding_padding_row_stays_under_optimizer_like_update():
    emb = minirnn.Embedding(4, 2, padding_idx=0, dtype=np.float64, seed=0)
    emb(np.array([0, 1, 0]))
    emb.backward(np.ones((3, 2)))
    assert not emb.grads["weight"][0].any()
    for _, p in emb.named_parameters():
        p -= 0.1 * emb.grads["weight"]
    assert not emb.weight[0].any()

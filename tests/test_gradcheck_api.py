"""minirnn.gradcheck, the public checker: it passes on every kind of minirnn module and on a
function with a correct backward, and finds (name and index) a wrong gradient."""
import numpy as np
import pytest

import minirnn


def _rng():
    return np.random.default_rng(0)


@pytest.mark.parametrize("backend", minirnn.BACKENDS)
def test_modules_pass(backend):
    rng = _rng()
    x = rng.standard_normal((3, 2, 2))
    h0 = rng.standard_normal((2, 2, 3))
    lstm = minirnn.LSTM(2, 3, bidirectional=True, dtype=np.float64, seed=0, backend=backend)
    r = minirnn.gradcheck(lstm, (x, (h0, h0.copy())))
    assert r.passed and r.checked > 0 and "weight_hh_l0_reverse" in r.per_tensor
    assert "input[1][1]" in r.per_tensor
    gru = minirnn.GRU(2, 3, num_layers=2, dropout=0.5, dtype=np.float64, seed=0,
                      backend=backend)                  # dropout masks kept across forwards
    assert minirnn.gradcheck(gru, x)
    cell = minirnn.LSTMCell(2, 3, dtype=np.float64, seed=0, backend=backend)
    assert minirnn.gradcheck(cell, (x[0], (h0[0], h0[1])))
    rnn_cell = minirnn.RNNCell(2, 3, dtype=np.float64, seed=0, backend=backend)
    assert minirnn.gradcheck(rnn_cell, (x[0], h0[0]))


def test_layers_pass_and_state_is_restored():
    rng = _rng()
    lin = minirnn.Linear(4, 3, dtype=np.float64, seed=0)
    lin.grads["weight"][:] = 7.0
    w = lin.weight.copy()
    assert minirnn.gradcheck(lin, rng.standard_normal((5, 4)))
    assert np.all(lin.grads["weight"] == 7.0) and np.array_equal(lin.weight, w)
    assert lin.tape_size == 0
    emb = minirnn.Embedding(5, 2, padding_idx=1, dtype=np.float64, seed=0)
    r = minirnn.gradcheck(emb, np.array([[0, 1], [4, 4]]))
    assert list(r.per_tensor) == ["weight"]


def test_function_with_backward_and_a_wrong_one():
    rng = _rng()
    x, y = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))

    def f(a, b):
        return np.tanh(a @ b)

    def f_backward(g):
        t = np.tanh(x @ y)
        d = g * (1 - t * t)
        return d @ y.T, x.T @ d

    assert minirnn.gradcheck(f, (x, y), backward=f_backward)

    def wrong(g):
        gx, gy = f_backward(g)
        gy = gy.copy()
        gy[2, 1] += 0.1
        return gx, gy

    r = minirnn.gradcheck(f, (x, y), backward=wrong, raise_exception=False)
    assert not r and r.worst_name == "input[1]" and r.worst_index == (2, 1)
    with pytest.raises(minirnn.GradcheckError, match=r"input\[1\]\[2, 1\]"):
        minirnn.gradcheck(f, (x, y), backward=wrong)


def test_a_wrong_parameter_gradient_is_found():
    class BadLinear(minirnn.Linear):
        def backward(self, grad_output=None):
            gx = super().backward(grad_output)
            self.grads["bias"][1] *= 1.5
            return gx

    m = BadLinear(3, 2, dtype=np.float64, seed=0)
    m.bias[:] = 1.0
    r = minirnn.gradcheck(m, _rng().standard_normal((4, 3)), raise_exception=False)
    assert not r.passed and (r.worst_name, r.worst_index) == ("bias", (1,))
    assert r.max_rel_error == pytest.approx(1 / 3, rel=1e-6)


def test_errors():
    with pytest.raises(TypeError, match="float64"):
        minirnn.gradcheck(minirnn.Linear(2, 2), np.ones((1, 2), dtype=np.float32))
    with pytest.raises(TypeError, match="needs its backward"):
        minirnn.gradcheck(np.tanh, np.ones(3))

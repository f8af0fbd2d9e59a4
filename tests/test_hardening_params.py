"""Assigning a parameter (``m.weight_hh_l0 = arr``, ``cell.weight_ih = arr``) and the parameter
version counter, on both backends.

Expected values come from a second model loaded with ``load_state_dict`` (the path that always
worked), never typed in.
"""
import numpy as np
import pytest

import minirnn

BACKENDS = ["c", "numpy"]


def _modules(backend):
    return [
        minirnn.RNN(3, 5, num_layers=2, seed=0, backend=backend, dtype=np.float64),
        minirnn.GRU(3, 5, bidirectional=True, seed=1, backend=backend, dtype=np.float64),
        minirnn.LSTM(3, 5, proj_size=2, seed=2, backend=backend, dtype=np.float64),
        minirnn.LSTM(3, 5, peephole=True, seed=3, backend=None if backend == "c" else backend,
                     dtype=np.float64),
    ]


def _cells(backend):
    return [
        minirnn.RNNCell(3, 5, seed=0, backend=backend, dtype=np.float64),
        minirnn.GRUCell(3, 5, seed=1, backend=backend, dtype=np.float64),
        minirnn.LSTMCell(3, 5, seed=2, backend=backend, dtype=np.float64),
        minirnn.LSTMCell(3, 5, peephole=True, seed=3, backend=None if backend == "c" else backend,
                         dtype=np.float64),
    ]


def _run(m, x):
    out = m(x)
    return out[0] if isinstance(out, tuple) else out


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["module", "cell"])
def test_assignment_updates_the_live_parameter(backend, kind):
    rng = np.random.default_rng(7)
    models = _modules(backend) if kind == "module" else _cells(backend)
    x = rng.standard_normal((4, 2, 3) if kind == "module" else (2, 3))
    for m in models:
        names = [n for n, _ in m.named_parameters()]
        # every parameter kind, the variant's weight_peephole included
        for name in names:
            old_ref = getattr(m, name)
            version = m._param_version
            new = rng.standard_normal(old_ref.shape)
            setattr(m, name, new)
            assert name not in m.__dict__, f"{name}: assignment made an instance attribute"
            assert getattr(m, name) is old_ref, f"{name}: assignment rebound the parameter"
            np.testing.assert_array_equal(old_ref, new)
            np.testing.assert_array_equal(m.state_dict()[name], new)
            assert m._param_version > version
        # forward sees the assigned values: equal to a fresh model loaded with them
        fresh = _modules(backend) if kind == "module" else _cells(backend)
        ref = fresh[models.index(m)]
        ref.load_state_dict(m.state_dict())
        np.testing.assert_array_equal(_run(m, x), _run(ref, x))


@pytest.mark.parametrize("backend", BACKENDS)
def test_assignment_after_a_forward_is_seen_by_the_next_forward(backend):
    # the compiled backend keeps weight tuples between calls: they must see the new values
    m = minirnn.GRU(3, 4, seed=0, backend=backend)
    x = np.random.default_rng(0).standard_normal((5, 2, 3)).astype(np.float32)
    before = m(x)[0]
    m.weight_hh_l0 = np.zeros_like(m.weight_hh_l0)
    m.bias_hh_l0 = m.bias_hh_l0 * 2
    ref = minirnn.GRU(3, 4, seed=0, backend=backend)
    ref.load_state_dict(m.state_dict())
    after = m(x)[0]
    np.testing.assert_array_equal(after, ref(x)[0])
    assert not np.array_equal(before, after)


@pytest.mark.parametrize("backend", BACKENDS)
def test_assignment_casts_like_load_state_dict(backend):
    m = minirnn.RNN(2, 3, seed=0, backend=backend)          # float32
    w = np.arange(9, dtype=np.int64).reshape(3, 3)
    m.weight_hh_l0 = w
    assert m.weight_hh_l0.dtype == np.float32
    np.testing.assert_array_equal(m.weight_hh_l0, w.astype(np.float32))
    m.weight_ih_l0 = [[1.0, 2.0]] * 3                       # anything numpy.asarray accepts
    np.testing.assert_array_equal(m.weight_ih_l0, np.array([[1.0, 2.0]] * 3, np.float32))


@pytest.mark.parametrize("value, exc, words", [
    (np.zeros((3, 4)), ValueError, ["weight_hh_l0", "(3, 3)", "(3, 4)"]),
    (np.zeros(9), ValueError, ["weight_hh_l0", "(3, 3)", "(9,)"]),
    (np.array([["a"] * 3] * 3), TypeError, ["weight_hh_l0", "real numbers", "<U1"]),
    (np.zeros((3, 3), complex), TypeError, ["weight_hh_l0", "complex"]),
    (None, TypeError, ["weight_hh_l0", "None"]),
    ([[1.0, 2.0], [3.0]], ValueError, ["weight_hh_l0", "list"]),
])
def test_bad_assignment_is_a_clear_error_and_changes_nothing(value, exc, words):
    m = minirnn.RNN(2, 3, seed=0)
    before = m.state_dict()
    version = m._param_version
    with pytest.raises(exc) as e:
        m.weight_hh_l0 = value
    for w in words:
        assert w in str(e.value), (w, str(e.value))
    assert "weight_hh_l0" not in m.__dict__
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    assert m._param_version == version


def test_cell_without_bias():
    cell = minirnn.GRUCell(2, 3, bias=False, seed=0)
    cell.bias_ih = None                 # stays None, as PyTorch's registered None
    assert cell.bias_ih is None
    with pytest.raises(ValueError, match="bias=False"):
        cell.bias_ih = np.zeros(9)
    assert cell.bias_ih is None and "bias_ih" not in cell.__dict__


def test_unknown_names_are_plain_attributes():
    m = minirnn.LSTM(2, 3, seed=0)
    m.my_note = "hello"
    assert m.my_note == "hello"
    m.training = False
    assert m.training is False
    cell = minirnn.RNNCell(2, 3)
    cell.anything = np.zeros(2)
    assert cell.anything.shape == (2,)


def test_load_state_dict_bumps_the_version_and_names_ragged_entries():
    m = minirnn.LSTM(2, 3, seed=0)
    v0 = m._param_version
    m.load_state_dict(m.state_dict())
    assert m._param_version == v0 + 1
    m._parameters_changed()
    assert m._param_version == v0 + 2
    sd = m.state_dict()
    sd["bias_hh_l0"] = [[1.0, 2.0], [3.0]]
    with pytest.raises(ValueError, match="bias_hh_l0"):
        m.load_state_dict(sd)
    assert m._param_version == v0 + 2
    cell = minirnn.LSTMCell(2, 3)
    assert isinstance(cell._param_version, int)
    cell.weight_hh = cell.weight_hh + 1
    assert cell._param_version == 1

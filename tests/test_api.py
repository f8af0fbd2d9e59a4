"""Parameters (names, shapes, order, init), state_dict, grads, the tape and no_grad."""
import threading

import numpy as np
import pytest

import minirnn
from helpers import BACKENDS, MODES, make_cell, make_module, split_state

GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "GRU": 3, "LSTM": 4}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("bias", [True, False])
def test_parameter_names_shapes_order(mode, bias):
    m = make_module(mode, 10, 20, 2, bias=bias, bidirectional=True)
    G = GATES[mode] * 20
    expected = []
    for layer, in_size in ((0, 10), (1, 40)):
        for sfx in ("", "_reverse"):
            expected += [(f"weight_ih_l{layer}{sfx}", (G, in_size)), (f"weight_hh_l{layer}{sfx}", (G, 20))]
            if bias:
                expected += [(f"bias_ih_l{layer}{sfx}", (G,)), (f"bias_hh_l{layer}{sfx}", (G,))]
    assert [(k, v.shape) for k, v in m.named_parameters()] == expected
    assert [(k, v.shape) for k, v in m.state_dict().items()] == expected
    assert list(m.grads) == [k for k, _ in expected]
    assert m.weight_hh_l1_reverse is m._params["weight_hh_l1_reverse"]
    if not bias:
        with pytest.raises(AttributeError):
            m.bias_ih_l0


@pytest.mark.parametrize("mode", MODES)
def test_cell_parameters(mode):
    c = make_cell(mode, 3, 7)
    G = GATES[mode] * 7
    assert [(k, v.shape) for k, v in c.named_parameters()] == [
        ("weight_ih", (G, 3)), ("weight_hh", (G, 7)), ("bias_ih", (G,)), ("bias_hh", (G,))]
    nb = make_cell(mode, 3, 7, bias=False)
    assert list(nb.state_dict()) == ["weight_ih", "weight_hh"]
    assert nb.bias_ih is None and nb.bias_hh is None       # as PyTorch's cells


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_init_uniform_in_one_over_sqrt_hidden(mode, dtype):
    H = 25
    m = make_module(mode, 6, H, 2, bidirectional=True, dtype=dtype, seed=123)
    k = 1 / np.sqrt(H)
    allp = np.concatenate([p.ravel() for p in m.parameters()])
    assert all(p.dtype == dtype for p in m.parameters())
    assert np.abs(allp).max() <= k
    # uniform on [-k, k]: mean ~0, variance k^2/3, spread across the range
    assert abs(allp.mean()) < 0.05 * k
    assert abs(allp.var() / (k * k / 3) - 1) < 0.05
    assert allp.min() < -0.99 * k and allp.max() > 0.99 * k
    # drawn in state_dict order from default_rng(seed)
    rng = np.random.default_rng(123)
    for name, p in m.named_parameters():
        np.testing.assert_array_equal(p, rng.uniform(-k, k, size=p.shape).astype(dtype), err_msg=name)


def test_seed_determinism_and_default_randomness():
    a, b = minirnn.LSTM(4, 6, seed=1), minirnn.LSTM(4, 6, seed=1)
    for (_, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(p, q)
    c, d = minirnn.LSTM(4, 6), minirnn.LSTM(4, 6)
    assert not np.array_equal(c.weight_ih_l0, d.weight_ih_l0)


def test_state_dict_is_a_copy_and_named_parameters_are_live():
    m = minirnn.GRU(3, 4, seed=0)
    sd = m.state_dict()
    original = sd["weight_ih_l0"].copy()
    sd["weight_ih_l0"][:] = 7
    assert not (m.weight_ih_l0 == 7).any()
    for name, p in m.named_parameters():
        p -= 1.0                             # an SGD-like in-place update
    np.testing.assert_array_equal(m.state_dict()["weight_ih_l0"], original - np.float32(1.0))


@pytest.mark.parametrize("mode", MODES)
def test_load_state_dict_roundtrip_and_casts(mode):
    src = make_module(mode, 3, 4, 2, dtype=np.float64, seed=0)
    dst = make_module(mode, 3, 4, 2, dtype=np.float32, seed=1)
    dst.load_state_dict(src.state_dict())
    for name, p in dst.named_parameters():
        assert p.dtype == np.float32
        np.testing.assert_array_equal(p, src.state_dict()[name].astype(np.float32))


def test_load_state_dict_strict_errors_leave_module_unchanged():
    m = minirnn.LSTM(3, 4, seed=0)
    before = m.state_dict()
    sd = m.state_dict()
    del sd["bias_hh_l0"]
    with pytest.raises(ValueError, match=r"missing key\(s\): \['bias_hh_l0'\]"):
        m.load_state_dict(sd)
    sd = m.state_dict()
    sd["weight_ih_l1"] = np.zeros((16, 4))
    with pytest.raises(ValueError, match=r"unexpected key\(s\): \['weight_ih_l1'\]"):
        m.load_state_dict(sd)
    sd = {k: v + 1 for k, v in m.state_dict().items()}
    sd["weight_hh_l0"] = np.zeros((16, 5))
    with pytest.raises(ValueError, match=r"weight_hh_l0: expected shape \(16, 4\), got \(16, 5\)"):
        m.load_state_dict(sd)
    sd["weight_hh_l0"] = np.full((16, 4), "a")
    with pytest.raises(TypeError, match="weight_hh_l0"):
        m.load_state_dict(sd)
    with pytest.raises(TypeError, match="mapping"):
        m.load_state_dict([1, 2])
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


@pytest.mark.parametrize("backend", BACKENDS)
def test_grads_accumulate_and_zero_grad(backend):
    rng = np.random.default_rng(0)
    m = minirnn.GRU(3, 4, dtype=np.float64, seed=0, backend=backend)
    x = rng.standard_normal((5, 2, 3))
    go = rng.standard_normal((5, 2, 4))
    m(x)
    m.backward(go)
    once = {k: v.copy() for k, v in m.grads.items()}
    m(x)
    m.backward(go)
    for k in once:
        np.testing.assert_allclose(m.grads[k], 2 * once[k], rtol=1e-14)
    m.zero_grad()
    assert all(not g.any() for g in m.grads.values())


@pytest.mark.parametrize("backend", BACKENDS)
def test_tape_is_lifo_and_empty_tape_is_an_error(backend):
    rng = np.random.default_rng(0)
    m = minirnn.RNN(3, 4, dtype=np.float64, seed=0, backend=backend)
    xa, xb = rng.standard_normal((5, 2, 3)), rng.standard_normal((2, 2, 3))
    m(xa)
    m(xb)
    assert m.tape_size == 2
    gx, _ = m.backward(None, None)          # the latest forward first: xb's shape
    assert gx.shape == xb.shape and not gx.any()
    gx, _ = m.backward()
    assert gx.shape == xa.shape
    with pytest.raises(RuntimeError, match="nothing to backpropagate"):
        m.backward()
    m(xa)
    m.clear_tape()
    with pytest.raises(RuntimeError, match="nothing to backpropagate"):
        m.backward()


def test_bad_grad_does_not_consume_the_tape():
    m = minirnn.RNN(3, 4, seed=0)
    m(np.zeros((5, 2, 3), np.float32))
    with pytest.raises(ValueError):
        m.backward(np.zeros((5, 2, 5), np.float32))
    assert m.tape_size == 1
    m.backward(np.zeros((5, 2, 4), np.float32))
    assert m.tape_size == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_grad_records_nothing_and_gives_same_result(backend):
    m = minirnn.LSTM(3, 4, 2, seed=0, backend=backend)
    x = np.random.default_rng(0).standard_normal((5, 2, 3)).astype(np.float32)
    with minirnn.no_grad():
        assert not minirnn.is_grad_enabled()
        out, (h, c) = m(x)
    assert minirnn.is_grad_enabled()
    assert m.tape_size == 0
    with pytest.raises(RuntimeError):
        m.backward()
    out2, _ = m(x)
    np.testing.assert_array_equal(out, out2)

    @minirnn.no_grad()
    def infer(inp):
        return m(inp)
    infer(x)
    assert m.tape_size == 1


def test_no_grad_is_thread_local():
    seen = {}
    inside, release = threading.Event(), threading.Event()

    def worker():
        with minirnn.no_grad():
            inside.set()
            release.wait(5)
            seen["worker"] = minirnn.is_grad_enabled()

    t = threading.Thread(target=worker)
    t.start()
    inside.wait(5)
    seen["main"] = minirnn.is_grad_enabled()
    release.set()
    t.join()
    assert seen == {"main": True, "worker": False}


@pytest.mark.parametrize("mode", MODES)
def test_cell_zero_state_default(mode):
    """state None means zeros; LSTMCell accepts (None, c) and (h, None) too."""
    cell = make_cell(mode, 3, 4, dtype=np.float64, seed=0)
    x = np.random.default_rng(0).standard_normal((2, 3))
    zeros = np.zeros((2, 4))
    if mode == "LSTM":
        h1, c1 = cell(x)
        h2, c2 = cell(x, (zeros, None))
        np.testing.assert_array_equal(h1, h2)
        np.testing.assert_array_equal(c1, c2)
    else:
        np.testing.assert_array_equal(cell(x), cell(x, zeros))


def test_train_eval_flags_and_repr():
    m = minirnn.RNN(4, 6, 2, nonlinearity="relu", bidirectional=True, batch_first=True)
    assert m.training
    assert m.eval() is m and not m.training
    assert m.train() is m and m.training
    assert repr(m) == "RNN(4, 6, num_layers=2, nonlinearity='relu', batch_first=True, bidirectional=True)"
    assert repr(minirnn.LSTM(3, 5, dtype=np.float64)) == "LSTM(3, 5, dtype=float64)"
    assert repr(minirnn.LSTM(3, 5, 2, dropout=0.5, proj_size=2, bidirectional=True)) == \
        "LSTM(3, 5, proj_size=2, num_layers=2, dropout=0.5, bidirectional=True)"   # PyTorch's order
    assert repr(minirnn.RNNCell(3, 4, nonlinearity="relu")) == "RNNCell(3, 4, nonlinearity=relu)"
    assert m.mode == "RNN_RELU" and minirnn.LSTM(3, 5).mode == "LSTM"


def test_outputs_have_module_dtype_and_caller_layout():
    m = minirnn.GRU(3, 4, 2, batch_first=True, bidirectional=True, seed=0)
    out, h = m(np.zeros((2, 5, 3), np.float32))
    assert out.dtype == h.dtype == np.float32
    assert out.shape == (2, 5, 8) and out.flags.c_contiguous
    assert h.shape == (4, 2, 4)


def test_nested_no_grad_restores_the_outer_state():
    with minirnn.no_grad():
        with minirnn.no_grad():
            assert not minirnn.is_grad_enabled()
        assert not minirnn.is_grad_enabled()
    assert minirnn.is_grad_enabled()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", MODES)
def test_default_initial_state_is_never_the_callers(mode, backend):
    """h0/c0 of None are a zero state the module keeps from call to call (read-only): what a
    call returns must be the caller's own arrays, and scribbling on them changes nothing."""
    m = make_module(mode, 3, 4, 2, backend=backend)
    x = np.random.default_rng(1).standard_normal((5, 2, 3)).astype(np.float32)
    def arrays(result):
        return [a for a in (result[0],) + tuple(split_state(mode, result[1])) if a is not None]

    got = arrays(m(x))
    first = [a.copy() for a in got]
    for a in got:
        assert a.flags.writeable
        a[...] = 7.0
    for a, b in zip(first, arrays(m(x))):
        np.testing.assert_array_equal(a, b)
    cell = make_cell(mode, 3, 4, backend=backend)
    h = cell(x[0])
    h1 = h[0] if isinstance(h, tuple) else h
    ref = h1.copy()
    h1[...] = 7.0
    h2 = cell(x[0])
    np.testing.assert_array_equal(h2[0] if isinstance(h2, tuple) else h2, ref)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", MODES)
def test_parameter_updates_in_place_reach_the_next_forward(mode, backend):
    """The module keeps the kernels' weight tuples between calls; an in-place update (an
    optimizer step, load_state_dict) must still be what the next forward computes with."""
    m = make_module(mode, 3, 4, 2, backend=backend, bidirectional=True)
    x = np.random.default_rng(2).standard_normal((5, 2, 3)).astype(np.float32)
    before, _ = m(x)
    for _, p in m.named_parameters():
        p *= 0.5                                    # in place, as an optimizer step
    fresh = make_module(mode, 3, 4, 2, backend=backend, bidirectional=True)
    fresh.load_state_dict(m.state_dict())
    after, _ = m(x)
    np.testing.assert_array_equal(after, fresh(x)[0])
    assert not np.allclose(after, before)
    m.load_state_dict(make_module(mode, 3, 4, 2, backend=backend, bidirectional=True,
                                  seed=9).state_dict())
    other = make_module(mode, 3, 4, 2, backend=backend, bidirectional=True, seed=9)
    np.testing.assert_array_equal(m(x)[0], other(x)[0])

"""The short inference path of a module's and a cell's call (``_inference_call``,
``_inference_step``): inference of one layer of PyTorch's cell on the compiled backend with
the state given. It must compute exactly what the full path computes, and leave everything
else (bad input, other layouts, training, variants, other backends) to the full path, which
checks and explains it. Expected values come from the full path of the same module (the
tape-keeping forward with gradients on, or a state passed as a list) and from the NumPy path."""
import numpy as np
import pytest

import minirnn
from minirnn import _backend_c

from helpers import MODES, make_cell, make_module, perturb_biases

pytestmark = pytest.mark.skipif("c" not in minirnn.BACKENDS, reason="no compiled kernels")


def _state(mode, rng, shape, dtype):
    h = rng.standard_normal(shape).astype(dtype)
    return (h, rng.standard_normal(shape).astype(dtype)) if mode == "LSTM" else h


def _flat(out):
    if isinstance(out, tuple):
        return [a for o in out for a in (_flat(o) if isinstance(o, tuple) else [o])]
    return [out]


class _Spy:
    """Counts the calls of the backend's full forward (the short path never makes one)."""

    def __init__(self, monkeypatch):
        self.calls = 0
        real = _backend_c.rnn_forward

        def counted(*args, **kwargs):
            self.calls += 1
            return real(*args, **kwargs)
        monkeypatch.setattr(_backend_c, "rnn_forward", counted)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("mode", MODES)
def test_module_short_path_equals_the_full_path(mode, bidirectional, dtype, monkeypatch):
    rng = np.random.default_rng(1)
    m = make_module(mode, 6, 9, bidirectional=bidirectional, dtype=dtype, seed=2)
    perturb_biases(m, rng)
    D = 2 if bidirectional else 1
    x = rng.standard_normal((5, 3, 6)).astype(dtype)
    hx = _state(mode, rng, (D, 3, 9), dtype)
    full = m(x, hx)                                    # gradients on: the full path, a tape
    spy = _Spy(monkeypatch)
    with minirnn.no_grad():
        short = m(x, hx)
        assert spy.calls == 0                          # the short path took it
        again = m(x, list(hx) if mode == "LSTM" else hx.copy())
    for a, b in zip(_flat(short), _flat(full)):
        assert a.dtype == dtype and a.flags.c_contiguous
        np.testing.assert_array_equal(a, b)
    for a, b in zip(_flat(again), _flat(full)):
        np.testing.assert_array_equal(a, b)
    ref = make_module(mode, 6, 9, bidirectional=bidirectional, dtype=dtype, backend="numpy")
    ref.load_state_dict(m.state_dict())
    with minirnn.no_grad():
        for a, b in zip(_flat(short), _flat(ref(x, hx))):
            np.testing.assert_allclose(a, b, rtol=1e-5 if dtype == np.float32 else 1e-12,
                                       atol=1e-6 if dtype == np.float32 else 1e-13)


@pytest.mark.parametrize("mode", MODES)
def test_cell_short_path_equals_the_full_path(mode, monkeypatch):
    rng = np.random.default_rng(3)
    c = make_cell(mode, 4, 7, seed=5)
    perturb_biases(c, rng)
    x = rng.standard_normal((2, 4)).astype(np.float32)
    hx = _state(mode, rng, (2, 7), np.float32)
    full = c(x, hx)
    spy = _Spy(monkeypatch)
    with minirnn.no_grad():
        short = c(x, hx)
        assert spy.calls == 0
        unbatched = c(x[1], tuple(s[1] for s in hx) if mode == "LSTM" else hx[1])
    for a, b in zip(_flat(short), _flat(full)):
        assert a.shape == (2, 7)
        np.testing.assert_array_equal(a, b)
    for a, b in zip(_flat(unbatched), _flat(full)):
        np.testing.assert_array_equal(a, b[1])


def test_projections_take_the_short_path_too(monkeypatch):
    rng = np.random.default_rng(9)
    m = minirnn.LSTM(4, 6, proj_size=3, seed=1)
    perturb_biases(m, rng)
    x = rng.standard_normal((3, 2, 4)).astype(np.float32)
    hx = (rng.standard_normal((1, 2, 3)).astype(np.float32),
          rng.standard_normal((1, 2, 6)).astype(np.float32))
    full = m(x, hx)
    spy = _Spy(monkeypatch)
    with minirnn.no_grad():
        m(x, hx)
        short = m(x, hx)
    assert spy.calls == 0
    for a, b in zip(_flat(short), _flat(full)):
        np.testing.assert_array_equal(a, b)


def _copies(m):
    """m copied the ways a served module is made: frozen, deep-copied, pickled (a worker
    process gets its module that way), and a frozen copy pickled."""
    import copy
    import pickle
    return {"freeze": minirnn.freeze(m), "deepcopy": copy.deepcopy(m),
            "pickle": pickle.loads(pickle.dumps(m)),
            "frozen, pickled": pickle.loads(pickle.dumps(minirnn.freeze(m)))}


@pytest.mark.parametrize("cell", [False, True])
@pytest.mark.parametrize("mode", MODES)
def test_copies_of_a_module_take_the_short_path_too(mode, cell, monkeypatch):
    # a copied or unpickled module's dtype is an equal but other object than the arrays'
    # own: the short path must still take their calls, and give the original's bits
    rng = np.random.default_rng(12)
    m = make_cell(mode, 4, 7, seed=5) if cell else make_module(mode, 4, 7, seed=5)
    perturb_biases(m, rng)
    shape = (2, 7) if cell else (1, 2, 7)
    x = rng.standard_normal((2, 4) if cell else (3, 2, 4)).astype(np.float32)
    hx = _state(mode, rng, shape, np.float32)
    with minirnn.no_grad():
        want = m(x, hx)
    spy = _Spy(monkeypatch)
    for how, c in _copies(m).items():
        with minirnn.no_grad():
            c(x, hx)                                   # the first call builds the weights' tuples
            spy.calls = 0
            got = c(x, hx)
        assert spy.calls == 0, how
        for a, b in zip(_flat(got), _flat(want)):
            np.testing.assert_array_equal(a, b, err_msg=how)


def test_streaming_state_carried_matches_one_call_of_the_whole_sequence():
    rng = np.random.default_rng(4)
    m = minirnn.LSTM(8, 16, seed=1)
    perturb_biases(m, rng)
    x = rng.standard_normal((40, 1, 8)).astype(np.float32)
    ref = minirnn.LSTM(8, 16, backend="numpy")
    ref.load_state_dict(m.state_dict())
    with minirnn.no_grad():
        y_all, (h_all, c_all) = ref(x)
        st = (np.zeros((1, 1, 16), np.float32), np.zeros((1, 1, 16), np.float32))
        ys = []
        for t in range(40):
            y, st = m(x[t:t + 1], st)
            ys.append(y)
    np.testing.assert_allclose(np.concatenate(ys), y_all, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(st[0], h_all, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(st[1], c_all, rtol=1e-5, atol=1e-6)


def test_an_edited_weight_is_seen_by_the_next_streaming_call():
    rng = np.random.default_rng(5)
    m = minirnn.GRU(5, 6, seed=2)
    x = rng.standard_normal((1, 1, 5)).astype(np.float32)
    h = rng.standard_normal((1, 1, 6)).astype(np.float32)
    with minirnn.no_grad():
        m(x, h)
        m(x, h)                                        # the short path, panels kept
        m.weight_hh_l0[3, 1] += 0.5
        got = m(x, h)
    fresh = minirnn.GRU(5, 6)
    fresh.load_state_dict(m.state_dict())
    with minirnn.no_grad():
        want = fresh(x, h)
    for a, b in zip(_flat(got), _flat(want)):
        np.testing.assert_array_equal(a, b)


def _bad_calls(mode):
    """(input, hx) pairs the full path refuses, each with what its message names."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    good = _state(mode, rng, (1, 3, 5), np.float32)
    def swap(f):
        return tuple(f(s) for s in good) if mode == "LSTM" else f(good)
    return [
        (x.astype(np.float64), good, "dtype"),
        (x[..., :3], good, "input_size"),
        (x, swap(lambda s: s[:, :2]), "h"),
        (x, swap(lambda s: s.astype(np.float64)), "dtype"),
        (x[:0], good, "sequence length"),
    ]


@pytest.mark.parametrize("mode", MODES)
def test_bad_input_under_no_grad_gets_the_full_paths_message(mode):
    m = make_module(mode, 4, 5)
    with minirnn.no_grad():
        m(np.zeros((2, 3, 4), np.float32), _state(mode, np.random.default_rng(0), (1, 3, 5),
                                                  np.float32))       # the panels are kept
    for x, hx, what in _bad_calls(mode):
        with pytest.raises((ValueError, TypeError)) as with_grad:
            m(x, hx)
        with minirnn.no_grad(), pytest.raises(type(with_grad.value)) as without:
            m(x, hx)
        assert str(without.value) == str(with_grad.value)
        assert what in str(without.value)


def test_what_the_short_path_leaves_to_the_full_path(monkeypatch):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 2, 4)).astype(np.float32)
    hx = _state("LSTM", rng, (1, 2, 5), np.float32)
    cases = {
        "two layers": (minirnn.LSTM(4, 5, num_layers=2, seed=1), None),
        "batch_first": (minirnn.LSTM(4, 5, batch_first=True, seed=1), None),
        "a variant": (minirnn.LSTM(4, 5, cell_clip=0.5, seed=1), None),
    }
    for name, (m, _) in cases.items():
        if name == "two layers":
            h = tuple(np.concatenate([s, s]) for s in hx)
        else:
            h = hx
        inp = x.transpose(1, 0, 2).copy() if name == "batch_first" else x
        with minirnn.no_grad():
            m(inp, h)
            spy = _Spy(monkeypatch)
            got = m(inp, h)
            assert spy.calls == 1, name
        ref = m(inp, h)                                # gradients on: the full path
        for a, b in zip(_flat(got), _flat(ref)):
            np.testing.assert_array_equal(a, b)
        monkeypatch.undo()


def test_the_short_path_follows_a_replaced_backend():
    rng = np.random.default_rng(7)
    m = minirnn.RNN(3, 4, seed=1)
    x = rng.standard_normal((2, 1, 3)).astype(np.float32)
    h = rng.standard_normal((1, 1, 4)).astype(np.float32)
    with minirnn.no_grad():
        m(x, h)
        m(x, h)
        m.backend = "numpy"
        y, _ = m(x, h)
        m.backend = "c"
        y2, _ = m(x, h)
    ref = minirnn.RNN(3, 4, backend="numpy")
    ref.load_state_dict(m.state_dict())
    with minirnn.no_grad():
        np.testing.assert_array_equal(y, ref(x, h)[0])
    np.testing.assert_allclose(y2, y, rtol=1e-5, atol=1e-6)


def test_non_contiguous_arrays_are_copied_not_misread():
    rng = np.random.default_rng(8)
    m = minirnn.LSTM(4, 6, seed=1)
    x = rng.standard_normal((3, 2, 8)).astype(np.float32)[..., ::2]     # strided
    h = rng.standard_normal((1, 2, 12)).astype(np.float32)[..., ::2]
    c = rng.standard_normal((1, 2, 12)).astype(np.float32)[..., 1::2]
    with minirnn.no_grad():
        m(np.ascontiguousarray(x), (h.copy(), c.copy()))
        got = m(x, (h, c))
        want = m(np.ascontiguousarray(x), (h.copy(), c.copy()))
    for a, b in zip(_flat(got), _flat(want)):
        np.testing.assert_array_equal(a, b)

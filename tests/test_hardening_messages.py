"""Bad input that used to get a message naming nothing (or a different answer per backend):
each case now gets a TypeError/ValueError naming the argument, what was received and what is
expected, the same on both backends."""
import numpy as np
import pytest

import minirnn

BACKENDS = ["c", "numpy"]


def _message(f, exc):
    with pytest.raises(exc) as e:
        f()
    return str(e.value)


@pytest.mark.parametrize("seed", [-1, "abc", 1.5])
def test_seed(seed):
    for make in (lambda: minirnn.GRU(2, 3, seed=seed), lambda: minirnn.LSTMCell(2, 3, seed=seed)):
        with pytest.raises((TypeError, ValueError), match="seed must be None, a non-negative int"):
            make()


def test_ragged_state_dict_entry_names_the_key():
    m = minirnn.RNN(2, 3)
    sd = m.state_dict()
    sd["weight_ih_l0"] = [[1.0, 2.0], [3.0]]
    msg = _message(lambda: m.load_state_dict(sd), ValueError)
    assert "weight_ih_l0" in msg and "(3, 2)" in msg


def _run_backward(backend, edit):
    m = minirnn.LSTM(2, 3, backend=backend)
    out, _ = m(np.zeros((4, 1, 2), np.float32))
    edit(m.grads)
    return _message(lambda: m.backward(np.ones_like(out), None), ValueError), m


@pytest.mark.parametrize("edit, words", [
    (lambda g: g.pop("weight_hh_l0"), ["grads['weight_hh_l0']", "missing", "(12, 3)"]),
    (lambda g: g.__setitem__("weight_hh_l0", None), ["grads['weight_hh_l0']", "None"]),
    (lambda g: g.__setitem__("bias_ih_l0", np.zeros(5, np.float32)),
     ["grads['bias_ih_l0']", "(12,)", "(5,)"]),
    (lambda g: g.__setitem__("weight_ih_l0", np.zeros((12, 2), np.float32, order="F")),
     ["grads['weight_ih_l0']", "not C-contiguous"]),
    (lambda g: g.__setitem__("weight_ih_l0", np.zeros((12, 2), np.float64)),
     ["grads['weight_ih_l0']", "float64", "float32"]),
    (lambda g: g.__setitem__("weight_ih_l0", [[0.0] * 2] * 12), ["grads['weight_ih_l0']", "list"]),
])
def test_bad_grads_entry_same_on_both_backends(edit, words):
    msgs = []
    for backend in BACKENDS:
        msg, m = _run_backward(backend, edit)
        for w in words:
            assert w in msg, (backend, w, msg)
        assert m.tape_size == 1          # nothing was popped: fix grads and call again
        msgs.append(msg)
    assert msgs[0] == msgs[1]


def test_bad_grads_entry_of_a_cell():
    for backend in BACKENDS:
        cell = minirnn.GRUCell(2, 3, backend=backend)
        cell(np.zeros((1, 2), np.float32))
        del cell.grads["weight_hh"]
        msg = _message(lambda c=cell: c.backward(None), ValueError)
        assert "grads['weight_hh']" in msg and "missing" in msg


@pytest.mark.parametrize("backend", BACKENDS)
def test_matrix_and_masked_input(backend):
    m = minirnn.RNN(2, 3, backend=backend)
    with pytest.warns(PendingDeprecationWarning):
        mat = np.matrix(np.zeros((3, 2), np.float32))
    msg = _message(lambda: m(mat), TypeError)
    assert "input" in msg and "numpy.matrix" in msg and "numpy.asarray" in msg
    x = np.ma.masked_array(np.zeros((3, 1, 2), np.float32), mask=False)
    msg = _message(lambda: m(x), TypeError)
    assert "input" in msg and "MaskedArray" in msg and "mask" in msg
    cell = minirnn.GRUCell(2, 3, backend=backend)
    msg = _message(lambda: cell(np.zeros((1, 2), np.float32), np.ma.zeros((1, 3), np.float32)),
                   TypeError)
    assert "h" in msg and "MaskedArray" in msg


@pytest.mark.parametrize("dtype", [np.int64, np.float16, np.int32])
def test_unsupported_input_dtype_hint(dtype):
    for backend in BACKENDS:
        m = minirnn.GRU(2, 3, backend=backend)
        msg = _message(lambda m=m: m(np.zeros((3, 1, 2), dtype)), TypeError)
        assert np.dtype(dtype).name in msg and "float32 or float64" in msg
        assert f"dtype=numpy.{np.dtype(dtype).name}" not in msg   # a dtype the module refuses


def test_float64_input_hint_still_names_the_dtype():
    msg = _message(lambda: minirnn.GRU(2, 3)(np.zeros((3, 1, 2))), TypeError)
    assert "dtype=numpy.float64" in msg


@pytest.mark.parametrize("backend", BACKENDS)
def test_packed_sequence_given_to_a_cell(backend):
    p = minirnn.pack_sequence([np.zeros((3, 2), np.float32)])
    cell = minirnn.LSTMCell(2, 3, backend=backend)
    msg = _message(lambda: cell(p), TypeError)
    assert "PackedSequence" in msg and "RNN/GRU/LSTM" in msg and "numpy.asarray(input" not in msg

    class TorchLike:                     # what a torch.nn.utils.rnn.PackedSequence looks like
        __module__ = "torch.nn.utils.rnn"
        data = batch_sizes = None
    TorchLike.__name__ = "PackedSequence"
    for target in (cell, minirnn.LSTM(2, 3, backend=backend)):
        msg = _message(lambda t=target: t(TorchLike()), TypeError)
        assert "torch.nn.utils.rnn PackedSequence" in msg and "minirnn.PackedSequence(" in msg


@pytest.mark.parametrize("fields, words", [
    (dict(batch_sizes=np.array([2, 2])), ["sum(batch_sizes)", "rows"]),
    (dict(data=np.zeros((7, 2), np.float32)), ["sum(batch_sizes)", "(7, 2)"]),
    (dict(batch_sizes=np.array([2, 3, 0])), ["batch_sizes", "non-increasing"]),
    (dict(sorted_indices=np.array([0, 5])), ["sorted_indices", "[0, 5]"]),
    (dict(unsorted_indices=np.array([0, 0])), ["unsorted_indices"]),
    (dict(lengths=[1, 2]), ["unknown field", "lengths"]),
])
def test_packed_replace_is_checked(fields, words):
    p = minirnn.pack_sequence([np.zeros((3, 2), np.float32), np.zeros((2, 2), np.float32)])
    msg = _message(lambda: p._replace(**fields), ValueError)
    for w in words:
        assert w in msg, (w, msg)


def test_packed_replace_keeps_working():
    p = minirnn.pack_sequence([np.zeros((2, 2), np.float32), np.ones((3, 2), np.float32)],
                              enforce_sorted=False)
    q = p._replace(data=p.data * 2)
    np.testing.assert_array_equal(q.data, p.data * 2)
    np.testing.assert_array_equal(q.unsorted_indices, p.unsorted_indices)
    r = p._replace(sorted_indices=np.array([0, 1]))          # unsorted_indices follows
    np.testing.assert_array_equal(r.unsorted_indices, [0, 1])
    assert type(minirnn.PackedSequence._make(tuple(p))) is minirnn.PackedSequence

"""Bad input: a clear ValueError/TypeError naming the argument, what was received and
what was expected, raised before any computation."""
import warnings

import numpy as np
import pytest

import minirnn
from helpers import MODES, make_cell, make_module

F32 = np.float32


def x3(*shape):
    return np.zeros(shape, F32)


# ---------------------------------------------------------------- construction
@pytest.mark.parametrize("cls", [minirnn.RNN, minirnn.GRU, minirnn.LSTM,
                                 minirnn.RNNCell, minirnn.GRUCell, minirnn.LSTMCell])
@pytest.mark.parametrize("arg,value,exc,msg", [
    ("input_size", 0, ValueError, "input_size must be greater than zero, got 0"),
    ("input_size", 4.0, TypeError, "input_size should be of type int, got: float"),
    ("hidden_size", -1, ValueError, "hidden_size must be greater than zero, got -1"),
    ("hidden_size", True, TypeError, "hidden_size should be of type int, got: bool"),
])
def test_bad_sizes(cls, arg, value, exc, msg):
    kwargs = dict(input_size=4, hidden_size=6)
    kwargs[arg] = value
    with pytest.raises(exc, match=msg):
        cls(**kwargs)


@pytest.mark.parametrize("mode", MODES)
def test_bad_module_arguments(mode):
    with pytest.raises(ValueError, match="num_layers must be greater than zero, got 0"):
        make_module(mode, 4, 6, 0)
    with pytest.raises(TypeError, match="num_layers should be of type int, got: float"):
        make_module(mode, 4, 6, 2.0)
    with pytest.raises(TypeError, match="bias should be of type bool, got: int"):
        make_module(mode, 4, 6, bias=1)
    with pytest.raises(TypeError, match="batch_first should be of type bool, got: int"):
        make_module(mode, 4, 6, batch_first=1)
    with pytest.raises(TypeError, match="bidirectional should be of type bool, got: str"):
        make_module(mode, 4, 6, bidirectional="yes")
    with pytest.raises(ValueError, match=r"dropout should be a number in range \[0, 1\].*got 1.5"):
        make_module(mode, 4, 6, 2, dropout=1.5)
    with pytest.raises(ValueError, match="dropout should be a number"):
        make_module(mode, 4, 6, 2, dropout=True)
    with pytest.raises(TypeError, match="dtype must be numpy.float32 or numpy.float64, got int64"):
        make_module(mode, 4, 6, dtype=np.int64)
    with pytest.raises(TypeError, match="dtype must be numpy.float32 or numpy.float64, got float16"):
        make_module(mode, 4, 6, dtype=np.float16)
    with pytest.raises(ValueError, match=r"backend must be one of .* got 'cuda'"):
        make_module(mode, 4, 6, backend="cuda")


@pytest.mark.parametrize("mode", MODES)
def test_dropout_single_layer_warning(mode):
    with pytest.warns(UserWarning, match="non-zero dropout expects num_layers greater than 1, but "
                                         "got dropout=0.5 and num_layers=1"):
        single = make_module(mode, 4, 6, 1, dropout=0.5, seed=0)
    # a single layer has no "between layers": dropout changes nothing, even in training
    x = x3(5, 3, 4) + 1
    np.testing.assert_array_equal(single(x)[0], make_module(mode, 4, 6, 1, seed=0)(x)[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_module(mode, 4, 6, 1, dropout=0.0)
        make_module(mode, 4, 6, 2, dropout=0.5)
    with pytest.raises(ValueError, match=r"dropout should be a number in range \[0, 1\].*got -0.1"):
        make_module(mode, 4, 6, 2, dropout=-0.1)
    with pytest.raises(ValueError, match="dropout should be a number"):
        make_module(mode, 4, 6, 2, dropout="0.5")


def test_proj_size():
    with pytest.raises(ValueError, match="proj_size argument is only supported for LSTM, not RNN or GRU"):
        minirnn.GRU(4, 6, proj_size=0)
    with pytest.raises(ValueError, match="proj_size argument is only supported for LSTM"):
        minirnn.RNN(4, 6, proj_size=2)
    with pytest.raises(ValueError, match="proj_size should be a positive integer or zero"):
        minirnn.LSTM(4, 6, proj_size=-1)
    with pytest.raises(ValueError, match="proj_size should be a positive integer or zero"):
        minirnn.LSTM(4, 6, proj_size=2.0)
    with pytest.raises(ValueError, match="proj_size has to be smaller than hidden_size"):
        minirnn.LSTM(4, 6, proj_size=6)
    with pytest.raises(TypeError):
        minirnn.LSTMCell(4, 6, proj_size=2)              # as PyTorch: cells have no proj_size
    assert minirnn.LSTM(4, 6, proj_size=0).proj_size == 0
    assert minirnn.LSTM(4, 6, proj_size=3).proj_size == 3


def test_proj_state_shapes_are_checked():
    """With proj_size P, h0 is P wide and c0 H wide; the other way round is an error."""
    m = minirnn.LSTM(4, 6, proj_size=2, seed=0)
    x = x3(5, 3, 4)
    h0, c0 = x3(1, 3, 2), x3(1, 3, 6)
    m(x, (h0, c0))
    with pytest.raises(ValueError, match=r"Expected h0 of shape \(1, 3, 2\), got \(1, 3, 6\)"):
        m(x, (c0, c0))
    with pytest.raises(ValueError, match=r"Expected c0 of shape \(1, 3, 6\), got \(1, 3, 2\)"):
        m(x, (h0, h0))
    out, (h_n, c_n) = m(x)
    with pytest.raises(ValueError, match=r"Expected grad_c_n of shape \(1, 3, 6\), got \(1, 3, 2\)"):
        m.backward(out, (h_n, h_n))
    with pytest.raises(ValueError, match=r"Expected grad_h_n of shape \(1, 3, 2\), got \(1, 3, 6\)"):
        m.backward(out, (c_n, c_n))
    m.backward(out, (h_n, c_n))


@pytest.mark.parametrize("cls", [minirnn.RNN, minirnn.RNNCell])
def test_unknown_nonlinearity(cls):
    with pytest.raises(ValueError, match="Unknown nonlinearity 'sigmoid'. Select from 'tanh' or 'relu'."):
        cls(4, 6, nonlinearity="sigmoid")


# ---------------------------------------------------------------- module forward
@pytest.mark.parametrize("mode", MODES)
def test_bad_input(mode):
    m = make_module(mode, 4, 6, 2)
    name = "RNN" if mode.startswith("RNN") else mode
    with pytest.raises(ValueError, match=rf"{name}: Expected input to be 2-D \(L, H_in\) or 3-D "
                                         r"\(L, N, H_in\), got 1-D array of shape \(5,\)"):
        m(x3(5))
    with pytest.raises(ValueError, match="got 4-D array"):
        m(x3(5, 3, 4, 1))
    with pytest.raises(ValueError, match=r"input.shape\[-1\] must be equal to input_size. Expected 4, got 5"):
        m(x3(5, 3, 5))
    with pytest.raises(TypeError, match=r"input dtype \(float64\) does not match the module's dtype "
                                        r"\(float32\).*astype\(numpy.float32\).*dtype=numpy.float64"):
        m(np.zeros((5, 3, 4)))
    with pytest.raises(TypeError, match=r"input dtype \(int64\)"):
        m(np.zeros((5, 3, 4), np.int64))
    with pytest.raises(TypeError, match="input must be a numpy.ndarray, got list"):
        m([[[0.0] * 4]])
    with pytest.raises(ValueError, match="Expected sequence length to be larger than 0"):
        m(x3(0, 3, 4))
    bf = make_module(mode, 4, 6, batch_first=True)
    with pytest.raises(ValueError, match=r"or 3-D \(N, L, H_in\)"):
        bf(x3(5))


@pytest.mark.parametrize("mode", ["RNN_TANH", "GRU"])
def test_bad_h0(mode):
    m = make_module(mode, 4, 6, 2)
    x = x3(5, 3, 4)
    with pytest.raises(ValueError, match=r"Expected h0 of shape \(2, 3, 6\), got \(3, 3, 6\)"):
        m(x, x3(3, 3, 6))
    with pytest.raises(ValueError, match=r"Expected h0 of shape \(2, 3, 6\), got \(2, 2, 6\)"):
        m(x, x3(2, 2, 6))                                         # batch mismatch
    with pytest.raises(ValueError, match=r"Expected h0 of shape \(2, 3, 6\), got \(2, 3, 5\)"):
        m(x, x3(2, 3, 5))
    with pytest.raises(ValueError, match="For batched 3-D input, h0 should also be 3-D .* got 2-D"):
        m(x, x3(2, 6))
    with pytest.raises(ValueError, match="For unbatched 2-D input, h0 should also be 2-D .* got 3-D"):
        m(x3(5, 4), x3(2, 1, 6))
    with pytest.raises(ValueError, match=r"Expected h0 of shape \(2, 6\), got \(2, 5\)"):
        m(x3(5, 4), x3(2, 5))
    with pytest.raises(TypeError, match=r"h0 dtype \(float64\) does not match the module's dtype \(float32\)"):
        m(x, np.zeros((2, 3, 6)))
    with pytest.raises(TypeError, match="hx must be an array h0 or None, got a tuple"):
        m(x, (x3(2, 3, 6), x3(2, 3, 6)))


def test_bad_lstm_state():
    m = minirnn.LSTM(4, 6, 2)
    x, h = x3(5, 3, 4), x3(2, 3, 6)
    with pytest.raises(TypeError, match=r"LSTM: hx must be a tuple \(h0, c0\).*got ndarray"):
        m(x, h)
    with pytest.raises(ValueError, match="hx must be a tuple of two states"):
        m(x, (h, h, h))
    with pytest.raises(ValueError, match=r"Expected c0 of shape \(2, 3, 6\), got \(2, 3, 5\)"):
        m(x, (h, x3(2, 3, 5)))
    with pytest.raises(ValueError, match=r"Expected h0 of shape \(2, 3, 6\), got \(2, 4, 6\)"):
        m(x, (x3(2, 4, 6), h))
    with pytest.raises(TypeError, match=r"c0 dtype \(float64\)"):
        m(x, (h, np.zeros((2, 3, 6))))


@pytest.mark.parametrize("mode", MODES)
def test_bad_backward_grads(mode):
    m = make_module(mode, 4, 6, 2, batch_first=True)
    m(x3(3, 5, 4))
    lstm = mode == "LSTM"
    with pytest.raises(ValueError, match=r"Expected grad_output of shape \(3, 5, 6\), got \(5, 3, 6\)"):
        m.backward(x3(5, 3, 6))
    with pytest.raises(TypeError, match=r"grad_output dtype \(float64\) does not match"):
        m.backward(np.zeros((3, 5, 6)))
    with pytest.raises(ValueError, match=r"Expected grad_h_n of shape \(2, 3, 6\), got \(2, 3, 5\)"):
        m.backward(None, (x3(2, 3, 5), None) if lstm else x3(2, 3, 5))
    if lstm:
        with pytest.raises(ValueError, match=r"Expected grad_c_n of shape \(2, 3, 6\), got \(1, 3, 6\)"):
            m.backward(None, (None, x3(1, 3, 6)))
        with pytest.raises(TypeError, match=r"grad_state must be a tuple \(grad_h_n, grad_c_n\)"):
            m.backward(None, x3(2, 3, 6))
        with pytest.raises(ValueError, match=r"grad_state must be a tuple of two states .* got 3"):
            m.backward(None, (None, None, None))
    else:
        with pytest.raises(TypeError, match="grad_state must be an array grad_h_n or None, got a tuple"):
            m.backward(None, (x3(2, 3, 6),))
    assert m.tape_size == 1


# ---------------------------------------------------------------- cells
@pytest.mark.parametrize("mode", MODES)
def test_bad_cell_input(mode):
    c = make_cell(mode, 4, 6)
    name = {"RNN_TANH": "RNNCell", "RNN_RELU": "RNNCell"}.get(mode, mode + "Cell")
    with pytest.raises(ValueError, match=rf"{name}: Expected input to be 1-D \(H_in,\) or 2-D \(N, H_in\), got 3-D"):
        c(x3(1, 3, 4))
    with pytest.raises(ValueError, match=rf"{name}: Expected input to be 1-D .* got 0-D"):
        c(np.zeros((), F32))
    with pytest.raises(ValueError, match=r"input.shape\[-1\] must be equal to input_size. Expected 4, got 5"):
        c(x3(3, 5))
    with pytest.raises(TypeError, match=r"input dtype \(float64\) does not match"):
        c(np.zeros((3, 4)))
    state = lambda s: (s, None) if mode == "LSTM" else s          # noqa: E731
    label = "h"
    with pytest.raises(ValueError, match=rf"Expected {label} of shape \(3, 6\) for input of batch 3, got \(2, 6\)"):
        c(x3(3, 4), state(x3(2, 6)))
    with pytest.raises(ValueError, match=rf"Expected {label} of shape \(6,\) for input of unbatched shape, got \(1, 6\)"):
        c(x3(4), state(x3(1, 6)))
    with pytest.raises(ValueError, match=rf"Expected {label} to be 1-D \(H,\) or 2-D \(N, H\), got 3-D"):
        c(x3(3, 4), state(x3(1, 3, 6)))
    if mode == "LSTM":
        with pytest.raises(TypeError, match=r"LSTMCell: hx must be a tuple \(h, c\)"):
            c(x3(3, 4), x3(3, 6))
        with pytest.raises(ValueError, match=r"LSTMCell: hx must be a tuple of two states \(h, c\), got 1"):
            c(x3(3, 4), (x3(3, 6),))
        with pytest.raises(ValueError, match=r"Expected c of shape \(3, 6\) for input of batch 3, got \(3, 5\)"):
            c(x3(3, 4), (None, x3(3, 5)))
    else:
        with pytest.raises(TypeError, match="only LSTMCell takes a tuple"):
            c(x3(3, 4), (x3(3, 6), x3(3, 6)))


@pytest.mark.parametrize("mode", MODES)
def test_bad_cell_backward(mode):
    c = make_cell(mode, 4, 6)
    with pytest.raises(RuntimeError, match="nothing to backpropagate"):
        c.backward(None)
    c(x3(3, 4))
    lstm = mode == "LSTM"
    with pytest.raises(ValueError, match=r"Expected grad_h of shape \(3, 6\), got \(6,\)"):
        c.backward((x3(6), None) if lstm else x3(6))
    if lstm:
        with pytest.raises(TypeError, match=r"grad must be a tuple \(grad_h, grad_c\)"):
            c.backward(x3(3, 6))
        with pytest.raises(ValueError, match=r"grad must be a tuple of two states .* got 3"):
            c.backward((None, None, None))
    assert c.tape_size == 1

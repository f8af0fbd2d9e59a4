"""Sizes that would need absurd memory are refused before anything is allocated, with a
ValueError naming the arguments and the bytes; the bound is exact (a model that fits builds)."""
import time

import numpy as np
import pytest

import minirnn
from minirnn import _validation


@pytest.mark.parametrize("make, words", [
    (lambda: minirnn.RNN(10, 2**31), ["RNN", "hidden_size=2147483648", "bytes"]),
    (lambda: minirnn.GRU(10**12, 4), ["GRU", "input_size=1000000000000", "bytes"]),
    (lambda: minirnn.LSTM(2**14, 2**20), ["LSTM", "hidden_size=1048576", "input_size=16384"]),
    (lambda: minirnn.LSTMCell(4, 2**31), ["LSTMCell", "hidden_size=2147483648", "bytes"]),
    (lambda: minirnn.GRUCell(2**40, 1), ["GRUCell", "input_size=1099511627776"]),
    (lambda: minirnn.RNN(4, 4, num_layers=2**31), ["RNN", "num_layers=2147483648", "bytes"]),
    (lambda: minirnn.LSTM(4, 2**30, proj_size=2, dtype=np.float64), ["hidden_size", "float64"]),
])
def test_absurd_sizes_are_refused_before_allocation(make, words):
    t0 = time.perf_counter()
    with pytest.raises(ValueError) as e:
        make()
    assert time.perf_counter() - t0 < 5, "the check ran after (part of) the allocation"
    for w in words:
        assert w in str(e.value), (w, str(e.value))


CONFIGS = [
    (minirnn.RNN, dict(num_layers=3, bidirectional=True)),
    (minirnn.GRU, dict(num_layers=2, bias=False)),
    (minirnn.LSTM, dict(num_layers=2, bidirectional=True, proj_size=3)),
    (minirnn.LSTM, dict(num_layers=2, peephole=True, backend="numpy")),
    (minirnn.LSTM, dict(dtype=np.float64)),
]


@pytest.mark.parametrize("cls, kwargs", CONFIGS)
def test_the_bound_is_exact(cls, kwargs, monkeypatch):
    m = cls(5, 7, **kwargs)
    need = 2 * sum(p.nbytes for p in m.parameters())      # parameters + gradients
    monkeypatch.setattr(_validation, "MAX_PARAMETER_BYTES", need)
    cls(5, 7, **kwargs)
    monkeypatch.setattr(_validation, "MAX_PARAMETER_BYTES", need - 1)
    with pytest.raises(ValueError, match=f"{need} bytes"):
        cls(5, 7, **kwargs)


@pytest.mark.parametrize("cls, kwargs", [
    (minirnn.RNNCell, {}), (minirnn.GRUCell, dict(bias=False)),
    (minirnn.LSTMCell, dict(peephole=True, backend="numpy"))])
def test_the_bound_is_exact_for_cells(cls, kwargs, monkeypatch):
    c = cls(5, 7, **kwargs)
    need = 2 * sum(p.nbytes for p in c.parameters())
    monkeypatch.setattr(_validation, "MAX_PARAMETER_BYTES", need)
    cls(5, 7, **kwargs)
    monkeypatch.setattr(_validation, "MAX_PARAMETER_BYTES", need - 1)
    with pytest.raises(ValueError, match=f"{need} bytes"):
        cls(5, 7, **kwargs)

"""Activations shared by the NumPy reference path.

Derivatives are always written with the *saved output* of the activation
(``dtanh = 1 - y*y``, ``dsigmoid = y*(1 - y)``), exactly as the C kernels do,
so they are not defined here.
"""
import numpy as np


def sigmoid(x):
    """sigma(x) = 1 / (1 + exp(-x)).

    ``exp(-x)`` overflows to ``inf`` for very negative ``x``; ``1 / inf`` is the
    correct limit 0, so the overflow warning is silenced rather than avoided.
    """
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


def tanh(x):
    """tanh(x), NumPy's own."""
    return np.tanh(x)


def relu(x):
    """relu(x) = max(x, 0). Its derivative at 0 is taken as 0, as in PyTorch."""
    return np.maximum(x, 0)

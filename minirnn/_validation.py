"""Argument checks. Every check a user can trigger runs here, in Python,
before any computation starts; messages name the argument, what was received
and what was expected."""
import numbers

import numpy as np

#: the dtypes a module can hold
DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_size(name, value, *, allow_zero=False):
    """An int (not a bool) greater than zero (or >= 0 with ``allow_zero``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} should be of type int, got: {type(value).__name__}")
    value = int(value)
    if value < 0 or (value == 0 and not allow_zero):
        bound = "greater than or equal to zero" if allow_zero else "greater than zero"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return value


def check_bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} should be of type bool, got: {type(value).__name__}")
    return bool(value)


def check_dtype(dtype):
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be numpy.float32 or numpy.float64, got {dtype!r}") from None
    if dt not in DTYPES:
        raise TypeError(f"dtype must be numpy.float32 or numpy.float64, got {dt}")
    return dt


def check_dropout(dropout):
    if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) or not 0 <= dropout <= 1:
        raise ValueError(
            "dropout should be a number in range [0, 1] representing the probability of an "
            f"element being zeroed, got {dropout!r}")
    return float(dropout)


def check_array(owner, name, x, dtype):
    """``x`` must be a NumPy array of exactly the module's dtype (no silent casts)."""
    if not isinstance(x, np.ndarray):
        raise TypeError(
            f"{owner}: {name} must be a numpy.ndarray, got {type(x).__name__}; "
            f"convert it with numpy.asarray({name}, dtype=numpy.{dtype})")
    if x.dtype != dtype:
        raise TypeError(
            f"{owner}: {name} dtype ({x.dtype}) does not match the module's dtype ({dtype}). "
            f"Convert the {name}: {name}.astype(numpy.{dtype}), or build the module with "
            f"dtype=numpy.{x.dtype}")
    return x


def check_shape(owner, name, x, expected):
    if x.shape != tuple(expected):
        raise ValueError(f"{owner}: Expected {name} of shape {tuple(expected)}, got {x.shape}")
    return x

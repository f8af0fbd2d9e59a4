"""Argument checks. Every check a user can trigger runs here, in Python,
before any computation starts; messages name the argument, what was received
and what was expected."""
import numbers
import os

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


#: the most bytes a module's parameters and their gradients may take: far more than any RNN
#: trained on a CPU (2**32 float32 numbers, each with its gradient), and a clear ValueError,
#: before any allocation, for a size typed with one digit too many. A program that means it
#: can raise it (``minirnn._validation.MAX_PARAMETER_BYTES = ...``). The available physical
#: memory, where the OS tells it, is a second bound.
MAX_PARAMETER_BYTES = 2 ** 35


def _physical_memory():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _human(n):
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if n < 1024 or unit == "EiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024


def check_parameter_bytes(owner, sizes, count, dtype):
    """Refuse, before allocating, a model whose ``count`` parameters of ``dtype`` (and as many
    gradients) would need more than MAX_PARAMETER_BYTES or the physical memory. ``sizes``:
    the (argument, value) pairs that decide ``count``, named in the message, largest first."""
    need = 2 * count * np.dtype(dtype).itemsize
    limit, what = MAX_PARAMETER_BYTES, "minirnn's limit MAX_PARAMETER_BYTES"
    phys = _physical_memory()
    if phys is not None and phys < limit:
        limit, what = phys, "this machine's physical memory"
    if need <= limit:
        return
    args = ", ".join(f"{k}={v}" for k, v in sorted(sizes, key=lambda kv: -kv[1]))
    raise ValueError(f"{owner}: {args}: the parameters and their gradients would need "
                     f"{_human(need)} ({need} bytes, {count} {np.dtype(dtype).name} parameters), "
                     f"more than {what} ({_human(limit)}); check these sizes")


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
    return canonical_dtype(dt)


def canonical_dtype(dt):
    """NumPy's own instance of the dtype ``dt`` (float32 or float64), the one every new array
    of that dtype carries: the short paths compare dtypes by identity (``a.dtype is
    m.dtype``), and a copied or unpickled dtype is an equal but other object."""
    return np.dtype(dt.type)


def check_dropout(dropout):
    if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) or not 0 <= dropout <= 1:
        raise ValueError(
            "dropout should be a number in range [0, 1] representing the probability of an "
            f"element being zeroed, got {dropout!r}")
    return float(dropout)


def check_array(owner, name, x, dtype):
    """``x`` must be a NumPy array of exactly the module's dtype (no silent casts)."""
    if not isinstance(x, np.ndarray):
        if hasattr(x, "batch_sizes") and hasattr(x, "data"):
            kind = "minirnn" if type(x).__module__.startswith("minirnn") else \
                f"a {type(x).__module__}"
            raise TypeError(
                f"{owner}: {name} must be a numpy.ndarray, got {kind} {type(x).__name__}; "
                "packed sequences are input of RNN/GRU/LSTM (a cell takes one time step, "
                "(N, H_in)); convert one of another library with minirnn.PackedSequence("
                "numpy.asarray(p.data), numpy.asarray(p.batch_sizes), ...)")
        raise TypeError(
            f"{owner}: {name} must be a numpy.ndarray, got {type(x).__name__}; "
            f"convert it with numpy.asarray({name}, dtype=numpy.{dtype})")
    if isinstance(x, np.ma.MaskedArray):
        raise TypeError(
            f"{owner}: {name} must be a plain numpy.ndarray, got a numpy.ma.MaskedArray (its "
            f"mask would be ignored); fill it ({name}.filled(0)) or give the lengths with "
            "minirnn.pack_padded_sequence")
    if isinstance(x, np.matrix):
        raise TypeError(
            f"{owner}: {name} must be a plain numpy.ndarray, got numpy.matrix (always 2-D); "
            f"convert it with numpy.asarray({name})")
    if x.dtype != dtype:
        hint = (f"or build the module with dtype=numpy.{x.dtype}" if x.dtype in DTYPES else
                "minirnn computes in float32 or float64 only")
        raise TypeError(
            f"{owner}: {name} dtype ({x.dtype}) does not match the module's dtype ({dtype}). "
            f"Convert the {name}: {name}.astype(numpy.{dtype}); {hint}")
    return x


def check_shape(owner, name, x, expected):
    if x.shape != tuple(expected):
        raise ValueError(f"{owner}: Expected {name} of shape {tuple(expected)}, got {x.shape}")
    return x

"""The compiled kernels, :mod:`minirnn._kernels`, when they are built, and what to say when not.

minirnn works without them: the NumPy path (``backend="numpy"``) needs only NumPy. When the
extension cannot be imported (a source checkout that was not built, or an install on a machine
without a C compiler), ``import minirnn`` warns once (:class:`KernelsNotBuiltWarning`), the
modules' default backend is ``"numpy"``, and ``backend="c"`` raises an ImportError that says
why and how to build the kernels.
"""
from __future__ import annotations

import warnings
from types import ModuleType
from typing import Optional

kernels: Optional[ModuleType] = None
IMPORT_ERROR: Optional[ImportError] = None
try:
    from . import _kernels
    kernels = _kernels
except ImportError as e:           # not built, or built for another Python
    IMPORT_ERROR = e

HOW_TO_BUILD = (
    "To build them you need a C compiler (Linux: gcc, e.g. `apt install build-essential` or "
    "`dnf install gcc`; macOS: `xcode-select --install`, and `brew install libomp` for "
    "threads), then reinstall: `python -m pip install .` from a source checkout (or "
    "`python -m pip install --force-reinstall --no-binary minirnn minirnn`); in a checkout "
    "used in place, `python setup.py build_ext --inplace`."
)


class KernelsNotBuiltWarning(UserWarning):
    """``import minirnn`` found no compiled kernels: everything runs on the NumPy path."""


def missing_reason() -> str:
    """Why the kernels are missing (the import error), as one sentence."""
    return f"the compiled kernels (minirnn._kernels) could not be imported ({IMPORT_ERROR})"


def missing_error(what: str = "backend='c'") -> ImportError:
    """The error ``backend="c"`` raises when the kernels are missing."""
    return ImportError(f"{what} needs the compiled kernels, but {missing_reason()}. "
                       f"{HOW_TO_BUILD} Or use backend='numpy' (the same results, slower).")


def warn_if_missing() -> None:
    """The warning ``import minirnn`` gives when the kernels are missing (else nothing)."""
    if kernels is None:
        warnings.warn(f"minirnn: {missing_reason()}; minirnn runs on the pure-NumPy path "
                      f"(backend='numpy', the default now): the same results, slower. "
                      f"{HOW_TO_BUILD}", KernelsNotBuiltWarning, stacklevel=3)


# What minirnn's thread and build functions answer without the kernels: the NumPy path runs
# in the calling thread (NumPy's BLAS may use threads of its own, which minirnn does not set).
def openmp_enabled() -> bool:
    """Whether the compiled kernels were built with OpenMP (False: serial, or not built)."""
    return bool(kernels.openmp_enabled()) if kernels is not None else False


def get_num_threads() -> int:
    """The number of threads the compiled kernels use (1 when they are not built)."""
    return int(kernels.get_num_threads()) if kernels is not None else 1


def set_num_threads(n: int) -> None:
    """Use ``n`` threads in the compiled kernels from now on (1 <= n; results do not depend on
    it). Without the kernels the value is checked and has no effect: the NumPy path runs in
    the calling thread."""
    if kernels is not None:
        kernels.set_num_threads(n)
        return
    import numbers
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"num_threads must be an int, got {type(n).__name__}")
    if int(n) < 1:
        raise ValueError(f"num_threads must be at least 1, got {int(n)}")

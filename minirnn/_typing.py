"""Names of the types in minirnn's public signatures (for type checkers and readers).

Every array minirnn computes with is a float32 or float64 ``numpy.ndarray``; the
indices of packed sequences are int64 vectors. The aliases are real objects, so
``typing.get_type_hints`` resolves every public signature (on Python 3.9 too: the
signatures spell ``Optional``/``Union``, never ``X | None``); the modules read their
annotations as strings (``from __future__ import annotations``), which costs nothing at
import.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

__all__ = ["FloatArray", "IntArray", "IntVector", "Seed", "DType", "StatePair",
           "StateIn", "Tape", "CellStep", "CellGrads",
           "ArrayLike"]            # ArrayLike: numpy.typing's (lists, scalars, arrays)

#: a float32 or float64 array: inputs, states, outputs, gradients, parameters
FloatArray = NDArray[np.floating]
#: an int64 vector: batch_sizes, sorted_indices, lengths
IntArray = NDArray[np.int64]
#: lengths or indices as the caller gives them: an integer array or a list of ints
IntVector = Union[NDArray[np.integer], Sequence[int]]
#: what ``numpy.random.default_rng`` takes: None, an int (or ints), a SeedSequence, a
#: BitGenerator or a Generator (whose stream is then used as it is)
Seed = Union[None, int, Sequence[int], np.random.SeedSequence, np.random.BitGenerator,
             np.random.Generator]
#: ``numpy.float32`` or ``numpy.float64`` (anything ``numpy.dtype`` turns into one of them)
DType = DTypeLike
#: an LSTM's state ``(h, c)`` or its gradient
StatePair = Tuple[FloatArray, FloatArray]
#: an initial state or incoming state gradient as a caller may give it: an array (RNN, GRU),
#: a pair ``(h, c)`` whose members may be None (LSTM), or None (zeros)
StateIn = Union[FloatArray, Tuple[Optional[FloatArray], Optional[FloatArray]],
                List[Optional[FloatArray]], None]
#: what a forward keeps for its backward (its keys are the backend's business)
Tape = Dict[str, Any]
#: a cell's pointwise forward returns ``(h, c or None, saved)`` (see minirnn.cells)
CellStep = Tuple[FloatArray, Optional[FloatArray], Tuple[Any, ...]]
#: and its backward ``(dgx, dgh, dh_prev direct path or None, dc_prev or None, dp or None)``
CellGrads = Tuple[FloatArray, FloatArray, Optional[FloatArray], Optional[FloatArray],
                  Optional[FloatArray]]

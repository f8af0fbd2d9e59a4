"""Variable-length batches: ``PackedSequence`` and the functions that make and undo it.

Why the final state of a padded batch is not ``output[:, -1]`` (the question this answers):
padding a short sequence to the batch's length feeds the network extra steps, and the
state keeps changing through them. A *packed* batch tells the network each sequence's
length, so each one runs exactly its own steps, as if alone:

    output at padded positions  -> nothing (``pad_packed_sequence`` writes padding_value)
    h_n, c_n                    -> each sequence's own last valid step
    the reverse direction       -> starts at each sequence's own last valid step, from h0

The layout is PyTorch's (``torch.nn.utils.rnn``), field for field:

    data              (sum(lengths), *)  the valid steps, time-major over the batch sorted
                      by decreasing length: all sequences' step 0, then step 1 of those
                      longer than 1, ...
    batch_sizes       (max(lengths),) int64: batch_sizes[t] = how many sequences have a
                      step t (non-increasing; batch_sizes[0] = the batch)
    sorted_indices    (B,) int64: sorted position k holds the caller's sequence
                      sorted_indices[k]; None when the caller gave them sorted
    unsorted_indices  (B,) int64: its inverse (caller's b is at sorted position
                      unsorted_indices[b]); None with sorted_indices

Example (PyTorch's documentation): three sequences of lengths 2, 1, 3, batch-first
``[[1, 2, 0], [3, 0, 0], [4, 5, 6]]`` pack to ``data = [4, 1, 3, 5, 2, 6]``,
``batch_sizes = [3, 2, 1]``, ``sorted_indices = [2, 0, 1]``, ``unsorted_indices = [1, 2, 0]``.

Empty sequences (``allow_empty=True``; PyTorch refuses them): a sequence of length 0 has no
step, so nothing in ``data`` or ``batch_sizes`` counts it, and ``batch_sizes[0]`` is no longer
the batch. Such a PackedSequence therefore **always** carries ``sorted_indices`` (the identity
when the caller's order was already sorted): the batch is ``len(sorted_indices)``
(:attr:`PackedSequence.batch_size`), the empty sequences sort last (sorted positions
``batch_sizes[0]`` to ``B - 1``), and a batch of only empty sequences has
``batch_sizes = []`` and ``data`` of shape ``(0, *)``. Modules give an empty sequence
``h_n = h0`` (``c_n = c0``) and no output rows; its backward passes ``grad_h_n`` to ``grad_h0``.

Stricter than PyTorch where PyTorch is unsafe: a length larger than the padded input, a
length <= 0, lengths out of order with ``enforce_sorted=True``, and a ``PackedSequence``
whose fields disagree are each a ``ValueError`` naming what was received and expected.
Ties in length keep the caller's order (a stable sort); PyTorch's sort does not promise
that for batches of 17 or more, so compare such batches after unpacking.
"""
from __future__ import annotations

import numbers
from collections import namedtuple
from typing import Any, Iterable, List, Optional, Sequence, Tuple, Type, TypeVar

import numpy as np

from ._typing import FloatArray, IntArray, IntVector

__all__ = ["PackedSequence", "pack_padded_sequence", "pad_packed_sequence", "pack_sequence",
           "pad_sequence", "unpack_sequence", "unpad_sequence"]


def _int_vector(name: str, value: Any) -> IntArray:
    """A 1-D int64 copy of ``value`` (a list of ints or an integer array)."""
    a = np.asarray(value)
    if a.dtype == bool or not (np.issubdtype(a.dtype, np.integer) or a.size == 0):
        raise TypeError(f"{name} must hold integers, got dtype {a.dtype} ({value!r})")
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got {a.ndim}-D with shape {a.shape}")
    return a.astype(np.int64)


def _check_permutation(name: str, p: IntArray, B: int) -> None:
    if p.shape != (B,) or not np.array_equal(np.sort(p), np.arange(B)):
        raise ValueError(f"PackedSequence: {name} must be a permutation of 0..{B - 1} "
                         f"(batch_sizes[0] = {B}), got {p.tolist()}")


_P = TypeVar("_P", bound="PackedSequence")

# named PackedSequence (not _Fields) for PyTorch's repr
_Fields = namedtuple("PackedSequence",  # type: ignore[name-match]
                     ["data", "batch_sizes", "sorted_indices", "unsorted_indices"])


class PackedSequence(_Fields):
    """A batch of sequences of different lengths, packed (see the module docstring).

    Made by :func:`pack_padded_sequence` or :func:`pack_sequence`; accepted by
    ``RNN/GRU/LSTM`` as input, which then return their output packed the same way.
    A tuple of its four fields, like PyTorch's; building one by hand checks that they agree.
    """
    __slots__ = ()

    # the fields, as the checks below leave them (collections.namedtuple types them Any)
    data: FloatArray
    batch_sizes: IntArray
    sorted_indices: Optional[IntArray]
    unsorted_indices: Optional[IntArray]

    def __new__(cls, data: FloatArray, batch_sizes: IntVector,
                sorted_indices: Optional[IntVector] = None,
                unsorted_indices: Optional[IntVector] = None) -> PackedSequence:
        if not isinstance(data, np.ndarray):
            raise TypeError(f"PackedSequence: data must be a numpy.ndarray, got "
                            f"{type(data).__name__}")
        bs = _int_vector("PackedSequence: batch_sizes", batch_sizes)
        if (bs.size == 0 and sorted_indices is None) or (bs.size and bs[-1] < 1) or np.any(
                bs[1:] > bs[:-1]):
            raise ValueError("PackedSequence: batch_sizes must be non-empty, non-increasing "
                             f"and >= 1, got {bs.tolist()} (empty only with sorted_indices, "
                             "for a batch of empty sequences)")
        if data.ndim < 1 or data.shape[0] != bs.sum():
            raise ValueError(f"PackedSequence: data must have sum(batch_sizes) = {bs.sum()} "
                             f"rows, got shape {data.shape}")
        if sorted_indices is None and unsorted_indices is not None:
            raise ValueError("PackedSequence: unsorted_indices given without sorted_indices")
        if sorted_indices is not None:
            sorted_indices = _int_vector("PackedSequence: sorted_indices", sorted_indices)
            # the batch: len(sorted_indices), which may exceed batch_sizes[0] (empty sequences)
            B = len(sorted_indices)
            if bs.size and B < bs[0]:
                raise ValueError(f"PackedSequence: sorted_indices must have at least "
                                 f"batch_sizes[0] = {bs[0]} entries, got {B}")
            _check_permutation("sorted_indices", sorted_indices, B)
            inverse = np.empty_like(sorted_indices)
            inverse[sorted_indices] = np.arange(B)
            if unsorted_indices is None:
                unsorted_indices = inverse
            else:
                unsorted_indices = _int_vector("PackedSequence: unsorted_indices",
                                               unsorted_indices)
                if not np.array_equal(unsorted_indices, inverse):
                    raise ValueError("PackedSequence: unsorted_indices must be the inverse "
                                     f"permutation of sorted_indices {sorted_indices.tolist()}"
                                     f", i.e. {inverse.tolist()}, got "
                                     f"{unsorted_indices.tolist()}")
        return super().__new__(cls, data, bs, sorted_indices, unsorted_indices)

    def _replace(self: _P, **fields: Any) -> _P:
        """A copy with some fields replaced, checked like a new PackedSequence (replacing
        ``sorted_indices`` alone recomputes ``unsorted_indices``)."""
        unknown = sorted(set(fields) - set(self._fields))
        if unknown:
            raise ValueError(f"PackedSequence._replace: unknown field(s) {unknown}, expected "
                             f"some of {list(self._fields)}")
        if "sorted_indices" in fields and "unsorted_indices" not in fields:
            fields["unsorted_indices"] = None
        return type(self)(**{**self._asdict(), **fields})

    # mypy types a namedtuple's own _make over a type variable bound to the bare tuple and
    # reports every override of it as incompatible (mypy 2.4), whatever its signature
    @classmethod
    def _make(cls: Type[_P], iterable: Iterable[Any]) -> _P:  # type: ignore[override]
        """A PackedSequence from its four fields, checked."""
        return cls(*iterable)

    @property
    def batch_size(self) -> int:
        """The number of sequences: ``len(sorted_indices)`` when present (it counts the empty
        sequences too), else ``batch_sizes[0]``."""
        if self.sorted_indices is not None:
            return len(self.sorted_indices)
        return int(self.batch_sizes[0])

    @property
    def lengths(self) -> IntArray:
        """(B,) int64: each sequence's length, in the caller's (unsorted) order."""
        return _lengths(self.batch_sizes, self.batch_size)[
            self.unsorted_indices if self.unsorted_indices is not None else slice(None)]

    def __repr__(self) -> str:
        return (f"PackedSequence(data={self.data!r}, batch_sizes={self.batch_sizes!r}, "
                f"sorted_indices={self.sorted_indices!r}, "
                f"unsorted_indices={self.unsorted_indices!r})")


def _lengths(batch_sizes: IntArray, B: Optional[int] = None) -> IntArray:
    """The sorted lengths of ``B`` sequences (default ``batch_sizes[0]``): sequence k has a
    step t exactly when k < batch_sizes[t]."""
    B = int(batch_sizes[0]) if B is None else B
    return (batch_sizes[None, :] > np.arange(B)[:, None]).sum(axis=1).astype(np.int64)


def packed_rows(batch_sizes: IntVector, B: Optional[int] = None) -> IntArray:
    """Where each row of ``data`` goes in a time-major padded batch (T, B) of the sorted
    sequences, as flat indices ``t*B + k``: the step t rows are k = 0..batch_sizes[t]-1.
    ``padded.reshape(T*B, -1)[packed_rows(bs, B)]`` is ``data``; assigning to it unpacks.
    ``B`` defaults to ``batch_sizes[0]`` (pass the batch when it holds empty sequences)."""
    bs = np.asarray(batch_sizes, dtype=np.int64)
    B = (int(bs[0]) if bs.size else 0) if B is None else B
    starts = np.repeat(np.cumsum(bs) - bs, bs)            # where each step's rows begin
    return np.repeat(np.arange(len(bs)) * B, bs) + (np.arange(int(bs.sum())) - starts)


def padded_from_rows(data: FloatArray, rows: IntArray, T: int, B: int,
                     fill: float = 0.0) -> FloatArray:
    """Packed rows ``data`` (sum(lengths), *) laid out as a time-major ``(T, B, *)`` batch of
    the *sorted* sequences, ``fill`` elsewhere; ``rows`` = :func:`packed_rows` (T may exceed
    the longest length)."""
    out = np.full((T * B,) + data.shape[1:], fill, dtype=data.dtype)
    out[rows] = data
    return out.reshape((T, B) + data.shape[1:])


# --------------------------------------------------------------------------- packing

def pack_padded_sequence(input: FloatArray, lengths: IntVector, batch_first: bool = False,
                         enforce_sorted: bool = True, *,
                         allow_empty: bool = False) -> PackedSequence:
    """Pack a padded batch ``input``, ``(T, B, *)`` or, with ``batch_first``, ``(B, T, *)``,
    whose sequence b has ``lengths[b]`` valid steps (1 <= lengths[b] <= T).

    ``enforce_sorted=True`` requires the lengths non-increasing (the packed batch keeps the
    caller's order and has no indices); ``False`` sorts them (stably) and records the order
    in ``sorted_indices``/``unsorted_indices``. Steps past ``max(lengths)`` are dropped.
    ``allow_empty=True`` (keyword-only) accepts lengths of 0 (see the module docstring: the
    result then always has ``sorted_indices``).
    """
    if not isinstance(input, np.ndarray):
        raise TypeError(f"pack_padded_sequence: input must be a numpy.ndarray, got "
                        f"{type(input).__name__}")
    if input.ndim < 2:
        raise ValueError(f"pack_padded_sequence: input must be at least 2-D (T, B, *), got "
                         f"shape {input.shape}")
    allow_empty = bool(allow_empty)
    x = np.swapaxes(input, 0, 1) if batch_first else input
    T, B = x.shape[:2]
    # with allow_empty, a batch of only empty sequences may have no time steps at all
    if input.size == 0 and not (allow_empty and T == 0 and B > 0):
        raise ValueError(f"pack_padded_sequence: Cannot pack empty tensors (input shape "
                         f"{input.shape})")
    lengths = _int_vector("pack_padded_sequence: lengths", lengths)
    if lengths.shape[0] != B:
        raise ValueError(f"pack_padded_sequence: Expected `len(lengths)` to be equal to "
                         f"batch_size, but got {lengths.shape[0]} (batch_size={B})")
    if np.any(lengths < 0) or (not allow_empty and np.any(lengths == 0)):
        raise ValueError("pack_padded_sequence: Length of all samples has to be greater than "
                         f"0, but got lengths {lengths.tolist()}"
                         + ("" if np.any(lengths < 0) else
                            "; pass allow_empty=True to accept sequences of length 0"))
    if np.any(lengths > T):
        raise ValueError(f"pack_padded_sequence: a length exceeds the input's {T} steps "
                         f"(dimension {1 if batch_first else 0} of shape {input.shape}), got "
                         f"lengths {lengths.tolist()}")
    if enforce_sorted:
        if np.any(lengths[1:] > lengths[:-1]):
            raise ValueError(
                "pack_padded_sequence: `lengths` array must be sorted in decreasing order when "
                "`enforce_sorted` is True, got lengths {}. You can pass `enforce_sorted=False` "
                "to pack_padded_sequence and/or pack_sequence to sidestep this "
                "requirement.".format(lengths.tolist()))
        # an empty sequence is not counted by batch_sizes: the indices record the batch
        has_empty = B > 0 and lengths[-1] == 0
        sorted_indices = np.arange(B, dtype=np.int64) if has_empty else None
    else:
        sorted_indices = np.argsort(-lengths, kind="stable").astype(np.int64)
        x = x[:, sorted_indices]
        lengths = lengths[sorted_indices]
    longest = int(lengths[0]) if B else 0
    batch_sizes = (lengths[None, :] > np.arange(longest)[:, None]).sum(axis=1)
    batch_sizes = batch_sizes.astype(np.int64)
    rows = packed_rows(batch_sizes, B)
    data = np.ascontiguousarray(x[:len(batch_sizes)].reshape((len(batch_sizes) * B,)
                                                             + x.shape[2:])[rows])
    return PackedSequence(data, batch_sizes, sorted_indices)


def pad_packed_sequence(sequence: PackedSequence, batch_first: bool = False,
                        padding_value: float = 0.0,
                        total_length: Optional[int] = None) -> Tuple[FloatArray, IntArray]:
    """Undo :func:`pack_padded_sequence`: returns ``(padded, lengths)``, padded ``(T, B, *)`` or,
    with ``batch_first``, ``(B, T, *)``, with ``padding_value`` past each sequence's end;
    T = ``total_length`` if given (at least the longest length), else the longest length.
    Both are in the caller's original batch order."""
    if not isinstance(sequence, PackedSequence):
        raise TypeError(f"pad_packed_sequence: sequence must be a PackedSequence, got "
                        f"{type(sequence).__name__}")
    bs = sequence.batch_sizes
    T, B = len(bs), sequence.batch_size
    if total_length is not None:
        if isinstance(total_length, bool) or not isinstance(total_length, numbers.Integral):
            raise TypeError(f"pad_packed_sequence: total_length must be an int or None, got "
                            f"{type(total_length).__name__}")
        if total_length < T:
            raise ValueError("pad_packed_sequence: Expected total_length to be at least the "
                             "length of the longest sequence in input, but got total_length="
                             f"{total_length} and max sequence length being {T}")
        T = int(total_length)
    padded = padded_from_rows(sequence.data, packed_rows(bs, B), T, B, padding_value)
    lengths = _lengths(bs, B)
    if sequence.unsorted_indices is not None:
        padded = padded[:, sequence.unsorted_indices]
        lengths = lengths[sequence.unsorted_indices]
    if batch_first:
        padded = np.swapaxes(padded, 0, 1)
    return np.ascontiguousarray(padded), lengths


def _check_sequences(fn: str, sequences: Any) -> List[FloatArray]:
    if isinstance(sequences, np.ndarray) or not hasattr(sequences, "__iter__"):
        raise TypeError(f"{fn}: Expected a list of sequences (arrays of shape (L_i, *)), got "
                        f"{type(sequences).__name__}")
    sequences = list(sequences)
    if not sequences:
        raise ValueError(f"{fn}: received an empty list of sequences")
    for i, s in enumerate(sequences):
        if not isinstance(s, np.ndarray):
            raise TypeError(f"{fn}: sequences[{i}] must be a numpy.ndarray, got "
                            f"{type(s).__name__}")
        if s.ndim < 1:
            raise ValueError(f"{fn}: sequences[{i}] must be at least 1-D (L_i, *), got a "
                             "0-D array")
        if s.shape[1:] != sequences[0].shape[1:] or s.dtype != sequences[0].dtype:
            raise ValueError(f"{fn}: every sequence must have the trailing shape and dtype of "
                             f"sequences[0], {sequences[0].shape[1:]} {sequences[0].dtype}; "
                             f"sequences[{i}] has {s.shape[1:]} {s.dtype}")
    return sequences


def pad_sequence(sequences: Sequence[FloatArray], batch_first: bool = False,
                 padding_value: float = 0.0, padding_side: str = "right") -> FloatArray:
    """Stack arrays of shapes ``(L_i, *)`` into one padded batch ``(max L_i, B, *)`` or, with
    ``batch_first``, ``(B, max L_i, *)``; ``padding_side`` "right" (default) or "left"."""
    sequences = _check_sequences("pad_sequence", sequences)
    if padding_side not in ("left", "right"):
        raise ValueError(f"pad_sequence: Expected padding_side to be one of left or right, "
                         f"but got {padding_side!r}")
    T = max(s.shape[0] for s in sequences)
    first = sequences[0]
    out = np.full((len(sequences), T) + first.shape[1:], padding_value, dtype=first.dtype)
    for b, s in enumerate(sequences):
        if padding_side == "right":
            out[b, :s.shape[0]] = s
        else:
            out[b, T - s.shape[0]:] = s
    return out if batch_first else np.ascontiguousarray(np.swapaxes(out, 0, 1))


def pack_sequence(sequences: Sequence[FloatArray], enforce_sorted: bool = True, *,
                  allow_empty: bool = False) -> PackedSequence:
    """Pack a list of arrays ``(L_i, *)``: :func:`pad_sequence` then :func:`pack_padded_sequence`
    with lengths L_i (each at least 1, or 0 with ``allow_empty=True``)."""
    sequences = _check_sequences("pack_sequence", sequences)
    lengths = [s.shape[0] for s in sequences]
    if min(lengths) == 0 and not allow_empty:
        raise ValueError("pack_sequence: Length of all samples has to be greater than 0, but "
                         f"got lengths {lengths}; pass allow_empty=True to accept sequences "
                         "of length 0")
    return pack_padded_sequence(pad_sequence(sequences), lengths, enforce_sorted=enforce_sorted,
                                allow_empty=allow_empty)


def unpack_sequence(packed: PackedSequence) -> List[FloatArray]:
    """The list of arrays ``(L_i, *)`` in a PackedSequence, in the caller's order."""
    padded, lengths = pad_packed_sequence(packed, batch_first=True)
    return [padded[b, :n] for b, n in enumerate(lengths)]


def unpad_sequence(padded: FloatArray, lengths: IntVector,
                   batch_first: bool = False) -> List[FloatArray]:
    """The list of arrays ``(L_i, *)`` in a padded batch ``(T, B, *)`` (or ``(B, T, *)`` with
    ``batch_first``); never modifies ``padded`` (PyTorch's transposes it in place)."""
    if not isinstance(padded, np.ndarray) or padded.ndim < 2:
        raise ValueError("unpad_sequence: padded must be a numpy.ndarray of at least 2 "
                         "dimensions")
    x = padded if batch_first else np.swapaxes(padded, 0, 1)
    lengths = _int_vector("unpad_sequence: lengths", lengths)
    if lengths.shape[0] != x.shape[0] or np.any(lengths < 0) or np.any(lengths > x.shape[1]):
        raise ValueError(f"unpad_sequence: lengths must hold {x.shape[0]} values in "
                         f"[0, {x.shape[1]}], got {lengths.tolist()}")
    return [x[b, :n].copy() for b, n in enumerate(lengths)]

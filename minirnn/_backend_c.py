"""The compiled path: whole-model forward and backward with the kernels of ``minirnn._kernels``.

Same signatures and results (to rounding) as :func:`minirnn.functional.rnn_forward` and
``rnn_backward``, which call these for ``backend="c"``. This file only allocates the buffers of
each layer (see the memory map in ``minirnn/_kernels.pyx``), stacks the layers, applies the
dropout masks between them (drawn by :func:`minirnn.functional.draw_dropout_masks`, the same
masks as the NumPy path) and keeps the tape; the time loops, with the GIL released, are in
``_kernels``.
"""
import ctypes
import sys
import threading

import numpy as np

from . import _extension
from ._extension import kernels as _kernels     # None when the extension is not built

_SAVED_WIDTH = {"RNN_TANH": 0, "RNN_RELU": 0, "GRU": 4, "LSTM": 5}
_SUFFIXES = ("", "_reverse")
# the parameters of one layer and direction, in the kernels' order (as functional.LAYER_PARAMS)
_LAYER_PARAMS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr", "weight_peephole")


def _c(a):
    """``a`` as a C-contiguous array aligned to its item size (itself when it already is: the
    usual case). An unaligned array (``numpy.frombuffer`` at an odd offset) is copied: the
    kernels' loads assume aligned items."""
    if a is None or (a.flags.c_contiguous and a.flags.aligned):
        return a
    return np.array(a, order="C")


# Buffers a call allocates and a later call can reuse: what the forward saves for the backward
# (S, Cs, M), the outputs of the layers below the last, and the gradients passed between
# layers. Each Python thread keeps the ones its latest calls freed and hands one to the next
# call that asks for an array of its dtype and of at least its size (at most twice: a view of
# its first elements): a new buffer of this size costs a page fault and a zeroed page per
# 4 KiB on first touch (35% of a seed-size training step, measured with perf). Arrays a caller
# can see (the returned output, h_n, grad_input ...) are never recycled.
#
# The bound: the buffers kept never hold more than POOL_FACTOR times the bytes the largest of
# the thread's latest POOL_WINDOW calls took (a forward and its backward are two calls); when a
# freed buffer would pass it, the oldest kept buffers are let go first. So a training loop
# whose batches vary in length keeps about one call's buffers of its longest recent length,
# not one set per length ever seen.
POOL_FACTOR = 2
POOL_WINDOW = 16


class _Pool:
    __slots__ = ("free", "nbytes", "taken", "recent")

    def __init__(self):
        self.free = []           # buffers to reuse, oldest first
        self.nbytes = 0          # the bytes they hold
        self.taken = 0           # bytes taken by the current call
        self.recent = []         # bytes taken by each of the latest POOL_WINDOW calls

    def bound(self):
        return POOL_FACTOR * max(max(self.recent, default=0), self.taken)


_pools = threading.local()


def _pool():
    p = _pools.__dict__.get("pool")
    if p is None:
        p = _pools.pool = _Pool()
    return p


def _begin_call():
    """A forward or a backward starts: what the previous one took joins the recent calls."""
    p = _pool()
    if p.taken:
        p.recent.append(p.taken)
        if len(p.recent) > POOL_WINDOW:
            del p.recent[0]
        p.taken = 0
    return p


def _root(a):
    """The array that owns ``a``'s memory (``a`` itself, or the buffer it is a view of)."""
    return a if a.base is None else a.base


def _take(shape, dtype):
    p = _pool()
    free = p.free
    dt = np.dtype(dtype)
    best = -1
    if free:
        n = 1
        for d in shape:
            n *= d
        best_size = 2 * n + 1
        for i, a in enumerate(free):
            if a.dtype == dt:
                if a.shape == shape:                   # the usual case: the same call again
                    best, best_size = i, -1
                    break
                size = _root(a).size
                if n <= size < best_size:
                    best, best_size = i, size
    if best < 0:
        a = np.empty(shape, dt)
        p.taken += a.nbytes
        return a
    a = free.pop(best)
    root = _root(a)
    p.nbytes -= root.nbytes
    p.taken += root.nbytes
    if best_size < 0:
        return a
    return root.reshape(-1)[:n].reshape(shape)


def _give(*arrays):
    p = _pool()
    bound = p.bound()
    for a in arrays:
        if a is None:
            continue
        size = _root(a).nbytes
        if size > bound:
            continue
        while p.free and p.nbytes + size > bound:      # let the oldest go
            p.nbytes -= _root(p.free.pop(0)).nbytes
        p.free.append(a)
        p.nbytes += size


def pool_stats() -> dict:
    """This thread's pool: ``{"buffers", "bytes", "bound"}`` (for tests and benchmarks)."""
    p = _pool()
    return dict(buffers=len(p.free), bytes=p.nbytes, bound=p.bound())


_malloc_trim = None


def _trim_heap():
    """Give the C heap's free pages back to the OS where the allocator can (glibc's
    ``malloc_trim``; elsewhere nothing). NumPy's buffers below glibc's mmap threshold (which
    rises up to 32 MiB as big blocks are freed) live in the heap, and freeing them alone leaves
    the process's resident size where it was."""
    global _malloc_trim
    if _malloc_trim is None:
        _malloc_trim = False
        if sys.platform.startswith("linux"):
            try:
                f = ctypes.CDLL(None).malloc_trim
                f.argtypes, f.restype = [ctypes.c_size_t], ctypes.c_int
                _malloc_trim = f
            except (OSError, AttributeError):      # not glibc (musl has no malloc_trim)
                pass
    if _malloc_trim:
        _malloc_trim(0)


def release_buffers() -> None:
    """Free the buffers this thread keeps for reuse and the kernels' scratch memory, and give
    the freed memory back to the operating system where the allocator allows it (glibc)."""
    _pools.__dict__.clear()
    if _kernels is not None:
        _kernels.release_workspace()
    _trim_heap()


_KEYS: dict = {}                        # (layer, D) -> the parameter names of each direction


def _layer_keys(layer, D):
    keys = _KEYS.get((layer, D))
    if keys is None:
        keys = _KEYS[(layer, D)] = tuple(tuple(f"{p}_l{layer}{sfx}" for p in _LAYER_PARAMS)
                                         for sfx in _SUFFIXES[:D])
    return keys


def _layer_weights(params, layer, D):
    """The kernels' weight tuples of one layer. Taken as they are: a module's parameters are
    C-contiguous arrays it owns, and the kernels reject any other with a ValueError."""
    return tuple(tuple(map(params.get, keys)) for keys in _layer_keys(layer, D))


def model_weights(params, num_layers, D):
    """The kernels' weight tuples of every layer (``weights`` of :func:`rnn_forward`)."""
    return tuple(_layer_weights(params, layer, D) for layer in range(num_layers))


def unsupported(mode, variant):
    """A reason (a sentence) when the compiled kernels cannot compute ``variant``
    (:class:`minirnn.variants.Variant`) of ``mode``, else None. The modules raise
    ``NotImplementedError`` with it for ``backend="c"``, naming ``backend="numpy"``.
    The kernels compute every variant, forward and backward: None, unless the extension is
    not built."""
    return None if _kernels is not None else _extension.missing_reason()


_VARIANTS: dict = {}                    # (mode, Variant) -> (the kernels' variant argument, SW)


def _kernel_variant(mode, variant):
    """The ``variant`` argument of ``_kernels.forward_layer`` for a
    :class:`minirnn.variants.Variant` (None for PyTorch's cell), and the saved width SW of a
    layer (S is (D, T, B, SW*H) in training)."""
    key = (mode, variant)
    kv = _VARIANTS.get(key)
    if kv is None:
        arg = None
        if variant is not None and not variant.is_default:
            acts = None if variant.activations is None else tuple(
                tuple((a.id, a.alpha, a.beta) for a in d) for d in variant.activations)
            arg = (variant.reset_after, variant.coupled_input_forget, variant.cell_clip,
                   variant.reverse, acts)
        kv = _VARIANTS[key] = (arg, _kernels.saved_width(_kernels.MODES[mode], arg))
    return kv


def model_packs(num_layers):
    """Where the kernels keep each layer's packed weights between calls (``packs`` of
    :func:`rnn_forward`): one list per layer for the forward's panels, then one per layer for
    the backward's (laid out otherwise), each empty until a call fills it. A module keeps them
    with its parameters; the kernels check on every call that the weights are the ones the
    panels were packed from (see ``forward_layer``'s and ``backward_layer``'s ``pack``)."""
    return tuple([] for _ in range(2 * num_layers))


def rnn_forward(mode, X, params, h0, c0, num_layers, bidirectional, need_tape=True,
                dropout_masks=None, batch_sizes=None, weights=None, variant=None, packs=None):
    """As :func:`minirnn.functional.rnn_forward`, on the compiled kernels. ``weights``: the
    layers' weight tuples of ``params`` (:func:`model_weights`), or None to build them.
    ``variant``: a :class:`minirnn.variants.Variant`, or None for PyTorch's cell.
    ``packs``: the layers' packed-weight lists (:func:`model_packs`), or None to pack the
    weights in every call.
    (Kept short: at tiny sizes each line here costs about 1% of the call.)"""
    if _kernels is None:
        raise _extension.missing_error()
    code = _kernels.MODES[mode]
    if variant is None:
        kv, SW = None, _SAVED_WIDTH[mode]
    else:
        kv, SW = _kernel_variant(mode, variant)
    D = 2 if bidirectional else 1
    if num_layers == 1 and not need_tape and batch_sizes is None:
        # inference of one layer (a streaming call): the kernels make the outputs
        Y, h_n, c_n = _kernels.infer_layer(
            code, X, weights[0] if weights is not None else _layer_weights(params, 0, D), h0,
            c0, kv, None if packs is None else packs[0])
        return Y, h_n, c_n, None
    lstm = mode == "LSTM"
    T, B, _ = X.shape
    dtype = X.dtype
    h0, c0, x = _c(h0), _c(c0), _c(X)
    h_n = np.empty(h0.shape, dtype)
    c_n = np.empty(c0.shape, dtype) if lstm else None
    P = h0.shape[2]                                     # the width of h
    if batch_sizes is not None:
        batch_sizes = np.ascontiguousarray(batch_sizes, dtype=np.int64)
    if num_layers == 1 and not need_tape:               # inference of one layer: all of it
        Y = np.empty((T, B, D * P), dtype)
        _kernels.forward_layer(code, x, weights[0] if weights is not None else
                               _layer_weights(params, 0, D), h0, c0, Y, h_n, c_n, None, None,
                               None, batch_sizes, kv, None if packs is None else packs[0])
        return Y, h_n, c_n, None
    _begin_call()
    H = c0.shape[2] if lstm else P                      # the width of c and of each gate
    proj = lstm and P != H
    # The tape keeps private copies of what the caller can reach (the input, h0, c0, the
    # output): editing them in place between forward and backward changes no gradient.
    # (A read-only state, the module's zeros for hx=None, needs no copy.)
    if need_tape:
        if x is X:
            x = X.copy()
        if h0.flags.writeable:
            h0 = h0.copy()
        if c0 is not None and c0.flags.writeable:
            c0 = c0.copy()
    layers = []
    for layer in range(num_layers):
        # this layer's rows of h0, c0, h_n, c_n (one layer: all of them, no views to make)
        if num_layers == 1:
            h0_l, c0_l, hn_l, cn_l = h0, c0, h_n, c_n
        else:
            k = slice(layer * D, (layer + 1) * D)
            h0_l, hn_l = h0[k], h_n[k]
            c0_l, cn_l = (c0[k], c_n[k]) if lstm else (None, None)
        w = weights[layer] if weights is not None else _layer_weights(params, layer, D)
        last = layer == num_layers - 1
        # the last layer's output goes to the caller: never a recycled buffer (with a tape,
        # the tape keeps it and the caller gets a copy)
        Y = np.empty((T, B, D * P), dtype) if last and not need_tape else \
            _take((T, B, D * P), dtype)
        Cs = _take((D, T, B, H), dtype) if need_tape and lstm else None
        S = _take((D, T, B, SW * H), dtype) if need_tape and SW else None
        M = _take((D, T, B, H), dtype) if need_tape and proj else None
        _kernels.forward_layer(code, x, w, h0_l, c0_l, Y, hn_l, cn_l, Cs, S, M, batch_sizes, kv,
                               None if packs is None else packs[layer])
        if need_tape:
            layers.append(dict(X=x, w=w, h0=h0_l, c0=c0_l, Y=Y, Cs=Cs, S=S, M=M))
        # dropout between layers: the next layer reads Y * mask (Y itself stays in the tape)
        x_next = Y if dropout_masks is None or last else Y * dropout_masks[layer]
        if not need_tape and layer > 0:
            _give(x)                                    # inference: the layer input is spent
        x = x_next
    tape = dict(backend="c", mode=mode, num_layers=num_layers, D=D, layers=layers,
                dropout_masks=dropout_masks, batch_sizes=batch_sizes,
                variant=kv, packs=packs) if need_tape else None
    return (x.copy() if need_tape else x), h_n, c_n, tape


def rnn_backward(tape, grad_output, grad_h_n, grad_c_n, grads):
    """As :func:`minirnn.functional.rnn_backward`, on the compiled kernels."""
    mode, D, num_layers = tape["mode"], tape["D"], tape["num_layers"]
    masks = tape["dropout_masks"]
    code = _kernels.MODES[mode]
    _begin_call()
    lstm = mode == "LSTM"
    grad_h_n, grad_c_n = _c(grad_h_n), _c(grad_c_n)
    grad_h0 = np.empty_like(grad_h_n)
    grad_c0 = np.empty_like(grad_c_n) if lstm else None
    dY = _c(grad_output)
    packs = tape.get("packs")                           # the backward's: packs[num_layers:]
    for layer in reversed(range(num_layers)):
        lt = tape["layers"][layer]
        k = slice(layer * D, (layer + 1) * D)
        if masks is not None and layer < num_layers - 1:
            dY = dY * masks[layer]                      # backprop through x_{l+1} = Y_l * mask_l
        g = tuple(tuple(grads.get(k) for k in keys) for keys in _layer_keys(layer, D))
        # the input gradient of layer 0 goes to the caller; the others are spent by the layer below
        dX = np.empty_like(lt["X"]) if layer == 0 else _take(lt["X"].shape, lt["X"].dtype)
        _kernels.backward_layer(code, lt["X"], lt["w"], lt["h0"], lt["c0"], lt["Y"], lt["Cs"],
                                lt["S"], dY, grad_h_n[k], grad_c_n[k] if lstm else None, dX,
                                grad_h0[k], grad_c0[k] if lstm else None, g, lt["M"],
                                tape["batch_sizes"], tape["variant"],
                                None if packs is None else packs[num_layers + layer])
        # this layer's saved buffers are spent; so are its output (unless it is the caller's
        # output) and the gradient that came from the layer above
        _give(lt["Cs"], lt["S"], lt["M"], lt["Y"])
        if layer < num_layers - 1:
            _give(dY)
        dY = dX
    return dY, grad_h0, grad_c0

"""Stateless whole-sequence forward and backward: the NumPy reference path.

An RNN layer is a time loop around a cell; a model is layers stacked, each with
one or two directions. This file holds the loop and the stacking, written once
for all cells; :mod:`minirnn.cells` holds what differs between cells.

Glossary (the same letters as the C kernels): ``T`` time steps, ``B`` batch,
``I`` input size, ``H`` hidden size, ``G`` gates (1, 3, 4), ``D`` directions
(1 or 2), ``L`` layers. All arrays here are time-major ``(T, B, .)``; the
modules in :mod:`minirnn.modules` handle ``batch_first`` and unbatched input.

Forward, for each layer ``l`` and direction ``d``::

    G_x = X_l @ W_ih^T + b_ih                   (T, B, G*H)  one product for all steps
    for t in time order (reversed for d = 1):
        G_h = h_{t-1} @ W_hh^T + b_hh           (B, G*H)     the only sequential product
        h_t (, c_t) = cell.forward(G_x[t], G_h, h_{t-1} (, c_{t-1}))
        h_t = h_t @ W_hr^T                      (B, P)       LSTM with proj_size = P only
    X_{l+1} = concat over d of the h_t          (T, B, D*H)
    X_{l+1} = X_{l+1} * mask_l                  dropout between layers (training only)

With projections (LSTM, ``proj_size = P > 0``) the state ``h`` and the layer's
output are ``P`` wide while ``c`` and the gates stay ``H`` wide: ``W_hh`` is
``(4H, P)`` and the layers above the first read ``D*P`` features. Everywhere
below, the width of ``h`` is written ``P`` (``P = H`` without projections).

Backward mirrors it: a reverse time loop that runs the cell's pointwise backward
and one product per step, ``dh_{t-1} = dG_h @ W_hh`` (+ the cell's direct path),
saving ``dG_x`` and ``dG_h`` for every step; after the loop the weight
gradients and the input gradient are each one large product::

    dW_ih += dG_x^T X         dW_hh += dG_h^T H_prev        dX = dG_x @ W_ih
    db_ih += sum dG_x         db_hh += sum dG_h             dW_hr += dH^T M

(``M`` the projected-from vectors ``o * tanh(c_t)``, ``dH`` the gradients of the
projected ``h_t``.) Dropout's backward multiplies the gradient of ``X_{l+1}``
by the same mask.

Gradients *accumulate* into the caller's arrays; the caller zeroes them.

Cell variants (:mod:`minirnn.variants`) reuse this loop through three mechanisms, each a few
lines below, never a copy of the loop: a **split recurrent product** (the GRU with the reset
gate before the product: the loop computes the first gate blocks of ``G_h`` from ``h_{t-1}``,
the cell the rest from its own operand ``u_t``; backward, ``dW_hh[rest] = dG_h[rest]^T U``), a
**cell-state input to the gates** (LSTM peepholes: the cell reads ``p``, the loop sums its
gradient), and **reverse-only** layers (a unidirectional layer run in reverse). Rows of a
packed batch that never take a step (empty sequences) need nothing: their state is never
touched, so ``h_n = h0`` and ``grad_h0 = grad_h_n`` for them.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, cast

import numpy as np

from . import _backend_c
from ._typing import DType, FloatArray, IntArray, Tape
from .cells import CELLS, CellMath, CellSpec, make_spec
from .variants import Variant


def param_shapes(gates: int, input_size: int, hidden_size: int, num_layers: int,
                 bidirectional: bool, bias: bool, proj_size: int = 0,
                 peephole: bool = False) -> Dict[str, Tuple[int, ...]]:
    """{PyTorch name: shape} in PyTorch's order: layer, then direction (forward before
    ``_reverse``), then weight_ih, weight_hh, bias_ih, bias_hh, weight_hr (LSTM with
    ``proj_size > 0`` only), weight_peephole (LSTM with ``peephole=True`` only: ``(3H,)``,
    blocks i, f, o). Layer 0 reads the input; layer k > 0 reads both directions of
    layer k-1 side by side (D*P features, P = proj_size or else hidden_size)."""
    G, H, D = gates, hidden_size, 2 if bidirectional else 1
    P = proj_size if proj_size > 0 else H             # the width of h
    shapes: Dict[str, Tuple[int, ...]] = {}
    for layer in range(num_layers):
        in_size = input_size if layer == 0 else D * P
        for sfx in ("", "_reverse")[:D]:
            shapes[f"weight_ih_l{layer}{sfx}"] = (G * H, in_size)
            shapes[f"weight_hh_l{layer}{sfx}"] = (G * H, P)
            if bias:
                shapes[f"bias_ih_l{layer}{sfx}"] = (G * H,)
                shapes[f"bias_hh_l{layer}{sfx}"] = (G * H,)
            if proj_size > 0:
                shapes[f"weight_hr_l{layer}{sfx}"] = (P, H)
            if peephole:
                shapes[f"weight_peephole_l{layer}{sfx}"] = (3 * H,)
    return shapes


#: the parameters of one layer and direction, in the order the time loops take them
LAYER_PARAMS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")


def draw_dropout_masks(rng: np.random.Generator, p: float, num_masks: int,
                       shape: Tuple[int, ...], dtype: DType) -> List[FloatArray]:
    """The dropout masks of one training-mode forward, shared by both backends.

    For each layer but the last, in layer order: ``u = rng.random(shape)`` (float64,
    ``shape`` time-major ``(T, B, D*P)``), and the mask is ``1/(1-p)`` where ``u >= p``
    (kept, probability ``1-p``) and 0 elsewhere, in ``dtype`` (inverted dropout: the
    expected value of ``x * mask`` is ``x``). ``p = 1`` gives zeros, as PyTorch (no
    division by zero). A fresh mask per element, per time step and per call; each call
    advances ``rng`` by ``num_masks * prod(shape)`` doubles.
    """
    masks = []
    for _ in range(num_masks):
        keep = rng.random(shape) >= p
        scale = np.asarray(1.0 / (1.0 - p) if p < 1 else 0.0, dtype=dtype)
        masks.append(keep.astype(dtype) * scale)
    return masks


# --------------------------------------------------------------------------- one layer, one direction

def _keep_rest(new, old, n):
    """The state after a step that only rows ``0 <= b < n`` took: ``new`` for those rows, the
    rows past ``n`` unchanged (``old``). Without lengths (n = B) simply ``new``."""
    if old is None or n == old.shape[0]:
        return new
    return np.concatenate([new, old[n:]])


def _split_product(W_hh: FloatArray, b_hh: Optional[FloatArray], first: int
                   ) -> Tuple[Callable[[FloatArray], FloatArray],
                              Callable[[FloatArray], FloatArray]]:
    """The two halves of a split recurrent product whose rows ``first:`` of ``W_hh`` multiply
    the cell's operand ``u`` instead of ``h_{t-1}``: ``u @ W_hh[first:]^T + b_hh[first:]``
    (forward) and ``dG @ W_hh[first:]`` (backward, the gradient of ``u``)."""
    W_rest = W_hh[first:]
    b_rest = None if b_hh is None else b_hh[first:]

    def recur(u: FloatArray) -> FloatArray:
        g = u @ W_rest.T
        return g if b_rest is None else g + b_rest

    def recur_grad(dg: FloatArray) -> FloatArray:
        return dg @ W_rest

    return recur, recur_grad


def layer_forward(cell: CellMath, X: FloatArray, W_ih: FloatArray, W_hh: FloatArray,
                  b_ih: Optional[FloatArray], b_hh: Optional[FloatArray], h0: FloatArray,
                  c0: Optional[FloatArray], reverse: bool, need_tape: bool = True,
                  W_hr: Optional[FloatArray] = None, batch_sizes: Optional[IntArray] = None,
                  spec: Optional[CellSpec] = None
                  ) -> Tuple[FloatArray, FloatArray, Optional[FloatArray], Optional[Tape]]:
    """Run one direction of one layer over a whole sequence.

    X (T, B, I) read; W_ih (G*H, I), W_hh (G*H, P) read; b_ih, b_hh (G*H,) or None;
    W_hr (P, H) (LSTM with projections) or None, and then P = H;
    h0 (B, P), c0 (B, H) or None (cells without a cell state).
    batch_sizes: None, or (T,) ints for a packed batch (see :mod:`minirnn.packed`): the rows
    are sorted by decreasing length and only the first ``batch_sizes[t]`` have a step ``t``.
    spec: the :class:`minirnn.cells.CellSpec` of the variant (None: PyTorch's cell); a split
    product's halves (``spec.recur``) are made here from W_hh and b_hh.
    Returns Y (T, B, P), h_T (B, P), c_T (B, H) or None, and the tape for the backward
    (None unless need_tape: then no step's activations are kept). Y is 0 at padded positions.

    Variable lengths need no special case beyond "rows ``b >= n`` keep their state": going
    forward, a sequence's state stops changing after its last step, so the final h, c hold
    each row's own last step; going in reverse, a row's state stays ``h0`` until the loop
    reaches that row's last step, which is where its reverse direction starts.
    """
    T, B = X.shape[:2]
    if spec is None:
        spec = make_spec(cell.mode)
    # the split product: the loop's G_h holds blocks 0..split-1, the cell computes the rest
    split = cell.split(spec)
    if split is not None:
        first = split * (W_ih.shape[0] // cell.gates)
        spec = spec._replace(**dict(zip(("recur", "recur_grad"),
                                        _split_product(W_hh, b_hh, first))))
        W_hh, b_hh = W_hh[:first], None if b_hh is None else b_hh[:first]
    # G_x = X @ W_ih^T + b_ih, for all time steps at once
    Gx = X @ W_ih.T
    if b_ih is not None:
        Gx += b_ih
    Y = np.zeros(X.shape[:2] + (W_hh.shape[1],), dtype=X.dtype)
    h, c = h0, c0
    steps = []                                     # per step: (t, n, h_{t-1}, c_{t-1}, saved)
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        n = B if batch_sizes is None else int(batch_sizes[t])   # rows 0..n-1 have a step t
        h_prev = h[:n]
        c_prev = None if c is None else c[:n]
        # G_h = h_{t-1} @ W_hh^T + b_hh
        Gh = h_prev @ W_hh.T
        if b_hh is not None:
            Gh += b_hh
        h_new, c_new, saved = cell.forward(Gx[t, :n], Gh, h_prev, c_prev, spec)
        if W_hr is not None:
            m = h_new                              # m_t = o_t * tanh(c_t)    (n, H)
            h_new = m @ W_hr.T                     # h_t = m_t W_hr^T         (n, P)
            saved = (saved, m)
        if need_tape:
            steps.append((t, n, h_prev, c_prev, saved))
        h, c = _keep_rest(h_new, h, n), _keep_rest(c_new, c, n)
        Y[t, :n] = h_new
    if not need_tape:
        return Y, h, c, None
    tape = dict(X=X, W_ih=W_ih, W_hh=W_hh, W_hr=W_hr, steps=steps, has_bias=b_ih is not None,
                spec=spec, split=split)
    return Y, h, c, tape


def layer_backward(cell: CellMath, tape: Tape, dY: FloatArray, dh_T: FloatArray,
                   dc_T: Optional[FloatArray], grads: Sequence[Any]
                   ) -> Tuple[FloatArray, FloatArray, Optional[FloatArray]]:
    """Backpropagate one direction of one layer through time.

    dY (T, B, P) gradient of the layer's outputs; dh_T (B, P), dc_T (B, H) gradients of
    its final states (dc_T None for cells without a cell state).
    ``grads`` = [dW_ih, dW_hh, db_ih, db_hh, dW_hr, dp] (biases None without bias, dW_hr
    None without projections, dp None without peepholes), ACCUMULATED.
    Returns dX (T, B, I), dh0 (B, P), dc0 (B, H) or None. With variable lengths (see
    :func:`layer_forward`) a step updates the gradients of its rows only, and the padded
    positions keep zero gate gradients, so they add nothing to any product; dX is 0 there.
    """
    X, W_ih, W_hh, W_hr = tape["X"], tape["W_ih"], tape["W_hh"], tape["W_hr"]
    spec, split = tape["spec"], tape["split"]
    dGx = np.zeros(X.shape[:2] + (W_ih.shape[0],), dtype=X.dtype)    # (T, B, G*H)
    dGh = np.zeros_like(dGx)
    H_prev = np.zeros(X.shape[:2] + (W_hh.shape[1],), dtype=X.dtype)  # h_{t-1} seen at step t
    first = W_hh.shape[0]               # rows of W_hh that multiply h_{t-1} (all, unless split)
    if split is not None:
        U = np.zeros_like(H_prev)       # the split product's operand u_t, for dW_hh[first:]
    dp_sum = None if spec.peephole is None else np.zeros(spec.peephole.shape, np.float64)
    if W_hr is not None:
        dH = np.zeros(X.shape[:2] + W_hr.shape[:1], dtype=X.dtype)     # (T, B, P) dL/dh_t
        M = np.zeros(X.shape[:2] + W_hr.shape[1:], dtype=X.dtype)      # (T, B, H) m_t
    dh_next, dc_next = dh_T, dc_T
    for t, n, h_prev, c_prev, saved in reversed(tape["steps"]):
        # h_t feeds both the output Y[t] and the next step: add both gradients
        dh = dY[t, :n] + dh_next[:n]
        if W_hr is not None:
            saved, M[t, :n] = saved
            dH[t, :n] = dh
            # backprop through  h_t = m_t W_hr^T:  dm_t = dh_t W_hr  (dW_hr after the loop)
            dh = dh @ W_hr
        dGx[t, :n], dGh[t, :n], dh_direct, dc_prev, dp = cell.backward(
            dh, None if dc_next is None else dc_next[:n], saved, h_prev, c_prev, spec)
        if split is not None:
            U[t, :n] = saved[-1]
        if dp is not None:
            dp_sum += dp.sum(axis=0, dtype=np.float64)     # the peepholes' share of this step
        # backprop through  G_h = h_{t-1} @ W_hh^T + b_hh:  dh_{t-1} = dG_h @ W_hh
        # (with a split product the cell has already added the path through u_t)
        dh_prev = dGh[t, :n, :first] @ W_hh
        if dh_direct is not None:
            dh_prev += dh_direct
        dh_next, dc_next = _keep_rest(dh_prev, dh_next, n), _keep_rest(dc_prev, dc_next, n)
        H_prev[t, :n] = h_prev
    # after the loop, one large product each (sums over all steps and batch rows)
    dW_ih, dW_hh, db_ih, db_hh, dW_hr, dW_p = grads
    GH = W_ih.shape[0]
    dW_ih += dGx.reshape(-1, GH).T @ X.reshape(-1, X.shape[-1])          # dW_ih = dG_x^T X
    dGh_first = dGh[..., :first].reshape(-1, first)
    dW_hh[:first] += dGh_first.T @ H_prev.reshape(-1, H_prev.shape[-1])  # dW_hh = dG_h^T H_prev
    if split is not None:                                                # dW_hh[rest] = dG^T U
        dW_hh[first:] += dGh[..., first:].reshape(-1, GH - first).T @ U.reshape(-1, U.shape[-1])
    if dp_sum is not None:
        dW_p += dp_sum.astype(dW_p.dtype)
    if W_hr is not None:
        P, H = W_hr.shape
        dW_hr += dH.reshape(-1, P).T @ M.reshape(-1, H)                  # dW_hr = dH^T M
    if tape["has_bias"]:
        # bias gradients are long sums: accumulate in double, whatever the dtype
        db_ih += dGx.sum(axis=(0, 1), dtype=np.float64).astype(db_ih.dtype)
        db_hh += dGh.sum(axis=(0, 1), dtype=np.float64).astype(db_hh.dtype)
    dX = dGx @ W_ih                                                      # dX = dG_x W_ih
    return dX, dh_next, dc_next


# --------------------------------------------------------------------------- layers x directions

def rnn_forward(mode: str, X: FloatArray, params: Mapping[str, FloatArray], h0: FloatArray,
                c0: Optional[FloatArray], num_layers: int, bidirectional: bool,
                need_tape: bool = True, backend: str = "numpy",
                dropout_masks: Optional[Sequence[FloatArray]] = None,
                batch_sizes: Optional[IntArray] = None, c_weights: Any = None,
                variant: Optional[Variant] = None, c_packs: Any = None
                ) -> Tuple[FloatArray, FloatArray, Optional[FloatArray], Optional[Tape]]:
    """Whole-model forward on time-major input.

    mode: 'RNN_TANH', 'RNN_RELU', 'GRU' or 'LSTM'; X (T, B, I);
    params: {PyTorch name: array} (with ``weight_hr_l*`` for an LSTM with projections);
    h0 (L*D, B, P); c0 (L*D, B, H) for LSTM, else None.
    dropout_masks: None, or one (T, B, D*P) mask per layer but the last (see
    :func:`draw_dropout_masks`), multiplied into each layer's output before the next layer.
    batch_sizes: None, or an int64 array (T,) for a packed batch (rows sorted by decreasing
    length; see :func:`layer_forward`); output is then 0 at padded positions, h_n and c_n
    hold each row's own last step.
    Returns output (T, B, D*P), h_n (L*D, B, P), c_n (L*D, B, H) or None, tape (None
    unless need_tape).

    ``backend="c"`` runs the same computation on the compiled kernels
    (:mod:`minirnn._backend_c`); the tape remembers which, for ``rnn_backward``.
    ``c_weights``: for ``backend="c"`` only, the kernels' weight tuples of ``params``
    (``_backend_c.model_weights``) when the caller keeps them; None builds them.
    ``c_packs``: for ``backend="c"`` only, where the kernels keep the packed weights between
    calls (``_backend_c.model_packs``), or None to pack them in every call.
    ``variant``: a :class:`minirnn.variants.Variant` (None = PyTorch's cell); with
    peepholes, ``params`` holds ``weight_peephole_l{k}{_reverse}`` (3H,), blocks i, f, o.
    """
    if dropout_masks is not None and len(dropout_masks) != num_layers - 1:
        raise ValueError(f"dropout_masks: expected {num_layers - 1} masks (one per layer but "
                         f"the last), got {len(dropout_masks)}")
    if variant is not None and variant.is_default:
        variant = None
    if batch_sizes is not None and (len(batch_sizes) == 0 or batch_sizes[0] < X.shape[1]):
        return _forward_empty_rows(mode, X, params, h0, c0, num_layers, bidirectional,
                                   need_tape, backend, dropout_masks, batch_sizes, c_weights,
                                   variant)
    if backend == "c":
        if variant is None:
            return _backend_c.rnn_forward(mode, X, params, h0, c0, num_layers, bidirectional,
                                          need_tape, dropout_masks, batch_sizes, c_weights,
                                          packs=c_packs)
        reason = _backend_c.unsupported(mode, variant)
        if reason is not None:
            raise NotImplementedError(f"backend='c': {reason}; use backend='numpy'")
        return _backend_c.rnn_forward(mode, X, params, h0, c0, num_layers, bidirectional,
                                      need_tape, dropout_masks, batch_sizes, c_weights,
                                      variant=variant, packs=c_packs)
    if backend != "numpy":
        raise ValueError(f"backend must be 'c' or 'numpy', got {backend!r}")
    cell = CELLS[mode]
    D = 2 if bidirectional else 1
    if need_tape:
        # the tape keeps private copies of what the caller can reach (the input, h0, c0):
        # editing them in place between forward and backward changes no gradient
        # (a read-only state, the module's zeros for hx=None, needs no copy)
        X = X.copy()
        h0 = h0.copy() if h0.flags.writeable else h0
        c0 = c0.copy() if c0 is not None and c0.flags.writeable else c0
    h_n = np.empty_like(h0)
    c_n = np.empty_like(c0) if cell.has_cell_state else None
    layer_tapes = []
    x = X
    for layer in range(num_layers):
        outs = []
        for d in range(D):
            sfx = "_reverse" if d else ""
            k = layer * D + d                          # h_n is indexed layer*D + direction
            W_ih, W_hh, b_ih, b_hh, W_hr = (params.get(f"{p}_l{layer}{sfx}") for p in LAYER_PARAMS)
            spec = make_spec(mode, variant, d, params.get(f"weight_peephole_l{layer}{sfx}"))
            # direction 1 runs in reverse; so does a reverse-only (unidirectional) layer
            reverse = bool(d) or (variant is not None and variant.reverse)
            y, h_n[k], c_T, tape = layer_forward(      # (every layer has W_ih and W_hh)
                cell, x, cast(FloatArray, W_ih), cast(FloatArray, W_hh), b_ih, b_hh, h0[k], None if c0 is None else c0[k],
                reverse=reverse, need_tape=need_tape, W_hr=W_hr, batch_sizes=batch_sizes,
                spec=spec)
            if c_n is not None:
                c_n[k] = c_T
            outs.append(y)
            if need_tape:
                layer_tapes.append(tape)
        # the next layer's input: both directions side by side, forward first
        x = outs[0] if D == 1 else np.concatenate(outs, axis=-1)
        if dropout_masks is not None and layer < num_layers - 1:
            x = x * dropout_masks[layer]               # dropout between layers
    tape = dict(mode=mode, num_layers=num_layers, D=D, layers=layer_tapes,
                dropout_masks=dropout_masks, variant=variant) if need_tape else None
    return x, h_n, c_n, tape


def _forward_empty_rows(mode, X, params, h0, c0, num_layers, bidirectional, need_tape,
                        backend, dropout_masks, batch_sizes, c_weights, variant):
    """A packed batch with empty sequences: the sorted rows ``n0 = batch_sizes[0]`` to
    ``B - 1`` never take a step. The others run as a batch of ``n0`` (on either backend);
    the empty rows keep ``h_n = h0``, ``c_n = c0`` and a zero output. With every row empty
    (``T = 0``) nothing runs at all."""
    T, B = X.shape[:2]
    n0 = int(batch_sizes[0]) if len(batch_sizes) else 0
    D = 2 if bidirectional else 1
    out = np.zeros((T, B, D * h0.shape[-1]), dtype=X.dtype)
    h_n = h0.copy()
    c_n = None if c0 is None else c0.copy()
    inner = None
    if n0 > 0:
        masks = None if dropout_masks is None else [m[:, :n0] for m in dropout_masks]
        out[:, :n0], h_n[:, :n0], c_T, inner = rnn_forward(
            mode, np.ascontiguousarray(X[:, :n0]), params, np.ascontiguousarray(h0[:, :n0]),
            None if c0 is None else np.ascontiguousarray(c0[:, :n0]), num_layers,
            bidirectional, need_tape, backend, masks, batch_sizes, c_weights, variant)
        if c_n is not None:
            c_n[:, :n0] = c_T
    tape = dict(empty_rows=n0, inner=inner, X_shape=X.shape) if need_tape else None
    return out, h_n, c_n, tape


def rnn_backward(tape: Tape, grad_output: FloatArray, grad_h_n: FloatArray,
                 grad_c_n: Optional[FloatArray], grads: Mapping[str, FloatArray]
                 ) -> Tuple[FloatArray, FloatArray, Optional[FloatArray]]:
    """Whole-model backward. grad_output (T, B, D*P); grad_h_n (L*D, B, P), grad_c_n
    (L*D, B, H) (None unless LSTM). ``grads`` {name: array} is ACCUMULATED into.
    Returns grad_X (T, B, I), grad_h0 (L*D, B, P), grad_c0 or None."""
    if "empty_rows" in tape:           # empty sequences: grad_h0 = grad_h_n for them
        n0 = tape["empty_rows"]
        grad_X = np.zeros(tape["X_shape"], dtype=grad_h_n.dtype)
        grad_h0 = grad_h_n.copy()
        grad_c0 = None if grad_c_n is None else grad_c_n.copy()
        if n0 > 0:
            grad_X[:, :n0], grad_h0[:, :n0], gc = rnn_backward(
                tape["inner"], np.ascontiguousarray(grad_output[:, :n0]),
                np.ascontiguousarray(grad_h_n[:, :n0]),
                None if grad_c_n is None else np.ascontiguousarray(grad_c_n[:, :n0]), grads)
            if grad_c0 is not None:
                grad_c0[:, :n0] = gc
        return grad_X, grad_h0, grad_c0
    if tape.get("backend") == "c":
        return _backend_c.rnn_backward(tape, grad_output, grad_h_n, grad_c_n, grads)
    cell = CELLS[tape["mode"]]
    D, num_layers = tape["D"], tape["num_layers"]
    grad_h0 = np.empty_like(grad_h_n)
    grad_c0 = np.empty_like(grad_c_n) if cell.has_cell_state else None
    masks = tape["dropout_masks"]
    dx = grad_output
    for layer in reversed(range(num_layers)):
        if masks is not None and layer < num_layers - 1:
            dx = dx * masks[layer]                     # backprop through x_{l+1} = y_l * mask_l
        P = dx.shape[-1] // D
        dx_below = None
        for d in range(D):
            sfx = "_reverse" if d else ""
            k = layer * D + d
            g = [grads.get(f"{p}_l{layer}{sfx}") for p in LAYER_PARAMS + ("weight_peephole",)]
            dX_d, grad_h0[k], dc0 = layer_backward(
                cell, tape["layers"][k], dx[..., d * P:(d + 1) * P],
                grad_h_n[k], None if grad_c_n is None else grad_c_n[k], g)
            if grad_c0 is not None:
                grad_c0[k] = dc0
            # both directions read the same input: their gradients add (fixed order)
            dx_below = dX_d if dx_below is None else dx_below + dX_d
        dx = cast(FloatArray, dx_below)                # D >= 1: set by the loop
    return dx, grad_h0, grad_c0

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
    X_{l+1} = concat over d of the h_t          (T, B, D*H)

Backward mirrors it: a reverse time loop that runs the cell's pointwise backward
and one product per step, ``dh_{t-1} = dG_h @ W_hh`` (+ the cell's direct path),
saving ``dG_x`` and ``dG_h`` for every step; after the loop the weight
gradients and the input gradient are each one large product::

    dW_ih += dG_x^T X         dW_hh += dG_h^T H_prev        dX = dG_x @ W_ih
    db_ih += sum dG_x         db_hh += sum dG_h

Gradients *accumulate* into the caller's arrays; the caller zeroes them.
"""
import numpy as np

from . import _backend_c
from .cells import CELLS


def param_shapes(gates, input_size, hidden_size, num_layers, bidirectional, bias):
    """{PyTorch name: shape} in PyTorch's order: layer, then direction (forward before
    ``_reverse``), then weight_ih, weight_hh, bias_ih, bias_hh. Layer 0 reads the input;
    layer k > 0 reads both directions of layer k-1 side by side (D*H features)."""
    G, H, D = gates, hidden_size, 2 if bidirectional else 1
    shapes = {}
    for layer in range(num_layers):
        in_size = input_size if layer == 0 else D * H
        for sfx in ("", "_reverse")[:D]:
            shapes[f"weight_ih_l{layer}{sfx}"] = (G * H, in_size)
            shapes[f"weight_hh_l{layer}{sfx}"] = (G * H, H)
            if bias:
                shapes[f"bias_ih_l{layer}{sfx}"] = (G * H,)
                shapes[f"bias_hh_l{layer}{sfx}"] = (G * H,)
    return shapes


# --------------------------------------------------------------------------- one layer, one direction

def layer_forward(cell, X, W_ih, W_hh, b_ih, b_hh, h0, c0, reverse, need_tape=True):
    """Run one direction of one layer over a whole sequence.

    X (T, B, I) read; W_ih (G*H, I), W_hh (G*H, H) read; b_ih, b_hh (G*H,) or None;
    h0 (B, H), c0 (B, H) or None (cells without a cell state).
    Returns Y (T, B, H), h_T (B, H), c_T (B, H) or None, and the tape for the backward
    (None unless need_tape: then no step's activations are kept).
    """
    T = X.shape[0]
    # G_x = X @ W_ih^T + b_ih, for all time steps at once
    Gx = X @ W_ih.T
    if b_ih is not None:
        Gx += b_ih
    Y = np.empty(X.shape[:2] + (W_hh.shape[1],), dtype=X.dtype)
    h, c = h0, c0
    steps = []                                     # per step: (t, h_{t-1}, c_{t-1}, saved)
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        # G_h = h_{t-1} @ W_hh^T + b_hh
        Gh = h @ W_hh.T
        if b_hh is not None:
            Gh += b_hh
        h_new, c_new, saved = cell.forward(Gx[t], Gh, h, c)
        if need_tape:
            steps.append((t, h, c, saved))
        h, c = h_new, c_new
        Y[t] = h
    if not need_tape:
        return Y, h, c, None
    tape = dict(X=X, W_ih=W_ih, W_hh=W_hh, steps=steps, has_bias=b_ih is not None)
    return Y, h, c, tape


def layer_backward(cell, tape, dY, dh_T, dc_T, grads):
    """Backpropagate one direction of one layer through time.

    dY (T, B, H) gradient of the layer's outputs; dh_T, dc_T (B, H) gradients of
    its final states (dc_T None for cells without a cell state).
    ``grads`` = [dW_ih, dW_hh, db_ih, db_hh] (biases None without bias), ACCUMULATED.
    Returns dX (T, B, I), dh0 (B, H), dc0 (B, H) or None.
    """
    X, W_ih, W_hh = tape["X"], tape["W_ih"], tape["W_hh"]
    dGx = np.zeros(X.shape[:2] + (W_ih.shape[0],), dtype=X.dtype)    # (T, B, G*H)
    dGh = np.zeros_like(dGx)
    H_prev = np.zeros(X.shape[:2] + (W_hh.shape[1],), dtype=X.dtype)  # h_{t-1} seen at step t
    dh_next, dc_next = dh_T, dc_T
    for t, h_prev, c_prev, saved in reversed(tape["steps"]):
        # h_t feeds both the output Y[t] and the next step: add both gradients
        dh = dY[t] + dh_next
        dGx[t], dGh[t], dh_direct, dc_next = cell.backward(dh, dc_next, saved, h_prev, c_prev)
        # backprop through  G_h = h_{t-1} @ W_hh^T + b_hh:  dh_{t-1} = dG_h @ W_hh
        dh_next = dGh[t] @ W_hh
        if dh_direct is not None:
            dh_next += dh_direct
        H_prev[t] = h_prev
    # after the loop, one large product each (sums over all steps and batch rows)
    dW_ih, dW_hh, db_ih, db_hh = grads
    GH = W_ih.shape[0]
    dW_ih += dGx.reshape(-1, GH).T @ X.reshape(-1, X.shape[-1])          # dW_ih = dG_x^T X
    dW_hh += dGh.reshape(-1, GH).T @ H_prev.reshape(-1, H_prev.shape[-1])  # dW_hh = dG_h^T H_prev
    if tape["has_bias"]:
        # bias gradients are long sums: accumulate in double, whatever the dtype
        db_ih += dGx.sum(axis=(0, 1), dtype=np.float64).astype(db_ih.dtype)
        db_hh += dGh.sum(axis=(0, 1), dtype=np.float64).astype(db_hh.dtype)
    dX = dGx @ W_ih                                                      # dX = dG_x W_ih
    return dX, dh_next, dc_next


# --------------------------------------------------------------------------- layers x directions

def rnn_forward(mode, X, params, h0, c0, num_layers, bidirectional, need_tape=True,
                backend="numpy"):
    """Whole-model forward on time-major input.

    mode: 'RNN_TANH', 'RNN_RELU', 'GRU' or 'LSTM'; X (T, B, I);
    params: {PyTorch name: array}; h0 (L*D, B, H); c0 (L*D, B, H) for LSTM, else None.
    Returns output (T, B, D*H), h_n (L*D, B, H), c_n (L*D, B, H) or None, tape (None
    unless need_tape).

    ``backend="c"`` runs the same computation on the compiled kernels
    (:mod:`minirnn._backend_c`); the tape remembers which, for ``rnn_backward``.
    """
    if backend == "c":
        return _backend_c.rnn_forward(mode, X, params, h0, c0, num_layers, bidirectional,
                                      need_tape)
    if backend != "numpy":
        raise ValueError(f"backend must be 'c' or 'numpy', got {backend!r}")
    cell = CELLS[mode]
    D = 2 if bidirectional else 1
    h_n = np.empty_like(h0)
    c_n = np.empty_like(c0) if cell.has_cell_state else None
    layer_tapes = []
    x = X
    for layer in range(num_layers):
        outs = []
        for d in range(D):
            sfx = "_reverse" if d else ""
            k = layer * D + d                          # h_n is indexed layer*D + direction
            y, h_n[k], c_T, tape = layer_forward(
                cell, x,
                params[f"weight_ih_l{layer}{sfx}"], params[f"weight_hh_l{layer}{sfx}"],
                params.get(f"bias_ih_l{layer}{sfx}"), params.get(f"bias_hh_l{layer}{sfx}"),
                h0[k], None if c0 is None else c0[k], reverse=bool(d), need_tape=need_tape)
            if c_n is not None:
                c_n[k] = c_T
            outs.append(y)
            if need_tape:
                layer_tapes.append(tape)
        # the next layer's input: both directions side by side, forward first
        x = outs[0] if D == 1 else np.concatenate(outs, axis=-1)
    tape = dict(mode=mode, num_layers=num_layers, D=D, layers=layer_tapes) if need_tape else None
    return x, h_n, c_n, tape


def rnn_backward(tape, grad_output, grad_h_n, grad_c_n, grads):
    """Whole-model backward. grad_output (T, B, D*H); grad_h_n, grad_c_n (L*D, B, H)
    (grad_c_n None unless LSTM). ``grads`` {name: array} is ACCUMULATED into.
    Returns grad_X (T, B, I), grad_h0 (L*D, B, H), grad_c0 or None."""
    if tape.get("backend") == "c":
        return _backend_c.rnn_backward(tape, grad_output, grad_h_n, grad_c_n, grads)
    cell = CELLS[tape["mode"]]
    D, num_layers = tape["D"], tape["num_layers"]
    grad_h0 = np.empty_like(grad_h_n)
    grad_c0 = np.empty_like(grad_c_n) if cell.has_cell_state else None
    dx = grad_output
    for layer in reversed(range(num_layers)):
        H = dx.shape[-1] // D
        dx_below = None
        for d in range(D):
            sfx = "_reverse" if d else ""
            k = layer * D + d
            g = [grads.get(f"{p}_l{layer}{sfx}") for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            dX_d, grad_h0[k], dc0 = layer_backward(
                cell, tape["layers"][k], dx[..., d * H:(d + 1) * H],
                grad_h_n[k], None if grad_c_n is None else grad_c_n[k], g)
            if grad_c0 is not None:
                grad_c0[k] = dc0
            # both directions read the same input: their gradients add (fixed order)
            dx_below = dX_d if dx_below is None else dx_below + dX_d
        dx = dx_below
    return dx, grad_h0, grad_c0

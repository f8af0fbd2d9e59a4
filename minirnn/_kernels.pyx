# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""minirnn._kernels: the compiled time loops of RNN, GRU and LSTM, forward and backward.

One layer at a time (both directions at once), called by :mod:`minirnn._backend_c`:

    forward_layer:   pack W_ih^T, W_hh^T (, W_hr^T)   (units: direction x matrix)
                     G_x = X W_ih^T + b_ih            (units: direction x block of T*B rows)
                     the time loop                    (units: direction x batch slice, or at
                                                       small batch direction x block of hidden
                                                       units: "small batches", schedule.pxi)
                       (or G_x inside the time loop, step by step: "input product" below)
    backward_layer:  pack W_hh, W_ih (, W_hr)         (units: direction x matrix)
                     the reverse time loop            (units: as the forward's)
                     pack X, H_prev (, M)             (units: register tiles)
                     dW_ih += dG_x^T X, dW_hh += dG_h^T H_prev, db += sums, dW_hr += dH^T M
                                                      (units: blocks of columns of dG or dH)
                     dX = dG_x W_ih                   (units: blocks of rows of dX)

Each phase is one loop over work units (``_forward_unit``/``_backward_unit``), an OpenMP
``prange`` when the phase is big enough for several threads, else a plain loop (``_team``,
``_forward_phase``). A unit writes memory no other unit of its phase touches, and a unit
computes each number in a fixed order, the same whichever unit computes it. So the results
are bitwise identical for any number of threads. A batch slice runs its whole time loop alone:
no barrier per time step; the blocks of hidden units of the small-batch schedule step together,
one barrier per step, in one parallel region.

The math is C (csrc/minirnn.h): the product ``gemm`` (B packed in panels), each cell's pointwise
``*_cell_forward``/``*_cell_backward``, and the weight gradients with their bias sums
``weight_grad`` (X^T dG, after the backward's loops). Glossary: T time, B batch, I input size,
H hidden, G gates (1, 3, 4), GH = G*H, D directions; P the width of h: proj_size for an LSTM with
projections (P < H), else P = H; DP = D*P; SW*H floats saved per step and row.

Packed sequences (``batch_sizes``): see "variable lengths" (_kernel_parts/lengths.pxi).

Input product: G_x = X W_ih^T + b_ih is computed either for all steps before the time loops (a
phase of its own, in blocks of 64 rows: the fastest products), or by each time loop for its own
rows, one step at a time, just before that step's gates read them (``_step_input_product``
decides: when G_x of all steps would leave the cache and the weights stay in it). The second
scheme keeps G_x in the L1/L2 cache instead of a (T, B, GH) array read back from memory, where
the gates waited on it. Every element is the same sum either way, so results do not change.

LSTM with projections (``proj_size = P``): the cell writes ``m_t = o_t * tanh(c_t)`` (B, H) and one
more small product per step gives ``h_t = m_t W_hr^T`` (B, P), which is the output and the state
the next step multiplies by ``W_hh`` (GH, P). The backward adds ``dm_t = dh_t W_hr`` per step and,
after the loop, ``dW_hr += dH^T M`` over the saved ``m_t`` (M) and ``dh_t`` (dH).

Memory map of one layer and direction (time-major; all buffers allocated by the caller):

    X    (T, B, I)        layer input                                  read
    Y    (T, B, D*P)      layer output; column block d*P is direction d  forward writes
    h0   (D, B, P)        initial state                                read
    c0   (D, B, H)        LSTM initial cell state                      read
    Cs   (D, T, B, H)     LSTM c_t of every step (training only)       forward writes
    S    (D, T, B, SW*H)  saved gate values (training only; GRU 4H: r|z|n|gh_n,
                          LSTM 5H: i|f|g|o|tanh c_t; Elman none: it uses Y)  forward writes
    M    (D, T, B, H)     LSTM with projections: m_t = o_t tanh(c_t) (training only)  forward writes
    dGx  (D, T, B, GH)    gate gradients dL/dG_x (scratch of the backward)
    dGh  (D, T, B, GH)    dL/dG_h; the same memory as dGx except for GRU
    dH   (D, T, B, P)     LSTM with projections: dL/dh_t (scratch of the backward)

Where the code is: this file is one extension module whose body is included, in this order,
from _kernel_parts/ (Cython ``include``: one namespace, as if written here):

    runtime.pxi         OpenMP (optional), what the build decided, the SIGINT flag (inline C)
    csrc.pxi            the C of csrc/ declared, and each call picked by dtype (k_*)
    schedule.pxi        cell codes, work units and batch slices, threads and teams, fork,
                        the ISA choice, interrupts (Ctrl-C)
    checks.pxi          argument checks, scratch memory, one direction's arrays
    lengths.pxi         variable lengths (packed batches, batch_sizes)
    variants.pxi        cell variants (the ``variant`` argument)
    forward_loop.pxi    the forward time loop of one (direction, batch slice)
    forward.pxi         forward_layer: its work units, phases, checks and buffers
    backward_loop.pxi   the backward time loop of one (direction, batch slice)
    backward_units.pxi  the backward's units after the loop: weight gradients, peepholes, dX
    backward.pxi        backward_layer: checks, buffers, the phases in order

Rules for these files:
- Validate in Python, compute in nogil: every check a caller can trigger runs before the GIL
  is released (here: every shape, so no argument can make a kernel step out of its arrays);
  nogil regions hold no Python objects.
- Every C function called under nogil is ``noexcept nogil``.
- Why not BLAS: see csrc/gemm.h (call overhead at one step's size, threads inside our threads,
  row results that depend on where a slice starts).
"""
import numbers
import os
import signal as _signal
import threading
import warnings

import numpy as np

cimport numpy as cnp
cnp.import_array()
from cython cimport floating
from cython.parallel cimport parallel, prange, threadid
from libc.stdlib cimport malloc, free
from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memcmp, memcpy, memset
from libc.math cimport INFINITY
from cpython.exc cimport PyErr_CheckSignals


include "_kernel_parts/runtime.pxi"
include "_kernel_parts/csrc.pxi"
include "_kernel_parts/schedule.pxi"
include "_kernel_parts/checks.pxi"
include "_kernel_parts/lengths.pxi"
include "_kernel_parts/variants.pxi"
include "_kernel_parts/forward_loop.pxi"
include "_kernel_parts/forward.pxi"
include "_kernel_parts/backward_loop.pxi"
include "_kernel_parts/backward_units.pxi"
include "_kernel_parts/backward.pxi"

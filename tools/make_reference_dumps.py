#!/usr/bin/env python
"""Write the PyTorch reference dumps that minirnn's tests compare against.

This is the only file in the project that imports torch. It runs
torch.nn.RNN/GRU/LSTM and RNNCell/GRUCell/LSTMCell in float64 on small,
seeded random problems and stores, for every case, the parameters, the
inputs, the outputs, random upstream gradients and the gradients that
autograd returns, all keyed by PyTorch's own names.

Output: one file per case, ``<out>/<case_name>.npz`` (default out dir:
``minirnn/data`` in the repository). The format is documented in
``minirnn/data/README.md``; ``meta`` inside each file says everything needed to
rebuild the case (class, constructor kwargs, sizes, seed, loss).

How to run (from anywhere; paths are relative to the repository root)::

    pip install torch==2.13.0        # the CPU wheel; never a bare `pip install torch`
    python tools/make_reference_dumps.py                 # (re)write every dump
    python tools/make_reference_dumps.py --only 'cell_*' # only matching cases
    python tools/make_reference_dumps.py --check         # regenerate in memory and
                                                         # compare with the files on disk:
                                                         # inputs, parameters, meta byte-exact;
                                                         # outputs, gradients to 1e-12 of max

    python tools/make_reference_dumps.py --list          # print the case names

A full run deletes stale ``*.npz`` files in the out dir (files for cases it
no longer generates); ``--only`` never deletes anything.

Determinism: every case seeds torch with ``zlib.crc32(case_name)`` (stable
across runs and independent of the order or number of cases), torch runs
single-threaded, and the .npz files are written by ``write_npz`` below, which
is ``np.savez_compressed`` with one difference: the zip members get a fixed
timestamp (1980-01-01) instead of the current time, so two runs give
byte-identical files. ``np.load`` reads them like any other .npz.

Before a file is written the script asserts (so a broken dump cannot be
written):
  * modules: ``output``'s last forward step equals ``h_n[(nl-1)*D]`` and its
    first reverse step equals ``h_n[(nl-1)*D+1]`` (bit-exact), taking
    ``batch_first`` and unbatched input into account;
  * when no initial state is passed, a second run with an explicit zero state
    (a leaf requiring grad, which gives ``grad_h0``/``grad_c0``) has exactly the
    same outputs and input/parameter gradients as the ``hx=None`` run;
  * cells: the loop of cell calls matches the 1-layer module with the same
    weights (outputs, final states and the gradients of the h-only loss) to
    1e-12 relative to the largest magnitude;
  * packed cases: torch's packing is a stable sort of the lengths, and every
    sequence's output steps and final states equal running it alone, unpadded,
    with its own slice of the initial state (1e-12); padded outputs are 0;
  * every array is finite float64; after writing, the file is re-loaded and
    its keys, shapes and values are checked against what was meant to be
    written and against the shapes derived from ``meta`` alone.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import sys
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

FORMAT_VERSION = 1
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "minirnn" / "data"
DTYPE = torch.float64

# mode -> (module class name, cell class name, nonlinearity or None, file-name token)
MODES = {
    "RNN_TANH": ("RNN", "RNNCell", "tanh", "rnn_tanh"),
    "RNN_RELU": ("RNN", "RNNCell", "relu", "rnn_relu"),
    "GRU": ("GRU", "GRUCell", None, "gru"),
    "LSTM": ("LSTM", "LSTMCell", None, "lstm"),
}

# Sizes. Small and all distinct, so that a transposed axis cannot pass by
# accident: modules use input (L, N, I) = (5, 3, 2), hidden H = 4, output last
# dim D*H in {4, 8}; cells use (steps, N, I) = (4, 7, 3), H = 5. They are this
# small because an .npz pays ~160 bytes per array and random float64 data
# does not compress: the folder must stay around 3 MB.
SMALL = dict(input_size=2, hidden_size=4, seq_len=5, batch=3)
CELL_SMALL = dict(input_size=3, hidden_size=5, steps=4, batch=7)
# "Longer" cases (2 layers, bidirectional), for realistic accumulated rounding.
LONG = dict(input_size=10, hidden_size=16, seq_len=30, batch=3)
# LSTM with projections: h (and output per direction) is P = proj_size wide, c is H wide.
# H = 6 and P = 4 keep every size distinct from I = 2, L = 5, N = 3 (and D*P = 8).
PROJ = dict(input_size=2, hidden_size=6, proj_size=4, seq_len=5, batch=3)
PROJ_LONG = dict(input_size=10, hidden_size=12, proj_size=7, seq_len=20, batch=3)

# Packed input: the padded input has one step more than the longest sequence (pack drops
# it); lengths with a tie (kept in the caller's order by torch's sort at this batch size).
PACKED = dict(input_size=2, hidden_size=4, seq_len=6, batch=4,
              lengths_sorted=(5, 3, 3, 1), lengths_unsorted=(3, 5, 1, 3))
PACKED_PROJ = dict(PACKED, hidden_size=6, proj_size=4)
# Long: 9 sequences, so minirnn's compiled loops cut the batch into two slices whose active
# rows end at different steps.
PACKED_LONG = dict(input_size=5, hidden_size=8, seq_len=31, batch=9,
                   lengths_sorted=(30, 29, 25, 17, 17, 9, 8, 2, 1),
                   lengths_unsorted=(8, 30, 1, 17, 29, 2, 17, 25, 9))

MODULE_LOSS = "sum(output*grad_output) + sum(h_n*grad_h_n)"
MODULE_LOSS_LSTM = MODULE_LOSS + " + sum(c_n*grad_c_n)"
PACKED_LOSS = "sum(output.data*grad_output) + sum(h_n*grad_h_n)"
PACKED_LOSS_LSTM = PACKED_LOSS + " + sum(c_n*grad_c_n)"
CELL_LOSS = "sum_t sum(h_t*grad_h[t])"
CELL_LOSS_LSTM = CELL_LOSS + " + sum_t sum(c_t*grad_c[t])"


# --------------------------------------------------------------------------
# Case definitions
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class ModuleCase:
    name: str
    mode: str
    num_layers: int
    bidirectional: bool
    batch_first: bool
    bias: bool
    has_h0: bool
    unbatched: bool
    input_size: int
    hidden_size: int
    seq_len: int
    batch: int | None  # None when unbatched
    proj_size: int = 0  # LSTM only; 0 = no projections (and no proj_size in meta["config"])


@dataclass(frozen=True)
class CellCase:
    name: str
    mode: str
    unbatched: bool
    bias: bool
    has_h0: bool
    input_size: int
    hidden_size: int
    steps: int
    batch: int | None  # None when unbatched


@dataclass(frozen=True)
class PackedCase:
    """A module run on pack_padded_sequence(input, lengths, batch_first, enforce_sorted)."""
    name: str
    mode: str
    num_layers: int
    bidirectional: bool
    batch_first: bool          # of pack_padded_sequence and of the module (which ignores it)
    bias: bool
    has_h0: bool
    enforce_sorted: bool       # lengths given sorted (no indices) or not
    input_size: int
    hidden_size: int
    seq_len: int               # steps of the padded input (more than the longest length)
    batch: int
    lengths: tuple
    proj_size: int = 0


def _packed_case(mode, nl, bi, layout, bias, h0, sort, sizes=PACKED, prefix=""):
    name = "{}_packed{}_l{}_{}_{}_{}_{}_{}".format(
        MODES[mode][3], prefix, nl, "bi" if bi else "uni", layout, "bias" if bias else "nobias",
        "h0" if h0 else "noh0", "sorted" if sort else "unsorted")
    return PackedCase(
        name=name, mode=mode, num_layers=nl, bidirectional=bi, batch_first=layout == "bf",
        bias=bias, has_h0=h0, enforce_sorted=sort, input_size=sizes["input_size"],
        hidden_size=sizes["hidden_size"], seq_len=sizes["seq_len"], batch=sizes["batch"],
        lengths=sizes["lengths_sorted" if sort else "lengths_unsorted"],
        proj_size=sizes.get("proj_size", 0))


def _module_case(mode, nl, bi, layout, bias, h0, sizes=None, prefix=""):
    """layout: 'tf' (time-first), 'bf' (batch_first), 'unbatched', 'unbatched_bf'."""
    sizes = SMALL if sizes is None else sizes
    tok = MODES[mode][3]
    name = "{}{}_l{}_{}_{}_{}_{}".format(
        tok, prefix, nl, "bi" if bi else "uni", layout,
        "bias" if bias else "nobias", "h0" if h0 else "noh0")
    unbatched = layout.startswith("unbatched")
    return ModuleCase(
        name=name, mode=mode, num_layers=nl, bidirectional=bi,
        batch_first=layout.endswith("bf"), bias=bias, has_h0=h0,
        unbatched=unbatched, input_size=sizes["input_size"],
        hidden_size=sizes["hidden_size"], seq_len=sizes["seq_len"],
        batch=None if unbatched else sizes["batch"], proj_size=sizes.get("proj_size", 0))


def build_cases():
    cases = []
    # 1. Full cross product for RNN_TANH, GRU, LSTM (3 x 48 = 144 cases).
    for mode in ("RNN_TANH", "GRU", "LSTM"):
        for nl in (1, 2, 3):
            for bi in (False, True):
                for layout in ("tf", "bf"):
                    for bias in (True, False):
                        for h0 in (True, False):
                            cases.append(_module_case(mode, nl, bi, layout, bias, h0))
    # 2. RNN_RELU: layers x directions x layout with bias and h0, plus a few others.
    for nl in (1, 2):
        for bi in (False, True):
            for layout in ("tf", "bf"):
                cases.append(_module_case("RNN_RELU", nl, bi, layout, True, True))
    cases.append(_module_case("RNN_RELU", 1, False, "tf", False, True))
    cases.append(_module_case("RNN_RELU", 2, True, "tf", True, False))
    cases.append(_module_case("RNN_RELU", 2, True, "bf", False, False))
    # 3. Unbatched 2-D input, 2 layers, every mode x directions x h0.
    for mode in MODES:
        for bi in (False, True):
            for h0 in (True, False):
                cases.append(_module_case(mode, 2, bi, "unbatched", True, h0))
    # batch_first must be ignored for unbatched input.
    cases.append(_module_case("LSTM", 2, True, "unbatched_bf", True, True))
    cases.append(_module_case("GRU", 1, False, "unbatched_bf", False, False))
    # 4. Cells: every cell x batched/unbatched x h0 x bias.
    for mode in MODES:
        for unbatched in (False, True):
            for bias in (True, False):
                for h0 in (True, False):
                    name = "cell_{}_{}_{}_{}".format(
                        MODES[mode][3], "unbatched" if unbatched else "batched",
                        "bias" if bias else "nobias", "h0" if h0 else "noh0")
                    cases.append(CellCase(
                        name=name, mode=mode, unbatched=unbatched, bias=bias,
                        has_h0=h0, input_size=CELL_SMALL["input_size"],
                        hidden_size=CELL_SMALL["hidden_size"],
                        steps=CELL_SMALL["steps"],
                        batch=None if unbatched else CELL_SMALL["batch"]))
    # 5. One longer case per mode.
    for mode in MODES:
        cases.append(_module_case(mode, 2, True, "tf", True, True, sizes=LONG, prefix="_long"))
    # 6. LSTM with projections: layers x directions x layout, each with (bias, h0) and
    #    (no bias, no h0); unbatched input; one longer case.
    for nl in (1, 2):
        for bi in (False, True):
            for layout in ("tf", "bf"):
                for bias_h0 in (True, False):
                    cases.append(_module_case("LSTM", nl, bi, layout, bias_h0, bias_h0,
                                              sizes=PROJ, prefix="_proj"))
    cases.append(_module_case("LSTM", 2, True, "unbatched", True, True, sizes=PROJ, prefix="_proj"))
    cases.append(_module_case("LSTM", 1, False, "unbatched", False, False, sizes=PROJ,
                              prefix="_proj"))
    cases.append(_module_case("LSTM", 2, True, "tf", True, True, sizes=PROJ_LONG,
                              prefix="_proj_long"))
    # 7. Packed input: every mode x layers x directions x layout x sorted/unsorted lengths
    #    (bias, h0); (no bias, no h0) and relu on a few; projections; one longer case per mode.
    for mode in ("RNN_TANH", "GRU", "LSTM"):
        for nl in (1, 2):
            for bi in (False, True):
                for layout in ("tf", "bf"):
                    for sort in (True, False):
                        cases.append(_packed_case(mode, nl, bi, layout, True, True, sort))
        for bi in (False, True):
            cases.append(_packed_case(mode, 2, bi, "tf", False, False, False))
    for layout in ("tf", "bf"):
        cases.append(_packed_case("RNN_RELU", 2, True, layout, True, True, False))
    for nl in (1, 2):
        for bi in (False, True):
            cases.append(_packed_case("LSTM", nl, bi, "bf" if bi else "tf", True, True, False,
                                      sizes=PACKED_PROJ, prefix="_proj"))
    cases.append(_packed_case("LSTM", 2, True, "tf", False, False, True, sizes=PACKED_PROJ,
                              prefix="_proj"))
    for mode in MODES:
        cases.append(_packed_case(mode, 2, True, "tf", True, True, False, sizes=PACKED_LONG,
                                  prefix="_long"))
    names = [c.name for c in cases]
    assert len(names) == len(set(names)), "duplicate case names"
    return cases


def case_seed(name: str) -> int:
    """Stable per-case seed: independent of case order and of Python's hash seed."""
    return zlib.crc32(name.encode("utf-8")) & 0x7FFFFFFF


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------

def randn(shape):
    return torch.randn(tuple(shape), dtype=DTYPE)


def perturb_biases(named_params):
    """Default init leaves b_ih and b_hh drawn from the same U(+-1/sqrt(H));
    add 0.1*randn to every bias (in named_parameters() order) so that biases
    are clearly nonzero and b_ih != b_hh."""
    with torch.no_grad():
        for name, p in named_params:
            if name.startswith("bias"):
                p.add_(0.1 * randn(p.shape))


def leaf(t):
    return t.detach().clone().requires_grad_(True)


def to_np(t):
    a = t.detach().cpu().numpy().astype(np.float64, copy=True)
    assert a.dtype == np.float64
    assert np.all(np.isfinite(a)), "non-finite value in dump"
    return np.ascontiguousarray(a)


def max_rel_diff(a, b):
    a, b = a.detach(), b.detach()
    scale = max(1.0, float(b.abs().max()) if b.numel() else 0.0)
    return float((a - b).abs().max()) / scale if a.numel() else 0.0


def assert_equal_exact(a, b, what):
    if not torch.equal(a, b):
        diff = float((a - b).abs().max()) if a.shape == b.shape else float("nan")
        raise AssertionError(f"{what}: not bit-identical (max |diff| = {diff:.3e})")


def base_meta(kind, cls_name, mode, config, seed, loss, param_names):
    return {
        "format_version": FORMAT_VERSION,
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "kind": kind,
        "class": cls_name,
        "mode": mode,
        "config": config,
        "seed": seed,
        "dtype": "float64",
        "loss": loss,
        "param_names": param_names,
    }


# --------------------------------------------------------------------------
# Modules
# --------------------------------------------------------------------------

def run_with_state_grads(run, state, st_shape, n_states, param_names, name):
    """``run(state) -> (outs, grads)`` with grads = [input, *states, *params].
    ``st_shape``: the shape of every state, or a list of one shape per state.

    With no initial state (``state is None``) torch has no tensor to give ``grad_h0``:
    run again from an explicit zero leaf, assert that outputs and the input/parameter
    gradients equal the ``hx=None`` run exactly, and take the state gradients from it.
    Returns outs, grad_x, grad_states, grad_params."""
    outs, grads = run(state)
    if state is not None:
        return outs, grads[0], grads[1:1 + n_states], grads[1 + n_states:]
    shapes = st_shape if isinstance(st_shape, list) else [st_shape] * n_states
    zeros = [torch.zeros(s, dtype=DTYPE) for s in shapes]
    outs0, grads0 = run(zeros)
    for k, (a, b) in enumerate(zip(outs, outs0)):
        assert_equal_exact(b, a, f"{name}: zero-state run output #{k} vs hx=None")
    grad_x, grad_p = grads[0], grads[1:]
    assert_equal_exact(grads0[0], grad_x, f"{name}: zero-state run grad_input")
    for n, a, b in zip(param_names, grad_p, grads0[1 + n_states:]):
        assert_equal_exact(b, a, f"{name}: zero-state run grad.{n}")
    return outs, grad_x, grads0[1:1 + n_states], grad_p


def collect_arrays(named, x, state, is_lstm, outputs, upstream, grad_x, grad_states,
                   param_names, grad_p):
    """The arrays of one case, in file order: parameters, input, h0 (c0), the outputs,
    the upstream gradients, grad_input, grad_h0 (grad_c0), grad.<param>.
    ``outputs`` / ``upstream`` are ordered {key: tensor}; ``state`` is None when no
    initial state was passed."""
    arrays = {n: to_np(p) for n, p in named}
    arrays["input"] = to_np(x)
    if state is not None:
        arrays["h0"] = to_np(state[0])
        if is_lstm:
            arrays["c0"] = to_np(state[1])
    arrays.update((k, to_np(v)) for k, v in outputs.items())
    arrays.update((k, to_np(v)) for k, v in upstream.items())
    arrays["grad_input"] = to_np(grad_x)
    arrays["grad_h0"] = to_np(grad_states[0])
    if is_lstm:
        arrays["grad_c0"] = to_np(grad_states[1])
    for n, g in zip(param_names, grad_p):
        arrays["grad." + n] = to_np(g)
    return arrays


def _module_forward_backward(module, is_lstm, x, state, upstream):
    """Run module(x, hx) with fresh leaves; return (outputs, grads).

    state: None (hx=None) or a list [h0] / [h0, c0] of tensors (made leaves).
    upstream: list of upstream gradients for [output, h_n, (c_n)].
    grads: [grad_x, grad_h0, (grad_c0), grad params...] -- state grads only
    when state is not None.
    """
    x = leaf(x)
    if state is None:
        st, hx = [], None
    else:
        st = [leaf(s) for s in state]
        hx = tuple(st) if is_lstm else st[0]
    out, hn = module(x, hx)
    outs = [out, hn[0], hn[1]] if is_lstm else [out, hn]
    loss = sum((o * g).sum() for o, g in zip(outs, upstream))
    params = [p for _, p in module.named_parameters()]
    grads = torch.autograd.grad(loss, [x] + st + params)
    return [o.detach() for o in outs], list(grads)


def make_module_case(case: ModuleCase):
    cls_name, _, nonlin, _ = MODES[case.mode]
    is_lstm = case.mode == "LSTM"
    seed = case_seed(case.name)
    torch.manual_seed(seed)

    config = dict(input_size=case.input_size, hidden_size=case.hidden_size,
                  num_layers=case.num_layers, bias=case.bias,
                  batch_first=case.batch_first, bidirectional=case.bidirectional)
    if nonlin is not None:
        config["nonlinearity"] = nonlin
    if case.proj_size:
        config["proj_size"] = case.proj_size
    module = getattr(torch.nn, cls_name)(**config, dtype=DTYPE)
    module.eval()  # no dropout anyway; be explicit
    perturb_biases(module.named_parameters())
    named = list(module.named_parameters())
    param_names = [n for n, _ in named]

    D = 2 if case.bidirectional else 1
    nl, H, I, L, N = case.num_layers, case.hidden_size, case.input_size, case.seq_len, case.batch
    Hc = H                                   # the width of c
    H = case.proj_size or H                  # the width of h and of output per direction
    if case.unbatched:
        in_shape, st_shape, c_shape = (L, I), (D * nl, H), (D * nl, Hc)
    elif case.batch_first:
        in_shape, st_shape, c_shape = (N, L, I), (D * nl, N, H), (D * nl, N, Hc)
    else:
        in_shape, st_shape, c_shape = (L, N, I), (D * nl, N, H), (D * nl, N, Hc)
    out_shape = in_shape[:-1] + (D * H,)
    state_shapes = [st_shape, c_shape][:2 if is_lstm else 1]

    # RNG draw order (after the module and the bias perturbation):
    # input, h0, c0 (when has_h0), grad_output, grad_h_n, grad_c_n.
    x = randn(in_shape)
    n_states = 2 if is_lstm else 1
    state = [randn(s) for s in state_shapes] if case.has_h0 else None
    upstream = [randn(out_shape)] + [randn(s) for s in state_shapes]

    outs, grad_x, grad_states, grad_p = run_with_state_grads(
        lambda st: _module_forward_backward(module, is_lstm, x, st, upstream),
        state, state_shapes, n_states, param_names, case.name)

    # output / h_n identities.
    out, hn = outs[0], outs[1]
    if case.unbatched:
        o_t, hn_t = out.unsqueeze(1), hn.unsqueeze(1)
    elif case.batch_first:
        o_t, hn_t = out.transpose(0, 1), hn
    else:
        o_t, hn_t = out, hn
    assert tuple(out.shape) == out_shape and tuple(hn.shape) == st_shape
    assert_equal_exact(o_t[-1, :, :H], hn_t[(nl - 1) * D], f"{case.name}: output[-1,:,:H] vs h_n")
    if D == 2:
        assert_equal_exact(o_t[0, :, H:], hn_t[(nl - 1) * D + 1], f"{case.name}: output[0,:,H:] vs h_n")

    meta = base_meta("module", cls_name, case.mode, config, seed,
                     MODULE_LOSS_LSTM if is_lstm else MODULE_LOSS, param_names)
    meta.update(seq_len=L, batch=N, unbatched=case.unbatched, has_h0=case.has_h0)

    arrays = collect_arrays(
        named, x, state if case.has_h0 else None, is_lstm,
        dict(zip(["output", "h_n", "c_n"], outs)),
        dict(zip(["grad_output", "grad_h_n", "grad_c_n"], upstream)),
        grad_x, grad_states, param_names, grad_p)
    return meta, arrays


# --------------------------------------------------------------------------
# Packed sequences
# --------------------------------------------------------------------------

def make_packed_case(case: PackedCase):
    """Run the module on a packed batch and keep what torch packed, returned and computed.

    The padded input is random at padded positions too (they must be ignored: their
    gradient is zero). Before writing, asserts that every sequence's results equal running
    it alone, unpadded, with its own slice of h0 (outputs and final states), that h_n holds
    each sequence's own last step, and that the packing is a stable sort of the lengths."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    cls_name, _, nonlin, _ = MODES[case.mode]
    is_lstm = case.mode == "LSTM"
    seed = case_seed(case.name)
    torch.manual_seed(seed)
    config = dict(input_size=case.input_size, hidden_size=case.hidden_size,
                  num_layers=case.num_layers, bias=case.bias, batch_first=case.batch_first,
                  bidirectional=case.bidirectional)
    if nonlin is not None:
        config["nonlinearity"] = nonlin
    if case.proj_size:
        config["proj_size"] = case.proj_size
    module = getattr(torch.nn, cls_name)(**config, dtype=DTYPE)
    module.eval()
    perturb_biases(module.named_parameters())
    named = list(module.named_parameters())
    param_names = [n for n, _ in named]

    D, nl, N, L, I = (2 if case.bidirectional else 1, case.num_layers, case.batch,
                      case.seq_len, case.input_size)
    Hc, H = case.hidden_size, case.proj_size or case.hidden_size
    lengths = torch.tensor(case.lengths, dtype=torch.int64)
    assert len(case.lengths) == N and max(case.lengths) < L
    in_shape = (N, L, I) if case.batch_first else (L, N, I)
    state_shapes = [(D * nl, N, H), (D * nl, N, Hc)][:2 if is_lstm else 1]
    n_rows = int(lengths.sum())

    # RNG draw order: input, h0, c0 (when has_h0), grad_output, grad_h_n, grad_c_n.
    x = randn(in_shape)
    state = [randn(s) for s in state_shapes] if case.has_h0 else None
    upstream = [randn((n_rows, D * H))] + [randn(s) for s in state_shapes]

    def run(st_leaves):
        xl = leaf(x)
        st = [leaf(s) for s in st_leaves] if st_leaves is not None else []
        hx = None if st_leaves is None else (tuple(st) if is_lstm else st[0])
        packed = pack_padded_sequence(xl, lengths, batch_first=case.batch_first,
                                      enforce_sorted=case.enforce_sorted)
        out, hn = module(packed, hx)
        outs = [out.data, hn[0], hn[1]] if is_lstm else [out.data, hn]
        loss = sum((o * g).sum() for o, g in zip(outs, upstream))
        grads = torch.autograd.grad(loss, [xl] + st + [p for _, p in named])
        run.packed, run.out = packed, out
        return [o.detach() for o in outs], list(grads)

    outs, grad_x, grad_states, grad_p = run_with_state_grads(
        run, state, state_shapes, len(state_shapes), param_names, case.name)
    packed, out = run.packed, run.out

    # the packing is a stable sort by decreasing length (so minirnn's packed data must match)
    stable = np.argsort(-np.array(case.lengths), kind="stable")
    if case.enforce_sorted:
        assert packed.sorted_indices is None and list(case.lengths) == sorted(case.lengths)[::-1]
    else:
        assert packed.sorted_indices.tolist() == stable.tolist(), case.name
    # each sequence alone, unpadded, with its own slice of the initial state
    out_padded, out_lengths = pad_packed_sequence(out, batch_first=case.batch_first,
                                                  total_length=L)
    assert out_lengths.tolist() == list(case.lengths)
    out_padded = out_padded.detach()
    tm = out_padded.transpose(0, 1) if case.batch_first else out_padded
    xt = x.transpose(0, 1) if case.batch_first else x
    for b, n in enumerate(case.lengths):
        alone = module.__class__(**dict(config, batch_first=False), dtype=DTYPE)
        alone.load_state_dict(module.state_dict())
        hx = None if state is None else (tuple(s[:, b:b + 1] for s in state) if is_lstm
                                         else state[0][:, b:b + 1])
        with torch.no_grad():
            o1, hn1 = alone(xt[:n, b:b + 1], hx)
        fin = list(hn1) if is_lstm else [hn1]
        assert max_rel_diff(o1[:, 0], tm[:n, b]) < 1e-12, f"{case.name}: seq {b} output"
        assert float(tm[n:, b].abs().max() if n < L else 0) == 0.0
        for k, f in enumerate(fin):
            assert max_rel_diff(f[:, 0], outs[1 + k][:, b]) < 1e-12, f"{case.name}: seq {b} state"
        last = outs[1][(nl - 1) * D, b]
        assert torch.equal(tm[n - 1, b, :H], last), f"{case.name}: h_n is not the last step"
    assert float(grad_x.abs().max()) > 0

    meta = base_meta("packed", cls_name, case.mode, config, seed,
                     PACKED_LOSS_LSTM if is_lstm else PACKED_LOSS, param_names)
    meta.update(seq_len=L, batch=N, unbatched=False, has_h0=case.has_h0,
                lengths=list(case.lengths), enforce_sorted=case.enforce_sorted,
                batch_sizes=packed.batch_sizes.tolist(),
                sorted_indices=None if packed.sorted_indices is None
                else packed.sorted_indices.tolist())
    arrays = collect_arrays(
        named, x, state if case.has_h0 else None, is_lstm,
        dict(zip(["output", "h_n", "c_n"], outs)),
        dict(zip(["grad_output", "grad_h_n", "grad_c_n"], upstream)),
        grad_x, grad_states, param_names, grad_p)
    arrays["packed_data"] = to_np(packed.data)
    arrays["output_padded"] = to_np(out_padded)
    return meta, arrays


# --------------------------------------------------------------------------
# Cells
# --------------------------------------------------------------------------

def _cell_loop(cell, is_lstm, x, state, steps):
    """Loop the cell over x[0..steps-1], feeding each state to the next step.
    state: None or list of leaves. Returns stacked h (and c)."""
    hx = None if state is None else (tuple(state) if is_lstm else state[0])
    hs, cs = [], []
    for t in range(steps):
        if is_lstm:
            h, c = cell(x[t], hx)
            hx = (h, c)
            cs.append(c)
        else:
            h = cell(x[t], hx)
            hx = h
        hs.append(h)
    return [torch.stack(hs)] + ([torch.stack(cs)] if is_lstm else [])


def _cell_forward_backward(cell, is_lstm, x, state, upstream, steps):
    x = leaf(x)
    st = [] if state is None else [leaf(s) for s in state]
    outs = _cell_loop(cell, is_lstm, x, st if state is not None else None, steps)
    loss = sum((o * g).sum() for o, g in zip(outs, upstream))
    params = [p for _, p in cell.named_parameters()]
    grads = torch.autograd.grad(loss, [x] + st + params)
    return [o.detach() for o in outs], list(grads)


def _check_cell_against_module(case, cell, is_lstm, x, state0, g_h):
    """Looping the cell == 1-layer module with the same weights (tol 1e-12)."""
    cls_name, _, nonlin, _ = MODES[case.mode]
    kw = dict(num_layers=1, bias=case.bias)
    if nonlin is not None:
        kw["nonlinearity"] = nonlin
    module = getattr(torch.nn, cls_name)(case.input_size, case.hidden_size, **kw, dtype=DTYPE)
    with torch.no_grad():
        for n, p in cell.named_parameters():
            getattr(module, n + "_l0").copy_(p)

    # h-only loss, explicit state leaves on both sides.
    xc, xm = leaf(x), leaf(x)
    sc = [leaf(s) for s in state0]
    sm = [leaf(s.unsqueeze(0)) for s in state0]
    outs_c = _cell_loop(cell, is_lstm, xc, sc, case.steps)
    hx_m = tuple(sm) if is_lstm else sm[0]
    out_m, hn_m = module(xm, hx_m)
    pc = [p for _, p in cell.named_parameters()]
    pm = [p for _, p in module.named_parameters()]
    gc = torch.autograd.grad((outs_c[0] * g_h).sum(), [xc] + sc + pc)
    gm = torch.autograd.grad((out_m * g_h).sum(), [xm] + sm + pm)

    tol = 1e-12
    checks = [("h vs output", outs_c[0], out_m)]
    if is_lstm:
        checks.append(("h[-1] vs h_n", outs_c[0][-1], hn_m[0][0]))
        checks.append(("c[-1] vs c_n", outs_c[1][-1], hn_m[1][0]))
    else:
        checks.append(("h[-1] vs h_n", outs_c[0][-1], hn_m[0]))
    names = ["input"] + ["h0", "c0"][:len(sc)] + [n for n, _ in cell.named_parameters()]
    for n, a, b in zip(names, gc, gm):
        checks.append(("grad " + n, a, b.reshape(a.shape)))
    for what, a, b in checks:
        assert a.shape == b.shape, f"{case.name}: cell vs module {what}: shape {a.shape} vs {b.shape}"
        d = max_rel_diff(a, b)
        assert d <= tol, f"{case.name}: cell vs module {what}: rel diff {d:.3e} > {tol}"


def make_cell_case(case: CellCase):
    _, cls_name, nonlin, _ = MODES[case.mode]
    is_lstm = case.mode == "LSTM"
    seed = case_seed(case.name)
    torch.manual_seed(seed)

    config = dict(input_size=case.input_size, hidden_size=case.hidden_size, bias=case.bias)
    if nonlin is not None:
        config["nonlinearity"] = nonlin
    cell = getattr(torch.nn, cls_name)(**config, dtype=DTYPE)
    perturb_biases(cell.named_parameters())
    named = list(cell.named_parameters())
    param_names = [n for n, _ in named]

    S, H, I, N = case.steps, case.hidden_size, case.input_size, case.batch
    in_shape = (S, I) if case.unbatched else (S, N, I)
    st_shape = (H,) if case.unbatched else (N, H)
    n_states = 2 if is_lstm else 1

    # RNG draw order: input, h0, c0 (when has_h0), grad_h, grad_c.
    x = randn(in_shape)
    state = [randn(st_shape) for _ in range(n_states)] if case.has_h0 else None
    upstream = [randn((S,) + st_shape) for _ in range(n_states)]

    outs, grad_x, grad_states, grad_p = run_with_state_grads(
        lambda st: _cell_forward_backward(cell, is_lstm, x, st, upstream, S),
        state, st_shape, n_states, param_names, case.name)

    state0 = state if state is not None else [torch.zeros(st_shape, dtype=DTYPE)] * n_states
    _check_cell_against_module(case, cell, is_lstm, x, state0, upstream[0])

    meta = base_meta("cell", cls_name, case.mode, config, seed,
                     CELL_LOSS_LSTM if is_lstm else CELL_LOSS, param_names)
    meta.update(steps=S, batch=N, unbatched=case.unbatched, has_h0=case.has_h0)

    arrays = collect_arrays(
        named, x, state if case.has_h0 else None, is_lstm,
        dict(zip(["h", "c"], outs)), dict(zip(["grad_h", "grad_c"], upstream)),
        grad_x, grad_states, param_names, grad_p)
    return meta, arrays


def make_case(case):
    if isinstance(case, CellCase):
        return make_cell_case(case)
    if isinstance(case, PackedCase):
        return make_packed_case(case)
    return make_module_case(case)


# --------------------------------------------------------------------------
# Expected keys and shapes, derived from meta alone (what a test can rely on)
# --------------------------------------------------------------------------

GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "GRU": 3, "LSTM": 4}


def expected_shapes(meta):
    """{key: shape} that a dump with this meta must contain, exactly."""
    cfg = meta["config"]
    G, I, H = GATES[meta["mode"]], cfg["input_size"], cfg["hidden_size"]
    P = cfg.get("proj_size", 0) or H          # the width of h (LSTM with projections: P < H)
    lstm = meta["mode"] == "LSTM"
    N, unb = meta["batch"], meta["unbatched"]
    assert (N is None) == unb
    shapes = {}
    if meta["kind"] in ("module", "packed"):
        nl, D = cfg["num_layers"], 2 if cfg["bidirectional"] else 1
        for k in range(nl):
            for sfx in ([""] if D == 1 else ["", "_reverse"]):
                shapes[f"weight_ih_l{k}{sfx}"] = (G * H, I if k == 0 else D * P)
                shapes[f"weight_hh_l{k}{sfx}"] = (G * H, P)
                if cfg["bias"]:
                    shapes[f"bias_ih_l{k}{sfx}"] = (G * H,)
                    shapes[f"bias_hh_l{k}{sfx}"] = (G * H,)
                if P != H:
                    shapes[f"weight_hr_l{k}{sfx}"] = (P, H)
        L = meta["seq_len"]
        if unb:
            x, st, cs = (L, I), (D * nl, P), (D * nl, H)
        elif cfg["batch_first"]:
            x, st, cs = (N, L, I), (D * nl, N, P), (D * nl, N, H)
        else:
            x, st, cs = (L, N, I), (D * nl, N, P), (D * nl, N, H)
        out = x[:-1] + (D * P,)
        if meta["kind"] == "packed":
            rows = sum(meta["lengths"])
            assert len(meta["lengths"]) == N and sum(meta["batch_sizes"]) == rows
            shapes["packed_data"] = (rows, I)
            shapes["output_padded"] = out
            out = (rows, D * P)
        outputs = {"output": out, "h_n": st, **({"c_n": cs} if lstm else {})}
        states = {"h0": st, **({"c0": cs} if lstm else {})}
    else:
        shapes["weight_ih"] = (G * H, I)
        shapes["weight_hh"] = (G * H, H)
        if cfg["bias"]:
            shapes["bias_ih"] = (G * H,)
            shapes["bias_hh"] = (G * H,)
        S = meta["steps"]
        st = (H,) if unb else (N, H)
        x = (S,) + ((I,) if unb else (N, I))
        outputs = {"h": (S,) + st, **({"c": (S,) + st} if lstm else {})}
        states = {"h0": st, **({"c0": st} if lstm else {})}
    params = [k for k in shapes if k not in ("packed_data", "output_padded")]
    assert params == meta["param_names"], (params, meta["param_names"])
    shapes["input"] = x
    if meta["has_h0"]:
        shapes.update(states)
    shapes.update(outputs)
    for k, s in outputs.items():
        shapes["grad_" + k] = s
    shapes["grad_input"] = x
    for k, s in states.items():
        shapes["grad_" + k] = s
    for p in params:
        shapes["grad." + p] = shapes[p]
    return shapes


# --------------------------------------------------------------------------
# Writing and verifying
# --------------------------------------------------------------------------

_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
# numpy's savez forces zip64 headers (for >4 GiB members); these files are tiny.
FORCE_ZIP64 = False


def write_npz(path: Path, meta: dict, arrays: dict):
    """np.savez_compressed with fixed zip timestamps (byte-deterministic).

    Mirrors numpy's _savez: one deflated '<key>.npy' member per array, in
    insertion order ('meta' first), written by np.lib.format.write_array.
    Differences, invisible to np.load: fixed member timestamps instead of
    the current time, and no forced zip64 headers (saves ~50 bytes/array).
    """
    members = {"meta": np.array(json.dumps(meta, sort_keys=False))}
    members.update(arrays)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, mode="w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
            for key, val in members.items():
                info = zipfile.ZipInfo(key + ".npy", date_time=_ZIP_DATE)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o600 << 16
                with zf.open(info, "w", force_zip64=FORCE_ZIP64) as fid:
                    np.lib.format.write_array(fid, np.asanyarray(val), allow_pickle=False)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_npz(path: Path):
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"][()]))
        arrays = {k: z[k] for k in z.files if k != "meta"}
        assert z["meta"].shape == () and z["meta"].dtype.kind == "U"
    return meta, arrays


#: ``--check`` on another machine: torch's kernels round differently across CPUs (measured:
#: max |diff| 1.2e-14 on another CPU), so what torch COMPUTED (outputs, final states, every
#: gradient) is compared at this normalized tolerance, max|file - regenerated| / max|file|;
#: what was DRAWN (inputs, parameters, initial states, upstream gradients, the packed input)
#: and the meta must stay byte-identical. Documented in minirnn/data/README.md.
CHECK_TOLERANCE = 1e-12
COMPUTED = {"output", "output_padded", "h_n", "c_n", "h", "c", "grad_input", "grad_h0",
            "grad_c0"}


def is_computed(key):
    """Whether ``key`` is a result torch computed (compared at CHECK_TOLERANCE by --check)."""
    return key in COMPUTED or key.startswith("grad.")


def verify(name, meta, arrays, ref_meta=None, ref_arrays=None, compare_versions=True,
           tolerance=0.0):
    """Check a (loaded) dump: keys/shapes/dtypes from meta, and optionally
    equality with what was generated: byte equality, except computed arrays
    (:func:`is_computed`) when ``tolerance`` > 0. Returns a list of problems."""
    problems = []
    try:
        shapes = expected_shapes(meta)
    except AssertionError as e:
        return [f"{name}: meta inconsistent: {e}"]
    if set(arrays) != set(shapes):
        problems.append(f"{name}: keys differ: missing {sorted(set(shapes) - set(arrays))}, "
                        f"extra {sorted(set(arrays) - set(shapes))}")
    for k, s in shapes.items():
        if k in arrays:
            a = arrays[k]
            if a.shape != s:
                problems.append(f"{name}: {k} has shape {a.shape}, expected {s}")
            if a.dtype != np.float64:
                problems.append(f"{name}: {k} has dtype {a.dtype}")
            elif not np.all(np.isfinite(a)):
                problems.append(f"{name}: {k} not finite")
    if ref_meta is not None:
        m1, m2 = dict(meta), dict(ref_meta)
        if not compare_versions:
            for v in ("torch_version", "numpy_version"):
                m1.pop(v, None)
                m2.pop(v, None)
        if m1 != m2:
            problems.append(f"{name}: meta differs: {meta} vs {ref_meta}")
    if ref_arrays is not None:
        if list(arrays) != list(ref_arrays):
            problems.append(f"{name}: keys (or their order) differ from generated")
        for k, ref in ref_arrays.items():
            if k not in arrays:
                continue
            a = arrays[k]
            if a.shape != ref.shape:
                problems.append(f"{name}: {k} has shape {a.shape}, generated {ref.shape}")
            elif tolerance > 0 and is_computed(k):
                err = np.abs(a - ref).max(initial=0.0) / max(np.abs(a).max(initial=0.0), 1e-300)
                if not err <= tolerance:
                    problems.append(f"{name}: {k} differs from generated by {err:.2e} of "
                                    f"max|value| (tolerance {tolerance:.0e})")
            elif a.tobytes() != ref.tobytes():
                problems.append(f"{name}: {k} is not byte-identical to generated (max |diff| "
                                f"{np.abs(a - ref).max(initial=0.0)})")
    return problems


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT,
                    help="output directory (default: minirnn/data in the repo)")
    ap.add_argument("--only", metavar="PATTERN", action="append",
                    help="only cases whose name matches this glob (repeatable); never deletes files")
    ap.add_argument("--check", action="store_true",
                    help="write nothing: regenerate in memory and compare with the files in --out")
    ap.add_argument("--tolerance", type=float, default=CHECK_TOLERANCE,
                    help="--check: normalized tolerance of computed outputs and gradients "
                    f"(default {CHECK_TOLERANCE:g}; 0 demands byte equality everywhere)")
    ap.add_argument("--list", action="store_true", help="print the case names and exit")
    args = ap.parse_args(argv)

    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass

    cases = build_cases()
    if args.only:
        cases = [c for c in cases if any(fnmatch.fnmatchcase(c.name, p) for p in args.only)]
        if not cases:
            ap.error(f"no case matches {args.only}")
    if args.list:
        for c in cases:
            print(c.name)
        return 0

    out = args.out
    problems = []
    if args.check:
        for c in cases:
            path = out / (c.name + ".npz")
            if not path.exists():
                problems.append(f"{c.name}: missing {path}")
                continue
            meta, arrays = make_case(c)
            lmeta, larrays = load_npz(path)
            problems += verify(c.name, lmeta, larrays, meta, arrays, compare_versions=False,
                               tolerance=args.tolerance)
        if not args.only:
            wanted = {c.name + ".npz" for c in cases}
            for p in sorted(out.glob("*.npz")):
                if p.name not in wanted:
                    problems.append(f"stale file {p}")
        for p in problems:
            print("PROBLEM:", p)
        print(f"checked {len(cases)} cases in {out}: "
              f"{'OK' if not problems else str(len(problems)) + ' problem(s)'}")
        return 1 if problems else 0

    out.mkdir(parents=True, exist_ok=True)
    total = 0
    for c in cases:
        meta, arrays = make_case(c)
        p = verify(c.name, meta, arrays)  # before writing
        if p:
            raise AssertionError("\n".join(p))
        path = out / (c.name + ".npz")
        write_npz(path, meta, arrays)
        lmeta, larrays = load_npz(path)
        p = verify(c.name, lmeta, larrays, meta, arrays)
        if p:
            path.unlink()
            raise AssertionError("\n".join(p))
        total += path.stat().st_size
    removed = []
    if not args.only:
        wanted = {c.name + ".npz" for c in cases}
        for p in sorted(out.glob("*.npz")):
            if p.name not in wanted:
                p.unlink()
                removed.append(p.name)
    print(f"wrote {len(cases)} cases to {out} ({total / 1024:.1f} KiB)"
          + (f"; removed {len(removed)} stale: {removed}" if removed else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())

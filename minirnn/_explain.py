"""``python -m minirnn explain``: what every array of a configuration is, checked on real numbers.

For any mode and options it prints

1. the shapes of the input, the initial states, ``output`` and the final states, with what
   each axis means;
2. the parameter table: every array of ``state_dict()`` with its shape and, for each block of
   ``hidden_size`` rows, the gate it belongs to, PyTorch's symbol (``W_ir``, ``W_hr``,
   ``b_ir`` ...) and the paper's (``W_r``, ``U_r``);
3. which slice of ``output`` equals which row of ``h_n`` -- computed with the real model on
   random numbers, not assumed. Rows of ``h_n`` below the last layer are compared with the
   output of the same weights cut to fewer layers.

:func:`explain` returns True when every identity held; the command exits 1 otherwise.
"""
from __future__ import annotations

import argparse
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import numpy as np

from ._typing import DType, Seed
from .modules import BACKENDS, GRU, LSTM, RNN, _RNNBase

#: mode name -> (class, extra constructor kwargs)
MODES: Dict[str, Tuple[type, Dict[str, Any]]] = {
    "rnn_tanh": (RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (RNN, {"nonlinearity": "relu"}),
    "gru": (GRU, {}),
    "lstm": (LSTM, {}),
}

#: mode -> one (gate letter, description) per block of H rows, in PyTorch's order
GATES = {
    "rnn_tanh": [("", "h = tanh(W x + b_ih + U h + b_hh)")],
    "rnn_relu": [("", "h = relu(W x + b_ih + U h + b_hh)")],
    "gru": [("r", "reset gate"), ("z", "update gate"), ("n", "candidate (new) state")],
    "lstm": [("i", "input gate"), ("f", "forget gate"), ("g", "cell candidate"),
             ("o", "output gate")],
}


def gate_blocks(mode: str, kind: str) -> List[Tuple[str, str, str, str]]:
    """[(gate, PyTorch symbol, paper symbol, description)] for one block of rows each.

    kind: 'weight_ih', 'weight_hh', 'bias_ih' or 'bias_hh'."""
    rows = []
    for gate, desc in GATES[mode]:
        if not gate:                                     # Elman RNN: one block
            torch_sym = {"weight_ih": "W_ih", "weight_hh": "W_hh",
                         "bias_ih": "b_ih", "bias_hh": "b_hh"}[kind]
            paper = {"weight_ih": "W", "weight_hh": "U"}.get(kind, "")
        else:
            side = "i" if kind.endswith("_ih") else "h"
            torch_sym = ("W_" if kind.startswith("weight") else "b_") + side + gate
            paper = {"weight_ih": f"W_{gate}", "weight_hh": f"U_{gate}"}.get(kind, "")
        rows.append((gate, torch_sym, paper, desc))
    return rows


def build(mode: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
          batch_first: bool = False, bidirectional: bool = False, dtype: DType = np.float32,
          seed: Seed = 0, backend: Optional[str] = None, proj_size: int = 0,
          variant: Optional[Mapping[str, Any]] = None) -> _RNNBase:
    """The module a configuration describes (``variant``: the cell-variant keyword arguments,
    e.g. ``{"reset_after": False}``, see :mod:`minirnn.variants`)."""
    cls, extra = MODES[mode]
    if proj_size:
        extra = dict(extra, proj_size=proj_size)
    if variant:
        extra = dict(extra, **variant)
    return cls(input_size, hidden_size, num_layers=num_layers, bias=bias, batch_first=batch_first,
               bidirectional=bidirectional, dtype=dtype, seed=seed, backend=backend, **extra)


def _run(m, x):
    """(output, h_n, c_n or None) of one forward."""
    out, state = m(x)
    if isinstance(state, tuple):
        return out, state[0], state[1]
    return out, state, None


def _layer_name(layer, d):
    return f"weight_ih_l{layer}{'_reverse' if d else ''}"


def explain(mode: str = "gru", input_size: int = 8, hidden_size: int = 50, num_layers: int = 1,
            bidirectional: bool = False, batch_first: bool = False, batch: int = 4,
            seq: int = 7, bias: bool = True, unbatched: bool = False,
            dtype: DType = np.float32, seed: int = 0, backend: Optional[str] = None,
            out: Callable[..., Any] = print, proj_size: int = 0,
            variant: Optional[Mapping[str, Any]] = None) -> bool:
    """Print the explanation of one configuration through ``out``; return True if every
    identity between ``output`` and ``h_n`` held on the real numbers. ``variant``: the
    cell-variant keyword arguments of the constructor (``reset_after``, ``peephole``,
    ``coupled_input_forget``, ``cell_clip``, ``activations``, ``reverse``), or None."""
    mode = MODE_ALIASES.get(mode.lower(), mode.lower())
    if mode not in MODES:
        raise ValueError(f"mode must be one of {sorted(MODES)}, got {mode!r}")
    dtype = np.dtype(dtype)
    variant = dict(variant or {})
    m = build(mode, input_size, hidden_size, num_layers, bias, batch_first, bidirectional, dtype,
              seed, backend, proj_size, variant)
    reverse_only = bool(variant.get("reverse"))
    H, D, NL, L, N, I = hidden_size, m.num_directions, num_layers, seq, batch, input_size
    P = proj_size or H                            # the width of h (and of output per direction)
    G = len(GATES[mode])
    is_lstm = mode == "lstm"
    gate_letters = ", ".join(g for g, _ in GATES[mode] if g)
    bf = batch_first and not unbatched            # batch_first is ignored for unbatched input

    # ---------------------------------------------------------------- shapes
    rng = np.random.default_rng(seed + 1)
    hw = "P" if proj_size else "H"                       # the letter of h's width
    x_shape: Tuple[int, ...]
    if unbatched:
        x_shape, x_axes = (L, I), "(L, H_in)"
        out_axes, st_axes, c_axes = f"(L, D*{hw})", f"(num_layers*D, {hw})", "(num_layers*D, H)"
    elif bf:
        x_shape, x_axes = (N, L, I), "(N, L, H_in)"
        out_axes, st_axes = f"(N, L, D*{hw})", f"(num_layers*D, N, {hw})"
        c_axes = "(num_layers*D, N, H)"
    else:
        x_shape, x_axes = (L, N, I), "(L, N, H_in)"
        out_axes, st_axes = f"(L, N, D*{hw})", f"(num_layers*D, N, {hw})"
        c_axes = "(num_layers*D, N, H)"
    x = rng.standard_normal(x_shape).astype(dtype)
    output, h_n, c_n = _run(m, x)

    out(f"minirnn explain: {m!r}" + ("   (unbatched input)" if unbatched else ""))
    out(f"  L = {L} step{'s' if L > 1 else ''}, " + ("" if unbatched else f"N = {N} batch rows, ")
        + f"H_in = {I}, H = {H}, " + (f"proj_size P = {P} (h is P wide, c is H wide), "
                                       if proj_size else "")
        + f"D = {D} direction{'s' if D > 1 else ''}, {NL} layer"
        + f"{'s' if NL > 1 else ''}; G = {G} gate block{'s' if G > 1 else ''}"
        + (f" in PyTorch's order {gate_letters}" if gate_letters else "")
        + f"; {dtype.name}, seed {seed}, backend {m.backend}")
    if unbatched and batch_first:
        out("  (batch_first is ignored for unbatched input, as in PyTorch)")
    for line in _variant_lines(mode, variant):
        out("  " + line)
    out("")
    out("shapes")
    where = ("batch first (batch_first=True)" if bf else "time first")
    rows = [("input x", x.shape, x_axes, where if not unbatched else "no batch axis"),
            ("h0", h_n.shape, st_axes, "optional, None = zeros; never batch-first")]
    if is_lstm:
        rows.append(("c0", c_n.shape, c_axes, "optional, None = zeros; never batch-first"))
    rows.append(("output", output.shape, out_axes,
                 "the LAST layer at EVERY step" + (f"; [..., :{hw}] forward, [..., {hw}:] reverse"
                                                  if D == 2 else "")))
    rows.append(("h_n", h_n.shape, st_axes,
                 "EVERY layer at the LAST step; row layer*D + direction; never batch-first"))
    if is_lstm:
        rows.append(("c_n", c_n.shape, c_axes,
                     "cell state, same rows as h_n; appears nowhere in output"))
    for name, shape, axes, note in rows:
        out(f"  {name:<8} {str(shape):<14} {axes:<22} {note}")
    out(f"  output grows with L; h_n does not (one row per layer and direction). "
        f"h_n.reshape({NL}, {D}{'' if unbatched else f', {N}'}, {P})[layer, direction] "
        "splits it.")

    # ---------------------------------------------------------------- parameters
    sd = m.state_dict()
    out("")
    out(f"parameters (state_dict order: {len(sd)} arrays, {sum(v.size for v in sd.values())} "
        f"numbers, each from U(-1/sqrt({H}), 1/sqrt({H})) = U(-{1 / np.sqrt(H):.4g}, "
        f"{1 / np.sqrt(H):.4g}))")
    if G > 1:
        out("  rows k*H:(k+1)*H of every array are gate k, in PyTorch's order: "
            + ", ".join(f"{g} = {desc}" for g, desc in GATES[mode]))
    else:
        out(f"  one block of H rows: {GATES[mode][0][1]}")
    out(f"  {'name':<22} {'shape':<12} row blocks: PyTorch's symbol (= the paper's)")
    for name, v in sd.items():
        kind = name.split("_l")[0]
        if kind == "weight_peephole":
            out(f"  {name:<22} {str(v.shape):<12} 0:{H} p_i | {H}:{2 * H} p_f | {2 * H}:{3 * H} "
                "p_o: the peepholes, i and f see c_{t-1}, o sees c_t")
            continue
        if kind == "weight_hr":
            out(f"  {name:<22} {str(v.shape):<12} 0:{P} W_hr: the projection h = (o * tanh c) "
                "W_hr^T, from H to P")
            continue
        blocks = " | ".join(
            f"{k * H}:{(k + 1) * H} {torch_sym}" + (f" (= {paper})" if paper else "")
            for k, (gate, torch_sym, paper, desc) in enumerate(gate_blocks(mode, kind)))
        out(f"  {name:<22} {str(v.shape):<12} {blocks}")
    if NL > 1:
        out("  weight_ih_l1 and above read the layer below: "
            + (f"columns 0:{P} its forward output, {P}:{2 * P} its reverse output"
               if D == 2 else f"its {P} outputs"))
    if D == 2:
        out("  _reverse: the same blocks for the reverse direction, which has its own weights")

    # ---------------------------------------------------------------- identities
    out("")
    out(f"which slice of output is which row of h_n{' (and c_n)' if is_lstm else ''}, "
        "verified on these numbers")

    def sl(t, d, width=P):
        """(slice of an output array at step t, direction d; its expression)."""
        cols = f"{':' if d == 0 and D == 1 else (f':{width}' if d == 0 else f'{width}:')}"
        c = slice(d * width, (d + 1) * width)
        if unbatched:
            return (lambda a: a[t, c]), f"[{t}, {cols}]"
        if bf:
            return (lambda a: a[:, t, c]), f"[:, {t}, {cols}]"
        return (lambda a: a[t, :, c]), f"[{t}, :, {cols}]"

    ok = True
    last_t = -1
    out(f"  {'h_n row':<8} {'layer':<6} {'direction':<10} {'equals':<50} {'max|diff|':>10}  check")
    sub_cache = {}
    for k in range(NL * D):
        layer, d = divmod(k, D)
        t = 0 if d == 1 or reverse_only else last_t
        take, expr = sl(t, d)
        if layer == NL - 1:
            ref, what = take(output), f"output{expr}"
        else:
            # the output of layer `layer` is not returned: run the same weights cut to
            # layer+1 layers and take that output's slice
            if layer not in sub_cache:
                sub = build(mode, I, H, layer + 1, bias, batch_first, bidirectional, dtype, seed,
                            backend, proj_size, variant)
                sub.load_state_dict({n: v for n, v in sd.items() if n in sub.state_dict()})
                sub_cache[layer] = _run(sub, x)[0]
            layers_run = f"s 0..{layer}" if layer else " 0"
            ref, what = take(sub_cache[layer]), (f"output{expr} of layer{layers_run} "
                                               "run alone")
        diff = float(np.abs(ref - h_n[k]).max())
        good = np.array_equal(ref, h_n[k])
        ok &= good
        dname = "reverse" if d == 1 or reverse_only else "forward"
        out(f"  h_n[{k}]{'':<{3 - len(str(k))}} {layer:<6} {dname:<10} "
            f"{what:<50} {diff:>10.3g}  {'ok' if good else 'FAIL'}")
    if D == 2:
        take, expr = sl(last_t, 1)
        k = NL * D - 1
        diff = float(np.abs(take(output) - h_n[k]).max())
        if L > 1:
            out(f"  but h_n[{k}] != output{expr}: the reverse direction runs from step L-1 down to "
                f"step 0 and ends there (max|diff| {diff:.3g})")
        else:
            out("  (with L = 1 the first step is also the last, so output[-1] holds both final "
                "states)")
    if NL > 1:
        below = (NL - 1) * D
        rows_below = "[0]" if below == 1 else f"[0:{below}]"
        out(f"  h_n{rows_below} (layers below the last) appear nowhere "
            "in output: output is the last layer only")
    if is_lstm:
        out("  c_n: the cell state is never output; only h = o * tanh(c) is"
            + (" (projected: h = (o * tanh(c)) W_hr^T)" if proj_size else ""))

    if bf:
        m_tf = build(mode, I, H, NL, bias, False, bidirectional, dtype, seed, backend, proj_size,
                     variant)
        out_tf, h_tf, c_tf = _run(m_tf, np.ascontiguousarray(x.transpose(1, 0, 2)))
        good = (np.array_equal(h_tf, h_n) and np.array_equal(out_tf.transpose(1, 0, 2), output)
                and (c_n is None or np.array_equal(c_tf, c_n)))
        ok &= good
        out("  batch_first moves the batch axis of input and output only: the same weights with "
            "batch_first=False on x.transpose(1, 0, 2) give output.transpose(1, 0, 2) and the "
            f"same h_n{', c_n' if is_lstm else ''}: {'ok' if good else 'FAIL'}")
    out("")
    out("all identities hold" if ok else "FAILED: an identity above does not hold")
    return ok


def _variant_lines(mode, variant):
    """One line per cell variant of the configuration: what it changes in the equations."""
    lines = []
    if variant.get("reset_after") is False:
        lines.append("reset_after=False: the paper's GRU, n = tanh(W_in x + b_in + W_hn (r * h) "
                     "+ b_hn): the reset gate acts BEFORE the recurrent product")
    if variant.get("peephole"):
        lines.append("peephole=True: i and f also see p * c_{t-1}, o sees p * c_t "
                     "(weight_peephole, blocks i, f, o)")
    if variant.get("coupled_input_forget"):
        lines.append("coupled_input_forget=True: f = 1 - i (the forget rows are unused)")
    if variant.get("cell_clip") is not None:
        c = variant["cell_clip"]
        lines.append(f"cell_clip={c}: every gate pre-activation is clipped to [-{c}, {c}] "
                     "before its activation")
    if variant.get("activations") is not None:
        from .variants import SLOT_NAMES, make_activation
        slots = SLOT_NAMES[mode.upper()]
        acts = [make_activation(a) for a in variant["activations"]]
        named = ", ".join(f"{slots[k % len(slots)]} = {a!r}" for k, a in enumerate(acts))
        lines.append(f"activations (ONNX's slots {', '.join(slots)} per direction): {named}")
    if variant.get("reverse"):
        lines.append("reverse=True: the layer runs from the last step to the first; output "
                     "keeps the input's time order, so h_n is at output step 0")
    return lines


def _activation_list(text):
    """``--activations``: names separated by commas, each ``Name`` or ``Name:alpha[:beta]``."""
    acts = []
    for item in text.split(","):
        name, *params = item.strip().split(":")
        try:
            values = [float(v) for v in params]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"invalid activation {item!r}: expected Name or Name:alpha[:beta]") from None
        acts.append((name, *values) if values else name)
    return acts


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The ``explain`` subcommand's options: the constructors' names (``--num-layers``,
    ``--hidden-size`` ...; ``_`` or ``-`` between words), with the short forms kept as
    aliases."""
    def add(*names, **kw):
        # every long name also with underscores: --hidden_size as the constructor spells it
        names = names + tuple("--" + n[2:].replace("-", "_") for n in names[1:] if "-" in n[2:])
        return p.add_argument(*names[1:], dest=names[0], **kw)
    add("mode", "--mode", default="gru", type=_mode, metavar="MODE",
        help="cell type: rnn (= rnn_tanh), rnn_tanh, rnn_relu, gru or lstm (default gru)")
    add("input_size", "--input-size", "--input", type=int, default=8, metavar="N",
        help="input_size: features per step, H_in (default 8)")
    add("hidden_size", "--hidden-size", "--hidden", type=int, default=50, metavar="N",
        help="hidden_size: features of the hidden state, H (default 50)")
    add("num_layers", "--num-layers", "--layers", type=int, default=1, metavar="N",
        help="num_layers: stacked layers (default 1)")
    add("bidirectional", "--bidirectional", action="store_true",
        help="bidirectional=True: a forward and a reverse direction per layer")
    add("batch_first", "--batch-first", action="store_true",
        help="batch_first=True: input and output are (N, L, ...)")
    add("no_bias", "--no-bias", action="store_true", help="bias=False")
    add("proj_size", "--proj-size", "--proj", type=int, default=0, metavar="P",
        help="LSTM only: proj_size, 0 < P < hidden_size (default 0: no projection)")
    add("unbatched", "--unbatched", action="store_true",
        help="2-D input (L, H_in), no batch axis")
    add("batch", "--batch", "--batch-size", type=int, default=4, metavar="N",
        help="batch size N of the example input (default 4)")
    add("seq_len", "--seq-len", "--seq", type=int, default=7, metavar="L",
        help="sequence length L of the example input (default 7)")
    add("dtype", "--dtype", choices=["float32", "float64"], default="float32")
    add("seed", "--seed", type=int, default=0, metavar="N",
        help="seed of the weights and data (default 0)")
    add("backend", "--backend", choices=BACKENDS, default=None,
        help="compute path: c (compiled) or numpy (default: the modules' default)")
    v = p.add_argument_group("cell variants (minirnn.variants; default: PyTorch's cells)")
    v.add_argument("--reset-before", "--reset_before", dest="reset_before",
                   action="store_true",
                   help="GRU only: reset_after=False, the paper's GRU (ONNX "
                        "linear_before_reset=0, Keras reset_after=False)")
    v.add_argument("--peephole", action="store_true",
                   help="LSTM only: peephole=True (weight_peephole, ONNX's P)")
    v.add_argument("--coupled-input-forget", "--coupled_input_forget",
                   dest="coupled_input_forget", action="store_true",
                   help="LSTM only: coupled_input_forget=True, f = 1 - i (ONNX input_forget=1)")
    v.add_argument("--cell-clip", "--cell_clip", dest="cell_clip", type=float, default=None,
                   metavar="C", help="cell_clip=C: clip gate pre-activations to [-C, C]")
    v.add_argument("--activations", type=_activation_list, default=None, metavar="LIST",
                   help="activations, ONNX's names in slot order (LSTM f,g,h; GRU f,g; RNN f; "
                        "twice for --bidirectional), e.g. HardSigmoid:0.2:0.5,Softsign")
    v.add_argument("--reverse", action="store_true",
                   help="reverse=True: a unidirectional layer run from the last step")
    return p


def variant_of(args: argparse.Namespace) -> Dict[str, Any]:
    """The variant keyword arguments the parsed options ask for (``{}`` for PyTorch's)."""
    kw: Dict[str, Any] = {}
    if getattr(args, "reset_before", False):
        kw["reset_after"] = False
    for name in ("peephole", "coupled_input_forget", "reverse"):
        if getattr(args, name, False):
            kw[name] = True
    if getattr(args, "cell_clip", None) is not None:
        kw["cell_clip"] = args.cell_clip
    if getattr(args, "activations", None) is not None:
        kw["activations"] = args.activations
    return kw


#: --mode's accepted names: the module's (rnn = RNN's default nonlinearity, tanh)
MODE_ALIASES = {"rnn": "rnn_tanh"}


def _mode(text):
    mode = MODE_ALIASES.get(text.lower(), text.lower())
    if mode not in MODES:
        raise argparse.ArgumentTypeError(
            f"invalid mode {text!r}: choose from rnn, {', '.join(sorted(MODES))}")
    return mode


def run(args: argparse.Namespace) -> int:
    """Run ``explain`` from parsed arguments; return the exit status."""
    for name, option in (("num_layers", "--num-layers"), ("hidden_size", "--hidden-size"),
                         ("input_size", "--input-size"), ("batch", "--batch"),
                         ("seq_len", "--seq-len")):
        if getattr(args, name) < 1:
            raise SystemExit(f"python -m minirnn explain: {option} must be at least 1, got "
                             f"{getattr(args, name)}")
    if args.proj_size and (args.mode != "lstm" or not 0 < args.proj_size < args.hidden_size):
        raise SystemExit("python -m minirnn explain: --proj-size needs --mode lstm and "
                         f"0 < proj_size < hidden_size, got --proj-size {args.proj_size} with "
                         f"--mode {args.mode} --hidden-size {args.hidden_size}")
    variant = variant_of(args)
    for name, option, modes in (("reset_after", "--reset-before", ("gru",)),
                                ("peephole", "--peephole", ("lstm",)),
                                ("coupled_input_forget", "--coupled-input-forget", ("lstm",))):
        if name in variant and args.mode not in modes:
            raise SystemExit(f"python -m minirnn explain: {option} needs --mode "
                             f"{' or '.join(modes)}, got --mode {args.mode}")
    if variant.get("reverse") and args.bidirectional:
        raise SystemExit("python -m minirnn explain: --reverse is for a unidirectional layer; "
                         "--bidirectional already runs a reverse direction")
    try:
        ok = explain(args.mode, args.input_size, args.hidden_size, args.num_layers,
                     args.bidirectional, args.batch_first, args.batch, args.seq_len,
                     not args.no_bias, args.unbatched, np.dtype(args.dtype), args.seed,
                     args.backend, proj_size=args.proj_size, variant=variant)
    except (TypeError, ValueError) as e:
        if not variant:
            raise
        raise SystemExit(f"python -m minirnn explain: {e}") from None
    return 0 if ok else 1


if __name__ == "__main__":                                 # pragma: no cover
    import sys
    sys.exit(run(add_arguments(argparse.ArgumentParser(prog="python -m minirnn explain"))
                 .parse_args()))

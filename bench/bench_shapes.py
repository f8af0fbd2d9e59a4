"""The shapes bench/bench_rnn.py times: the project's own sizes and the published benchmark sets.

A *size* is one named problem (:class:`Shape`): sequence length T, batch B, input width I,
hidden width H, layers, direction, layout, the modes it is run in, the phases that make
sense for it and, for a packed row, how the lengths of its sequences are drawn. A *set*
(:data:`SETS`) is a named list of sizes with a ``--quick`` subset; ``standard`` is every
published set together. ``python bench/bench_rnn.py --list-sets`` prints them.

Sources of the published shapes:

- ``deepbench``: Baidu DeepBench's RNN *inference* kernels (I = H): LSTM and GRU with
  H in {512, 1024, 1536, 2048}, N in {1, 2, 4}, T in {25, 50, 150}; the vanilla (tanh) RNN
  with H in {1760, 2048, 2560}, N in {16, 32}, T = 50; and the "device" rows (small models
  on phones): vanilla 32/1/672 and 64/1/96 and LSTM 256/1/150 (H/N/T);
- ``fastrnns``: PyTorch's ``benchmarks/fastrnns`` default, an LSTM with T = 100,
  I = H = 512, N = 64;
- ``gnmt``: benchdnn's GNMT encoder: T = 30, H = 512 and 1024, the bidirectional first
  layer (I = H) and the unidirectional layer after it (I = 2H), batch 32 and 128;
- ``deepspeech2``: DeepSpeech2's recurrent layers: H = 1760 (I = H), T from 50 to 200,
  batch 16, the vanilla RNN and the GRU it was published with;
- ``odd``: sizes with ragged tails for every vector width and tile (H in {17, 65, 85, 130},
  I = 37, N = 13, T = 70, 2 layers), every mode;
- ``pytorch81634``: the model of pytorch/pytorch#81634 (a CPU LSTM reported slow): 2 layers,
  I = H = 256, N = 8, T = 2000;
- ``packed``: variable-length batches as PackedSequences (lengths uniform in 1..T, and a
  long-tailed mix: most sequences short, a few long), the LSTM I = 128 H = 256 N = 32
  T = 100 and a 2-layer bidirectional GRU I = 128 H = 256 N = 64 T = 200; minirnn packed
  against torch's ``pack_padded_sequence`` path and against minirnn on the same batch
  padded (every sequence run to T).
"""
from __future__ import annotations

from typing import Dict, List, NamedTuple, Optional, Tuple

ALL_MODES = ("rnn", "gru", "lstm")
BOTH_PHASES = ("infer", "train")
GATES = {"rnn": 1, "gru": 3, "lstm": 4}


class Shape(NamedTuple):
    T: int
    B: int
    I: int                                   # noqa: E741 (the book's name)
    H: int
    layers: int = 1
    bidirectional: bool = False
    batch_first: bool = False
    modes: Tuple[str, ...] = ALL_MODES
    phases: Tuple[str, ...] = BOTH_PHASES    # the phases the size is run in by default
    lengths: Optional[str] = None            # None: padded; "uniform" or "longtail": packed


# ------------------------------------------------------------------ the project's own sizes
SIZES: Dict[str, Shape] = {
    "tiny":   Shape(20,   1,    8,   32, 1),
    "small":  Shape(50,   16,   32,  64, 1),
    "medium": Shape(100,  64,  128, 256, 1),
    "large":  Shape(100,  64,  512, 512, 2),
    "bidir":  Shape(100,  32,  128, 128, 2, True),
    "long":   Shape(1000, 8,    32, 128, 1),
    # the example that started the project: a 3-layer bidirectional batch-first GRU
    "seed":   Shape(112, 1024,   8,  50, 3, True, True, ("gru",)),
}
DEFAULT_SIZES = tuple(SIZES)

# ------------------------------------------------------------------ the published sets
SETS: Dict[str, Tuple[str, List[str], List[str]]] = {}     # name: (description, sizes, quick)
# the phases a size of a --quick subset runs in, where fewer than its own (the costly ones:
# their training rows take seconds per call)
QUICK_PHASES: Dict[str, Tuple[str, ...]] = {}


def _add(set_name: str, name: str, shape: Shape, quick: object = False) -> None:
    """Add a size to a set; ``quick``: True (in the --quick subset), "infer" (in it,
    inference only) or False."""
    if name in SIZES:
        raise ValueError(f"size {name!r} defined twice")
    SIZES[name] = shape
    SETS[set_name][1].append(name)
    if quick:
        SETS[set_name][2].append(name)
    if quick == "infer":
        QUICK_PHASES[name] = ("infer",)


def _inference(mode: str) -> dict:
    return dict(modes=(mode,), phases=("infer",))


SETS["deepbench"] = ("Baidu DeepBench inference (I = H; name: mode, H, N, T)", [], [])
for _mode in ("lstm", "gru"):
    for _H in (512, 1024, 1536, 2048):
        for _N in (1, 2, 4):
            for _T in (25, 50, 150):
                _add("deepbench", f"db-{_mode}-{_H}-{_N}-{_T}", Shape(_T, _N, _H, _H, 1,
                     **_inference(_mode)),
                     quick=(_H, _N, _T) in ((512, 1, 25), (1024, 4, 25), (1024, 2, 25)))
for _H in (1760, 2048, 2560):
    for _N in (16, 32):
        _add("deepbench", f"db-rnn-{_H}-{_N}-50", Shape(50, _N, _H, _H, 1, **_inference("rnn")),
             quick=(_H, _N) == (1760, 16))
_add("deepbench", "db-dev-rnn-32-1-672", Shape(672, 1, 32, 32, 1, **_inference("rnn")))
_add("deepbench", "db-dev-rnn-64-1-96", Shape(96, 1, 64, 64, 1, **_inference("rnn")),
     quick=True)
_add("deepbench", "db-dev-lstm-256-1-150", Shape(150, 1, 256, 256, 1, **_inference("lstm")),
     quick=True)

SETS["fastrnns"] = ("PyTorch's benchmarks/fastrnns default LSTM", [], [])
_add("fastrnns", "fastrnns", Shape(100, 64, 512, 512, 1, modes=("lstm",)), quick="infer")

SETS["gnmt"] = ("benchdnn's GNMT encoder: bidirectional first layer (I = H), then "
                "unidirectional (I = 2H); T = 30", [], [])
for _H in (512, 1024):
    for _N in (32, 128):
        _add("gnmt", f"gnmt-bi-{_H}-{_N}", Shape(30, _N, _H, _H, 1, True, modes=("lstm",)),
             quick="infer" if (_H, _N) == (512, 32) else False)
        _add("gnmt", f"gnmt-uni-{_H}-{_N}", Shape(30, _N, 2 * _H, _H, 1, modes=("lstm",)))

SETS["deepspeech2"] = ("DeepSpeech2's recurrent layers, H = I = 1760, batch 16", [], [])
for _T in (50, 100, 200):
    _add("deepspeech2", f"ds2-1760-16-{_T}", Shape(_T, 16, 1760, 1760, 1, modes=("rnn", "gru"),
                                                   phases=("infer",) if _T > 50 else BOTH_PHASES),
         quick="infer" if _T == 50 else False)

SETS["odd"] = ("ragged tails: I = 37, N = 13, T = 70, 2 layers", [], [])
for _H in (17, 65, 85, 130):
    _add("odd", f"odd-{_H}", Shape(70, 13, 37, _H, 2), quick=_H == 85)

SETS["pytorch81634"] = ("pytorch/pytorch#81634's LSTM: 2 layers, I = H = 256, N = 8, T = 2000",
                        [], [])
_add("pytorch81634", "pytorch81634", Shape(2000, 8, 256, 256, 2, modes=("lstm",)),
     quick="infer")

SETS["packed"] = ("PackedSequence batches (uniform and long-tailed lengths) against torch's "
                  "packed path and minirnn padded", [], [])
for _dist in ("uniform", "longtail"):
    _add("packed", f"packed-lstm-{_dist}", Shape(100, 32, 128, 256, 1, modes=("lstm",),
                                                 lengths=_dist), quick=_dist == "uniform")
    _add("packed", f"packed-gru-{_dist}", Shape(200, 64, 128, 256, 2, True, modes=("gru",),
                                                lengths=_dist), quick=_dist == "longtail")

PUBLISHED = tuple(SETS)
SETS["standard"] = ("every published set: " + ", ".join(PUBLISHED),
                    [s for k in PUBLISHED for s in SETS[k][1]],
                    [s for k in PUBLISHED for s in SETS[k][2]])
SETS["sizes"] = ("the project's own sizes (the default)", list(DEFAULT_SIZES),
                 ["tiny", "small", "medium"])


def describe_size(name: str) -> str:
    s = SIZES[name]
    extra = (", bidirectional" if s.bidirectional else "") + (
        ", batch_first" if s.batch_first else "") + (
        f", packed ({s.lengths} lengths)" if s.lengths else "")
    only = "" if s.modes == ALL_MODES else f"  [{'/'.join(m.upper() for m in s.modes)}]"
    if s.phases != BOTH_PHASES:
        only += f"  [{'/'.join(s.phases)}]"
    return f"T={s.T} B={s.B} I={s.I} H={s.H} layers={s.layers}{extra}{only}"


def draw_lengths(shape: Shape, rng) -> list:
    """The sequence lengths of a packed row, one per batch entry, max(lengths) == T:
    ``uniform``: each uniform in 1..T; ``longtail``: T * u^4 rounded up (u uniform in
    [0, 1): a mean of T/5, a quarter of the sequences longer than T/3, one at T)."""
    import numpy as np
    T, B = shape.T, shape.B
    if shape.lengths == "uniform":
        lengths = rng.integers(1, T + 1, size=B)
    elif shape.lengths == "longtail":
        lengths = np.maximum(1, np.ceil(T * rng.random(B) ** 4)).astype(np.int64)
    else:
        raise ValueError(f"unknown lengths {shape.lengths!r}")
    lengths[int(rng.integers(B))] = T
    return [int(v) for v in lengths]


def matmul_gflop(size: str, mode: str, phase: str, lengths: Optional[list] = None) -> float:
    """GFLOP (2 per multiply-add) of the matrix products of one call: the bulk of its work,
    and what the machine's FMA peak bounds (bench/peak_flops.py). Per layer and direction,
    with G gates and the layer's input width I_l: the forward's G_x = X W_ih^T and
    G_h = h W_hh^T over all T*B rows (sum(lengths) rows when packed),
    2*rows*G*H*(I_l + H); training adds the backward's dX = dG W_ih and dh = dG W_hh, and
    the weight gradients dW_ih = dG^T X and dW_hh = dG^T H, twice as much again. The
    pointwise gate math is not counted."""
    s = SIZES[size]
    D = 2 if s.bidirectional else 1
    rows = sum(lengths) if lengths else s.T * s.B
    fwd = sum(2 * rows * GATES[mode] * s.H * ((s.I if layer == 0 else D * s.H) + s.H) * D
              for layer in range(s.layers))
    return (fwd if phase == "infer" else 3 * fwd) / 1e9


def w_hh_bytes(size: str, mode: str, itemsize: int) -> int:
    """Bytes of one layer-direction's W_hh: what each step of the recurrence streams."""
    s = SIZES[size]
    return GATES[mode] * s.H * s.H * itemsize

"""The compiled backend on its own terms: thread-count invariance, the GIL, both instruction-set
variants, shapes that cross every block boundary of the kernels, and argument checks.

Expected values come from the NumPy path (the oracle) or from the kernels themselves under
another thread count; none is typed in by hand.
"""
import os
import threading
import time

import numpy as np
import pytest

import minirnn
from minirnn import _kernels
from minirnn.conformance import DATA_DIR, TOLERANCE, find_cases, run_case

from helpers import MODES, join_state, make_module, perturb_biases, train_step

DTYPES = [np.float64, np.float32]
DATA = DATA_DIR


def setup_model(mode, backend="c", dtype=np.float64, T=6, B=37, I=3, H=5, layers=2,
                bidirectional=True, seed=0, P=0, dropout=0.0):
    """A model with perturbed biases, an input and a random initial state; P > 0: an LSTM with
    proj_size=P; dropout: between layers (the model's generator is seeded by ``seed``)."""
    rng = np.random.default_rng(seed)
    kw = dict(proj_size=P) if P else {}
    m = make_module(mode, I, H, num_layers=layers, bidirectional=bidirectional, dtype=dtype,
                    seed=seed, backend=backend, dropout=dropout, **kw)
    perturb_biases(m, rng)
    D = 2 if bidirectional else 1
    x = rng.standard_normal((T, B, I)).astype(dtype)
    h0 = rng.standard_normal((layers * D, B, P or H)).astype(dtype)
    c0 = rng.standard_normal((layers * D, B, H)).astype(dtype)
    return m, x, join_state(mode, h0, c0)


# large enough for every phase but the packing to ask for several threads
PARALLEL_SHAPE = dict(T=20, B=37, I=16, H=24)


@pytest.fixture
def restore_threads():
    n = minirnn.get_num_threads()
    yield
    minirnn.set_num_threads(n)


@pytest.fixture
def restore_isa():
    isa = _kernels.get_isa()
    yield
    _kernels.set_isa(isa)


# ------------------------------------------------------------------------ thread-count invariance

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", MODES)
def test_results_are_bitwise_identical_for_any_thread_count(mode, dtype, restore_threads):
    # B = 37 makes 4 uneven batch slices (9 and 10 rows) in each of 2 directions; T*B = 740
    # rows crosses the 64-row blocks; big enough that the phases really run in parallel
    # (small ones use one thread)
    assert _kernels.n_slices(37, 2) == 4
    results = {}
    for n in (1, 2, 4):
        minirnn.set_num_threads(n)
        m, x, state = setup_model(mode, dtype=dtype, **PARALLEL_SHAPE)
        results[n] = train_step(m, x, state)
        if minirnn.openmp_enabled():
            assert _kernels._largest_team_of_last_call() == min(n, 2 * _kernels.n_slices(37, 2))
    for n in (2, 4):
        for key, ref in results[1].items():
            assert np.array_equal(results[n][key], ref), f"{key}: {n} threads != 1 thread"


@pytest.fixture
def restore_slices():
    old = _kernels._set_slice_rows(1, 1, 1)
    _kernels._set_slice_rows(*old)
    yield
    _kernels._set_slice_rows(*old)


def test_batch_slices_follow_the_shape_rules():
    # (B, D, weight bytes per direction) -> slices: 8 rows or more, unless that leaves fewer
    # than 4 (direction, slice) units, then 4 or more; 32 or more for big weights; 1 to 64
    big = 512 * 1024 + 1
    cases = [((1, 1, 0), 1), ((8, 1, 0), 2), ((16, 1, 0), 4), ((16, 2, 0), 2), ((32, 1, 0), 4),
             ((32, 2, 0), 4), ((37, 2, 0), 4), ((24, 1, 0), 6), ((24, 2, 0), 3),
             ((1024, 2, 0), 64), ((64, 1, big), 2), ((16, 1, big), 1), ((4096, 1, big), 64)]
    for args, expected in cases:
        assert _kernels.n_slices(*args) == expected, args


def test_batch_slices_split_evenly_over_the_team():
    # (B, D, weight bytes, threads) -> slices: fewer than the shape's count when its (direction,
    # slice) units would leave one thread more slices than another and are fewer than 4 per
    # thread; never fewer units than threads
    cases = [((13, 1, 0, 1), 3), ((13, 1, 0, 2), 2), ((13, 1, 0, 3), 3), ((13, 1, 0, 4), 3),
             ((40, 1, 0, 2), 4), ((56, 1, 0, 2), 6), ((37, 2, 0, 3), 3), ((37, 2, 0, 5), 4),
             ((24, 1, 0, 2), 6), ((72, 1, 0, 2), 9), ((8, 1, 0, 2), 2)]
    for args, expected in cases:
        assert _kernels.n_slices(*args) == expected, args
        assert _kernels.n_slices(*args[:3]) == _kernels.n_slices(*args[:3], 1)


@pytest.mark.parametrize("mode", MODES)
def test_uneven_slices_on_a_team_give_the_same_bits(mode, restore_threads):
    # B = 13: 3 slices of the shape (4, 4, 5 rows) on 1 and 3 threads, 2 (6, 7) on 2 threads
    results = {}
    for n in (1, 2, 3):
        minirnn.set_num_threads(n)
        m, x, state = setup_model(mode, dtype=np.float32, T=30, B=13, I=37, H=85,
                                  bidirectional=False)
        results[n] = train_step(m, x, state)
    for n in (2, 3):
        for key, ref in results[1].items():
            assert np.array_equal(results[n][key], ref), f"{key}: {n} threads != 1 thread"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode,P", [(m, 0) for m in MODES] + [("LSTM", 4)])
def test_results_are_bitwise_identical_for_any_batch_slices(mode, P, dtype, restore_threads,
                                                            restore_slices):
    # which rows a slice holds changes the products' register tiles (1 to 6 rows), whether
    # the time loops compute their own G_x, and which thread runs which rows; never a bit
    minirnn.set_num_threads(2)
    results = []
    for rows in [(8, 4, 32), (1, 1, 1), (3, 3, 3), (5, 5, 5), (64, 64, 64)]:
        _kernels._set_slice_rows(*rows)
        m, x, state = setup_model(mode, dtype=dtype, T=7, B=37, I=5, H=12, P=P)
        results.append(train_step(m, x, state))
    for res in results[1:]:
        for key, ref in results[0].items():
            assert np.array_equal(res[key], ref), key


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode,P", [("LSTM", 3), ("GRU", 0)])
def test_proj_and_dropout_are_bitwise_identical_for_any_thread_count(mode, P, dtype,
                                                                      restore_threads):
    results = {}
    for n in (1, 2, 4):
        minirnn.set_num_threads(n)
        m, x, state = setup_model(mode, dtype=dtype, layers=3, P=P, dropout=0.5,
                                  **PARALLEL_SHAPE)
        results[n] = train_step(m, x, state)
        if minirnn.openmp_enabled():
            assert _kernels._largest_team_of_last_call() == n
    for n in (2, 4):
        for key, ref in results[1].items():
            assert np.array_equal(results[n][key], ref), f"{key}: {n} threads != 1 thread"


@pytest.mark.skipif(not minirnn.openmp_enabled(), reason="serial build")
def test_more_threads_are_really_used():
    # the invariance test above would pass trivially if the regions ran on one thread
    assert _kernels._threads_used(2) == 2


def test_set_num_threads_checks_its_argument(restore_threads):
    with pytest.raises(ValueError, match="num_threads must be between 1 and .*, got 0"):
        minirnn.set_num_threads(0)
    with pytest.raises(TypeError, match="num_threads must be an int, got str"):
        minirnn.set_num_threads("2")
    with pytest.raises(TypeError):
        minirnn.set_num_threads(True)
    minirnn.set_num_threads(3)
    assert minirnn.get_num_threads() == 3
    assert isinstance(minirnn.openmp_enabled(), bool)


@pytest.fixture
def restore_step_gx():
    old = _kernels._set_step_gx_limits(0, 0)
    _kernels._set_step_gx_limits(*old)
    yield
    _kernels._set_step_gx_limits(*old)


STEP_GX_ON, STEP_GX_OFF = (1 << 40, 0), (0, 0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode,P", [(m, 0) for m in MODES] + [("LSTM", 10)])
@pytest.mark.parametrize("layers", [1, 2])
def test_time_loops_computing_their_own_g_x_change_no_bit(mode, P, layers, dtype,
                                                          restore_threads, restore_step_gx):
    # The input product G_x = X W_ih^T + b_ih runs either for all steps before the time
    # loops, or inside them, one step of one batch slice at a time (big inputs, small
    # weights: _step_input_product). Every element is the same sum either way.
    # I <= P/2 and one layer: the second scheme is really taken (2 layers: the second
    # layer's input of 2P takes the first); B = 37: 4 slices of 9 and 10 rows.
    results = {}
    for n in (1, 2):
        minirnn.set_num_threads(n)
        for scheme in ("off", "on"):
            _kernels._set_step_gx_limits(*(STEP_GX_ON if scheme == "on" else STEP_GX_OFF))
            m, x, state = setup_model(mode, dtype=dtype, T=20, B=37, I=5, H=12, P=P,
                                      layers=layers)
            results[n, scheme] = train_step(m, x, state)
            if layers == 1:
                assert _kernels._step_gx_of_last_call() == (scheme == "on")
            with minirnn.no_grad():
                out = m(x, state)[0]
            assert np.array_equal(out, results[n, scheme]["out"])
    ref = results[1, "off"]
    for key in ref:
        for n, scheme in ((1, "on"), (2, "on"), (2, "off")):
            assert np.array_equal(results[n, scheme][key], ref[key]), (key, n, scheme)


def test_input_product_scheme_follows_the_cache_rules(restore_threads, restore_step_gx):
    # default limits: G_x of all steps above 2 MiB and packed weights up to 2 MiB
    minirnn.set_num_threads(1)
    cases = [  # (T, B, I, H, expected), LSTM float32
        (20, 1, 8, 32, False),       # "tiny": G_x 10 KB, stays in cache
        (1000, 8, 32, 128, True),    # "long": G_x 16 MB
        (100, 64, 512, 512, False),  # "large": 8 MB of weights, re-read at every step
        (1000, 8, 128, 128, False),  # slices of 4 rows with a wide input: W_ih for 4 rows
    ]
    for T, B, I, H, expected in cases:
        m = minirnn.LSTM(I, H, seed=0, dtype=np.float32)
        with minirnn.no_grad():
            m(np.zeros((T, B, I), np.float32))
        assert _kernels._step_gx_of_last_call() == expected, (T, B, I, H)


# --------------------------------------------------------------------------- the GIL

def test_two_python_threads_run_kernels_concurrently_with_identical_results():
    models = [setup_model(mode, dtype=np.float32, T=40, B=64, I=16, H=48, seed=s)
              for s, mode in enumerate(["LSTM", "GRU"])]
    expected = [train_step(*mx) for mx in models]
    got = [None, None]

    def work(i):
        for _ in range(3):
            got[i] = train_step(*models[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
        assert not t.is_alive(), "a kernel thread did not finish: deadlock?"
    for exp, res in zip(expected, got):
        for key in exp:
            assert np.array_equal(res[key], exp[key]), key


def test_kernels_release_the_gil_while_they_run(restore_threads):
    # One thread runs a long compiled forward; meanwhile the main thread keeps executing
    # Python. If the kernel held the GIL, the main thread would stall for the kernel's whole
    # run: its longest pause would be about as long as the kernel.
    minirnn.set_num_threads(1)
    m = minirnn.GRU(32, 128, num_layers=2, seed=0)
    x = np.random.default_rng(0).standard_normal((400, 16, 32)).astype(np.float32)
    with minirnn.no_grad():
        t0 = time.perf_counter()
        m(x)
        single = time.perf_counter() - t0
    reps = max(1, int(0.5 / max(single, 1e-3)))     # about half a second of kernels

    def run():
        with minirnn.no_grad():
            for _ in range(reps):
                m(x)

    worker = threading.Thread(target=run)
    stamps = []
    worker.start()
    while worker.is_alive():
        stamps.append(time.perf_counter())
        sum(range(200))                                 # Python work, needs the GIL
    worker.join()
    kernel_time = single * reps
    longest_pause = max(np.diff(stamps)) if len(stamps) > 1 else kernel_time
    assert len(stamps) > 10
    assert longest_pause < 0.5 * kernel_time, (longest_pause, kernel_time)


# --------------------------------------------------------------------------- instruction sets

@pytest.mark.parametrize("isa", ["base", "avx2", "avx512"])
def test_every_dump_passes_on_each_instruction_set(isa, restore_isa):
    if isa not in _kernels.available_isas():
        pytest.skip(f"this CPU or build cannot run {isa}")
    _kernels.set_isa(isa)
    assert _kernels.get_isa() == isa
    failures = []
    for path in find_cases(DATA):
        for dtype in DTYPES:
            for cmp in run_case(path, backend="c", dtype=dtype):
                if not cmp.ok:
                    failures.append((path, np.dtype(dtype).name, cmp.name, cmp.error))
    assert not failures, failures[:5]


def test_set_isa_checks_its_argument(restore_isa):
    with pytest.raises(ValueError, match="isa must be one of 'base', 'avx2', 'avx512', got 'sse9'"):
        _kernels.set_isa("sse9")
    assert _kernels.available_isas()[0] == "base"
    assert _kernels.get_isa() == _kernels.available_isas()[-1]     # the best, by default
    missing = [i for i in _kernels.ISAS if i not in _kernels.available_isas()]
    if missing:
        with pytest.raises(ValueError, match=f"isa {missing[0]!r} is not available"):
            _kernels.set_isa(missing[0])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode,P", [(m, 0) for m in MODES] + [("LSTM", 3)])
def test_avx512_gives_the_results_of_avx2_to_the_bit(mode, P, dtype, restore_isa):
    # The same expression for every number, in vectors of 16 floats instead of 8: no result
    # may change. Shapes: panels of 32 columns cut by H*G, a K block (I > 256), uneven slices.
    if "avx512" not in _kernels.available_isas():
        pytest.skip("this CPU or build cannot run avx512")
    for shape in (PARALLEL_SHAPE, dict(T=4, B=3, I=300, H=70), dict(T=7, B=70, I=5, H=33)):
        res = {}
        for isa in ("avx2", "avx512"):
            _kernels.set_isa(isa)
            m, x, state = setup_model(mode, dtype=dtype, P=P, **shape)
            res[isa] = train_step(m, x, state)
        for key, ref in res["avx2"].items():
            assert np.array_equal(res["avx512"][key], ref), (key, shape)


# --------------------------------------------------------------------------- compiled == NumPy

# Shapes that cross the kernels' blocks: H not a multiple of the panel width (8/16 columns);
# G*H > 64 (several column blocks of the weight gradients; for GRU, blocks that end where r, z
# stop and n starts) and > 256 (the K blocks of the step product's backward); T*B > 256 and
# > 512 with a partial last block (K blocks of the weight gradients); I and H that leave a
# partial register tile of X^T or H_prev^T (13 = 6 + 6 + 1, 20 = 6 * 3 + 2, 70, 40); I > 256
# (K blocks of G_x); batch slices of uneven size.
SHAPES = [
    dict(T=3, B=1, I=1, H=1, layers=1, bidirectional=False),
    dict(T=7, B=9, I=2, H=13, layers=2, bidirectional=True),
    dict(T=40, B=11, I=5, H=70, layers=1, bidirectional=True),
    dict(T=2, B=6, I=300, H=17, layers=2, bidirectional=False),
    dict(T=60, B=13, I=20, H=40, layers=1, bidirectional=False),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", range(len(SHAPES)))
@pytest.mark.parametrize("mode", MODES)
def test_compiled_equals_numpy_across_block_boundaries(mode, shape, dtype):
    kw = SHAPES[shape]
    ref = train_step(*setup_model(mode, backend="numpy", dtype=dtype, **kw))
    got = train_step(*setup_model(mode, backend="c", dtype=dtype, **kw))
    tol = TOLERANCE[np.dtype(dtype)]
    for key, r in ref.items():
        err = np.abs(got[key] - r).max() / max(np.abs(r).max(), np.finfo(dtype).tiny)
        assert err <= tol, f"{key}: {err:.2e} > {tol:.0e}"


# LSTM with projections: P not a multiple of the panel width, P > 64 (two row blocks of dW_hr),
# P = 1; the shapes above otherwise.
PROJ_SHAPES = [
    dict(T=3, B=1, I=1, H=2, P=1, layers=1, bidirectional=False),
    dict(T=7, B=9, I=2, H=13, P=5, layers=2, bidirectional=True),
    dict(T=40, B=11, I=5, H=70, P=66, layers=1, bidirectional=True),
    dict(T=2, B=6, I=300, H=17, P=9, layers=2, bidirectional=False),
]


@pytest.mark.filterwarnings("ignore:dropout option adds dropout after all but last")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", range(len(PROJ_SHAPES)))
@pytest.mark.parametrize("dropout", [0.0, 0.5])
def test_compiled_equals_numpy_with_projections_and_dropout(shape, dropout, dtype):
    kw = PROJ_SHAPES[shape]
    ref = train_step(*setup_model("LSTM", backend="numpy", dtype=dtype, dropout=dropout, **kw))
    got = train_step(*setup_model("LSTM", backend="c", dtype=dtype, dropout=dropout, **kw))
    assert "grad.weight_hr_l0" in ref
    tol = TOLERANCE[np.dtype(dtype)]
    for key, r in ref.items():
        err = np.abs(got[key] - r).max() / max(np.abs(r).max(), np.finfo(dtype).tiny)
        assert err <= tol, f"{key}: {err:.2e} > {tol:.0e}"


def test_saturated_and_special_values_match_numpy():
    # inputs far into the saturated ranges of sigmoid/tanh, and NaN/inf propagation
    for mode in MODES:
        rng = np.random.default_rng(0)
        ms = [make_module(mode, 2, 3, dtype=np.float64, seed=0, backend=b) for b in ("numpy", "c")]
        x = rng.standard_normal((4, 5, 2)) * 400.0
        x[1, 2, 0] = np.nan
        x[2, 3, 1] = np.inf
        outs = []
        for m in ms:
            with minirnn.no_grad():
                outs.append(m(x)[0])
        np.testing.assert_array_equal(np.isnan(outs[0]), np.isnan(outs[1]))
        ok = ~np.isnan(outs[0])
        np.testing.assert_allclose(outs[1][ok], outs[0][ok], rtol=0, atol=1e-12)


# --------------------------------------------------------------------------- argument checks

def _layer_args(dtype=np.float64, T=3, B=4, I=2, H=3, G=4):
    rng = np.random.default_rng(0)
    r = lambda *s: rng.standard_normal(s).astype(dtype)  # noqa: E731
    w = ((r(G * H, I), r(G * H, H), r(G * H), r(G * H)),)
    return dict(mode=_kernels.MODES["LSTM"], X=r(T, B, I), weights=w, h0=r(1, B, H),
                c0=r(1, B, H), Y=np.empty((T, B, H), dtype), hT=np.empty((1, B, H), dtype),
                cT=np.empty((1, B, H), dtype), Cs=None, S=None)


def test_forward_layer_runs_with_good_arguments():
    a = _layer_args()
    _kernels.forward_layer(**a)
    assert np.isfinite(a["Y"]).all()


@pytest.mark.parametrize("key,bad,msg", [
    ("h0", np.zeros((1, 5, 3)), r"h0 has shape \(1, 5, 3\), expected \(1, 4, 3\)"),
    ("Y", np.zeros((3, 4, 2)), r"Y has shape \(3, 4, 2\), expected \(3, 4, 3\)"),
    ("c0", None, "LSTM needs c0 and cT"),
    ("S", np.zeros((1, 3, 4, 15)), r"Cs is None, expected an array of shape \(1, 3, 4, 3\)"),
    ("weights", ((np.zeros((12, 2)), np.zeros((12, 4)), None, None),),
     r"W_hh\[0\] has shape \(12, 4\), expected \(12, 3\)"),
    ("weights", ((np.zeros((12, 2)), np.zeros((12, 3)), np.zeros(11), None),),
     r"b_ih\[0\] has shape \(11,\), expected \(12,\)"),
])
def test_forward_layer_rejects_wrong_shapes_before_computing(key, bad, msg):
    a = _layer_args()
    a[key] = bad
    with pytest.raises(ValueError, match=msg):
        _kernels.forward_layer(**a)


@pytest.mark.parametrize("bad,msg", [
    ([4, 3, 1], "batch_sizes must be a 1-D int64 array"),
    (np.array([4, 3, 1], np.int32), "batch_sizes must be a 1-D int64 array"),
    (np.array([4, 3]), r"batch_sizes has shape \(2,\), expected \(3,\)"),
    (np.array([5, 4, 1]),
     r"batch_sizes must be at most B=4, never increase and end >= 0, got \[5, 4, 1\]"),
    (np.array([4, 2, 3]), "never increase"),
    (np.array([4, -1, -1]), "end >= 0"),
])
def test_layers_reject_bad_batch_sizes_before_computing(bad, msg):
    a = _layer_args()                                  # T = 3, B = 4
    with pytest.raises(ValueError, match=msg):
        _kernels.forward_layer(**a, batch_sizes=bad)
    b = _layer_args()
    r = np.random.default_rng(0)
    Cs, S = r.standard_normal((1, 3, 4, 3)), r.standard_normal((1, 3, 4, 15))
    grads = (tuple(np.zeros_like(w) for w in b["weights"][0]),)
    with pytest.raises(ValueError, match=msg):
        _kernels.backward_layer(b["mode"], b["X"], b["weights"], b["h0"], b["c0"], b["Y"], Cs, S,
                                np.zeros_like(b["Y"]), np.zeros_like(b["hT"]),
                                np.zeros_like(b["cT"]), np.zeros_like(b["X"]),
                                np.zeros_like(b["h0"]), np.zeros_like(b["c0"]), grads,
                                batch_sizes=bad)


def test_forward_layer_rejects_mixed_dtypes_and_noncontiguous_arrays():
    a = _layer_args()
    a["h0"] = a["h0"].astype(np.float32)
    with pytest.raises((ValueError, TypeError)):
        _kernels.forward_layer(**a)
    a = _layer_args()
    a["X"] = np.asfortranarray(a["X"])
    with pytest.raises(ValueError):
        _kernels.forward_layer(**a)


def _proj_args(dtype=np.float64, T=3, B=4, I=2, H=5, P=3, training=True):
    rng = np.random.default_rng(0)
    r = lambda *s: rng.standard_normal(s).astype(dtype)  # noqa: E731
    w = ((r(4 * H, I), r(4 * H, P), r(4 * H), r(4 * H), r(P, H)),)
    e = lambda *s: np.empty(s, dtype) if training else None  # noqa: E731
    return dict(mode=_kernels.MODES["LSTM"], X=r(T, B, I), weights=w, h0=r(1, B, P),
                c0=r(1, B, H), Y=np.empty((T, B, P), dtype), hT=np.empty((1, B, P), dtype),
                cT=np.empty((1, B, H), dtype), Cs=e(1, T, B, H), S=e(1, T, B, 5 * H),
                M=e(1, T, B, H))


def test_forward_layer_with_projection_runs_with_good_arguments():
    for training in (True, False):
        a = _proj_args(training=training)
        _kernels.forward_layer(**a)
        assert np.isfinite(a["Y"]).all()


def _w(a, k, value):
    w = list(a["weights"][0])
    w[k] = value
    return (tuple(w),)


@pytest.mark.parametrize("change,msg", [
    (lambda a: dict(weights=_w(a, 4, np.zeros((3, 4)))),
     r"W_hr\[0\] has shape \(3, 4\), expected \(3, 5\)"),
    (lambda a: dict(weights=_w(a, 1, np.zeros((20, 5)))),
     r"W_hh\[0\] has shape \(20, 5\), expected \(20, 3\)"),
    (lambda a: dict(M=None), r"M is None, expected an array of shape \(1, 3, 4, 5\)"),
    (lambda a: dict(M=np.zeros((1, 3, 4, 3))),
     r"M has shape \(1, 3, 4, 3\), expected \(1, 3, 4, 5\)"),
    (lambda a: dict(h0=np.zeros((1, 4, 5))), r"Y has shape \(3, 4, 3\), expected \(3, 4, 5\)"),
    (lambda a: dict(Y=np.zeros((3, 4, 5))), r"Y has shape \(3, 4, 5\), expected \(3, 4, 3\)"),
    (lambda a: dict(c0=None), "LSTM needs c0"),
    (lambda a: dict(weights=a["weights"] + ((a["weights"][0][:4] + (None,)),)),
     "W_hr must be given for every direction or none"),
])
def test_forward_layer_with_projection_rejects_wrong_shapes(change, msg):
    a = _proj_args()
    a.update(change(a))
    with pytest.raises(ValueError, match=msg):
        _kernels.forward_layer(**a)


def test_only_lstm_takes_w_hr_and_m_comes_with_the_training_buffers():
    a = _proj_args(training=False)
    a["M"] = np.empty((1, 3, 4, 5))                   # M means training: S and Cs are needed
    with pytest.raises(ValueError, match="S is None, expected an array"):
        _kernels.forward_layer(**a)
    a = _layer_args()
    a.update(Cs=np.empty((1, 3, 4, 3)), S=np.empty((1, 3, 4, 15)), M=np.empty((1, 3, 4, 3)))
    with pytest.raises(ValueError, match="M is kept only in training with projections"):
        _kernels.forward_layer(**a)
    a = _layer_args(G=3)
    a.update(mode=_kernels.MODES["GRU"], c0=None, cT=None,
             weights=(a["weights"][0] + (np.zeros((2, 3)),),))
    with pytest.raises(ValueError, match="only LSTM takes W_hr"):
        _kernels.forward_layer(**a)


def test_backward_layer_with_projection_checks_dW_hr():
    a = _proj_args()
    _kernels.forward_layer(**a)
    T, B, H, P = 3, 4, 5, 3
    z = lambda *s: np.zeros(s)  # noqa: E731
    grads = ((z(4 * H, 2), z(4 * H, P), z(4 * H), z(4 * H), z(P, H)),)
    args = dict(mode=a["mode"], X=a["X"], weights=a["weights"], h0=a["h0"], c0=a["c0"], Y=a["Y"],
                Cs=a["Cs"], S=a["S"], dY=np.ones((T, B, P)), dhT=z(1, B, P), dcT=z(1, B, H),
                dX=np.empty((T, B, 2)), dh0=np.empty((1, B, P)), dc0=np.empty((1, B, H)),
                grads=grads, M=a["M"])
    _kernels.backward_layer(**args)
    assert grads[0][4].any()
    args["grads"] = (grads[0][:4],)
    with pytest.raises(ValueError, match=r"dW_hr\[0\] is missing"):
        _kernels.backward_layer(**args)
    args["grads"] = (grads[0][:4] + (z(P, P),),)
    with pytest.raises(ValueError, match=r"dW_hr\[0\] has shape \(3, 3\), expected \(3, 5\)"):
        _kernels.backward_layer(**args)


# --------------------------------------------------------------------------- reused buffers

@pytest.mark.parametrize("mode,P", [("GRU", 0), ("LSTM", 0), ("LSTM", 3)])
def test_arrays_given_to_the_caller_are_never_reused(mode, P):
    # the compiled path recycles its internal buffers between calls (_backend_c._take/_give);
    # what a call returned must not change when later calls run
    m, x, state = setup_model(mode, layers=3, P=P, T=5, B=9)
    first = train_step(m, x, state)
    kept = {k: v.copy() for k, v in first.items()}
    with minirnn.no_grad():
        out_inf = m(x)[0]
    out_inf_kept = out_inf.copy()
    for scale in (2.0, -1.0, 0.5):
        train_step(m, x * scale, state, seed=int(10 * abs(scale)) + 2)
        with minirnn.no_grad():
            m(x * scale)
    for k, v in first.items():
        assert np.array_equal(v, kept[k]), k
    assert np.array_equal(out_inf, out_inf_kept)
    # and recycling changes no result
    again = train_step(m, x, state)
    for k, v in kept.items():
        assert np.array_equal(again[k], v), k


def test_release_buffers_frees_and_results_stay_the_same():
    from minirnn import _backend_c
    m, x, state = setup_model("LSTM", layers=2)
    before = train_step(m, x, state)
    _backend_c.release_buffers()
    assert not _backend_c._pools.__dict__
    after = train_step(m, x, state)
    for k, v in before.items():
        assert np.array_equal(after[k], v), k


def _backward_args():
    """backward_layer's arguments for a one-layer bidirectional GRU after a real forward."""
    from minirnn import _backend_c
    m, x, h0 = setup_model("GRU", layers=1, T=3, B=4)
    _, _, _, tape = _backend_c.rnn_forward("GRU", x, m._params, h0, None, 1, True)
    lt = tape["layers"][0]
    grads = tuple(tuple(np.zeros_like(a) if a is not None else None for a in w) for w in lt["w"])
    return dict(mode=_kernels.MODES["GRU"], X=lt["X"], weights=lt["w"], h0=lt["h0"], c0=None,
                Y=lt["Y"], Cs=None, S=lt["S"], dY=np.ones_like(lt["Y"]),
                dhT=np.ones_like(lt["h0"]), dcT=None, dX=np.empty_like(lt["X"]),
                dh0=np.empty_like(lt["h0"]), dc0=None, grads=grads)


def test_backward_layer_checks_the_gradient_arrays_before_computing():
    a = _backward_args()
    _kernels.backward_layer(**a)                                    # good arguments run
    assert np.abs(a["grads"][0][0]).max() > 0
    g = [list(d) for d in a["grads"]]
    g[1][1] = np.zeros((15, 4))
    with pytest.raises(ValueError, match=r"dW_hh\[1\] has shape \(15, 4\), expected \(15, 5\)"):
        _kernels.backward_layer(**dict(a, grads=tuple(map(tuple, g))))
    g = [list(d) for d in a["grads"]]
    g[0][2] = None                                                  # db_ih without db_hh
    with pytest.raises(ValueError, match="bias gradients come in pairs"):
        _kernels.backward_layer(**dict(a, grads=tuple(map(tuple, g))))
    g = [list(d) for d in a["grads"]]
    g[0][0] = g[0][0].copy()
    g[0][0].flags.writeable = False                                 # gradients are written
    with pytest.raises(ValueError):
        _kernels.backward_layer(**dict(a, grads=tuple(map(tuple, g))))


@pytest.mark.skipif(not minirnn.openmp_enabled(), reason="serial build")
def test_default_thread_count_follows_omp_num_threads():
    import subprocess
    import sys
    code = "import minirnn; print(minirnn.get_num_threads())"
    env = dict(os.environ, OMP_NUM_THREADS="3")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert out.stdout.strip() == "3"

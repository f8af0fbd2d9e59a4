"""The time loops' two schedules: batch slices, and blocks of hidden units (the small-batch
schedule, minirnn/_kernel_parts/schedule.pxi). Whichever runs, on however many threads, every
result must be the same to the bit: a schedule decides which thread computes a number, never
the order of its sum. Each test forces one schedule, then the other, at 1, 2 and 3 threads,
and compares everything a training step returns (outputs, final states, every gradient).

Expected values come from the kernels themselves under the other schedule and thread counts,
and, once, from the NumPy path (the oracle); none is typed in by hand.
"""
import numpy as np
import pytest

import minirnn
from minirnn import _kernels
from minirnn.packed import PackedSequence, pack_sequence, unpack_sequence
from minirnn.conformance import TOLERANCE

from helpers import (join_state, make_module, model_with_state, perturb_biases, split_state,
                     train_step)

pytestmark = pytest.mark.skipif(not hasattr(_kernels, "_set_schedule"),
                                reason="kernels without the small-batch schedule")

DTYPES = [np.float64, np.float32]

# (mode, variant keywords): PyTorch's cells and the variants with their own step structure
CASES = {
    "rnn_tanh": ("RNN_TANH", {}),
    "rnn_relu": ("RNN_RELU", {}),
    "gru": ("GRU", {}),
    "lstm": ("LSTM", {}),
    "gru_reset_before": ("GRU", dict(reset_after=False)),
    "gru_before_clip_acts": ("GRU", dict(reset_after=False, cell_clip=0.7,
                                         activations=["Softsign", ("Elu", 0.6)])),
    "lstm_peephole": ("LSTM", dict(peephole=True)),
    "lstm_peephole_coupled_clip": ("LSTM", dict(peephole=True, coupled_input_forget=True,
                                                cell_clip=0.6)),
    "rnn_clip": ("RNN_TANH", dict(cell_clip=0.4)),
}

# H = 40 is not a multiple of the panel width (32 floats with AVX-512, 16 with AVX2, 8 and 16
# doubles): each gate's columns are packed apart, the last block is partial, and with 2 or 3
# threads the blocks of a direction differ in size; B = 3 is one batch slice
SHAPE = dict(T=9, B=3, I=7, H=40)


@pytest.fixture
def restore():
    n = minirnn.get_num_threads()
    old = _kernels._set_schedule("auto")
    _kernels._set_schedule(old)
    yield
    _kernels._set_schedule(old)
    minirnn.set_num_threads(n)


def setup(mode, kw, dtype, T, B, I, H, **more):
    return model_with_state(mode, "c", kw, dtype, T, B, I, H, **more)


def run_everywhere(make, run):
    """run(make()) under each schedule at 1, 2, 3 threads: {(schedule, threads): result},
    checking that the forced schedule is the one that ran, forward and backward."""
    results = {}
    for schedule in ("slices", "blocks"):
        _kernels._set_schedule(schedule)
        for n in (1, 2, 3):
            minirnn.set_num_threads(n)
            results[schedule, n] = run(*make())
            assert _kernels._schedule_of_last_call() == schedule
            assert _kernels._schedule_of_last_call(backward=True) == schedule
    return results


def assert_all_identical(results):
    ref_key = ("slices", 1)
    ref = results[ref_key]
    for key, res in results.items():
        assert res.keys() == ref.keys()
        for name, r in ref.items():
            if isinstance(r, dict):
                for k, v in r.items():
                    assert np.array_equal(res[name][k], v), f"{name}.{k}: {key} != {ref_key}"
            elif isinstance(r, list):
                assert all(np.array_equal(a, b) for a, b in zip(res[name], r)), name
            elif r is not None:
                assert np.array_equal(res[name], r), f"{name}: {key} != {ref_key}"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", [(2, True), (1, False)], ids=["2bidir", "1uni"])
@pytest.mark.parametrize("case", list(CASES))
def test_both_schedules_and_any_thread_count_give_the_same_bits(case, layout, dtype, restore):
    mode, kw = CASES[case]
    layers, bidir = layout
    results = run_everywhere(
        lambda: setup(mode, kw, dtype, layers=layers, bidirectional=bidir, **SHAPE), train_step)
    assert_all_identical(results)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("H", [1, 32, 64, 65])
def test_block_edges_change_no_bit(H, dtype, restore):
    # one unit (every thread but one has none), whole panels only, and one unit past them
    results = run_everywhere(lambda: setup("LSTM", {}, dtype, T=5, B=2, I=4, H=H), train_step)
    assert_all_identical(results)
    results = run_everywhere(lambda: setup("GRU", dict(reset_after=False), dtype, T=5, B=2, I=4,
                                           H=H, layers=1, bidirectional=False), train_step)
    assert_all_identical(results)


@pytest.mark.parametrize("case", ["lstm", "gru", "gru_reset_before", "lstm_peephole",
                                  "rnn_tanh"])
def test_the_blocks_agree_with_the_numpy_path(case, restore):
    mode, kw = CASES[case]
    _kernels._set_schedule("blocks")
    minirnn.set_num_threads(2)
    got = train_step(*setup(mode, kw, np.float64, **SHAPE))
    m, x, state = setup(mode, kw, np.float64, **SHAPE)
    ref_m = make_module(mode, SHAPE["I"], SHAPE["H"], num_layers=2, bidirectional=True,
                        dtype=np.float64, seed=0, backend="numpy", **kw)
    ref_m.load_state_dict(m.state_dict())
    ref = train_step(ref_m, x, state)
    tol = TOLERANCE[np.dtype(np.float64)]
    for key, r in ref.items():
        err = np.max(np.abs(got[key] - r)) / max(np.max(np.abs(r)), 1e-300)
        assert err < tol, f"{key}: {err}"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", ["lstm", "gru", "gru_reset_before", "rnn_relu",
                                  "lstm_peephole"])
def test_packed_batches_under_both_schedules(case, dtype, restore):
    # variable lengths, an empty tail of steps for most rows, reversed directions that start
    # late: every row-range rule of the loops, by blocks of units
    mode, kw = CASES[case]
    lengths = [9, 1, 6, 9, 3]

    def make():
        m = make_module(mode, 5, 40, num_layers=2, bidirectional=True, dtype=dtype, seed=3,
                        backend="c", **kw)
        perturb_biases(m, np.random.default_rng(4))
        rng = np.random.default_rng(5)
        LD, B = 4, len(lengths)
        seqs = [rng.standard_normal((n, 5)).astype(dtype) for n in lengths]
        h0 = rng.standard_normal((LD, B, 40)).astype(dtype)
        c0 = rng.standard_normal((LD, B, 40)).astype(dtype) if mode == "LSTM" else None
        g_out = [rng.standard_normal((n, 80)).astype(dtype) for n in lengths]
        g_h = rng.standard_normal((LD, B, 40)).astype(dtype)
        g_c = rng.standard_normal((LD, B, 40)).astype(dtype) if mode == "LSTM" else None
        return m, seqs, h0, c0, g_out, g_h, g_c

    def run(m, seqs, h0, c0, g_out, g_h, g_c):
        out, state = m(pack_sequence(seqs, enforce_sorted=False), join_state(mode, h0, c0))
        h_n, c_n = split_state(mode, state)
        m.zero_grad()
        gx, gs = m.backward(pack_sequence(g_out, enforce_sorted=False),
                            join_state(mode, g_h, g_c))
        gh0, gc0 = split_state(mode, gs)
        assert isinstance(out, PackedSequence)
        return dict(out=unpack_sequence(out), h_n=h_n, c_n=c_n, gx=unpack_sequence(gx),
                    gh0=gh0, gc0=gc0, grads={k: v.copy() for k, v in m.grads.items()})

    assert_all_identical(run_everywhere(make, run))


@pytest.mark.parametrize("dtype", DTYPES)
def test_projections_keep_batch_slices(dtype, restore):
    # h_t = m_t W_hr^T needs all of m_t: an LSTM with proj_size runs batch slices even when
    # blocks are forced, with the same bits
    results = {}
    for schedule in ("slices", "blocks"):
        _kernels._set_schedule(schedule)
        for n in (1, 2):
            minirnn.set_num_threads(n)
            results[schedule, n] = train_step(*setup("LSTM", {}, dtype, P=7, **SHAPE))
            assert _kernels._schedule_of_last_call() == "slices"
            assert _kernels._schedule_of_last_call(backward=True) == "slices"
    assert_all_identical(results)


def test_inference_under_both_schedules(restore):
    # no saved values: the LSTM's c_t alternates between two rows, the GRU's q has a scratch
    results = {}
    for case in ("lstm", "gru_reset_before", "lstm_peephole"):
        mode, kw = CASES[case]
        for schedule in ("slices", "blocks"):
            _kernels._set_schedule(schedule)
            for n in (1, 2, 3):
                minirnn.set_num_threads(n)
                m, x, state = setup(mode, kw, np.float32, **SHAPE)
                with minirnn.no_grad():
                    out, st = m(x, state)
                results[case, schedule, n] = (out, st)
        ref = results[case, "slices", 1]
        for key, (out, st) in results.items():
            if key[0] == case:
                assert np.array_equal(out, ref[0]), key
                for a, b in zip(split_state(mode, st), split_state(mode, ref[1])):
                    assert a is None or np.array_equal(a, b), key


def test_the_schedule_follows_the_shape(restore):
    # by shape, with 2 threads: a batch of 1 row and a big enough step takes the blocks; a
    # batch that makes enough slices, a tiny step, or one thread keep slices
    _kernels._set_schedule("auto")

    def schedule_of(threads, B, H, mode="LSTM", bidirectional=False, P=0):
        minirnn.set_num_threads(threads)
        m, x, state = setup(mode, {}, np.float32, T=3, B=B, I=8, H=H, layers=1,
                            bidirectional=bidirectional, P=P)
        with minirnn.no_grad():
            m(x, state)
        return _kernels._schedule_of_last_call()

    if not minirnn.openmp_enabled():
        pytest.skip("a serial build runs one thread")
    assert schedule_of(2, 1, 512) == "blocks"
    assert schedule_of(2, 4, 256, "GRU") == "blocks"
    assert schedule_of(1, 1, 512) == "slices"
    assert schedule_of(2, 16, 128) == "slices"          # 4 slices of 4 rows
    assert schedule_of(2, 64, 512) == "slices"          # 2 slices of 32 (4 MB of W_hh)
    assert schedule_of(2, 32, 512) == "blocks"          # 1 slice: blocks use both threads
    assert schedule_of(2, 1, 512, bidirectional=True) == "slices"   # a thread per direction
    assert schedule_of(2, 1, 8) == "slices"
    assert schedule_of(2, 1, 512, P=128) == "slices"


def test_set_schedule_checks_its_argument(restore):
    with pytest.raises(ValueError, match="schedule must be one of"):
        _kernels._set_schedule("columns")


def test_an_empty_batch_under_both_schedules(restore):
    for schedule in ("slices", "blocks"):
        _kernels._set_schedule(schedule)
        minirnn.set_num_threads(2)
        m, x, state = setup("GRU", {}, np.float32, T=4, B=0, I=3, H=40)
        out, h = m(x, state)
        gx, gh = m.backward(np.zeros_like(out), np.zeros_like(h))
        assert out.shape == (4, 0, 80) and gx.shape == (4, 0, 3)
        assert not np.any(m.grads["weight_hh_l0"])

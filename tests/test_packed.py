"""Packed sequences: the packing utilities, and RNN/GRU/LSTM on packed input (both backends).

Expected values come from the PyTorch dumps (minirnn/data/*_packed_*, run by
test_reference_dumps.py) and, here, from running each sequence alone: a packed batch must
give every sequence exactly what it gets unpadded, by itself, with its own slice of h0.
"""
import numpy as np
import pytest

import minirnn
from minirnn import _kernels
from minirnn import (PackedSequence, pack_padded_sequence, pack_sequence, pad_packed_sequence,
                     pad_sequence, unpack_sequence, unpad_sequence)
from helpers import (BACKENDS, MODES, assert_grad_close, join_state, make_module, numerical_grad,
                     perturb_biases, split_state)

DTYPES = [np.float64, np.float32]
# 11 sequences: the compiled loops cut them into slices of >= 4 rows whose active rows end at
# different steps; unsorted, with ties, with a length-1 sequence and one shorter than the rest
LENGTHS = [4, 9, 1, 9, 6, 2, 7, 3, 9, 5, 1]


@pytest.fixture
def restore_threads():
    n = minirnn.get_num_threads()
    yield
    minirnn.set_num_threads(n)


# --------------------------------------------------------------------------- the utilities

def test_pytorch_documentation_example():
    # torch.nn.utils.rnn.pack_padded_sequence's docstring example, as PyTorch 2.13 returns it
    # (verified by running torch 2.13.0)
    x = np.array([[1, 2, 0], [3, 0, 0], [4, 5, 6]], dtype=np.float64)
    p = pack_padded_sequence(x, [2, 1, 3], batch_first=True, enforce_sorted=False)
    assert p.data.tolist() == [4, 1, 3, 5, 2, 6]
    assert p.batch_sizes.tolist() == [3, 2, 1]
    assert p.sorted_indices.tolist() == [2, 0, 1]
    assert p.unsorted_indices.tolist() == [1, 2, 0]
    padded, lengths = pad_packed_sequence(p, batch_first=True, padding_value=-1, total_length=5)
    assert padded.tolist() == [[1, 2, -1, -1, -1], [3, -1, -1, -1, -1], [4, 5, 6, -1, -1]]
    assert lengths.tolist() == [2, 1, 3]


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("enforce_sorted", [False, True])
def test_pack_then_pad_gives_back_the_valid_steps(batch_first, enforce_sorted):
    rng = np.random.default_rng(0)
    lengths = sorted(LENGTHS, reverse=True) if enforce_sorted else LENGTHS
    T, B = max(lengths) + 2, len(lengths)
    x = rng.standard_normal((B, T, 3) if batch_first else (T, B, 3))
    p = pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=enforce_sorted)
    assert p.data.shape == (sum(lengths), 3)
    assert (p.sorted_indices is None) == enforce_sorted
    assert p.lengths.tolist() == list(lengths)
    padded, got_lengths = pad_packed_sequence(p, batch_first=batch_first, padding_value=7.0)
    assert got_lengths.tolist() == list(lengths)
    tm = padded if not batch_first else padded.transpose(1, 0, 2)
    xt = x if not batch_first else x.transpose(1, 0, 2)
    assert tm.shape == (max(lengths), B, 3)
    for b, n in enumerate(lengths):
        assert np.array_equal(tm[:n, b], xt[:n, b])
        assert np.all(tm[n:, b] == 7.0)
    # each step's rows are the sequences that have it, longest first, in packed order
    sorted_b = np.argsort(-np.array(lengths), kind="stable")
    rows = [xt[t, b] for t in range(max(lengths)) for b in sorted_b if lengths[b] > t]
    assert np.array_equal(p.data, np.array(rows))


def test_pad_sequence_pack_sequence_unpack_and_unpad():
    rng = np.random.default_rng(1)
    seqs = [rng.standard_normal((n, 2, 3)) for n in LENGTHS]
    padded = pad_sequence(seqs)                                  # (T, B, 2, 3)
    assert padded.shape == (max(LENGTHS), len(LENGTHS), 2, 3)
    bf = pad_sequence(seqs, batch_first=True, padding_value=-1.0)
    assert np.array_equal(bf.transpose(1, 0, 2, 3)[padded != 0], padded[padded != 0])
    left = pad_sequence(seqs, batch_first=True, padding_side="left")
    for b, s in enumerate(seqs):
        assert np.array_equal(padded[:len(s), b], s) and np.all(padded[len(s):, b] == 0)
        assert np.array_equal(left[b, max(LENGTHS) - len(s):], s)
    p = pack_sequence(seqs, enforce_sorted=False)
    q = pack_padded_sequence(padded, LENGTHS, enforce_sorted=False)
    assert all(np.array_equal(a, b) for a, b in zip(p, q))
    for a, b in zip(unpack_sequence(p), seqs):
        assert np.array_equal(a, b)
    before = padded.copy()
    for a, b in zip(unpad_sequence(padded, LENGTHS), seqs):
        assert np.array_equal(a, b)
    assert np.array_equal(padded, before) and padded.shape == before.shape   # not transposed


def test_extra_padded_steps_are_dropped():
    x = np.arange(2 * 6 * 1, dtype=np.float64).reshape(6, 2, 1)
    p = pack_padded_sequence(x, [3, 2])
    assert p.batch_sizes.tolist() == [2, 2, 1] and p.data.shape == (5, 1)


@pytest.mark.parametrize("call,exc,msg", [
    (lambda x: pack_padded_sequence(x, [4, 3, 6]), ValueError,
     r"a length exceeds the input's 5 steps .* got lengths \[4, 3, 6\]"),
    (lambda x: pack_padded_sequence(x, [4, 0, 2], enforce_sorted=False), ValueError,
     r"greater than 0, but got lengths \[4, 0, 2\]"),
    (lambda x: pack_padded_sequence(x, [4, -1, 2], enforce_sorted=False), ValueError,
     "greater than 0"),
    (lambda x: pack_padded_sequence(x, [2, 4, 1]), ValueError,
     r"must be sorted in decreasing order when `enforce_sorted` is True, got lengths \[2, 4, 1\]"),
    (lambda x: pack_padded_sequence(x, [4, 3]), ValueError,
     r"Expected `len\(lengths\)` to be equal to batch_size, but got 2 \(batch_size=3\)"),
    (lambda x: pack_padded_sequence(x, [[4, 3, 1]]), ValueError, "lengths must be 1-D"),
    (lambda x: pack_padded_sequence(x, [4.0, 3.0, 1.0]), TypeError, "lengths must hold integers"),
    (lambda x: pack_padded_sequence(x, [True, True, True]), TypeError, "must hold integers"),
    (lambda x: pack_padded_sequence(x[:, :0], []), ValueError, "Cannot pack empty tensors"),
    (lambda x: pack_padded_sequence(x[:, 0, 0], [1]), ValueError, "at least 2-D"),
    (lambda x: pack_padded_sequence(x.tolist(), [4, 3, 1]), TypeError, "must be a numpy.ndarray"),
    (lambda x: pad_packed_sequence(pack_padded_sequence(x, [4, 3, 1]), total_length=3),
     ValueError, "total_length=3 and max sequence length being 4"),
    (lambda x: pad_packed_sequence(x), TypeError, "must be a PackedSequence"),
    (lambda x: pad_sequence([]), ValueError, "received an empty list of sequences"),
    (lambda x: pad_sequence(5), TypeError, "Expected a list of sequences"),
    (lambda x: pad_sequence([x[:, 0], x[:, 0, :1]]), ValueError,
     r"trailing shape and dtype of sequences\[0\], \(2,\) float64; sequences\[1\] has \(1,\)"),
    (lambda x: pad_sequence([x[:, 0]], padding_side="middle"), ValueError,
     "padding_side to be one of left or right, but got 'middle'"),
    (lambda x: pack_sequence([x[:, 0], x[:0, 0]]), ValueError, r"got lengths \[5, 0\]"),
    (lambda x: PackedSequence(x[:4, 0], [2, 1]), ValueError,
     r"sum\(batch_sizes\) = 3 rows, got shape \(4, 2\)"),
    (lambda x: PackedSequence(x[:4, 0], [1, 3]), ValueError, "non-increasing"),
    (lambda x: PackedSequence(x[:3, 0], [2, 1], [0, 0]), ValueError, "permutation of 0..1"),
    (lambda x: PackedSequence(x[:3, 0], [2, 1], [1, 0], [0, 1]), ValueError,
     "inverse permutation"),
])
def test_bad_packing_arguments_are_clear_errors(call, exc, msg):
    x = np.zeros((5, 3, 2))
    with pytest.raises(exc, match=msg):
        call(x)


def test_packed_sequence_is_a_tuple_of_pytorchs_four_fields():
    p = pack_sequence([np.ones((3, 2)), np.ones((1, 2))])
    data, batch_sizes, sorted_indices, unsorted_indices = p
    assert p._fields == ("data", "batch_sizes", "sorted_indices", "unsorted_indices")
    assert batch_sizes.dtype == np.int64 and sorted_indices is None and unsorted_indices is None
    q = PackedSequence(data, batch_sizes, np.array([1, 0]))      # the inverse is filled in
    assert q.unsorted_indices.tolist() == [1, 0]


# --------------------------------------------------------------------------- modules on packed input

def _model(mode, backend, dtype, P=0, layers=2, bidirectional=True, I=3, H=5, **kw):
    kwargs = dict(num_layers=layers, bidirectional=bidirectional, dtype=dtype, seed=3,
                  backend=backend, **kw)
    if P:
        kwargs["proj_size"] = P
    m = make_module(mode, I, H, **kwargs)
    perturb_biases(m, np.random.default_rng(4))
    return m


def _problem(m, lengths, seed=5):
    """Sequences, initial states and upstream gradients for model m (float64, then cast)."""
    rng = np.random.default_rng(seed)
    dt = m.dtype
    P, H = m._h_width, m.hidden_size
    LD, B = m.num_layers * m.num_directions, len(lengths)
    seqs = [rng.standard_normal((n, m.input_size)).astype(dt) for n in lengths]
    h0 = rng.standard_normal((LD, B, P)).astype(dt)
    c0 = rng.standard_normal((LD, B, H)).astype(dt) if m.mode == "LSTM" else None
    g_out = [rng.standard_normal((n, m.num_directions * P)).astype(dt) for n in lengths]
    g_h = rng.standard_normal((LD, B, P)).astype(dt)
    g_c = rng.standard_normal((LD, B, H)).astype(dt) if m.mode == "LSTM" else None
    return seqs, h0, c0, g_out, g_h, g_c


def _run_packed(m, lengths, problem):
    seqs, h0, c0, g_out, g_h, g_c = problem
    packed = pack_sequence(seqs, enforce_sorted=False)
    out, state = m(packed, join_state(m.mode, h0, c0))
    h_n, c_n = split_state(m.mode, state)
    grad_out = pack_sequence(g_out, enforce_sorted=False)
    m.zero_grad()
    gx, gs = m.backward(grad_out, join_state(m.mode, g_h, g_c))
    gh0, gc0 = split_state(m.mode, gs)
    assert isinstance(out, PackedSequence) and isinstance(gx, PackedSequence)
    assert np.array_equal(out.batch_sizes, packed.batch_sizes)
    return dict(out=unpack_sequence(out), h_n=h_n, c_n=c_n, gx=unpack_sequence(gx), gh0=gh0,
                gc0=gc0, grads={k: v.copy() for k, v in m.grads.items()})


def _run_alone(m, lengths, problem):
    """Each sequence by itself (unbatched, unpadded), its own slice of h0; parameter
    gradients summed over the sequences."""
    seqs, h0, c0, g_out, g_h, g_c = problem
    r = dict(out=[], h_n=np.empty_like(h0), c_n=None if c0 is None else np.empty_like(c0),
             gx=[], gh0=np.empty_like(h0), gc0=None if c0 is None else np.empty_like(c0))
    m.zero_grad()
    for b, s in enumerate(seqs):
        hx = join_state(m.mode, h0[:, b], None if c0 is None else c0[:, b])
        out, state = m(s, hx)
        h, c = split_state(m.mode, state)
        r["out"].append(out)
        r["h_n"][:, b] = h
        gx, gs = m.backward(g_out[b], join_state(m.mode, g_h[:, b],
                                                 None if g_c is None else g_c[:, b]))
        gh, gc = split_state(m.mode, gs)
        r["gx"].append(gx)
        r["gh0"][:, b] = gh
        if c0 is not None:
            r["c_n"][:, b] = c
            r["gc0"][:, b] = gc
    r["grads"] = {k: v.copy() for k, v in m.grads.items()}
    return r


def _assert_same(got, ref, tol):
    for key in ("out", "gx"):
        for b, (a, e) in enumerate(zip(got[key], ref[key])):
            assert a.shape == e.shape, (key, b)
            assert np.abs(a - e).max() <= tol * max(1.0, np.abs(e).max()), (key, b)
    for key in ("h_n", "c_n", "gh0", "gc0"):
        if ref[key] is not None:
            assert np.abs(got[key] - ref[key]).max() <= tol * max(1.0, np.abs(ref[key]).max()), key
    for name, e in ref["grads"].items():
        a = got["grads"][name]
        assert np.abs(a - e).max() <= tol * max(1.0, np.abs(e).max()), name


CONFIGS = [(mode, 0, True) for mode in MODES] + [("LSTM", 2, True), ("GRU", 0, False),
                                                 ("LSTM", 3, False)]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode,P,bidirectional", CONFIGS)
def test_packed_equals_each_sequence_run_alone(mode, P, bidirectional, backend, dtype):
    """Outputs, final states, input/state gradients and parameter gradients (2 layers)."""
    m = _model(mode, backend, dtype, P=P, bidirectional=bidirectional)
    problem = _problem(m, LENGTHS)
    got = _run_packed(m, LENGTHS, problem)
    ref = _run_alone(m, LENGTHS, problem)
    _assert_same(got, ref, 1e-12 if dtype == np.float64 else 2e-5)


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_packed_results_are_bitwise_identical_for_any_thread_count(mode, restore_threads):
    lengths = [3, 40, 1, 33, 17] * 8            # 40 sequences: 10 slices, big enough to split
    results = {}
    for n in (1, 2, 4):
        minirnn.set_num_threads(n)
        m = _model(mode, "c", np.float32, P=2 if mode == "LSTM" else 0, I=16, H=24)
        results[n] = _run_packed(m, lengths, _problem(m, lengths))
    for n in (2, 4):
        for key, ref in results[1].items():
            if key == "grads":
                assert all(np.array_equal(results[n][key][k], v) for k, v in ref.items())
            elif isinstance(ref, list):
                assert all(np.array_equal(a, b) for a, b in zip(results[n][key], ref)), key
            elif ref is not None:
                assert np.array_equal(results[n][key], ref), f"{key}: {n} threads != 1"


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("mode,P", [("LSTM", 0), ("LSTM", 6), ("GRU", 0), ("RNN_TANH", 0)])
def test_packed_time_loops_computing_their_own_g_x_change_no_bit(mode, P, dtype):
    # G_x for all steps before the loops (only for the rows that take a step), or inside
    # them, step by step (see test_kernels): the same numbers; I = 3 <= H/2 takes the second
    old = _kernels._set_step_gx_limits(0, 0)
    try:
        got = {}
        for scheme, limits in (("off", (0, 0)), ("on", (1 << 40, 0))):
            _kernels._set_step_gx_limits(*limits)
            m = _model(mode, "c", dtype, P=P, layers=1, I=3, H=8)
            got[scheme] = _run_packed(m, LENGTHS, _problem(m, LENGTHS))
            assert _kernels._step_gx_of_last_call() == (scheme == "on")
    finally:
        _kernels._set_step_gx_limits(*old)
    for key, ref in got["off"].items():
        if key == "grads":
            assert all(np.array_equal(got["on"][key][k], v) for k, v in ref.items())
        elif isinstance(ref, list):
            assert all(np.array_equal(a, b) for a, b in zip(got["on"][key], ref)), key
        elif ref is not None:
            assert np.array_equal(got["on"][key], ref), key


@pytest.mark.parametrize("backend", BACKENDS)
def test_packed_gradients_match_finite_differences(backend):
    """float64: d(loss)/d(data, h0, c0, weights) of a packed 2-layer bidirectional LSTM."""
    lengths = [3, 1, 2]
    m = _model("LSTM", backend, np.float64, P=2, I=2, H=3)
    seqs, h0, c0, g_out, g_h, g_c = _problem(m, lengths)
    packed = pack_sequence(seqs, enforce_sorted=False)
    g_packed = pack_sequence(g_out, enforce_sorted=False).data

    def loss():
        with minirnn.no_grad():
            out, (h, c) = m(packed, (h0, c0))
        return (out.data * g_packed).sum() + (h * g_h).sum() + (c * g_c).sum()

    m.zero_grad()
    out, (h, c) = m(packed, (h0, c0))
    gx, (gh0, gc0) = m.backward(g_packed, (g_h, g_c))    # the data array works too
    assert_grad_close("data", gx.data, numerical_grad(loss, packed.data))
    assert_grad_close("h0", gh0, numerical_grad(loss, h0))
    assert_grad_close("c0", gc0, numerical_grad(loss, c0))
    for name in ("weight_hh_l0_reverse", "weight_hr_l1", "bias_ih_l1"):
        assert_grad_close(name, m.grads[name], numerical_grad(loss, m._params[name]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_padded_positions_and_module_batch_first_do_not_matter(backend):
    rng = np.random.default_rng(6)
    a = _model("GRU", backend, np.float64)
    b = _model("GRU", backend, np.float64, batch_first=True)
    x = rng.standard_normal((9, len(LENGTHS), 3))
    y = x.copy()
    for i, n in enumerate(LENGTHS):
        y[n:, i] = rng.standard_normal((9 - n, 3)) * 100         # different padding
    out_a, h_a = a(pack_padded_sequence(x, LENGTHS, enforce_sorted=False))
    out_b, h_b = b(pack_padded_sequence(y, LENGTHS, enforce_sorted=False))
    assert np.array_equal(out_a.data, out_b.data) and np.array_equal(h_a, h_b)
    padded, _ = pad_packed_sequence(out_a, padding_value=0.5)
    for i, n in enumerate(LENGTHS):
        assert np.all(padded[n:, i] == 0.5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_final_state_is_each_sequences_own_last_step(backend):
    """The seed question: h_n is not output[-1]; forward = output at len-1, reverse = output
    at step 0."""
    m = _model("LSTM", backend, np.float64)
    seqs = _problem(m, LENGTHS)[0]
    out, (h_n, _) = m(pack_sequence(seqs, enforce_sorted=False))
    padded, lengths = pad_packed_sequence(out)
    H = m.hidden_size
    for b, n in enumerate(lengths):
        assert np.array_equal(padded[n - 1, b, :H], h_n[-2, b])
        assert np.array_equal(padded[0, b, H:], h_n[-1, b])
    assert not np.allclose(padded[-1, :, :H], h_n[-2])          # output[-1] is padding


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
def test_packed_dropout_is_the_same_on_both_backends(dtype):
    results = []
    for backend in BACKENDS:
        m = _model("LSTM", backend, dtype, P=2, layers=3, dropout=0.4)
        problem = _problem(m, LENGTHS)
        results.append(_run_packed(m, LENGTHS, problem))
        assert m.tape_size == 0
    _assert_same(results[0], results[1], 1e-12 if dtype == np.float64 else 2e-5)


def test_packed_dropout_draws_one_mask_element_per_valid_position():
    m = _model("GRU", "numpy", np.float64, layers=3, dropout=0.5)
    seqs = _problem(m, LENGTHS)[0]
    state = m.generator.bit_generator.state
    m(pack_sequence(seqs, enforce_sorted=False))
    used = np.random.default_rng()
    used.bit_generator.state = state
    used.random((2, sum(LENGTHS), 2 * m.hidden_size))           # 2 masks over the packed data
    assert m.generator.bit_generator.state == used.bit_generator.state
    m.eval()                                                     # eval: no dropout, no draws
    out1, _ = m(pack_sequence(seqs, enforce_sorted=False))
    assert m.generator.bit_generator.state == used.bit_generator.state
    m.dropout = 0.0
    m.train()
    out0, _ = m(pack_sequence(seqs, enforce_sorted=False))
    assert np.array_equal(out0.data, out1.data)


@pytest.mark.parametrize("backend", BACKENDS)
def test_packed_inference_under_no_grad(backend):
    m = _model("GRU", backend, np.float32)
    seqs = _problem(m, LENGTHS)[0]
    packed = pack_sequence(seqs, enforce_sorted=False)
    out, h = m(packed)
    m.clear_tape()
    with minirnn.no_grad():
        out2, h2 = m(packed)
    assert m.tape_size == 0
    assert np.array_equal(out.data, out2.data) and np.array_equal(h, h2)


@pytest.mark.parametrize("make_bad,exc,msg", [
    (lambda m, p: m(PackedSequence(p.data.astype(np.float32), p.batch_sizes, p.sorted_indices)),
     TypeError, r"input.data dtype \(float32\) does not match the module's dtype \(float64\)"),
    (lambda m, p: m(PackedSequence(p.data[:, :2], p.batch_sizes)), ValueError,
     "input.data.shape.-1. must be equal to input_size. Expected 3, got 2"),
    (lambda m, p: m(PackedSequence(p.data[:, :, None], p.batch_sizes)), ValueError,
     r"data of a PackedSequence to be 2-D \(sum\(lengths\), H_in\), got 3-D"),
    (lambda m, p: m(p, np.zeros((4, 10, 5))), ValueError,
     r"Expected h0 of shape \(4, 11, 5\), got \(4, 10, 5\)"),
    (lambda m, p: m(p, np.zeros((4, 12, 5))), ValueError,
     r"Expected h0 of shape \(4, 11, 5\), got \(4, 12, 5\)"),
    (lambda m, p: m(p, np.zeros((4, 5))), ValueError, "should also be 3-D"),
])
def test_bad_packed_module_input_is_a_clear_error(make_bad, exc, msg):
    m = _model("GRU", "c", np.float64)
    p = pack_sequence(_problem(m, LENGTHS)[0], enforce_sorted=False)
    with pytest.raises(exc, match=msg):
        make_bad(m, p)


def test_bad_packed_grad_output_is_a_clear_error():
    m = _model("GRU", "c", np.float64)
    p = pack_sequence(_problem(m, LENGTHS)[0], enforce_sorted=False)
    out, _ = m(p)
    other = pack_sequence(_problem(m, LENGTHS[:-1] + [2])[0], enforce_sorted=False)
    with pytest.raises(ValueError, match="grad_output is a PackedSequence with batch_sizes"):
        m.backward(PackedSequence(other.data[:, :1].repeat(10, 1), other.batch_sizes,
                                  other.sorted_indices))
    with pytest.raises(ValueError, match=r"Expected grad_output of shape \(56, 10\), got"):
        m.backward(out.data[:, :4])
    assert m.tape_size == 1                                      # nothing was used up
    gx, gh0 = m.backward(None, None)
    assert np.all(gx.data == 0) and np.all(gh0 == 0)

"""The packed weights kept between calls ("pack once"): used again while the parameters hold
the same numbers, repacked after any change, whatever path changed them. The expected values
come from a fresh module with the same parameters, which packs from scratch."""
import numpy as np
import pytest

import minirnn
from minirnn import _kernels
from minirnn.packed import pack_padded_sequence

from helpers import MODES, make_cell, make_module, perturb_biases

pytestmark = pytest.mark.skipif("c" not in minirnn.BACKENDS, reason="no compiled kernels")


def _fresh(m, make):
    """A module like m with m's parameters and nothing packed yet."""
    f = make()
    f.load_state_dict(m.state_dict())
    return f


def _state(mode, rng, shape, dtype):
    h = rng.standard_normal(shape).astype(dtype)
    return (h, rng.standard_normal(shape).astype(dtype)) if mode == "LSTM" else h


def _edits(m):
    """Ways to change a parameter between two calls; each takes the module and a rng."""
    def in_place_item(m, rng):
        m.weight_hh_l0[1, 2] += 0.5

    def in_place_slice(m, rng):
        m.weight_ih_l0[...] *= 0.5

    def copyto(m, rng):
        name = "weight_hh_l0_reverse" if m.bidirectional else "weight_hh_l0"
        w = m.state_dict()[name]
        np.copyto(getattr(m, name), rng.standard_normal(w.shape).astype(w.dtype))

    def load(m, rng):
        sd = {k: v + 0.1 * rng.standard_normal(v.shape).astype(v.dtype)
              for k, v in m.state_dict().items()}
        m.load_state_dict(sd)

    def last_layer(m, rng):
        getattr(m, f"weight_hh_l{m.num_layers - 1}")[0, -1] = 0.75

    return [in_place_item, in_place_slice, copyto, load, last_layer]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("edit", range(5))
def test_a_changed_parameter_is_never_used_stale(mode, dtype, edit):
    rng = np.random.default_rng(edit)
    def make():
        return make_module(mode, 5, 7, num_layers=2, bidirectional=True, dtype=dtype, seed=3)
    m = make()
    perturb_biases(m, rng)
    x = rng.standard_normal((4, 3, 5)).astype(dtype)
    hx = _state(mode, rng, (4, 3, 7), dtype)
    with minirnn.no_grad():
        before = m(x, hx)[0]
        assert np.array_equal(before, m(x, hx)[0])            # a call that reuses the panels
        _edits(m)[edit](m, rng)
        after = m(x, hx)[0]
        expected = _fresh(m, make)(x, hx)[0]
    assert not np.array_equal(before, expected)               # the edit changes the answer
    assert np.array_equal(after, expected)


@pytest.mark.parametrize("mode", MODES)
def test_the_panels_are_packed_once_and_repacked_after_a_write(mode):
    rng = np.random.default_rng(0)
    m = make_module(mode, 6, 8, seed=1)
    x = rng.standard_normal((1, 2, 6)).astype(np.float32)
    with minirnn.no_grad():
        m(x)
        pack = m._c_packs()[0]
        panels = pack[2]
        m(x)
        assert pack[2] is panels                              # not packed again
        m.weight_ih_l0[0, 0] += 1.0
        m(x)
        assert pack[2] is not panels                          # packed again
        panels = pack[2]
        m.train()                                             # training calls use them too
    out = m(x)[0]
    m.backward(np.ones_like(out))
    assert pack[2] is panels


@pytest.mark.parametrize("mode", MODES)
def test_cells_keep_their_panels_and_see_writes(mode):
    rng = np.random.default_rng(1)
    def make():
        return make_cell(mode, 5, 6, seed=2)
    c = make()
    perturb_biases(c, rng)
    x = rng.standard_normal((2, 5)).astype(np.float32)
    hx = _state(mode, rng, (2, 6), np.float32)
    with minirnn.no_grad():
        first = c(x, hx)
        panels = c._c_packs()[0][2]
        c(x, hx)
        assert c._c_packs()[0][2] is panels
        c.weight_hh[2, 3] -= 0.5
        got = c(x, hx)
        want = _fresh(c, make)(x, hx)
    first, got, want = (np.asarray(v[0] if mode == "LSTM" else v) for v in (first, got, want))
    assert not np.array_equal(first, want)
    assert np.array_equal(got, want)


def test_packed_sequences_and_projections_see_writes():
    rng = np.random.default_rng(2)
    def make():
        return minirnn.LSTM(4, 9, num_layers=2, proj_size=3, bidirectional=True, seed=5)
    m = make()
    x = rng.standard_normal((6, 3, 4)).astype(np.float32)
    packed = pack_padded_sequence(x, [6, 4, 2])
    with minirnn.no_grad():
        before = m(packed)[0].data
        m.weight_hr_l1_reverse[1, 4] += 1.0
        after = m(packed)[0].data
        want = _fresh(m, make)(packed)[0].data
    assert not np.array_equal(before, want)
    assert np.array_equal(after, want)


def test_another_instruction_set_repacks():
    isas = _kernels.available_isas()
    if len(isas) < 2:
        pytest.skip("one instruction set only")
    rng = np.random.default_rng(3)
    m = minirnn.GRU(5, 7, seed=0)
    x = rng.standard_normal((3, 2, 5)).astype(np.float32)
    old = _kernels.get_isa()
    try:
        outs = []
        for isa in isas:
            _kernels.set_isa(isa)
            with minirnn.no_grad():
                outs.append((m(x)[0], _fresh(m, lambda: minirnn.GRU(5, 7, seed=0))(x)[0]))
    finally:
        _kernels.set_isa(old)
    for got, want in outs:
        assert np.array_equal(got, want)


# ------------------------------------------------------------------ the fingerprint itself

@pytest.mark.parametrize("n", [1, 3, 31, 32, 33, 64, 100, 257])
def test_the_fingerprint_sees_every_single_word_change(n):
    """Any one changed word (8 bytes), wherever it is (whole rounds of 32 words or the
    zero-padded tail), changes the fingerprint; so does a changed length."""
    w = np.arange(1, n + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    base = _kernels.fingerprint(w)
    seen = {base}
    for i in range(n):
        v = w.copy()
        v[i] += np.uint64(1)
        seen.add(_kernels.fingerprint(v))
    assert len(seen) == n + 1
    assert _kernels.fingerprint(w[:-1].copy()) != base
    assert _kernels.fingerprint(w.view(np.uint8)[:-1].copy()) != base   # a partial last word


def test_the_fingerprint_sees_changes_that_cancel_in_a_lane_sum():
    """+1 at one word and -1 at another of the same lane (32 words apart) leave that lane's
    plain sum unchanged; the position-weighted sum still sees them. So does a swap."""
    w = np.arange(200, dtype=np.uint64)
    base = _kernels.fingerprint(w)
    for i, j in [(0, 32), (5, 69), (100, 196), (3, 4)]:
        v = w.copy()
        v[i] += np.uint64(1)
        v[j] -= np.uint64(1)
        assert _kernels.fingerprint(v) != base, (i, j)
        v = w.copy()
        v[i], v[j] = w[j], w[i]
        assert _kernels.fingerprint(v) != base, (i, j)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("where", ["first", "last"])
def test_edits_of_the_first_and_last_weights_are_seen(dtype, where):
    """W_hh (3*5, 5) float32 is 300 bytes: its last element is in the fingerprint's tail."""
    rng = np.random.default_rng(4)
    def make():
        return minirnn.GRU(3, 5, dtype=dtype, seed=1)
    m = make()
    x = rng.standard_normal((2, 1, 3)).astype(dtype)
    idx = (0, 0) if where == "first" else (-1, -1)
    with minirnn.no_grad():
        before = m(x)[0]
        for name in ("weight_ih_l0", "weight_hh_l0"):
            getattr(m, name)[idx] += 0.25
            after = m(x)[0]
            want = _fresh(m, make)(x)[0]
            assert not np.array_equal(before, want)
            assert np.array_equal(after, want)
            before = after


# ------------------------------------------------------------------ the backward's panels

def _train_step(m, x, hx, rng_seed):
    """Forward, backward with fixed upstream gradients; the gradients (and grad_x) it gives."""
    rng = np.random.default_rng(rng_seed)
    m.zero_grad()
    out, hn = m(x, hx)
    g_out = rng.standard_normal(out.shape).astype(out.dtype)
    if isinstance(hn, tuple):
        g_state = tuple(rng.standard_normal(s.shape).astype(s.dtype) for s in hn)
    else:
        g_state = rng.standard_normal(hn.shape).astype(hn.dtype)
    gx, _ = m.backward(g_out, g_state)
    return gx, {k: v.copy() for k, v in m.grads.items()}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("edit", range(5))
def test_the_backward_never_uses_stale_panels(mode, dtype, edit):
    """Two training steps with a parameter edit between them (the backward keeps its own
    panels of W_hh, W_ih): the second step's gradients are a fresh module's."""
    rng = np.random.default_rng(10 + edit)
    def make():
        return make_module(mode, 5, 7, num_layers=2, bidirectional=True, dtype=dtype, seed=3)
    m = make()
    perturb_biases(m, rng)
    x = rng.standard_normal((4, 3, 5)).astype(dtype)
    hx = _state(mode, rng, (4, 3, 7), dtype)
    first = _train_step(m, x, hx, 0)
    again = _train_step(m, x, hx, 0)                          # reuses the kept panels
    assert np.array_equal(first[0], again[0])
    _edits(m)[edit](m, rng)
    got = _train_step(m, x, hx, 0)
    want = _train_step(_fresh(m, make), x, hx, 0)
    assert not np.array_equal(first[0], want[0])              # the edit changes grad_x
    assert np.array_equal(got[0], want[0])
    for k in want[1]:
        assert np.array_equal(got[1][k], want[1][k]), k


@pytest.fixture
def shared_fingerprints():
    """Two threads, and the fingerprints of any weights shared out among them."""
    threads = minirnn.get_num_threads()
    old = _kernels._set_fp_parallel_bytes(0)
    minirnn.set_num_threads(2)
    yield
    minirnn.set_num_threads(threads)
    _kernels._set_fp_parallel_bytes(old)


@pytest.mark.parametrize("mode", MODES)
def test_fingerprints_shared_out_among_threads_see_every_edit(mode, shared_fingerprints):
    """The matrices' fingerprints taken by different threads: every edit is still seen, in
    the forward and in the backward, and unchanged weights still reuse the panels."""
    for edit in range(5):
        rng = np.random.default_rng(20 + edit)
        def make():
            return make_module(mode, 5, 7, num_layers=2, bidirectional=True, seed=3,
                               dtype=np.float64)
        m = make()
        perturb_biases(m, rng)
        x = rng.standard_normal((4, 3, 5))
        hx = _state(mode, rng, (4, 3, 7), np.float64)
        first = _train_step(m, x, hx, 0)
        again = _train_step(m, x, hx, 0)
        assert np.array_equal(first[0], again[0])
        _edits(m)[edit](m, rng)
        got = _train_step(m, x, hx, 0)
        want = _train_step(_fresh(m, make), x, hx, 0)
        assert not np.array_equal(first[0], want[0]), edit
        assert np.array_equal(got[0], want[0]), edit
        for k in want[1]:
            assert np.array_equal(got[1][k], want[1][k]), (edit, k)


@pytest.mark.parametrize("mode", MODES)
def test_the_backward_packs_once_and_again_after_a_write(mode):
    rng = np.random.default_rng(5)
    m = make_module(mode, 6, 8, seed=1)
    x = rng.standard_normal((3, 2, 6)).astype(np.float32)
    _train_step(m, x, None, 1)
    back = m._c_packs()[m.num_layers]                         # the backward's list of layer 0
    assert len(back) == 4 and back[0][0] == "backward"
    panels = back[2]
    _train_step(m, x, None, 1)
    assert back[2] is panels                                  # not packed again
    m.weight_hh_l0[3, 1] -= 0.5
    _train_step(m, x, None, 1)
    assert back[2] is not panels                              # packed again


@pytest.mark.parametrize("mode", MODES)
def test_cells_backward_sees_writes(mode):
    rng = np.random.default_rng(6)
    def make():
        return make_cell(mode, 5, 6, seed=2)
    c = make()
    perturb_biases(c, rng)
    x = rng.standard_normal((2, 5)).astype(np.float32)
    hx = _state(mode, rng, (2, 6), np.float32)
    g = _state(mode, np.random.default_rng(7), (2, 6), np.float32)

    def step(cell):
        cell.zero_grad()
        cell(x, hx)
        return cell.backward(g)[0], {k: v.copy() for k, v in cell.grads.items()}
    first = step(c)
    step(c)
    c.weight_ih[4, 0] += 0.5                                  # dX = dG_x W_ih sees it
    c.weight_hh[1, 3] -= 0.5                                  # dh_prev = dG_h W_hh sees it
    got, want = step(c), step(_fresh(c, make))
    assert not np.array_equal(first[0], want[0])
    assert np.array_equal(got[0], want[0])
    for k in want[1]:
        assert np.array_equal(got[1][k], want[1][k]), k


def test_the_backward_of_projections_and_packed_input_sees_writes():
    rng = np.random.default_rng(8)
    def make():
        return minirnn.LSTM(4, 9, num_layers=2, proj_size=3, bidirectional=True, seed=5)
    m = make()
    x = rng.standard_normal((6, 3, 4)).astype(np.float32)
    packed = pack_padded_sequence(x, [6, 4, 2])

    def step(mod):
        mod.zero_grad()
        out, _ = mod(packed)
        g = np.random.default_rng(9).standard_normal(out.data.shape).astype(np.float32)
        gx, _ = mod.backward(g)
        return gx.data, {k: v.copy() for k, v in mod.grads.items()}
    first = step(m)
    step(m)
    m.weight_hr_l1_reverse[1, 4] += 1.0
    m.weight_hh_l0[0, 2] -= 0.5
    got, want = step(m), step(_fresh(m, make))
    assert not np.array_equal(first[0], want[0])
    assert np.array_equal(got[0], want[0])
    for k in want[1]:
        assert np.array_equal(got[1][k], want[1][k]), k


# ------------------------------------------------------------------ copies of the kept panels

def _shifted_copy(panels):
    """A copy of a panels array whose data starts at another offset from a 64-byte boundary
    (as a copy made by copy.deepcopy or pickle may): the same bytes, one element later."""
    isz = panels.itemsize
    big = np.empty(panels.size + 64 // isz + 1, panels.dtype)
    shift = next(k for k in range(1, 64 // isz + 1)
                 if (big[k:].ctypes.data - panels.ctypes.data) % 64 != 0)
    out = big[shift:shift + panels.size]
    out[...] = panels
    return out


@pytest.mark.parametrize("frozen", [False, True])
@pytest.mark.parametrize("mode", MODES)
def test_panels_copied_to_another_offset_are_packed_again(mode, frozen):
    """The forward's and the backward's kept panels moved to an array that starts at another
    offset from a 64-byte boundary: read from the new boundary they would be shifted, so the
    kernels pack again and the answers stay a fresh module's, to the bit."""
    rng = np.random.default_rng(30)
    def make():
        return make_module(mode, 5, 24, seed=3)
    m = make()
    perturb_biases(m, rng)
    if frozen:
        m = minirnn.freeze(m)
    x = rng.standard_normal((4, 3, 5)).astype(np.float32)
    hx = _state(mode, rng, (1, 3, 24), np.float32)
    want = _train_step(m, x, hx, 0)
    with minirnn.no_grad():
        want_infer = m(x, hx)[0]
    for pack in m._c_packs():
        assert len(pack) == 4
        pack[2] = _shifted_copy(pack[2])
    got = _train_step(m, x, hx, 0)
    assert np.array_equal(got[0], want[0])
    for k in want[1]:
        assert np.array_equal(got[1][k], want[1][k]), k
    for pack in m._c_packs():
        pack[2] = _shifted_copy(pack[2])
    with minirnn.no_grad():
        assert np.array_equal(m(x, hx)[0], want_infer)


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
@pytest.mark.parametrize("mode", MODES)
def test_a_copied_module_computes_what_the_original_does(mode, how):
    """A module copied after calls (its caches hold packed panels) gives the original's bits,
    in inference and in a training step."""
    import copy
    import pickle
    rng = np.random.default_rng(31)
    m = make_module(mode, 5, 40, num_layers=2, seed=3)
    perturb_biases(m, rng)
    x = rng.standard_normal((4, 3, 5)).astype(np.float32)
    hx = _state(mode, rng, (2, 3, 40), np.float32)
    want = _train_step(m, x, hx, 0)
    with minirnn.no_grad():
        want_infer = m(x, hx)[0]
    for _ in range(3):                   # new arrays land at various offsets
        c = copy.deepcopy(m) if how == "deepcopy" else pickle.loads(pickle.dumps(m))
        with minirnn.no_grad():
            assert np.array_equal(c(x, hx)[0], want_infer)
        got = _train_step(c, x, hx, 0)
        assert np.array_equal(got[0], want[0])

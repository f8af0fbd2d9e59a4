"""minirnn.freeze: an inference copy whose weights cannot change, so the compiled kernels skip
the fingerprint of the weights ("pack once") on every call after the first.

Every expected value comes from the module that was frozen (or a fresh module with the same
parameters): a frozen copy must give the same bits, skip the fingerprint where (and only where)
its weights cannot have changed, and refuse every write with an error that says what to do."""
import copy
import ctypes
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import minirnn
from minirnn.freeze import is_immutable
from minirnn.packed import pack_padded_sequence

from helpers import MODES, make_cell, make_module, model_with_state, perturb_biases, train_step

HAS_C = "c" in minirnn.BACKENDS
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
needs_c = pytest.mark.skipif(not HAS_C, reason="no compiled kernels")
if HAS_C:
    from minirnn import _kernels


def _state(mode, rng, shape, dtype):
    h = rng.standard_normal(shape).astype(dtype)
    return (h, rng.standard_normal(shape).astype(dtype)) if mode == "LSTM" else h


def _equal(a, b):
    """Bitwise equality of two results (arrays, tuples of them, PackedSequences)."""
    if isinstance(a, tuple):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, minirnn.PackedSequence):
        return _equal(a.data, b.data)
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)


def _fingerprinted(backward=False):
    return _kernels._fingerprinted_last_call(backward) if HAS_C else None


# ------------------------------------------------------------------------ the frozen copy


CONFIGS = {
    "plain": dict(),
    "2 layers": dict(num_layers=2),
    "bidirectional": dict(bidirectional=True),
    "2 layers bidirectional float64": dict(num_layers=2, bidirectional=True,
                                           dtype=np.float64),
    "batch_first": dict(batch_first=True),
    "no bias": dict(bias=False),
}


@pytest.mark.parametrize("backend", minirnn.BACKENDS)
@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("mode", MODES)
def test_frozen_modules_give_the_same_bits(mode, config, backend):
    rng = np.random.default_rng(0)
    kw = CONFIGS[config]
    dtype = kw.get("dtype", np.float32)
    m = make_module(mode, 5, 7, seed=1, backend=backend, **kw)
    perturb_biases(m, rng)
    D = 2 if kw.get("bidirectional") else 1
    x = rng.standard_normal((3, 4, 5)).astype(dtype)
    hx = _state(mode, rng, (kw.get("num_layers", 1) * D, 3 if kw.get("batch_first") else 4, 7),
                dtype)
    f = minirnn.freeze(m)
    assert type(f) is type(m) and f is not m and f.frozen and not m.frozen
    assert repr(f) == repr(m) and f.backend == m.backend and f.dtype == m.dtype
    with minirnn.no_grad():
        for _ in range(3):                            # the first call packs, the others reuse
            assert _equal(f(x, hx), m(x, hx))
            assert _equal(f(x), m(x))


LSTM_CASES = {
    "proj_size": (dict(), 3, False),
    "peephole": (dict(peephole=True), 0, False),
    "clip, activations": (dict(cell_clip=0.5, activations=["HardSigmoid", "Tanh", "Softsign"]),
                          0, False),
    "coupled, bidirectional": (dict(coupled_input_forget=True), 0, True),
    "proj_size, peephole, bidirectional": (dict(peephole=True), 2, True),
}


@pytest.mark.parametrize("backend", minirnn.BACKENDS)
@pytest.mark.parametrize("case", list(LSTM_CASES))
def test_frozen_lstm_projections_and_variants(case, backend):
    variant, P, bidirectional = LSTM_CASES[case]
    m, x, state = model_with_state("LSTM", backend, variant, dtype=np.float32, B=3, P=P,
                                   bidirectional=bidirectional)
    f = minirnn.freeze(m)
    assert f.variant == m.variant and f.proj_size == m.proj_size == P
    with minirnn.no_grad():
        for _ in range(2):
            assert _equal(f(x, state), m(x, state))


@pytest.mark.parametrize("backend", minirnn.BACKENDS)
def test_frozen_gru_variant(backend):
    m, x, state = model_with_state("GRU", backend, dict(reset_after=False), dtype=np.float64)
    f = minirnn.freeze(m)
    with minirnn.no_grad():
        for _ in range(2):
            assert _equal(f(x, state), m(x, state))


@pytest.mark.parametrize("mode", MODES)
def test_frozen_packed_input(mode):
    rng = np.random.default_rng(2)
    m = make_module(mode, 4, 6, num_layers=2, bidirectional=True, seed=2)
    perturb_biases(m, rng)
    x = rng.standard_normal((5, 3, 4)).astype(np.float32)
    seq = pack_padded_sequence(x, [5, 2, 4], enforce_sorted=False)
    f = minirnn.freeze(m)
    with minirnn.no_grad():
        for _ in range(2):
            assert _equal(f(seq), m(seq))


@pytest.mark.parametrize("backend", minirnn.BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", MODES)
def test_frozen_cells_give_the_same_bits(mode, dtype, backend):
    rng = np.random.default_rng(3)
    c = make_cell(mode, 5, 6, seed=4, dtype=dtype, backend=backend)
    perturb_biases(c, rng)
    f = minirnn.freeze(c)
    assert type(f) is type(c) and f.frozen and repr(f) == repr(c)
    x = rng.standard_normal((2, 5)).astype(dtype)
    hx = _state(mode, rng, (2, 6), dtype)
    with minirnn.no_grad():
        for _ in range(3):
            assert _equal(f(x, hx), c(x, hx))
            assert _equal(f(x[0]), c(x[0]))             # unbatched, zero state


@pytest.mark.parametrize("cell", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_streaming_one_step_per_call_with_the_state_carried(dtype, cell):
    # the streaming call: batch 1, one step per call, (h, c) carried from call to call
    rng = np.random.default_rng(4)
    m = minirnn.LSTMCell(16, 16, seed=5, dtype=dtype) if cell else \
        minirnn.LSTM(16, 16, seed=5, dtype=dtype)
    perturb_biases(m, rng)
    f = minirnn.freeze(m)
    shape = (1, 16) if cell else (1, 1, 16)
    sm = sf = (np.zeros(shape, dtype), np.zeros(shape, dtype))
    with minirnn.no_grad():
        for t in range(20):
            x = rng.standard_normal((1, 16) if cell else (1, 1, 16)).astype(dtype)
            om = m(x, sm)
            fm = _fingerprinted()
            of = f(x, sf)
            ff = _fingerprinted()
            if cell:
                sm, sf = om, of
            else:
                (om, sm), (of, sf) = om, of
            assert _equal(of, om) and _equal(sf, sm), t
            if HAS_C:
                assert fm                                 # the writable module: always read
                assert ff == (t == 0), t                  # the frozen one: only when it packs


# ------------------------------------------------------------------------ the skip rule


@needs_c
@pytest.mark.parametrize("mode", MODES)
def test_the_fingerprint_is_skipped_forward_and_backward_only_when_frozen(mode):
    rng = np.random.default_rng(5)
    m = make_module(mode, 6, 8, num_layers=2, seed=6, proj_size=4) if mode == "LSTM" else \
        make_module(mode, 6, 8, num_layers=2, seed=6)
    f = minirnn.freeze(m)
    x = rng.standard_normal((3, 2, 6)).astype(np.float32)
    want: dict = {}
    for step in range(3):
        for mod, frozen in ((m, False), (f, True)):
            with minirnn.no_grad():
                mod(x)
            assert _fingerprinted() == (not frozen or step == 0), (mod, step)
            res = train_step(mod, x, None)
            assert _fingerprinted() == (not frozen), (mod, step)      # packed by the no_grad
            assert _fingerprinted(backward=True) == (not frozen or step == 0), (mod, step)
            if frozen:
                assert all(_equal(v, want[k]) for k, v in res.items())
            else:
                want = res


@needs_c
def test_a_frozen_module_reads_its_weights_only_when_it_packs():
    # Proof that the skip is real, not only a flag: change a frozen weight's bytes behind
    # NumPy's back (ctypes; nothing in Python can) and the frozen module does not notice,
    # where the writable module, given the same edit, does.
    rng = np.random.default_rng(6)
    m = minirnn.LSTM(8, 8, seed=7)
    f = minirnn.freeze(m)
    x = rng.standard_normal((1, 1, 8)).astype(np.float32)
    hx = _state("LSTM", rng, (1, 1, 8), np.float32)   # (W_hh multiplies h0: not zeros)
    with minirnn.no_grad():
        before = f(x, hx)[0]
        w = f.weight_hh_l0
        assert is_immutable(w)
        new = np.full(w.shape, 0.25, np.float32)
        old = w.copy()
        ctypes.memmove(w.ctypes.data, new.ctypes.data, new.nbytes)
        try:
            stale = f(x, hx)[0]
            fresh = minirnn.freeze(m)                 # the unchanged original, packed anew
            m.weight_hh_l0[...] = new
            changed = m(x, hx)[0]
        finally:
            ctypes.memmove(w.ctypes.data, old.ctypes.data, old.nbytes)
        assert _equal(fresh(x, hx)[0], before)
    assert _equal(stale, before)                      # the panels were used, not the weights
    assert not _equal(changed, before)                # the edit changes the answer


@needs_c
def test_the_kernels_skip_only_for_the_same_tuple_of_immutable_arrays():
    # forward_layer itself: the rule is general (no flag from the module)
    rng = np.random.default_rng(7)
    H, I, B = 6, 5, 2
    code = _kernels.MODES["GRU"]

    def arrays(writable):
        ws = [rng.standard_normal(s).astype(np.float32) for s in ((3 * H, I), (3 * H, H))]
        if not writable:
            ws = [np.frombuffer(w.tobytes(), np.float32).reshape(w.shape) for w in ws]
        return ws

    X = rng.standard_normal((1, B, I)).astype(np.float32)
    h0 = rng.standard_normal((1, B, H)).astype(np.float32)

    def call(weights, pack):
        Y = np.empty((1, B, H), np.float32)
        hT = np.empty((1, B, H), np.float32)
        _kernels.forward_layer(code, X, weights, h0, None, Y, hT, None, None, None, None, None,
                               None, pack)
        want = np.empty_like(Y)
        _kernels.forward_layer(code, X, weights, h0, None, want, np.empty_like(hT), None, None,
                               None, None, None, None, None)    # no pack: packed anew
        assert _equal(Y, want)
        return _fingerprinted()

    frozen = arrays(False)
    w = ((frozen[0], frozen[1], None, None),)
    pack: list = []
    assert call(w, pack) and pack[3] is w             # packs, keeps the tuple
    assert not call(w, pack)                          # the same tuple: skipped
    assert call(((frozen[0], frozen[1], None, None),), pack)  # an equal new tuple: read
    # a read-only view of a writable array is not immutable: it can be made writeable again
    ro = arrays(True)
    for a in ro:
        a.flags.writeable = False
    w2 = ((ro[0], ro[1], None, None),)
    pack = []
    assert call(w2, pack) and pack[3] is None
    assert call(w2, pack)
    ro[1].flags.writeable = True
    ro[1][0, 0] += 1.0                                # seen: the fingerprint is read
    assert call(w2, pack)
    # the directions' arrays in a list (which can be refilled): read every time
    w3 = ([frozen[0], frozen[1], None, None],)
    pack = []
    call(w3, pack)
    assert pack[3] is None and call(w3, pack)
    w3[0][1] = arrays(False)[1]                       # refilled: the new weights are used
    call(w3, pack)


@needs_c
def test_a_normal_module_edited_in_place_still_gives_the_new_answer():
    rng = np.random.default_rng(8)
    m = minirnn.LSTM(6, 6, seed=8)
    f = minirnn.freeze(m)
    x = rng.standard_normal((1, 1, 6)).astype(np.float32)
    hx = _state("LSTM", rng, (1, 1, 6), np.float32)
    with minirnn.no_grad():
        before = m(x, hx)[0]
        assert _equal(f(x, hx)[0], before)
        m.weight_hh_l0[0, 0] += 1.0
        after = m(x, hx)[0]
        assert _fingerprinted()
        g = minirnn.freeze(m)                         # a copy with the new weights
        assert _equal(g(x, hx)[0], after)
        assert _equal(f(x, hx)[0], before)            # the old copy is unchanged
    assert not _equal(after, before)


# ------------------------------------------------------------------------ writes refused


def test_assignment_and_load_state_dict_are_refused():
    m = minirnn.LSTM(4, 5, seed=0)
    f = minirnn.freeze(m)
    with pytest.raises(ValueError, match=r"LSTM: cannot assign weight_hh_l0: this module is "
                                         r"frozen \(minirnn\.freeze\).*minirnn\.freeze\(m\)"):
        f.weight_hh_l0 = np.zeros((20, 5), np.float32)
    with pytest.raises(ValueError, match=r"LSTM: cannot load_state_dict \(weight_ih_l0, "
                                         r".*frozen.*minirnn\.freeze\(m\)"):
        f.load_state_dict(m.state_dict())
    c = minirnn.freeze(minirnn.GRUCell(3, 4, seed=0))
    with pytest.raises(ValueError, match=r"GRUCell: cannot assign bias_ih: .*frozen"):
        c.bias_ih = np.zeros(12, np.float32)
    with pytest.raises(ValueError, match="assignment destination is read-only"):
        f.weight_hh_l0[...] = 0
    with pytest.raises(ValueError, match="cannot set WRITEABLE flag"):
        f.weight_hh_l0.flags.writeable = True
    with pytest.raises(AttributeError):
        f.frozen = False                              # a read-only property
    assert _equal(f.weight_hh_l0, m.weight_hh_l0)     # nothing changed
    m.weight_hh_l0 = np.zeros((20, 5))                # the original stays writable
    m.load_state_dict(f.state_dict())


def test_optimizers_refuse_read_only_parameters():
    m = minirnn.LSTM(4, 5, seed=0)
    lin = minirnn.Linear(5, 2, seed=0)
    f = minirnn.freeze(m)
    for opt in (minirnn.optim.SGD, minirnn.optim.Adam, minirnn.optim.AdamW,
                minirnn.optim.Adagrad, minirnn.optim.RMSprop):
        name = opt.__name__
        with pytest.raises(ValueError, match=rf"{name}: parameter 2 \(LSTM.weight_ih_l0\) is a "
                                             r"read-only array.*frozen.*minirnn\.freeze\(m\)"):
            opt([lin, f], lr=0.1)
    # any read-only array, not only a frozen module's: the index runs over all groups
    lin.bias.flags.writeable = False
    with pytest.raises(ValueError, match=r"SGD: parameter 5 \(Linear.bias\) is a read-only"):
        minirnn.optim.SGD([{"params": [m]}, {"params": [lin], "lr": 0.5}], lr=0.1)
    lin.bias.flags.writeable = True
    minirnn.optim.SGD([m, lin], lr=0.1)


def test_gradcheck_of_a_frozen_modules_parameters_is_refused():
    m = minirnn.GRU(2, 3, dtype=np.float64, seed=0)
    f = minirnn.freeze(m)
    x = np.random.default_rng(0).standard_normal((2, 1, 2))
    with pytest.raises(ValueError, match=r"gradcheck: the module's parameter weight_ih_l0 is "
                                         r"read-only \(a frozen module.*check_parameters=False"):
        minirnn.gradcheck(f, x)
    assert minirnn.gradcheck(f, x, check_parameters=False).passed


@pytest.mark.parametrize("bad", [minirnn.Linear(2, 3), minirnn.Embedding(4, 2), 3, None,
                                 np.zeros(3), "LSTM"])
def test_freeze_takes_recurrent_modules_only(bad):
    with pytest.raises(TypeError, match=r"minirnn\.freeze: module must be an RNN, GRU, LSTM, "
                                        rf"RNNCell, GRUCell or LSTMCell, got {type(bad).__name__}"):
        minirnn.freeze(bad)


def test_frozen_is_false_on_every_other_module():
    for mod in (minirnn.RNN(2, 3), minirnn.GRUCell(2, 3), minirnn.Linear(2, 3)):
        assert mod.frozen is False


# ------------------------------------------------------------------------ the copy's state


def test_the_original_is_untouched_and_keeps_training():
    rng = np.random.default_rng(9)
    m = minirnn.GRU(4, 5, num_layers=2, seed=9)
    params = {k: p for k, p in m.named_parameters()}
    values = m.state_dict()
    x = rng.standard_normal((3, 2, 4)).astype(np.float32)
    with minirnn.no_grad():
        m(x)
    packs = m._c_packs() if HAS_C else None
    f = minirnn.freeze(m)
    assert all(params[k] is p and p.flags.writeable for k, p in m.named_parameters())
    assert all(_equal(values[k], p) for k, p in m.named_parameters())
    assert all(is_immutable(p) for p in f.parameters())
    assert not any(np.shares_memory(p, q) for p, q in zip(m.parameters(), f.parameters()))
    assert not HAS_C or m._c_packs() is packs
    with minirnn.no_grad():
        before = f(x)[0]
        assert _equal(m(x)[0], before)
    opt = minirnn.optim.Adam([m], lr=0.05)
    train_step(m, x, None)
    opt.step()
    with minirnn.no_grad():
        assert not _equal(m(x)[0], before)            # the original learned
        assert _equal(f(x)[0], before)                # the frozen copy did not


@pytest.mark.parametrize("mode", MODES)
def test_training_through_a_frozen_module_gives_the_originals_gradients(mode):
    # gradients with respect to the input and the initial state are legitimate uses; the
    # parameter gradients accumulate into grads as on any module
    m, x, state = model_with_state(mode, None, {}, dtype=np.float64, B=3)
    f = minirnn.freeze(m)
    assert all(g.flags.writeable and not g.any() for g in f.grads.values())
    for _ in range(2):
        want = train_step(m, x, state)
        got = train_step(f, x, state)
        assert want.keys() == got.keys()
        assert all(_equal(got[k], want[k]) for k in want), mode


def test_the_copy_has_the_same_config_flags_and_generator_state():
    rng = np.random.default_rng(10)
    m = minirnn.LSTM(4, 6, num_layers=3, dropout=0.4, batch_first=True, seed=10)
    m.generator.standard_normal(7)                    # the generator moved on
    m.eval()
    f = minirnn.freeze(m)
    assert not f.training
    assert (f.num_layers, f.dropout, f.batch_first, f.hidden_size, f.input_size) == \
        (m.num_layers, m.dropout, m.batch_first, m.hidden_size, m.input_size)
    assert f.generator is not m.generator
    assert f.generator.bit_generator.state == m.generator.bit_generator.state
    m.train()
    f.train()
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    with minirnn.no_grad():
        for _ in range(2):                             # the same dropout masks, drawn apart
            assert _equal(f(x), m(x))
    assert f.tape_size == 0


def test_a_pending_forward_of_the_original_is_not_copied():
    m = minirnn.RNN(3, 4, seed=0)
    x = np.ones((2, 1, 3), np.float32)
    out, _ = m(x)
    f = minirnn.freeze(m)
    assert f.tape_size == 0 and m.tape_size == 1
    m.backward(np.ones_like(out))


def test_freezing_a_frozen_module_gives_another_frozen_copy():
    m = minirnn.LSTMCell(3, 4, seed=0)
    f = minirnn.freeze(m)
    g = minirnn.freeze(f)
    assert g is not f and g.frozen and all(is_immutable(p) for p in g.parameters())
    x = np.ones((1, 3), np.float32)
    with minirnn.no_grad():
        assert _equal(g(x), f(x)) and _equal(g(x), m(x))


# ------------------------------------------------------------------------ copies and workers


def _check_copy(f, c, x):
    assert type(c) is type(f) and c.frozen
    assert all(is_immutable(p) for p in c.parameters())
    with minirnn.no_grad():
        want = f(x)
        for _ in range(2):
            assert _equal(c(x), want)
    if HAS_C:
        assert not _fingerprinted()                    # the copy's own panels, kept
    with pytest.raises(ValueError, match="frozen"):
        c.load_state_dict(f.state_dict())


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
@pytest.mark.parametrize("mode", MODES)
def test_copies_and_pickles_stay_frozen(mode, how):
    rng = np.random.default_rng(11)
    f = minirnn.freeze(make_module(mode, 4, 5, num_layers=2, bidirectional=True, seed=11))
    x = rng.standard_normal((3, 2, 4)).astype(np.float32)
    with minirnn.no_grad():
        f(x)                                           # packed: the panels are not copied
    c = copy.deepcopy(f) if how == "deepcopy" else pickle.loads(pickle.dumps(f))
    _check_copy(f, c, x)
    cell = minirnn.freeze(make_cell(mode, 4, 5, seed=11))
    cc = copy.deepcopy(cell) if how == "deepcopy" else pickle.loads(pickle.dumps(cell))
    _check_copy(cell, cc, x[0])


def test_a_normal_module_pickles_as_before():
    m = minirnn.GRU(3, 4, seed=1)
    c = pickle.loads(pickle.dumps(m))
    assert not c.frozen and all(p.flags.writeable for p in c.parameters())
    c.weight_hh_l0 = np.zeros((12, 4))
    copy.deepcopy(m).load_state_dict(m.state_dict())


WORKER_SCRIPT = """
import multiprocessing as mp
import sys

import numpy as np

import minirnn
from minirnn.freeze import is_immutable


def work(args):
    f, x = args
    with minirnn.no_grad():
        outs = [f(x) for _ in range(3)]
    try:
        from minirnn import _kernels
        skipped = not _kernels._fingerprinted_last_call()
    except ImportError:
        skipped = True
    out, (h, c) = outs[-1]
    return (f.frozen and all(is_immutable(p) for p in f.parameters()), skipped,
            out.tobytes() + h.tobytes() + c.tobytes())


if __name__ == "__main__":
    m = minirnn.LSTM(8, 8, num_layers=2, seed=3)
    f = minirnn.freeze(m)
    x = np.random.default_rng(4).standard_normal((1, 1, 8)).astype(np.float32)
    with minirnn.no_grad():
        out, (h, c) = m(x)
    want = out.tobytes() + h.tobytes() + c.tobytes()
    for method in sys.argv[1:]:
        with mp.get_context(method).Pool(1) as pool:
            frozen, skipped, got = pool.map(work, [(f, x)])[0]
        print(method, frozen, skipped, got == want)
"""


@pytest.mark.skipif(os.name != "posix", reason="fork")
def test_frozen_modules_work_in_spawn_and_fork_workers(tmp_path):
    methods = [m for m in ("spawn", "fork")
               if m in __import__("multiprocessing").get_all_start_methods()]
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(WORKER_SCRIPT))
    try:
        res = subprocess.run([sys.executable, str(script)] + methods, capture_output=True,
                             text=True, timeout=180, cwd=ROOT,
                             env=dict(os.environ, PYTHONPATH=ROOT))
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"a worker hung\nstdout: {e.stdout}\nstderr: {e.stderr}")
    assert res.returncode == 0, res.stderr
    assert res.stdout.split("\n")[:-1] == [f"{m} True True True" for m in methods]

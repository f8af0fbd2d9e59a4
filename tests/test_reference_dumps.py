"""Every PyTorch reference dump in minirnn/data, on every backend, in float64 and float32.

Expected values come only from the dumps (written by tools/make_reference_dumps.py
with torch; torch is not needed here). Each tensor is compared with
minirnn.conformance.compare: normalized max error <= 1e-10 (float64) / 1e-4 (float32).
"""
import itertools
import json
import os

import numpy as np
import pytest

from minirnn.conformance import DATA_DIR, TOLERANCE, compare, find_cases, format_comparison, load_case, run_case
from helpers import BACKENDS

DATA = DATA_DIR
CASES = find_cases(DATA)
NAMES = [os.path.basename(p)[:-4] for p in CASES]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("path", CASES, ids=NAMES)
def test_reference_case(path, dtype, backend):
    results = run_case(path, backend=backend, dtype=dtype)
    assert results and all(c.ok for c in results), \
        "\n".join(format_comparison(c) for c in results)


def _metas():
    return [load_case(p)[0] for p in CASES]


def test_dumps_cover_the_promised_configurations():
    """The committed dumps must cover each mode x layers x directions x batch_first x bias x h0,
    unbatched input, relu and every cell (so deleting dumps cannot silently shrink the suite)."""
    metas = _metas()
    assert all(m["format_version"] == 1 and m["dtype"] == "float64" for m in metas)
    seen = {(m["mode"], m["config"]["num_layers"], m["config"]["bidirectional"],
             m["config"]["batch_first"], m["config"]["bias"], m["has_h0"])
            for m in metas if m["kind"] == "module" and not m["unbatched"]}
    for combo in itertools.product(["RNN_TANH", "GRU", "LSTM"], [1, 2, 3], [False, True],
                                   [False, True], [True, False], [True, False]):
        assert combo in seen, f"no dump for (mode, layers, bidirectional, batch_first, bias, h0) = {combo}"
    modes = lambda **kw: {m["mode"] for m in metas if all(m.get(k) == v for k, v in kw.items())}  # noqa: E731
    assert modes(kind="module") >= {"RNN_TANH", "RNN_RELU", "GRU", "LSTM"}
    assert modes(kind="module", unbatched=True) == {"RNN_TANH", "RNN_RELU", "GRU", "LSTM"}
    for unbatched in (False, True):
        assert modes(kind="cell", unbatched=unbatched) == {"RNN_TANH", "RNN_RELU", "GRU", "LSTM"}


def test_dumps_cover_lstm_projections():
    """proj_size dumps: layers 1-2 x directions x batch_first, with and without bias and h0,
    unbatched, and every gradient including grad.weight_hr_l*."""
    proj = [(m, a) for m, a in map(load_case, CASES) if m["config"].get("proj_size", 0) > 0]
    assert all(m["mode"] == "LSTM" for m, _ in proj)
    seen = {(m["config"]["num_layers"], m["config"]["bidirectional"], m["config"]["batch_first"])
            for m, _ in proj if not m["unbatched"]}
    assert seen >= set(itertools.product([1, 2], [False, True], [False, True]))
    assert {(m["config"]["bias"], m["has_h0"]) for m, _ in proj} >= {(True, True), (False, False)}
    assert any(m["unbatched"] for m, _ in proj)
    for m, a in proj:
        P, H = m["config"]["proj_size"], m["config"]["hidden_size"]
        hr = [n for n in m["param_names"] if n.startswith("weight_hr_l")]
        assert len(hr) == m["config"]["num_layers"] * (2 if m["config"]["bidirectional"] else 1)
        assert all(a["grad." + n].shape == (P, H) and np.abs(a["grad." + n]).max() > 0 for n in hr)
        assert a["h_n"].shape[-1] == P and a["c_n"].shape[-1] == H


def test_dumps_cover_packed_sequences():
    """Packed dumps: every mode x layers 1-2 x directions x batch_first x sorted/unsorted
    lengths, relu, projections, no bias/no h0, and a long case per mode with 9 sequences."""
    packed = [m for m in _metas() if m["kind"] == "packed"]
    seen = {(m["mode"], m["config"]["num_layers"], m["config"]["bidirectional"],
             m["config"]["batch_first"], m["enforce_sorted"]) for m in packed}
    for combo in itertools.product(["RNN_TANH", "GRU", "LSTM"], [1, 2], [False, True],
                                   [False, True], [True, False]):
        assert combo in seen, f"no packed dump for {combo}"
    assert {m["mode"] for m in packed} == {"RNN_TANH", "RNN_RELU", "GRU", "LSTM"}
    assert any(m["config"].get("proj_size") for m in packed)
    assert any(not m["has_h0"] and not m["config"]["bias"] for m in packed)
    assert {m["mode"] for m in packed if m["batch"] > 8} == {"RNN_TANH", "RNN_RELU", "GRU", "LSTM"}
    for m in packed:                    # the padded input is longer than every sequence
        assert max(m["lengths"]) < m["seq_len"] and len(set(m["lengths"])) < len(m["lengths"])


def test_dumps_are_sensitive():
    """Inputs that make tests sensitive: nonzero distinct biases, nonzero h0, random
    upstream gradients on every output."""
    for path in CASES:
        meta, a = load_case(path)
        for name in meta["param_names"]:
            if name.startswith("bias_ih"):
                other = a[name.replace("bias_ih", "bias_hh")]
                assert np.abs(a[name]).min() > 0 and not np.allclose(a[name], other), path
        if meta["has_h0"]:
            assert np.abs(a["h0"]).min() > 0, path
        for g in ("grad_output", "grad_h_n", "grad_c_n", "grad_h", "grad_c"):
            if g in a:
                assert np.abs(a[g]).min() > 0, (path, g)


def test_comparison_detects_a_wrong_result():
    """The routine must fail: perturb one reference entry by 10x the tolerance."""
    meta, a = load_case(CASES[0])
    ref = a["output"] if "output" in a else a["h"]
    tol = TOLERANCE[np.dtype(np.float64)]
    bad = ref.copy()
    bad.flat[3] += 10 * tol * np.abs(ref).max()
    c = compare("output", bad, ref, tol)
    assert not c.ok and c.where == np.unravel_index(3, ref.shape)
    assert compare("output", ref, ref, tol).ok
    assert not compare("output", ref[:1], ref, tol).ok                 # shape mismatch
    assert not compare("output", np.full_like(ref, np.nan), ref, tol).ok


def test_meta_is_self_describing():
    meta, _ = load_case(CASES[0])
    for key in ("format_version", "torch_version", "kind", "class", "mode", "config", "seed", "loss",
                "param_names", "has_h0", "unbatched", "batch"):
        assert key in meta, key
    json.dumps(meta)

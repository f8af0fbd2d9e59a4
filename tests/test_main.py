"""``python -m minirnn`` (the main job): the demo, a one-screen conformance summary that can
fail, every case behind --verbose, help for a newcomer; explain's options under the
constructors' names."""
import collections
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from minirnn import conformance
from minirnn.__main__ import main
from minirnn.conformance import DATA_DIR, find_cases, load_case


def run(capsys, *argv):
    status = main(list(argv))
    return status, capsys.readouterr().out


def summary_rows(out):
    """{(mode, backend, dtype): (cases, passed)} from the summary table."""
    rows = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 6 and f[0] in conformance.MODES and f[2] in ("float32", "float64"):
            rows[(f[0], f[1], f[2])] = (int(f[3]), int(f[4]))
    return rows


def test_the_summary_fits_a_screen_and_counts_every_case(capsys):
    status, out = run(capsys)
    assert status == 0, out
    lines = out.splitlines()
    assert len(lines) <= 45 and max(map(len, lines)) <= 100, out
    assert "output[:, 0, H:]" in out and "h_n[-1]  (last layer, reverse)" in out
    per_mode = collections.Counter(load_case(p)[0]["mode"] for p in find_cases(DATA_DIR))
    rows = summary_rows(out)
    assert set(rows) == {(m, b, d) for m in per_mode for b in ("c", "numpy")
                         for d in ("float32", "float64")}
    for (mode, _, _), (cases, passed) in rows.items():
        assert cases == passed == per_mode[mode]
    assert f"all {sum(per_mode.values())} cases pass" in out
    assert "python -m minirnn --verbose" in out
    assert os.path.basename(find_cases(DATA_DIR)[0])[:-4] not in out      # no per-case table


def test_verbose_lists_every_case(capsys):
    status, out = run(capsys, "--verbose", "--backend", "numpy")
    assert status == 0
    for path in find_cases(DATA_DIR):
        name = os.path.basename(path)[:-4]
        assert any(line.startswith(f"  {name} ") and line.endswith("pass")
                   for line in out.splitlines()), name
    assert {b for _, b, _ in summary_rows(out)} == {"numpy"}


def _corrupted_copy(tmp_path, names, key, factor):
    """A folder with copies of the dumps ``names``, ``key`` of the first one scaled."""
    for name in names:
        shutil.copy(os.path.join(DATA_DIR, name + ".npz"), tmp_path)
    path = os.path.join(tmp_path, names[0] + ".npz")
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays[key] = arrays[key] * factor
    np.savez(path, **arrays)
    return str(tmp_path)


def test_a_wrong_reference_fails_and_names_the_case(capsys, tmp_path):
    names = ["gru_l1_uni_tf_bias_h0", "lstm_l2_bi_bf_bias_h0", "rnn_relu_l1_uni_tf_bias_h0"]
    folder = _corrupted_copy(tmp_path, names, "grad.weight_hh_l0", 1 + 1e-6)
    status, out = run(capsys, "--dumps", folder)
    assert status == 1
    rows = summary_rows(out)
    # float64 sees a relative change of 1e-6, float32 (tolerance 1e-4) does not
    assert rows[("GRU", "c", "float64")] == (1, 0) and rows[("GRU", "numpy", "float64")] == (1, 0)
    assert rows[("GRU", "c", "float32")] == (1, 1) and rows[("LSTM", "c", "float64")] == (1, 1)
    fail_lines = [line for line in out.splitlines() if line.endswith("  FAIL")]
    assert len(fail_lines) == 2 and all(line.startswith("  GRU ") for line in fail_lines)
    assert "FAILED: 2 of 12 runs (1 case)" in out
    assert "gru_l1_uni_tf_bias_h0 (c, float64): grad.weight_hh_l0: MISMATCH" in out


def test_missing_or_empty_reference_folders_fail_clearly(capsys, tmp_path):
    status, out = run(capsys, "--dumps", str(tmp_path / "nowhere"))
    assert status == 1 and "is not a folder" in out
    status, out = run(capsys, "--dumps", str(tmp_path))
    assert status == 1 and "no reference cases (*.npz) found" in out


def test_help_speaks_to_a_newcomer():
    r = subprocess.run([sys.executable, "-m", "minirnn", "--help"], capture_output=True,
                       text=True)
    assert r.returncode == 0
    assert r.stdout.count("\n") < 50
    for text in ("check it against PyTorch", "--verbose", "explain", "examples:", "--backend"):
        assert text in r.stdout
    assert "seeds'" not in r.stdout                # no project jargon ("the seeds' example")


@pytest.mark.parametrize("long, short, value", [
    ("--num-layers", "--layers", "2"), ("--hidden-size", "--hidden", "3"),
    ("--input-size", "--input", "2"), ("--proj-size", "--proj", "2"),
    ("--seq-len", "--seq", "3"), ("--num_layers", "--layers", "2"),
    ("--hidden_size", "--hidden", "3"),
])
def test_explain_takes_the_constructors_names(capsys, long, short, value):
    base = ["explain", "--mode", "lstm", "--hidden-size", "4", "--batch", "2"]
    status_long, out_long = run(capsys, *base, long, value)
    status_short, out_short = run(capsys, *base, short, value)
    assert status_long == status_short == 0
    assert out_long == out_short


def test_explain_mode_rnn_is_rnn_tanh(capsys):
    status, out = run(capsys, "explain", "--mode", "rnn", "--hidden-size", "3")
    status_tanh, out_tanh = run(capsys, "explain", "--mode", "rnn_tanh", "--hidden-size", "3")
    assert status == status_tanh == 0 and out == out_tanh
    assert "nonlinearity" not in out.splitlines()[0] or "tanh" in out.splitlines()[0]


@pytest.mark.parametrize("argv, message", [
    (["--hiden-size", "3"], "unrecognized arguments: --hiden-size 3"),
    (["--mode", "transformer"], "invalid mode 'transformer'"),
    (["--num-layers", "x"], "argument --num-layers"),
])
def test_explain_errors_show_explains_usage(capsys, argv, message):
    with pytest.raises(SystemExit) as e:
        main(["explain", *argv])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: python -m minirnn explain"), err
    assert message in err

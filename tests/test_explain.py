"""``python -m minirnn explain``: every mode and option, and its checks can fail."""
import itertools
import re
import subprocess
import sys

import numpy as np
import pytest

from minirnn import _explain
from minirnn.__main__ import main

MODES = ["rnn_tanh", "rnn_relu", "gru", "lstm"]
SMALL = ["--hidden", "3", "--input", "2", "--batch", "2", "--seq", "4"]
GATES = {"rnn_tanh": 1, "rnn_relu": 1, "gru": 3, "lstm": 4}


def explain(capsys, *argv):
    status = main(["explain", *argv])
    return status, capsys.readouterr().out


OPTIONS = list(itertools.product(MODES, [1, 3], [False, True], [False, True], [False, True],
                                 [False, True]))


@pytest.mark.parametrize("mode, layers, bidirectional, batch_first, unbatched, no_bias", OPTIONS)
def test_every_mode_and_option(capsys, mode, layers, bidirectional, batch_first, unbatched,
                               no_bias):
    argv = ["--mode", mode, "--layers", str(layers), *SMALL]
    argv += ["--bidirectional"] * bidirectional + ["--batch-first"] * batch_first
    argv += ["--unbatched"] * unbatched + ["--no-bias"] * no_bias
    status, out = explain(capsys, *argv)
    assert status == 0, out
    assert out.rstrip().endswith("all identities hold")
    D, G, H, L, N = 1 + bidirectional, GATES[mode], 3, 4, 2

    # shapes, in the caller's layout
    if unbatched:
        x, o, s = (L, 2), (L, D * H), (layers * D, H)
    elif batch_first:
        x, o, s = (N, L, 2), (N, L, D * H), (layers * D, N, H)
    else:
        x, o, s = (L, N, 2), (L, N, D * H), (layers * D, N, H)
    lines = out.splitlines()

    def row(name):
        return next(line for line in lines if line.startswith(f"  {name} "))
    assert str(x) in row("input x") and str(o) in row("output") and str(s) in row("h_n")
    assert ("c_n" in out) == (mode == "lstm")

    # the parameter table: every array with its shape, G blocks of H rows each
    names = [line.split()[0] for line in lines if re.match(r"  (weight|bias)_\w+ +\(", line)]
    per_dir = 2 if no_bias else 4
    assert len(names) == layers * D * per_dir
    assert any(n.startswith("bias") for n in names) != no_bias
    w = row("weight_ih_l0")
    assert str((G * H, 2)) in w and w.count(" | ") == G - 1
    if mode == "lstm":
        assert "0:3 W_ii (= W_i) | 3:6 W_if (= W_f) | 6:9 W_ig (= W_g) | 9:12 W_io (= W_o)" in w
        assert "9:12 W_ho (= U_o)" in row("weight_hh_l0")
    if mode == "gru":
        assert "6:9 W_hn (= U_n)" in row("weight_hh_l0")
    if layers > 1:
        assert str((G * H, D * H)) in row("weight_ih_l1")

    # the identities: one checked line per row of h_n, with the right slice of output
    checked = [line for line in lines if line.startswith("  h_n[") and line.endswith(" ok")]
    assert len(checked) == layers * D
    t_axis = "" if unbatched else (":, " if batch_first else "")
    b_axis = "" if unbatched or batch_first else ":, "
    fwd = f"output[{t_axis}-1, {b_axis}{':3' if D == 2 else ':'}]"
    assert fwd in checked[-D]
    if D == 2:
        assert f"output[{t_axis}0, {b_axis}3:]" in checked[-1]
        assert "h_n[%d] != output" % (layers * D - 1) in out
    if batch_first and not unbatched:
        assert "batch_first moves the batch axis" in out


def test_the_seed_command(capsys):
    status, out = explain(capsys, "--mode", "gru", "--layers", "3", "--bidirectional",
                          "--batch-first", "--hidden", "50", "--input", "8", "--batch", "4",
                          "--seq", "7")
    assert status == 0
    assert "h_n[4]   2      forward    output[:, -1, :50]" in out
    assert "h_n[5]   2      reverse    output[:, 0, 50:]" in out
    assert "(6, 4, 50)" in out and "(4, 7, 100)" in out


def test_float64_and_seq_1(capsys):
    status, out = explain(capsys, "--mode", "lstm", "--bidirectional", "--seq", "1",
                          "--dtype", "float64", *SMALL[:6])
    assert status == 0 and "float64" in out and "the first step is also the last" in out


# ------------------------------------------------------------------ the checks can fail

def _break(monkeypatch, corrupt):
    """Make every forward explain runs return h_n changed by corrupt(model, h_n)."""
    run = _explain._run

    def broken(m, x):
        out, h_n, c_n = run(m, x)
        return out, corrupt(m, h_n.copy()), c_n
    monkeypatch.setattr(_explain, "_run", broken)


def _bump_last_row(m, h):
    h[-1] += np.float32(1e-6)                  # one row of h_n off by a little
    return h


def _swap_directions(m, h):
    return h[[1, 0]] if len(h) == 2 else h     # forward and reverse rows exchanged


def _bump_layer0_of_full_model(m, h):
    if m.num_layers == 2:                      # the sub-model used for layer 0 stays correct
        h[0] *= 2
    return h


def _bump_time_major_only(m, h):
    if not m.batch_first:                      # the batch-first and time-major runs disagree
        h[-1] += 1
    return h


@pytest.mark.parametrize("corrupt, argv", [
    (_bump_last_row, ["--mode", "rnn_tanh"]),
    (_swap_directions, ["--mode", "gru", "--bidirectional"]),
    (_bump_layer0_of_full_model, ["--mode", "lstm", "--layers", "2"]),
    (_bump_time_major_only, ["--mode", "rnn_relu", "--batch-first"]),
])
def test_a_wrong_model_fails(capsys, monkeypatch, corrupt, argv):
    _break(monkeypatch, corrupt)
    status, out = explain(capsys, *argv, *SMALL)
    assert status == 1
    assert "FAIL" in out and out.rstrip().endswith("does not hold")


def test_bad_sizes_are_refused(capsys):
    with pytest.raises(SystemExit):
        main(["explain", "--hidden", "0"])
    with pytest.raises(SystemExit):
        main(["explain", "--mode", "transformer"])


def test_command_line():
    """The real command, in a subprocess; --help lists the options."""
    r = subprocess.run([sys.executable, "-m", "minirnn", "explain", "--mode", "lstm", *SMALL],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "all identities hold" in r.stdout, r.stderr
    r = subprocess.run([sys.executable, "-m", "minirnn", "explain", "--help"], capture_output=True,
                       text=True)
    for option in ("--mode", "--layers", "--bidirectional", "--batch-first", "--unbatched",
                   "--no-bias", "--hidden", "--input", "--batch", "--seq"):
        assert option in r.stdout


def test_without_a_command_the_demo_and_conformance_still_run(capsys):
    status = main(["--backend", "numpy"])
    out = capsys.readouterr().out
    assert status == 0
    assert "output[:, 0, H:]" in out and "conformance: minirnn against PyTorch" in out


PROJ_OPTIONS = list(itertools.product([1, 2], [False, True], [False, True], [False, True]))


@pytest.mark.parametrize("layers, bidirectional, batch_first, unbatched", PROJ_OPTIONS)
def test_lstm_with_projections(capsys, layers, bidirectional, batch_first, unbatched):
    # H = 5, proj_size P = 2: h0/h_n/output are P wide per direction, c0/c_n H wide
    argv = ["--mode", "lstm", "--layers", str(layers), "--hidden", "5", "--proj", "2",
            "--input", "3", "--batch", "2", "--seq", "4"]
    argv += ["--bidirectional"] * bidirectional + ["--batch-first"] * batch_first
    argv += ["--unbatched"] * unbatched
    status, out = explain(capsys, *argv)
    assert status == 0, out
    assert out.rstrip().endswith("all identities hold")
    D, H, P, L, N = 1 + bidirectional, 5, 2, 4, 2
    lines = out.splitlines()

    def row(name):
        return next(line for line in lines if line.startswith(f"  {name} "))
    if unbatched:
        o, s, c = (L, D * P), (layers * D, P), (layers * D, H)
    elif batch_first:
        o, s, c = (N, L, D * P), (layers * D, N, P), (layers * D, N, H)
    else:
        o, s, c = (L, N, D * P), (layers * D, N, P), (layers * D, N, H)
    assert str(o) in row("output") and str(s) in row("h_n") and str(c) in row("c_n")
    assert str((4 * H, P)) in row("weight_hh_l0") and str((P, H)) in row("weight_hr_l0")
    if layers > 1:
        assert str((4 * H, D * P)) in row("weight_ih_l1")
    checked = [line for line in lines if line.startswith("  h_n[") and line.endswith(" ok")]
    assert len(checked) == layers * D


def test_proj_needs_lstm_and_a_size_below_hidden(capsys):
    for argv in (["--mode", "gru", "--proj", "2"], ["--mode", "lstm", "--hidden", "4",
                                                    "--proj", "4"]):
        with pytest.raises(SystemExit, match="--proj-size needs --mode lstm and 0 < proj_size < hidden_size"):
            main(["explain", *argv])


@pytest.mark.parametrize("before", [["--seed", "3"], ["--backend", "numpy"]])
def test_options_before_explain_are_an_error_not_ignored(before, capsys):
    with pytest.raises(SystemExit) as e:
        main([*before, "explain"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"{before[0]} before 'explain' would be ignored" in err
    assert f"python -m minirnn explain {before[0]}" in err


VARIANT_ARGS = [
    ("gru", ["--reset-before"], "reset_after=False"),
    ("lstm", ["--peephole"], "peephole=True"),
    ("lstm", ["--coupled-input-forget"], "coupled_input_forget=True"),
    ("rnn_tanh", ["--cell-clip", "0.5"], "cell_clip=0.5"),
    ("gru", ["--activations", "HardSigmoid:0.2:0.5,Softsign"], "activations"),
    ("lstm", ["--reverse", "--layers", "2"], "reverse=True"),
    ("gru", ["--reverse", "--batch-first", "--reset-before"], "reverse=True"),
    ("lstm", ["--peephole", "--bidirectional", "--activations",
              "Sigmoid,Tanh,Tanh,HardSigmoid,Softsign,Softsign"], "peephole=True"),
]


@pytest.mark.parametrize("backend", ["c", "numpy"])
@pytest.mark.parametrize("mode, extra, shown", VARIANT_ARGS)
def test_explain_shows_the_variants(capsys, mode, extra, shown, backend):
    status, out = explain(capsys, "--mode", mode, "--backend", backend, *SMALL, *extra)
    assert status == 0, out
    assert shown in out.split("shapes")[0]                 # the variant's line in the header
    assert "all identities hold" in out
    if "--peephole" in extra:
        assert re.search(r"weight_peephole_l0 +\(9,\) +0:3 p_i \| 3:6 p_f \| 6:9 p_o", out)
    if "--reverse" in extra:
        # a reverse-only layer ends at step 0: h_n of the last layer is output at step 0
        rows = [line for line in out.splitlines() if re.match(r" +h_n\[\d+\] +\d", line)]
        assert rows and all(" reverse " in r for r in rows)
        assert re.search(r"output\[(:, )?0, ", rows[-1]) and rows[-1].endswith("ok")


def test_explain_variant_matches_the_module():
    # the module explain builds is the constructor's, variant included
    m = _explain.build("lstm", 2, 3, variant={"peephole": True, "reverse": True})
    assert m.variant.peephole and m.variant.reverse
    assert "weight_peephole_l0" in m.state_dict()


@pytest.mark.parametrize("argv, message", [
    (["--mode", "gru", "--peephole"], "--peephole needs --mode lstm"),
    (["--mode", "lstm", "--reset-before"], "--reset-before needs --mode gru"),
    (["--mode", "gru", "--coupled-input-forget"], "--coupled-input-forget needs --mode lstm"),
    (["--reverse", "--bidirectional"], "--reverse is for a unidirectional layer"),
    (["--activations", "Foo"], "unknown activation 'Foo'"),
    (["--activations", "LeakyRelu:x"], "expected Name or Name:alpha"),
    (["--cell-clip", "-1"], "cell_clip"),
])
def test_explain_variant_errors(argv, message):
    r = subprocess.run([sys.executable, "-m", "minirnn", "explain", *argv], capture_output=True,
                       text=True)
    assert r.returncode != 0
    assert message in r.stderr, r.stderr

"""The conformance runner for other implementations (minirnn.conformance_runner).

A correct adapter (minirnn's NumPy backend) passes; deliberately wrong ones fail, each for
the reason it is wrong; the CLI's exit status says so.
"""
import glob
import io
import os
import subprocess
import sys

import numpy as np
import pytest

from minirnn import __main__ as cli
from minirnn.conformance_runner import load_impl, run_case_with, run_conformance
from minirnn.conformance import DATA_DIR

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "examples"))
import numpy_adapter  # noqa: E402

# one case of every kind and mode: modules, bidirectional stacks, cells, packed, projections
SUBSET = "*_l2_bi_bf_bias_h0*"
CASES = ["gru_l2_bi_bf_bias_h0", "lstm_l1_uni_tf_nobias_noh0", "cell_lstm_batched_bias_noh0",
         "rnn_relu_l2_bi_unbatched_bias_h0", "lstm_packed_proj_l1_bi_bf_bias_h0_unsorted",
         "gru_packed_l2_bi_tf_bias_h0_unsorted", "cell_gru_unbatched_nobias_h0"]


def path(name):
    return os.path.join(DATA_DIR, name + ".npz")


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_numpy_adapter_passes(name, dtype):
    r = run_case_with(numpy_adapter.make_adapter, path(name), dtype)
    assert r.status == "pass", r.message
    assert r.backward
    names = {c.name for c in r.comparisons}
    assert "grad_input" in names and "grad_h0" in names and any(n.startswith("grad.")
                                                                for n in names)


def test_run_conformance_table():
    buf = io.StringIO()
    n = len(glob.glob(os.path.join(DATA_DIR, SUBSET + ".npz")))
    assert n >= 8
    rep = run_conformance(numpy_adapter.make_adapter, only=SUBSET, out=buf)
    assert rep.ok and rep.n_pass == 2 * n and rep.n_fail == 0, buf.getvalue()
    text = buf.getvalue()
    assert "gru_l2_bi_bf_bias_h0" in text and f"{n} cases" in text
    assert f"{2 * n} passed, 0 failed" in text


class _Wrong:
    """Wraps the correct adapter and breaks one thing."""

    def __init__(self, inner, how):
        self.inner, self.how = inner, how

    def forward(self, inputs):
        out = self.inner.forward(inputs)
        if self.how == "h_n_reversed":               # the classic: reverse state from out[-1]
            key = "h_n" if "h_n" in out else "h"
            out[key] = np.flip(out[key], axis=0).copy()
        return out

    def backward(self, grads):
        res = self.inner.backward(grads)
        if self.how == "missing_grad":
            del res["grad_h0"]
        if self.how == "grad_scaled":
            res["grad_input"] = res["grad_input"] * (1 + 1e-3)
        return res


def wrong(how):
    def factory(case):
        if how == "swap_gates" and case.mode == "GRU":
            # PyTorch's r, z blocks read in another framework's z, r order
            p = dict(case.params)
            for k, v in p.items():
                if k.startswith(("weight_", "bias_")):
                    r, z, n = np.split(v, 3, axis=0)
                    p[k] = np.concatenate([z, r, n], axis=0)
            case.params = p
        return _Wrong(numpy_adapter.make_adapter(case), how)
    return factory


@pytest.mark.parametrize("how, expect", [
    ("swap_gates", "output"), ("h_n_reversed", "h_n"), ("missing_grad", "grad_h0"),
    ("grad_scaled", "grad_input")])
def test_wrong_adapters_fail(how, expect):
    r = run_case_with(wrong(how), path("gru_l2_bi_bf_bias_h0"), np.float64)
    assert r.status == "FAIL"
    assert expect in r.message
    bad = [c.name for c in r.comparisons if not c.ok]
    assert expect in bad


def test_forward_only_and_skip_and_errors():
    class FwdOnly:
        def __init__(self, case):
            self.a = numpy_adapter.make_adapter(case)

        def forward(self, inputs):
            return self.a.forward(inputs)

    r = run_case_with(FwdOnly, path("lstm_l2_bi_bf_bias_h0"), np.float64)
    assert r.status == "pass" and not r.backward
    assert all(not c.name.startswith("grad") for c in r.comparisons)
    rep = run_conformance(lambda case: None, only=SUBSET, out=False)
    assert rep.n_skip == len(rep.results) > 0 and not rep.ok           # nothing ran: not a pass

    def boom(case):
        raise RuntimeError("unsupported thing")
    r = run_case_with(boom, path("gru_l2_bi_bf_bias_h0"))
    assert r.status == "FAIL" and "unsupported thing" in r.message

    class BadShape(FwdOnly):
        def forward(self, inputs):
            out = self.a.forward(inputs)
            out["output"] = out["output"][:, :-1]
            return out
    r = run_case_with(BadShape, path("gru_l2_bi_bf_bias_h0"))
    assert r.status == "FAIL" and "shape" in r.message
    with pytest.raises(ValueError, match="MODULE:FUNCTION"):
        load_impl("numpy_adapter")
    with pytest.raises(ValueError, match="no callable 'nope'"):
        load_impl("numpy_adapter:nope")


def test_cli_exit_status(capsys):
    impl = os.path.join(ROOT, "examples", "numpy_adapter.py") + ":make_adapter"
    assert cli.main(["conformance", "--impl", impl, "--only", "cell_gru_batched_*",
                     "--dtype", "float64"]) == 0
    n = len(glob.glob(os.path.join(DATA_DIR, "cell_gru_batched_*.npz")))
    assert f"{n} passed, 0 failed" in capsys.readouterr().out
    sys.modules["wrong_adapters"] = type(sys)("wrong_adapters")
    sys.modules["wrong_adapters"].make = wrong("grad_scaled")
    assert cli.main(["conformance", "--impl", "wrong_adapters:make", "--only",
                     "cell_gru_batched_*"]) == 1
    assert "FAIL" in capsys.readouterr().out
    assert cli.main(["conformance", "--impl", "no_such_module_xyz:f"]) == 2


def test_torch_adapter_passes():
    pytest.importorskip("torch")
    # torch in a process of its own (two OpenMP runtimes in one process can abort)
    r = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "torch_adapter.py"),
                        "*_l2_bi_bf_bias_h0*"], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert " 0 failed" in r.stdout

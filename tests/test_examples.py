"""Every script in examples/ runs on its own (``--quick --seed 0``, in a fresh process) and
learns: its last line ``loss <first> -> <last>`` shows the loss fell by the factor stated
here. An example whose optional dependency is missing prints ``skipped: ...`` and exits 0;
its test then skips."""
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")

# script -> how many times smaller the last loss must be than the first (--quick --seed 0)
# (the first loss is the untrained model's; the last, for the noisy ones, a mean of 10 steps)
LEARNS = {
    "char_lm.py": 1.5,              # 4.55 -> about 2.4 nats per character in 120 steps
    "char_lm.py --mode gru": 1.5,
    "sine.py": 5.0,                 # 0.47 -> about 0.025 (the noise floor is 0.01)
    "classify_lengths.py": 2.0,     # 1.08 (ln 3) -> about 0.3
    "from_torch.py": 5.0,           # torch's own training: 0.51 -> about 0.008
}


def run_example(script, tmp_path, *args):
    """Run examples/<script> --quick --seed 0 in tmp_path (files it writes land there);
    returns its stdout, or skips the test when the example says it skipped."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    proc = subprocess.run([sys.executable, os.path.join(EXAMPLES, script), "--quick",
                           "--seed", "0", *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout}\n{proc.stderr}"
    lines = proc.stdout.strip().splitlines()
    assert lines, f"{script} printed nothing"
    if lines[-1].startswith("skipped:"):
        pytest.skip(f"{script}: {lines[-1]}")
    return proc.stdout


def final_loss(stdout):
    m = re.fullmatch(r"loss (\S+) -> (\S+)", stdout.strip().splitlines()[-1])
    assert m, f"the last line is not 'loss <first> -> <last>':\n{stdout}"
    return float(m.group(1)), float(m.group(2))


def test_every_example_is_tested():
    scripts = {f for f in os.listdir(EXAMPLES) if f.endswith(".py") and not f.startswith("_")}
    adapters = {f for f in scripts if f.endswith("_adapter.py")}   # the conformance runner's
    assert scripts - adapters == {k.split()[0] for k in LEARNS} | {"batch_inference_dask.py"}


@pytest.mark.parametrize("command", sorted(LEARNS))
def test_example_learns(command, tmp_path):
    script, *args = command.split()
    first, last = final_loss(run_example(script, tmp_path, *args))
    assert last * LEARNS[command] <= first, f"{command}: loss {first} -> {last}"


def test_char_lm_saves_its_loss_curve(tmp_path):
    pytest.importorskip("matplotlib")
    out = run_example("char_lm.py", tmp_path, "--plot", "curve.png")
    assert "--- sample after 120 steps" in out
    with open(tmp_path / "curve.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_from_torch_matches(tmp_path):
    out = run_example("from_torch.py", tmp_path)
    diffs = [float(d) for d in re.findall(r"max \|minirnn - torch\| of \w+ +(\S+)", out)]
    assert len(diffs) == 4 and max(diffs) <= 1e-4, out


def test_batch_inference_dask(tmp_path):
    out = run_example("batch_inference_dask.py", tmp_path)
    m = re.search(r"scores \((\d+), 64\), max \|dask - one process\| = (\S+)", out)
    assert m and int(m.group(1)) > 0 and float(m.group(2)) <= 1e-5, out

"""The compiled extension is built, importable from the source tree, and has OpenMP
(on Linux, unless built serial on purpose with MINIRNN_NO_OPENMP=1)."""
import os
import sys

import numpy as np
import pytest

import minirnn
import minirnn._kernels as k

SERIAL_ON_PURPOSE = os.environ.get("MINIRNN_NO_OPENMP", "").strip().lower() not in ("", "0", "false", "no", "off")


def test_extension_sits_beside_the_package():
    assert os.path.dirname(k.__file__) == os.path.dirname(minirnn.__file__)


@pytest.mark.skipif(not sys.platform.startswith("linux") or SERIAL_ON_PURPOSE,
                    reason="OpenMP is required on Linux builds unless MINIRNN_NO_OPENMP=1")
def test_openmp_was_not_silently_lost():
    info = k.build_info()
    assert k.openmp_enabled() and info["openmp"] and info["openmp_version"] >= 201107, info
    assert "-fopenmp" in info["compile_args"]
    assert "fast-math" not in info["compile_args"] and "-Ofast" not in info["compile_args"]
    assert k._threads_used(2) == 2
    assert k.get_max_threads() >= 1


def test_parallel_self_test_is_thread_invariant():
    x = np.random.default_rng(0).standard_normal(50_000)
    sums = {n: k._parallel_sum(x, n) for n in (1, 2, 3, 4)}
    assert len(set(sums.values())) == 1                              # bitwise identical
    assert abs(sums[1] - x.sum()) <= 1e-10 * np.abs(x).sum()
    assert k._parallel_sum(np.zeros(0)) == 0.0
    with pytest.raises(ValueError, match="num_threads must be >= 1, got 0"):
        k._parallel_sum(x, 0)

"""Score many variable-length sequences in parallel with Dask, over a pickled model.

A minirnn model is a plain Python object holding NumPy arrays, so it pickles: the bytes go to
every Dask worker, each worker unpickles the model once per partition and encodes its share of
the sequences (packed, so each sequence runs only its own steps) into the GRU's last hidden
state, ``h_n[-1]``. The result is checked against scoring everything in this process.

    python examples/batch_inference_dask.py [--quick] [--seed 0] [--workers 2]

Skips (exit 0) when dask is not installed (pip install "dask[bag]").
"""
from __future__ import annotations

import argparse
import importlib.util
import pickle
import sys
import time

import numpy as np

import minirnn


def encode(model: minirnn.GRU, sequences: list[np.ndarray]) -> np.ndarray:
    """(len(sequences), hidden_size): each sequence's own last hidden state of the top layer."""
    packed = minirnn.pack_sequence(sequences, enforce_sorted=False)
    with minirnn.no_grad():            # inference: nothing is saved for a backward
        _, h_n = model(packed)
    return h_n[-1]                     # h_n is in the sequences' original order


def encode_partition(model_bytes: bytes, sequences: list[np.ndarray]) -> list[np.ndarray]:
    """What a worker runs: unpickle the model once, encode the whole partition in one call."""
    model = pickle.loads(model_bytes)
    minirnn.set_num_threads(1)         # one thread per worker process: the workers share cores
    return list(encode(model, list(sequences)))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer sequences")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2, help="worker processes")
    args = p.parse_args()
    if importlib.util.find_spec("dask") is None:
        print('skipped: dask is not installed (pip install "dask[bag]")')
        return 0
    import dask.bag as db

    rng = np.random.default_rng(args.seed)
    n = 400 if args.quick else 20000
    sequences = [rng.standard_normal((int(length), 8)).astype(np.float32)
                 for length in rng.integers(5, 60, size=n)]
    model = minirnn.GRU(8, 64, num_layers=2, seed=args.seed)
    model_bytes = pickle.dumps(model)  # a fresh model: its tape is empty, the pickle is small

    start = time.perf_counter()
    bag = db.from_sequence(sequences, npartitions=max(2, n // 500))
    scores = bag.map_partitions(lambda part: encode_partition(model_bytes, part))
    dask_out = np.stack(scores.compute(scheduler="processes", num_workers=args.workers))
    seconds = time.perf_counter() - start

    start = time.perf_counter()
    local_out = encode(model, sequences)
    local_seconds = time.perf_counter() - start
    diff = float(np.abs(dask_out - local_out).max())
    print(f"{n} sequences in {bag.npartitions} partitions on {args.workers} processes: "
          f"{seconds:.2f} s (with the workers' start-up); in this process, one call: "
          f"{local_seconds:.2f} s")
    print(f"scores {dask_out.shape}, max |dask - one process| = {diff:.2e}")
    return 0 if diff <= 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main())

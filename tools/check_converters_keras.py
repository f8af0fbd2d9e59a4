"""Check minirnn.convert's Keras 3 converters against live Keras (jax backend).

    pip install keras jax            # in your own venv
    python tools/check_converters_keras.py [--write-dumps]

For every layer type (SimpleRNN tanh and relu, GRU reset_after=True and False, LSTM), one and
two stacked layers, one direction and Bidirectional, with and without biases, float32 and
float64, both ways:

- minirnn -> Keras: a minirnn model's weights through ``to_keras_layers`` into a Keras model
  of the same shape; the Keras output must equal minirnn's;
- Keras -> minirnn: a freshly initialised Keras model (``unit_forget_bias=True`` for the
  LSTM) through ``from_keras_layers`` into minirnn; minirnn's output must equal Keras'.

Prints one row per case with max|diff|/max|ref| of the output sequence (and of the final
states for one layer) and exits 1 when any exceeds the tolerance (float64 1e-12, float32
1e-5). Keras 3.15's ``tanh``/``sigmoid`` return float32 for float64 input on jax, so the
float64 runs give the layers the same functions from ``jax.numpy`` (with Keras' own, float64
agrees to ~1e-7 only, and SimpleRNN(tanh) fails in float64).

``--write-dumps`` writes the small reference cases of ``minirnn/data/convert/`` (float64
Keras weights, input and outputs) that tests/test_convert.py checks without Keras.
"""
import argparse
import json
import os
import sys
import zipfile

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("JAX_ENABLE_X64", "1")        # float64 Keras on jax

import numpy as np  # noqa: E402

import keras  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import minirnn  # noqa: E402
from minirnn import convert  # noqa: E402

DUMPS = os.path.join(os.path.dirname(HERE), "minirnn", "data", "convert")
TOL = {"float64": 1e-12, "float32": 1e-5}
I, H, N, L = 3, 5, 2, 6



def _tanh(dtype):
    """Keras 3.15's ``ops.tanh`` returns float32 for a float64 input on jax, which breaks
    SimpleRNN's scan in float64; ``jax.numpy.tanh`` is the same function in float64."""
    return _tanh64 if dtype == "float64" else "tanh"


def _acts(dtype):
    """The gated layers' default activations (tanh, sigmoid), in float64 where Keras' own
    return float32 (without this, float64 GRU/LSTM agree with minirnn to ~1e-7 only)."""
    if dtype != "float64":
        return {}
    return {"activation": _tanh64, "recurrent_activation": _sigmoid64}


@keras.saving.register_keras_serializable(package="check_converters")
def _sigmoid64(x):
    import jax
    return jax.nn.sigmoid(x)


@keras.saving.register_keras_serializable(package="check_converters")
def _tanh64(x):
    import jax.numpy as jnp
    return jnp.tanh(x)


# (name, minirnn mode, minirnn class and kwargs, Keras layer factory)
TYPES = [
    ("simple_rnn_tanh", "RNN_TANH", minirnn.RNN, {},
     lambda **k: keras.layers.SimpleRNN(H, activation=_tanh(k["dtype"]), **k)),
    ("simple_rnn_relu", "RNN_RELU", minirnn.RNN, {"nonlinearity": "relu"},
     lambda **k: keras.layers.SimpleRNN(H, activation="relu", **k)),
    ("gru", "GRU", minirnn.GRU, {}, lambda **k: keras.layers.GRU(
        H, reset_after=True, **_acts(k["dtype"]), **k)),
    ("gru_reset_before", "GRU", minirnn.GRU, {"reset_after": False},
     lambda **k: keras.layers.GRU(H, reset_after=False, **_acts(k["dtype"]), **k)),
    ("lstm", "LSTM", minirnn.LSTM, {}, lambda **k: keras.layers.LSTM(
        H, unit_forget_bias=True, **_acts(k["dtype"]), **k)),
]


def keras_model(factory, layers, bidirectional, bias, dtype, seed):
    import jax
    # float32 runs as Keras users run it (x64 off: with it on, Keras 3.15's GRU without
    # biases mixes float64 constants into a float32 scan and fails)
    jax.config.update("jax_enable_x64", dtype == "float64")
    keras.utils.set_random_seed(seed)
    keras.config.set_floatx(dtype)
    inp = keras.Input((L, I), dtype=dtype)
    x, states = inp, None
    for _ in range(layers):
        lay = factory(return_sequences=True, return_state=(layers == 1 and not bidirectional),
                      use_bias=bias, dtype=dtype)
        if bidirectional:
            lay = keras.layers.Bidirectional(lay, merge_mode="concat", dtype=dtype)
        y = lay(x)
        if isinstance(y, (list, tuple)):
            x, states = y[0], list(y[1:])
        else:
            x = y
    model = keras.Model(inp, [x] + (states or []))
    return model, model.layers[1:]


def rel(got, ref):
    ref = np.asarray(ref, np.float64)
    return float(np.abs(np.asarray(got, np.float64) - ref).max() / max(np.abs(ref).max(), 1e-300))


def run_case(name, mode, cls, kw, factory, layers, bidirectional, bias, dtype, direction,
             seed=0):
    reset_after = kw.get("reset_after", True)
    m = cls(I, H, num_layers=layers, bidirectional=bidirectional, bias=bias, batch_first=True,
            dtype=np.dtype(dtype), seed=seed, backend="numpy", **kw)
    model, klayers = keras_model(factory, layers, bidirectional, bias, dtype, seed)
    if direction == "to_keras":
        sd = m.state_dict()
        rng = np.random.default_rng(seed + 1)
        if bias:        # biases clearly nonzero and b_ih != b_hh
            sd = {k: v + 0.1 * rng.standard_normal(v.shape).astype(v.dtype)
                  if k.startswith("bias") else v for k, v in sd.items()}
            m.load_state_dict(sd)
        for lay, w in zip(klayers, convert.to_keras_layers(sd, mode, reset_after=reset_after)):
            lay.set_weights(w)
        weights = [lay.get_weights() for lay in klayers]
    else:
        weights = [[np.asarray(w) for w in lay.get_weights()] for lay in klayers]
        if bias:        # perturb Keras' zero/one initial biases so the test is sensitive
            rng = np.random.default_rng(seed + 2)
            for lw in weights:
                for j in range(2, len(lw), 3):
                    lw[j] = lw[j] + 0.1 * rng.standard_normal(lw[j].shape).astype(lw[j].dtype)
            for lay, w in zip(klayers, weights):
                lay.set_weights(w)
        m.load_state_dict(convert.from_keras_layers(weights, mode, bidirectional=bidirectional,
                                                    reset_after=reset_after))
    x = np.random.default_rng(seed + 3).standard_normal((N, L, I)).astype(dtype)
    kout = model(x)
    kout = [np.asarray(o) for o in (kout if isinstance(kout, (list, tuple)) else [kout])]
    out, state = m(x)
    errs = {"output": rel(out, kout[0])}
    if len(kout) > 1:
        h_n, c_n = state if mode == "LSTM" else (state, None)
        errs["h_n"] = rel(h_n[0], kout[1])
        if c_n is not None:
            errs["c_n"] = rel(c_n[0], kout[2])
    case = None
    if dtype == "float64" and direction == "from_keras" and layers == 1 and bias:
        case = {"meta": {"format_version": 1, "name": name, "mode": mode,
                         "config": dict(kw, input_size=I, hidden_size=H, num_layers=1,
                                        bias=True, batch_first=True,
                                        bidirectional=bidirectional),
                         "keras_layer": type(klayers[0]).__name__ if not bidirectional
                         else "Bidirectional(" + type(klayers[0].forward_layer).__name__ + ")",
                         "reset_after": reset_after, "keras_version": keras.__version__,
                         "backend": keras.backend.backend(), "n_weights": len(weights[0])},
                "input": x, "output": kout[0],
                **{f"weight.{j}": w for j, w in enumerate(weights[0])}}
    return errs, case


def write_case(case):
    os.makedirs(DUMPS, exist_ok=True)
    path = os.path.join(DUMPS, f"keras_{case['meta']['name']}.npz")
    arrays = {k: np.asarray(v, np.float64) for k, v in case.items() if k != "meta"}
    arrays["meta"] = np.array(json.dumps(case["meta"], sort_keys=True))
    np.savez_compressed(path, **arrays)
    # fixed timestamps: the same content gives the same bytes
    with zipfile.ZipFile(path) as z:
        items = [(i, z.read(i.filename)) for i in z.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for info, data in items:
            info.date_time = (1980, 1, 1, 0, 0, 0)
            z.writestr(info, data)
    return path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write-dumps", action="store_true")
    args = ap.parse_args(argv)
    print(f"keras {keras.__version__} ({keras.backend.backend()}), minirnn "
          f"{minirnn.__version__}; I={I} H={H} N={N} L={L}; max|diff|/max|ref|")
    print(f"{'layer type':<18}{'layers':>7}{'dir':>5}{'bias':>6}{'dtype':>9}{'direction':>12}"
          f"{'output':>11}{'h_n':>11}{'c_n':>11}  result")
    worst, n_fail = {}, 0
    for name, mode, cls, kw, factory in TYPES:
        for layers in (1, 2):
            for bidirectional in (False, True):
                for bias in (True, False):
                    for dtype in ("float64", "float32"):
                        for direction in ("to_keras", "from_keras"):
                            errs, case = run_case(
                                f"{name}_{'bi' if bidirectional else 'uni'}", mode, cls, kw,
                                factory, layers, bidirectional, bias, dtype, direction)
                            if case is not None and args.write_dumps:
                                print("  wrote", write_case(case))
                            e = max(errs.values())
                            key = (name, dtype)
                            worst[key] = max(worst.get(key, 0.0), e)
                            ok = e <= TOL[dtype]
                            n_fail += not ok
                            cols = "".join(f"{errs[k]:>11.2e}" if k in errs else f"{'':>11}"
                                           for k in ("output", "h_n", "c_n"))
                            print(f"{name:<18}{layers:>7}{'bi' if bidirectional else 'uni':>5}"
                                  f"{str(bias):>6}{dtype:>9}{direction:>12}{cols}  "
                                  f"{'pass' if ok else 'FAIL'}")
    print("\nworst per layer type and dtype:")
    for (name, dtype), e in sorted(worst.items()):
        print(f"  {name:<18}{dtype:>9}{e:>11.2e}")
    print(f"\n{'all passed' if n_fail == 0 else f'{n_fail} FAILED'}")
    return 1 if n_fail else 0


if __name__ == "__main__":
    sys.exit(main())

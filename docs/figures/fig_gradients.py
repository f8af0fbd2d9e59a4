"""The figures of the chapter "Vanishing and exploding gradients" (docs/gradients.md).

    python docs/figures/fig_gradients.py    # writes docs/figures/gradients_*.png (matplotlib)

gradients_reach.png
    |d sum(output[-1]) / d x_t| against the distance L-1-t, for an Elman RNN, a GRU and an
    LSTM at PyTorch's default init and an LSTM with forget-gate bias +1 and +3 (one layer,
    10 inputs, 20 hidden units, 100 steps of standard normal input, float64).

gradients_jacobian.png
    An Elman RNN at the default init and with its recurrent matrix U scaled by 4: the measured
    gradient against the bound ||W|| sigma_max(P_d) ||g|| given by the largest singular value
    of the Jacobian product P_d = J_L ... J_{L-d+1}, J_t = diag(1 - h_t^2) U.

:func:`reach_curves` and :func:`jacobian_curves` need only NumPy; ``tests/test_docs.py`` runs
them, so the facts the figures show are tested where matplotlib is not installed.
"""
from __future__ import annotations

import os
import sys
from typing import Dict, Tuple

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))     # this checkout's minirnn

import minirnn  # noqa: E402

L, H_IN, H = 100, 10, 20


def _inputs() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((L, 1, H_IN))


def reach(model) -> np.ndarray:
    """|d sum(output[-1]) / d x_t| indexed by the distance d = L-1-t (d = 0: the last step)."""
    output, _ = model(_inputs())
    grad_output = np.zeros_like(output)
    grad_output[-1] = 1.0
    grad_x = model.backward(grad_output)[0]
    return np.linalg.norm(grad_x[::-1, 0], axis=1)


def lstm_with_forget_bias(value: float):
    lstm = minirnn.LSTM(H_IN, H, dtype=np.float64, seed=0)
    state = lstm.state_dict()
    state["bias_hh_l0"] = state["bias_hh_l0"].copy()
    state["bias_hh_l0"][H:2 * H] += value            # rows H:2H are the forget gate
    lstm.load_state_dict(state)
    return lstm


def reach_curves() -> Dict[str, np.ndarray]:
    """{model name: its gradient against distance}."""
    return {"Elman": reach(minirnn.RNN(H_IN, H, dtype=np.float64, seed=0)),
            "GRU": reach(minirnn.GRU(H_IN, H, dtype=np.float64, seed=0)),
            "LSTM": reach(lstm_with_forget_bias(0.0)),
            "LSTM, forget bias +1": reach(lstm_with_forget_bias(1.0)),
            "LSTM, forget bias +3": reach(lstm_with_forget_bias(3.0))}


def jacobian_curves(scale: float = 1.0) -> Tuple[np.ndarray, np.ndarray]:
    """(measured, bound) against distance for an Elman RNN whose U is scaled by ``scale``.

    measured[d] = |dL/dx_{L-1-d}| from ``backward``; bound[d] = ||W||_2 sigma_max(P_d) ||g||
    with P_d = dh_{L-1}/dh_{L-1-d}, the product of d Jacobians, and g = dL/dh_{L-1} = ones."""
    rnn = minirnn.RNN(H_IN, H, dtype=np.float64, seed=0)
    rnn.weight_hh_l0 = rnn.weight_hh_l0 * scale
    W, U = rnn.weight_ih_l0, rnn.weight_hh_l0
    h = rnn(_inputs())[0][:, 0]
    measured = reach(rnn)
    P, bound = np.eye(H), []
    for t in reversed(range(L)):
        bound.append(np.linalg.norm(W, 2) * np.linalg.norm(P, 2) * np.sqrt(H))
        P = P @ ((1 - h[t] ** 2)[:, None] * U)          # times J_t = diag(1 - h_t^2) U
    return measured, np.array(bound)


def _style(ax, ylabel: str) -> None:
    ax.set_yscale("log")
    ax.set_xlabel("distance from the loss step, d = L - 1 - t", fontsize=12)
    ax.set_ylabel(ylabel, fontsize=12)
    ax.tick_params(labelsize=11)
    ax.grid(True, which="major", color="#dddddd", linewidth=0.7)
    ax.set_xlim(0, L - 1)


def draw_reach(path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = reach_curves()
    colours = ["#4c72b0", "#55a868", "#c44e52", "#dd8452", "#8172b3"]
    fig, ax = plt.subplots(figsize=(8.5, 4.8))
    for (name, curve), colour in zip(curves.items(), colours):
        ax.plot(np.arange(L), curve, color=colour, linewidth=2,
                linestyle="--" if "bias" in name else "-", label=name)
    _style(ax, "$|\\partial \\mathcal{L} / \\partial x_t|$")
    ax.set_title("How far back the gradient reaches: one layer, 20 units, default init",
                 fontsize=12)
    ax.legend(fontsize=11, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw_jacobian(path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.5, 4.8))
    d = np.arange(L)
    for scale, colour in [(1.0, "#4c72b0"), (4.0, "#c44e52")]:
        measured, bound = jacobian_curves(scale)
        label = "default init" if scale == 1 else f"U scaled by {scale:g}"
        ax.plot(d, bound, color=colour, linewidth=2,
                label=f"{label}: bound $\\|W\\|\\,\\sigma_{{max}}(P_d)\\,\\|g\\|$")
        ax.plot(d[::3], measured[::3], "o", color=colour, markersize=4,
                label=f"{label}: measured by backward")
    _style(ax, "gradient norm")
    ax.set_title("Elman RNN: the gradient follows the Jacobian product $P_d$", fontsize=12)
    ax.legend(fontsize=10, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    for name, draw in [("gradients_reach.png", draw_reach),
                       ("gradients_jacobian.png", draw_jacobian)]:
        path = os.path.join(HERE, name)
        draw(path)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()

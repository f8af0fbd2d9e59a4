"""Make the figures of the minirnn book from real runs.

    python docs/figures/make_figures.py            # writes docs/figures/*.png (needs matplotlib)

unrolled.png
    An Elman layer unrolled over four steps: one cell, drawn once per step, with the same
    W (input to hidden) and U (hidden to hidden) at every step; output and h_n marked.

bptt_graph.png
    The same unrolled layer with a loss on the outputs: the forward arrows and, below them,
    the gradient flowing back, multiplied at each step by diag(1 - h_t^2) U.

output_h_n_layout.png
    A 2-layer bidirectional GRU runs on random numbers. Every (layer, direction, step) block
    of states is compared with every row of h_n; the blocks found bitwise equal to a row of
    h_n are drawn in that row's colour. Nothing in the picture is assumed: the matches are
    what :func:`layout` finds on the numbers.

cell_elman.png, cell_gru.png, cell_lstm.png
    One step of each cell: the two stacked products (W = weight_ih on x_t, U = weight_hh on
    h_{t-1}) cut into one block of rows per gate in PyTorch's order (r, z, n; i, f, g, o),
    the sums, the gates' functions, the elementwise products and the new state.

first_rnn.png
    The training loop of docs/first-rnn.md run for 600 steps: its loss, and its predictions
    on a sequence it never saw against the noisy and the clean sine.

char_lm_loss.png, char_lm_unit.png
    The training loop of docs/char-lm.md run for 600 steps: its loss, and the hidden unit
    most correlated with the leading spaces of a line drawn under the text.

performance.png
    The float32 ratios of the results tables of docs/performance.md (torch ms / minirnn ms),
    drawn by bench/plot_bench.py's split layout: one row per phase and thread count, the
    tiny and small sizes on their own scale.

:func:`layout` needs only NumPy; ``tests/test_docs.py`` runs it, so the facts the figure
shows are tested even where matplotlib is not installed.
"""
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))     # this checkout's minirnn

import minirnn  # noqa: E402

NUM_LAYERS, L, N, I, H = 2, 5, 3, 4, 6


def layout(num_layers=NUM_LAYERS, seq=L, seed=0):
    """Run a bidirectional GRU and find where each row of h_n appears.

    Returns ``(states, h_n, matches)``: ``states[layer]`` is that layer's output
    ``(L, N, 2H)`` (layer ``num_layers-1`` is the model's ``output``; the lower ones are
    recomputed with the same weights cut to fewer layers), and ``matches[k]`` lists every
    ``(layer, step, direction)`` whose ``(N, H)`` block is bitwise equal to ``h_n[k]``.
    """
    m = minirnn.GRU(I, H, num_layers=num_layers, bidirectional=True, seed=seed)
    x = np.random.default_rng(seed + 1).standard_normal((seq, N, I)).astype(np.float32)
    output, h_n = m(x)
    states = []
    for layer in range(num_layers):
        sub = minirnn.GRU(I, H, num_layers=layer + 1, bidirectional=True)
        sub.load_state_dict({k: v for k, v in m.state_dict().items() if k in sub.state_dict()})
        states.append(sub(x)[0])
    assert np.array_equal(states[-1], output)
    matches = {k: [(layer, t, d)
                   for layer in range(num_layers) for t in range(seq) for d in range(2)
                   if np.array_equal(states[layer][t, :, d * H:(d + 1) * H], h_n[k])]
               for k in range(2 * num_layers)}
    return states, h_n, matches


def draw_layout(path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, Rectangle

    states, h_n, matches = layout()
    colours = ["#4c72b0", "#dd8452", "#55a868", "#c44e52"]
    where = {}                                          # (layer, t, d) -> h_n row
    for k, found in matches.items():
        for cell in found:
            where[cell] = k

    fig, ax = plt.subplots(figsize=(10, 6.4))
    ax.set_xlim(-2.9, L + 4.6)
    ax.set_ylim(-1.1, 2 * NUM_LAYERS + 1.5)
    ax.axis("off")

    def row_y(layer, d):                                # top: the last layer, forward above reverse
        return (layer * 2 + (1 - d)) * 1.0 + layer * 0.5

    for layer in range(NUM_LAYERS):
        for d in range(2):
            y = row_y(layer, d)
            name = ("forward  [..., :H]", "reverse  [..., H:]")[d]
            ax.text(-0.15, y + 0.4, f"layer {layer} {name}", ha="right", va="center",
                    fontsize=11.5)
            for t in range(L):
                k = where.get((layer, t, d))
                face = colours[k] if k is not None else ("#f2f2f2" if layer < NUM_LAYERS - 1
                                                         else "#dfe6ee")
                ax.add_patch(Rectangle((t + 0.05, y + 0.05), 0.9, 0.75, facecolor=face,
                                       edgecolor="#555555", linewidth=0.8))
                if k is not None:
                    ax.text(t + 0.5, y + 0.43, f"h_n[{k}]", ha="center", va="center",
                            fontsize=11, color="white", fontweight="bold")
            # the direction the recurrence runs in
            xs = (0.1, L - 0.1) if d == 0 else (L - 0.1, 0.1)
            ax.add_patch(FancyArrowPatch((xs[0], y - 0.03), (xs[1], y - 0.03),
                                         arrowstyle="-|>", mutation_scale=9, color="#888888",
                                         linewidth=0.8))
        top = row_y(layer, 0) + 0.95
        label = ("output: the last layer, every step" if layer == NUM_LAYERS - 1
                 else f"layer {layer}: not returned (the input of layer {layer + 1})")
        ax.text(0.05, top, label, ha="left", va="bottom", fontsize=12.5,
                fontweight="bold" if layer == NUM_LAYERS - 1 else "normal")
    for t in range(L):
        ax.text(t + 0.5, -0.35, f"t={t}", ha="center", va="center", fontsize=11)
    ax.text(L / 2, -0.8, "time step: output[t], or output[:, t] if batch_first",
            ha="center", va="center", fontsize=11.5)

    # h_n: one box per row, layer-major then direction
    x0 = L + 1.45
    ax.text(x0 + 0.9, 2 * NUM_LAYERS + 0.4, "h_n (never batch-first)\nrow = layer*2 + direction",
            ha="center", va="bottom", fontsize=12, fontweight="bold")
    for k in range(2 * NUM_LAYERS):
        layer, d = divmod(k, 2)
        y = 2 * NUM_LAYERS - 1 - k + 0.1
        ax.add_patch(Rectangle((x0, y), 1.5, 0.75, facecolor=colours[k], edgecolor="#555555",
                               linewidth=0.8))
        ax.text(x0 + 0.75, y + 0.38, f"h_n[{k}]", ha="center", va="center", fontsize=11.5,
                color="white", fontweight="bold")
        ax.text(x0 + 1.6, y + 0.38, f"layer {layer}, {('forward', 'reverse')[d]}", ha="left",
                va="center", fontsize=11)
    ax.set_title("GRU(num_layers=2, bidirectional=True): which states are in output\n"
                 "and which in h_n (found by comparing the numbers)", fontsize=13.5)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _box(ax, x, y, w, h, text, face, fontsize=12, color="black"):
    from matplotlib.patches import FancyBboxPatch
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h,
                                boxstyle="round,pad=0.02,rounding_size=0.08",
                                facecolor=face, edgecolor="#444444", linewidth=1.0))
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize, color=color)


def _arrow(ax, a, b, text=None, color="#444444", offset=(0.0, 0.0), fontsize=11, style="-|>"):
    from matplotlib.patches import FancyArrowPatch
    ax.add_patch(FancyArrowPatch(a, b, arrowstyle=style, mutation_scale=14, color=color,
                                 linewidth=1.4, shrinkA=2, shrinkB=2))
    if text:
        ax.text((a[0] + b[0]) / 2 + offset[0], (a[1] + b[1]) / 2 + offset[1], text,
                ha="center", va="center", fontsize=fontsize, color=color)


def draw_unrolled(path, steps=4, bptt=False):
    """An Elman layer unrolled over ``steps`` steps (with the backward pass if ``bptt``)."""
    draw_bptt(path, steps, backward=bptt)


def draw_bptt(path, steps=4, backward=True):
    """The unrolled Elman layer: forward arrows in black and, if ``backward``, the gradient
    flowing back in red, with each step's Jacobian written on its arrow. Drawn at equal
    aspect with text sized to stay legible at the page's width."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dx = 3.4
    xs = [2.1 + dx * t for t in range(steps)]
    x0, x1, y0, y1 = -1.5, xs[-1] + 1.9, -1.75 if backward else -1.5, 3.7
    fig, ax = plt.subplots(figsize=(10, 10 * (y1 - y0) / (x1 - x0) + 0.5))
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    ax.axis("off")
    red = "#c44e52"
    _box(ax, -0.9, 1.0, 0.9, 0.6, "$h_0$", "#eeeeee", fontsize=14)
    for t, x in enumerate(xs):
        _box(ax, x, 1.0, 1.3, 0.8, "tanh", "#dfe6ee", fontsize=14)
        _box(ax, x, -0.45, 0.9, 0.6, f"$x_{t + 1}$", "#f6f6f6", fontsize=14)
        _box(ax, x, 2.75, 0.9, 0.6, f"$h_{t + 1}$", "#f6f6f6", fontsize=14)
        _arrow(ax, (x - 0.25, -0.13), (x - 0.25, 0.58), "W", offset=(-0.27, 0.0),
               fontsize=13)
        _arrow(ax, (x - 0.25, 1.42), (x - 0.25, 2.43))
        prev = -0.43 if t == 0 else xs[t - 1] + 0.67
        _arrow(ax, (prev, 1.15), (x - 0.67, 1.15), "U", offset=(0.0, 0.25), fontsize=13)
        if not backward:
            continue
        # backward: the loss's gradient comes down, the carried gradient goes left
        _arrow(ax, (x + 0.25, 2.43), (x + 0.25, 1.42), color=red)
        ax.text(x + 0.38, 1.93, "$\\bar h_{%d}$" % (t + 1), ha="left", va="center",
                fontsize=13, color=red)
        _arrow(ax, (x + 0.25, 0.58), (x + 0.25, -0.13), color=red)
        ax.text(x + 0.38, 0.02, "$\\bar x_{%d}$" % (t + 1), ha="left", va="center",
                fontsize=13, color=red)
        left = -0.43 if t == 0 else xs[t - 1] + 0.67
        _arrow(ax, (x - 0.67, 0.8), (left, 0.8), color=red)
        ax.text((x - 0.67 + left) / 2 - 0.05, 0.66,
                "$\\cdot\\,\\mathrm{diag}(1-h_{%d}^2)\\,U$" % (t + 1), ha="center",
                va="top", fontsize=11.5, color=red)
    ax.text(xs[-1] + 0.6, 2.75, "= h_n", ha="left", va="center", fontsize=13,
            fontweight="bold")
    ax.text(xs[0] - 0.7, 3.45, "output = $(h_1, h_2, \\ldots, h_L)$: every step",
            ha="left", va="center", fontsize=13)
    if backward:
        ax.text(x0 + 0.1, -1.25, "black: forward, left to right", ha="left", va="center",
                fontsize=13)
        ax.text(x0 + 0.1, -1.65, "red: backward, right to left; each step adds "
                "$\\partial\\ell_t/\\partial h_t$ and multiplies by its Jacobian",
                ha="left", va="center", fontsize=13, color=red)
        ax.set_title("Backpropagation through time: the unrolled graph, run backwards",
                     fontsize=14)
    else:
        ax.text(x0 + 0.1, -1.3, "the same W, U, b at every step:  "
                "$h_t = \\tanh(W x_t + b_{ih} + U h_{t-1} + b_{hh})$",
                ha="left", va="center", fontsize=13)
        ax.set_title("An Elman layer unrolled in time (one cell, L copies)", fontsize=14)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


#: gate colours of the cell diagrams
GATE_COLOURS = {"r": "#4c72b0", "z": "#dd8452", "n": "#55a868", "i": "#4c72b0",
                "f": "#dd8452", "g": "#55a868", "o": "#8172b3", "h": "#55a868"}


def _op(ax, x, y, text, r=0.28, face="white", fontsize=13):
    from matplotlib.patches import Circle
    ax.add_patch(Circle((x, y), r, facecolor=face, edgecolor="#444444", linewidth=1.2,
                        zorder=3))
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize, zorder=4)


def _line(ax, points, color="#444444", arrow=True, lw=1.4):
    """A polyline through ``points`` with an arrow head at the end."""
    from matplotlib.patches import FancyArrowPatch
    xs, ys = zip(*points)
    ax.plot(xs[:-1] + (xs[-1],) if not arrow else xs[:-1], ys[:-1] if arrow else ys,
            color=color, lw=lw, zorder=1, solid_capstyle="round")
    if arrow:
        ax.add_patch(FancyArrowPatch(points[-2], points[-1], arrowstyle="-|>",
                                     mutation_scale=14, color=color, linewidth=lw,
                                     shrinkA=0, shrinkB=9, zorder=2))


def _stacked(ax, x, y0, gates, label, sub, height=0.55, width=2.3):
    """The stacked matrix product: one coloured block per gate, top to bottom in row
    order; returns {gate: (x of the right edge, y of the block's centre)}."""
    from matplotlib.patches import Rectangle
    ends = {}
    n = len(gates)
    for k, gate in enumerate(gates):
        y = y0 + (n - 1 - k) * height
        ax.add_patch(Rectangle((x - width / 2, y), width, height, facecolor=GATE_COLOURS[gate],
                               edgecolor="white", linewidth=1.5, alpha=0.9, zorder=2))
        rows = "0:H" if k == 0 else ("H:2H" if k == 1 else f"{k}H:{k + 1}H")
        ax.text(x, y + height / 2, f"{gate}: rows {rows}" if n > 1 else "rows 0:H",
                ha="center", va="center", fontsize=10.5, color="white", fontweight="bold",
                zorder=3)
        ends[gate] = (x + width / 2, y + height / 2)
    top = y0 + n * height
    ax.text(x, top + 0.1, label, ha="center", va="bottom", fontsize=12)
    ax.text(x, y0 - 0.1, sub, ha="center", va="top", fontsize=10.5, color="#444444")
    return ends


def draw_cell(path, kind):
    """The Elman, GRU or LSTM cell: the two stacked products (W on the input, U on the
    previous state, one block of rows per gate, in PyTorch's order), the gates, the
    elementwise products and the new state."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gates = {"elman": ["h"], "gru": ["r", "z", "n"], "lstm": ["i", "f", "g", "o"]}[kind]
    K = len(gates)
    bh = 0.55                                             # height of one gate's block
    top = {"elman": 2.7, "gru": 6.0, "lstm": 7.3}[kind]
    x0, x1, y0, y1 = -0.2, 14.2, 0.0, top + 0.75
    fig, ax = plt.subplots(figsize=(10, 10 * (y1 - y0) / (x1 - x0) + 0.45))
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    ax.axis("off")
    stack = "H" if K == 1 else f"{K}H"
    u_y0 = top - 1.05 - K * bh if K > 1 else 1.95
    w_y0 = 0.55
    U = _stacked(ax, 3.0, u_y0, gates, r"$U\,h_{t-1} + b_{hh}$", f"weight_hh  ({stack} × H)")
    W = _stacked(ax, 3.0, w_y0, gates, r"$W\,x_t + b_{ih}$", f"weight_ih  ({stack} × H_in)")
    hy, xy = u_y0 + K * bh / 2, w_y0 + K * bh / 2
    _box(ax, 0.45, hy, 0.8, 0.55, "$h_{t-1}$", "#f6f6f6", fontsize=13)
    _box(ax, 0.45, xy, 0.8, 0.55, "$x_t$", "#f6f6f6", fontsize=13)
    _line(ax, [(0.85, hy), (1.85, hy)])
    _line(ax, [(0.85, xy), (1.85, xy)])
    act = {"h": "tanh", "r": "σ", "z": "σ", "n": "tanh", "i": "σ", "f": "σ", "g": "tanh",
           "o": "σ"}
    # one row per gate: the two blocks meet in a sum, then the gate's function
    ys = {g: (top - 0.45 - k * (top - 1.35) / (K - 1)) if K > 1 else 1.7
          for k, g in enumerate(gates)}
    out = {}
    for k, g in enumerate(gates):
        y, c, xs = ys[g], GATE_COLOURS[g], 5.6 + 0.2 * k
        if kind == "gru" and g == "n":          # reset after the product: r * (U_n h + b)
            _op(ax, 4.85, U[g][1], "⊙", r=0.22, fontsize=12)
            _line(ax, [U[g], (4.85, U[g][1])], color=c)
            _line(ax, [(5.07, U[g][1]), (xs, U[g][1]), (xs, y + 0.1), (6.4, y + 0.1)],
                  color=c, arrow=True)
        else:
            _line(ax, [U[g], (xs, U[g][1]), (xs, y + 0.1), (6.4, y + 0.1)], color=c)
        _line(ax, [W[g], (xs - 0.1, W[g][1]), (xs - 0.1, y - 0.1), (6.4, y - 0.1)], color=c)
        _op(ax, 6.65, y, "+")
        _box(ax, 7.75, y, 1.0, 0.5, act[g], c, fontsize=12, color="white")
        _line(ax, [(6.93, y), (7.25, y)])
        if kind == "elman":
            _line(ax, [(8.25, y), (10.2, y)])
            _box(ax, 10.7, y, 0.9, 0.55, "$h_t$", "#f6f6f6", fontsize=13)
            ax.text(11.25, y, "→ output[t], and the\n$h_{t-1}$ of the next step", ha="left",
                    va="center", fontsize=11)
        else:
            ax.text(8.35, y + 0.12, f"${g}_t$", ha="left", va="bottom", fontsize=13, color=c)
        out[g] = (8.25, y)
    if kind == "gru":
        r, z, n = out["r"], out["z"], out["n"]
        # r goes back to the product with U_n h
        _line(ax, [r, (8.9, r[1]), (8.9, r[1] - 0.5), (4.85, r[1] - 0.5),
                   (4.85, U["n"][1])], color=GATE_COLOURS["r"])
        # h_t = (1 - z) * n + z * h_{t-1}
        mid = (z[1] + n[1]) / 2
        _op(ax, 10.6, n[1], "⊙")
        _op(ax, 10.6, z[1], "⊙")
        _op(ax, 9.7, mid, "1−", fontsize=11)
        _line(ax, [n, (10.6, n[1])])
        _line(ax, [z, (9.7, z[1]), (9.7, mid)], color=GATE_COLOURS["z"])
        _line(ax, [(9.7, mid - 0.28), (9.7, n[1] + 0.5), (10.6, n[1] + 0.5), (10.6, n[1])],
              color=GATE_COLOURS["z"])
        _line(ax, [z, (10.6, z[1])], color=GATE_COLOURS["z"])
        ht = top + 0.35                                    # h_{t-1} runs along the top
        _line(ax, [(0.45, hy + 0.28), (0.45, ht), (10.6, ht), (10.6, z[1])])
        ax.text(5.0, ht + 0.06, "$h_{t-1}$", ha="center", va="bottom", fontsize=12)
        _op(ax, 11.8, mid, "+")
        _line(ax, [(10.88, n[1]), (11.8, n[1]), (11.8, mid)])
        _line(ax, [(10.88, z[1]), (11.8, z[1]), (11.8, mid)])
        _line(ax, [(12.08, mid), (12.75, mid)])
        _box(ax, 13.2, mid, 0.85, 0.55, "$h_t$", "#f6f6f6", fontsize=13)
        ax.text(13.2, mid - 0.4, "output[t]", ha="center", va="top", fontsize=11)
        ax.text(11.2, n[1] - 0.45, "$h_t = (1-z_t)\\odot n_t + z_t \\odot h_{t-1}$",
                ha="center", va="top", fontsize=12)
    if kind == "lstm":
        i, f, g, o = out["i"], out["f"], out["g"], out["o"]
        cy = top + 0.35                                    # c_{t-1} runs along the top
        ax.text(1.25, cy, "$c_{t-1}$", ha="right", va="center", fontsize=13)
        _op(ax, 9.2, cy, "⊙")                              # f * c_{t-1}
        _line(ax, [(1.35, cy), (9.2, cy)])
        _line(ax, [f, (9.2, f[1]), (9.2, cy)], color=GATE_COLOURS["f"])
        _op(ax, 10.3, g[1], "⊙")                           # i * g
        _line(ax, [g, (10.3, g[1])], color=GATE_COLOURS["g"])
        _line(ax, [i, (9.75, i[1]), (9.75, g[1] + 0.6), (10.3, g[1] + 0.6), (10.3, g[1])],
              color=GATE_COLOURS["i"])
        _op(ax, 11.3, cy, "+")
        _line(ax, [(9.48, cy), (11.3, cy)])
        _line(ax, [(10.58, g[1]), (11.3, g[1]), (11.3, cy)])
        _line(ax, [(11.58, cy), (14.0, cy)])
        ax.text(13.95, cy + 0.1, "$c_t$", ha="right", va="bottom", fontsize=13)
        tanh_y = (g[1] + o[1]) / 2 + 0.2
        _box(ax, 12.5, tanh_y, 0.8, 0.45, "tanh", "#dfe6ee", fontsize=11)
        _line(ax, [(12.5, cy), (12.5, tanh_y)])
        _op(ax, 12.5, o[1], "⊙")
        _line(ax, [(12.5, tanh_y - 0.23), (12.5, o[1])])
        _line(ax, [o, (12.5, o[1])], color=GATE_COLOURS["o"])
        _line(ax, [(12.78, o[1]), (13.2, o[1])])
        _box(ax, 13.6, o[1], 0.75, 0.55, "$h_t$", "#f6f6f6", fontsize=13)
        ax.text(13.6, o[1] - 0.4, "output[t]", ha="center", va="top", fontsize=11)
        ax.text(5.2, cy + 0.08, "$c_t = f_t \\odot c_{t-1} + i_t \\odot g_t$", ha="center",
                va="bottom", fontsize=12)
        ax.text(10.6, o[1] - 0.4, "$h_t = o_t \\odot \\tanh(c_t)$", ha="center",
                va="top", fontsize=12)
    title = {"elman": "The Elman cell: $h_t = \\tanh(W x_t + b_{ih} + U h_{t-1} + b_{hh})$",
             "gru": "The GRU cell: gates r, z, n, the rows of weight_ih and weight_hh in "
                    "this order",
             "lstm": "The LSTM cell: gates i, f, g, o, the rows of weight_ih and weight_hh "
                     "in this order"}[kind]
    ax.set_title(title, fontsize=13)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def noisy_sine(rng, batch, length):
    """The data of the chapter "Your first RNN" (docs/first-rnn.md)."""
    freq = rng.uniform(0.1, 0.3, size=(1, batch))
    phase = rng.uniform(0, 2 * np.pi, size=(1, batch))
    t = np.arange(length + 1)[:, None] * freq + phase
    clean = np.sin(t).astype(np.float32)[:, :, None]
    noisy = (clean + 0.1 * rng.standard_normal(clean.shape)).astype(np.float32)
    return noisy[:-1], noisy[1:], clean[1:]


def train_sine(steps=600):
    """The training loop of docs/first-rnn.md, run for ``steps`` steps."""
    rng = np.random.default_rng(0)
    rnn = minirnn.GRU(1, 32, seed=0)
    head = minirnn.Linear(32, 1, seed=1)
    opt = minirnn.optim.Adam([rnn, head], lr=1e-2)
    losses = []
    for _ in range(steps):
        x, y, _ = noisy_sine(rng, batch=32, length=50)
        loss, grad = minirnn.mse_loss(head(rnn(x)[0]), y)
        opt.zero_grad()
        rnn.backward(head.backward(grad), None)
        opt.step()
        losses.append(float(loss))
    return rnn, head, losses


def draw_first_rnn(path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rnn, head, losses = train_sine()
    x, y, clean = noisy_sine(np.random.default_rng(1), batch=1, length=80)
    with minirnn.no_grad():
        pred = head(rnn(x)[0])
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8),
                                      gridspec_kw={"width_ratios": [1, 1.5]})
    left.plot(losses, lw=1.0, color="#4c72b0", label="loss of each step")
    left.axhline(0.51, color="#888888", ls="--", lw=1, label="saying 0: 0.51")
    left.axhline(0.01, color="#c44e52", ls="--", lw=1, label="the noise: 0.01")
    left.set_yscale("log")
    left.set_xlabel("training step", fontsize=11)
    left.set_ylabel("mean squared error", fontsize=11)
    left.set_title("the loss falls", fontsize=12)
    left.legend(fontsize=9.5, loc="center right")
    t = np.arange(1, x.shape[0] + 1)
    right.plot(t, y[:, 0, 0], ".", color="#999999", ms=4, label="noisy next value (target)")
    right.plot(t, clean[:, 0, 0], color="#55a868", lw=1.6, label="the sine without noise")
    right.plot(t, pred[:, 0, 0], color="#c44e52", lw=1.4, label="the model's prediction")
    right.set_xlabel("step t (prediction of the value at t)", fontsize=11)
    right.set_title("a sequence the model never saw", fontsize=12)
    right.legend(fontsize=9.5, loc="lower center", ncol=2, handlelength=1.5)
    right.set_ylim(-2.0, 1.3)
    for ax in (left, right):
        ax.tick_params(labelsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def train_char_lm(steps=600):
    """The model and training loop of docs/char-lm.md, run for ``steps`` steps. Returns
    ``(text, data, (embed, lstm, head), losses)``."""
    import inspect
    import textwrap

    text = inspect.getsource(textwrap)
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    data = np.array([index[c] for c in text])
    V = len(chars)
    embed = minirnn.Embedding(V, 16, seed=0)
    lstm = minirnn.LSTM(16, 64, seed=1)
    head = minirnn.Linear(64, V, seed=2)
    model = [embed, lstm, head]
    opt = minirnn.optim.Adam(model, lr=1e-2)
    T, B = 32, 16
    streams = data[:len(data) // B * B].reshape(B, -1)
    state, pos, losses = None, 0, []
    for _ in range(steps):
        if pos + T + 1 > streams.shape[1]:
            state, pos = None, 0
        x, y = streams[:, pos:pos + T].T, streams[:, pos + 1:pos + T + 1].T
        pos += T
        out, state = lstm(embed(x), state)
        logits = head(out)
        loss, grad = minirnn.cross_entropy(logits.reshape(T * B, V), y.reshape(-1))
        opt.zero_grad()
        grad_vectors, _ = lstm.backward(head.backward(grad.reshape(logits.shape)), None)
        embed.backward(grad_vectors)
        minirnn.clip_grad_norm_(model, max_norm=1.0)
        opt.step()
        losses.append(float(loss))
    return text, data, (embed, lstm, head), losses


def indentation_unit(text, h):
    """The unit of ``h`` (len(text), H) most correlated with "a space of the line's leading
    indentation", its correlation."""
    leading = np.zeros(len(text), bool)
    start = True
    for i, c in enumerate(text):
        leading[i] = start and c == " "
        start = c == "\n" or (start and c == " ")
    r = np.array([np.corrcoef(h[:, u], leading)[0, 1] for u in range(h.shape[1])])
    unit = int(np.nanargmax(np.abs(r)))
    return unit, float(r[unit])


def draw_char_lm(loss_path, unit_path):
    """The loss curve of docs/char-lm.md's loop run longer (``loss_path``), and a few lines of
    the text on the colours of the hidden unit that tracks indentation (``unit_path``)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    text, data, (embed, lstm, head), losses = train_char_lm()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.plot(losses, lw=0.9, color="#4c72b0", label="loss of each chunk")
    ax.axhline(np.log(len(set(text))), color="#888888", ls="--", lw=1,
               label="log V: a uniform guess")
    ax.set_xlabel("training step", fontsize=11)
    ax.set_ylabel("cross-entropy\n(nats per character)", fontsize=11)
    ax.legend(fontsize=10)
    ax.tick_params(labelsize=10)
    fig.tight_layout()
    fig.savefig(loss_path, dpi=110)
    plt.close(fig)

    with minirnn.no_grad():
        h = lstm(embed(data[:, None]))[0][:, 0]
    unit, r = indentation_unit(text, h)
    values = h[:, unit] * np.sign(r)
    start = text.index("    def __init__")
    lines = text[start:].split("\n")[:9]
    width = 46                                         # characters shown per line
    fig, ax = plt.subplots(figsize=(10, 0.4 * len(lines) + 0.6))
    ax.set_xlim(0, width)
    ax.set_ylim(len(lines), 0)
    ax.axis("off")
    cmap = plt.get_cmap("RdBu_r")
    pos = start
    for row, line in enumerate(lines):
        for col, c in enumerate(line + "\n"):
            if col < width:
                v = float(np.clip(values[pos], -1, 1))
                ax.add_patch(Rectangle((col, row), 1, 1, facecolor=cmap(0.5 + 0.5 * v),
                                       edgecolor="none"))
                ax.text(col + 0.5, row + 0.55, "⏎" if c == "\n" else c, ha="center",
                        va="center", fontsize=12.5, family="monospace")
            pos += 1
    ax.set_title(f"hidden unit {unit} after each character: correlation {abs(r):.2f} with "
                 "the indentation (red high, blue low)", fontsize=12)
    fig.tight_layout()
    fig.savefig(unit_path, dpi=110)
    plt.close(fig)


PERFORMANCE_CHAPTER = os.path.join(os.path.dirname(HERE), "performance.md")


def performance_runs(chapter=PERFORMANCE_CHAPTER):
    """The float32 ratios (torch ms / minirnn ms) of the results tables of
    docs/performance.md, as ``[(threads, "float32", rows)]`` in bench_rnn.py's JSON row
    format: each table ``| size | mode | f32 infer | f32 train | ...`` belongs to the
    ``**N thread(s)**`` paragraph above it. The figure is drawn from the numbers printed in the
    chapter, so the two cannot disagree."""
    import re

    with open(chapter, encoding="utf-8") as f:
        lines = f.read().splitlines()
    runs, threads = [], None
    for k, line in enumerate(lines):
        m = re.match(r"\*\*(\d+) threads?\*\*", line)
        if m:
            threads = int(m.group(1))
        if line.startswith("| size | mode | f32 infer") and threads is not None:
            cols = [c.strip() for c in line.strip("|").split("|")]
            rows = []
            for row in lines[k + 2:]:
                if not row.startswith("|"):
                    break
                cells = [c.strip() for c in row.strip("|").split("|")]
                for col, phase in (("f32 infer", "infer"), ("f32 train", "train")):
                    value = re.match(r"[\d.]+", cells[cols.index(col)])
                    if value:
                        rows.append({"size": cells[0], "mode": cells[1], "phase": phase,
                                     "dtype": "float32",
                                     "ratio": {"torch": float(value.group(0))}})
            if threads not in [t for t, _, _ in runs]:
                runs.append((threads, "float32", rows))
            threads = None
    return runs


def draw_performance(path):
    import matplotlib
    matplotlib.use("Agg")
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "bench"))
    import plot_bench

    runs = performance_runs()
    assert runs, "no results tables found in docs/performance.md"
    plot_bench.draw_split(runs, path, targets=True,
                          title="torch ms / minirnn ms, float32 (above 1x: minirnn faster)")


def main():
    for name, draw in [("output_h_n_layout.png", draw_layout),
                       ("unrolled.png", draw_unrolled),
                       ("bptt_graph.png", lambda p: draw_unrolled(p, bptt=True)),
                       ("cell_elman.png", lambda p: draw_cell(p, "elman")),
                       ("cell_gru.png", lambda p: draw_cell(p, "gru")),
                       ("cell_lstm.png", lambda p: draw_cell(p, "lstm")),
                       ("first_rnn.png", draw_first_rnn),
                       ("performance.png", draw_performance),
                       ("char_lm_loss.png",
                        lambda p: draw_char_lm(p, os.path.join(HERE, "char_lm_unit.png")))]:
        path = os.path.join(HERE, name)
        draw(path)
        print(f"wrote {path}")
    __import__("fig_gradients").main()      # docs/figures/fig_gradients.py: gradients_*.png


if __name__ == "__main__":
    main()

# minirnn/_kernel_parts/forward_loop.pxi: the forward time loop of one (direction, batch slice).
# Included by minirnn/_kernels.pyx, in the order listed there (one extension module).

# --------------------------------------------------------------------------- forward

cdef Py_ssize_t STEP_GX_WEIGHTS = 2 * 1024 * 1024
cdef Py_ssize_t STEP_GX_MIN_BYTES = 2 * 1024 * 1024


# whether the latest forward_layer call computed G_x in its time loops (for tests)
cdef bint _last_step_gx = False


def _set_step_gx_limits(Py_ssize_t weights, Py_ssize_t min_bytes):
    """Set STEP_GX_WEIGHTS and STEP_GX_MIN_BYTES; returns the previous pair. For tests and
    benchmarks: (0, any) turns the per-step input product off, (huge, 0) on wherever the
    other conditions allow; results must not change to the bit either way."""
    global STEP_GX_WEIGHTS, STEP_GX_MIN_BYTES
    old = (STEP_GX_WEIGHTS, STEP_GX_MIN_BYTES)
    STEP_GX_WEIGHTS, STEP_GX_MIN_BYTES = weights, min_bytes
    return old


def _step_gx_of_last_call():
    """Whether the latest forward_layer call computed G_x step by step in its time loops."""
    return _last_step_gx


cdef inline bint _step_input_product(Py_ssize_t D, Py_ssize_t B, Py_ssize_t n_sl,
                                     Py_ssize_t I, Py_ssize_t P, int nt, double work,
                                     Py_ssize_t weight_bytes, Py_ssize_t gx_bytes) noexcept:
    """Whether each time loop computes its own rows of G_x, step by step, just before its
    gates read them (see "input product" in _kernels.pyx). Measured gains and losses, float32, 1 and
    2 threads, LSTM and GRU inference (bench sizes, see docs/performance.md):
      - G_x of all steps well beyond the L2 (1 MiB), weights of at most 2 MiB: seed +12 to
        +20 %, long +2 to +16 %, medium (float32) +2 %; large (8 MiB of weights, re-read at
        every step) -5 to -20 %: off above STEP_GX_WEIGHTS bytes of packed weights;
      - G_x that stays in cache anyway (small: 0.8 MB in float32, 1.6 MB in float64; tiny):
        -3 to -7 %, the cost of one more product call per step: off below
        STEP_GX_MIN_BYTES;
      - slices of fewer than 8 rows with a wide input (measured on bidir, I = 128 and 256
        for P = 128, when it had slices of 4 rows; it has 8 now): -3 to +3 %: each step
        reads all of W_ih for 4 rows; on only when I <= P / 2;
      - and only when the time loops keep every thread busy, or the input product is too
        small for a team anyway: the G_x phase is the one that runs in parallel when a
        batch has a single slice.
    Either way every element of G_x is the same sum, so results do not change to the bit."""
    if weight_bytes > STEP_GX_WEIGHTS or gx_bytes < STEP_GX_MIN_BYTES:
        return False
    if B // n_sl < 8 and 2 * I > P:
        return False
    return D * n_sl >= nt or work < PARALLEL_MIN_WORK


cdef inline void _gate_product(Py_ssize_t n, Py_ssize_t G, Py_ssize_t H, Py_ssize_t j0,
                               Py_ssize_t j1, Py_ssize_t K, const floating *A, Py_ssize_t lda,
                               const floating *Bp, Py_ssize_t gstride, floating *C,
                               Py_ssize_t ldc, const floating *bias) noexcept nogil:
    """C[:, g*H + j] = bias[g*H + j] + A (n, K) @ B[:, g*H + j] for the G gate blocks g and the
    units j0 <= j < j1. gstride = 0: B packed as one matrix of G*H columns (then j0 = 0, j1 =
    H): one product. Else gate g's H columns are packed apart, from Bp + g*gstride, and j0 is
    a multiple of the panel width (a unit block of the small-batch schedule): one product per
    gate on its panels of columns j0..j1. Each element is the same sum either way."""
    cdef Py_ssize_t g
    if gstride == 0:
        k_gemm(n, G * H, K, A, lda, Bp, C, ldc, 0, bias)
        return
    for g in range(G):
        k_gemm(n, j1 - j0, K, A, lda, Bp + g * gstride + j0 * K, C + g * H + j0, ldc, 0,
               bias + g * H + j0 if bias != NULL else NULL)


cdef void _forward_slice(int mode, bint reverse, Py_ssize_t T, Py_ssize_t B, Py_ssize_t b0,
                         Py_ssize_t b1, Py_ssize_t H, Py_ssize_t P, Py_ssize_t DP, Py_ssize_t SWH,
                         const int64_t *bs, floating *Gx, const floating *X,
                         Py_ssize_t I, const floating *WihP, const floating *bih,
                         const floating *WhhP,
                         const floating *bhh, const floating *WhrP, const floating *h0,
                         const floating *c0, floating *Y, floating *hT, floating *cT,
                         floating *Cs, floating *S, floating *M, floating *gh, floating *cbuf,
                         floating *mbuf, const mr_cell_variant *cv, const floating *pp,
                         const floating *WhnP, floating *qbuf, bint watch, Py_ssize_t j0,
                         Py_ssize_t j1, Py_ssize_t gstride, int *stop,
                         int tid) noexcept nogil:
    """The time loop of one direction over batch rows b0 <= b < b1 and hidden units
    j0 <= j < j1.

    IN   Gx (T, B, GH) = X W_ih^T + b_ih, or, when WihP is not NULL, a scratch (B, GH): then
         each step computes its own rows of G_x there, from X (T, B, I), WihP (W_ih^T packed)
         and bih (GH,) or NULL, just before its gates read them (see "input product");
         WhhP: W_hh^T (P, GH) packed (GRU reset before the product: its r, z columns (P, 2H)
         only, and WhnP its n columns (P, H)), or, when gstride > 0, each gate's columns
         packed apart, gstride elements apart (see _gate_product);  bhh (GH,) or NULL;
         WhrP: W_hr^T (H, P) packed (LSTM with projections) or NULL (then P = H);
         h0 (B, P), c0 (B, H) (c0 LSTM only);  bs (T,) batch sizes of a packed batch, or
         NULL (every row has every step; see "variable lengths", lengths.pxi);
         cv: the cell variant, or NULL for PyTorch's cell (see "cell variants");
         pp (3H,) the LSTM variant's peepholes (zeros without them)
    OUT  Y: this direction's column block of the layer output, Y[t, b, j] at Y[(t*B + b)*DP + j];
         hT (B, P), cT (B, H) final states; Cs (T, B, H), S (T, B, SWH) and, with
         projections, M (T, B, H) when training, else NULL
    SCRATCH  gh (B, GH);  cbuf (2, B, H) (LSTM inference: c_t alternates between two rows);
         mbuf (B, H) (projections, inference: m_t); qbuf (B, H) (GRU reset before the
         product, inference: q = r * h_{t-1}; training keeps q in S)
    SCHEDULE stop NULL: a batch slice (all units, j0 = 0, j1 = H), alone to its end. Else a
         unit block of the small-batch schedule (schedule.pxi): all rows (b0 = 0, b1 = B),
         the thread `tid` of a team whose threads each run one block of units of one
         direction, stepping together: a barrier at the start of every step (h_{t-1} is
         then complete: every thread reads all of it, and writes only its own units of h_t,
         c_t, the gates and the saved values) and, for the GRU with the reset before the
         product, one more before the product that reads all of q = r * h_{t-1}. Every
         thread of the team passes the same barriers (minirnn_step_sync), with or without
         units, rows or Ctrl-C. No projections (P = H).
    """
    cdef Py_ssize_t G = GATES[mode], GH = GATES[mode] * H
    cdef Py_ssize_t rows = b1 - b0, s, t, j, b, row, n, e, e_next, f, ldq
    cdef Py_ssize_t nc = j1 - j0                       # units of this loop
    cdef Py_ssize_t hw = P if stop == NULL else nc     # ... and its columns of h
    cdef const floating *h_prev = h0 + b0 * P
    cdef Py_ssize_t ldhp = P
    cdef const floating *c_prev = NULL
    cdef floating *h
    cdef floating *c = NULL
    cdef floating *m
    cdef floating *q
    cdef floating *saved
    cdef floating *ghs = gh + b0 * GH
    cdef floating *gx
    cdef bint before = cv != NULL and WhnP != NULL      # the split recurrent product
    if c0 != NULL:
        c_prev = c0 + b0 * H
    if bs != NULL and not reverse:
        # rows that never take a step (bs[0] < B) keep their initial states
        e = _active_end(bs, 0, b0, b1)
        _fill_rows(hT + e * P + j0, P, hw, b1 - e, h0 + e * P + j0, P)
        if mode == MODE_LSTM:
            _fill_rows(cT + e * H + j0, H, nc, b1 - e, c0 + e * H + j0, H)
    for s in range(T):
        if stop != NULL:
            if minirnn_step_sync(stop, tid, s, watch):
                return                                   # Ctrl-C, on every thread at once
        elif watch and minirnn_interrupted():
            return                                       # Ctrl-C: see "interrupts"
        t = T - 1 - s if reverse else s
        row = t * B + b0                                 # first row of this slice at step t
        e = _active_end(bs, t, b0, b1)                   # rows b0 <= b < e have a step t
        n = e - b0 if nc > 0 else 0
        h = Y + row * DP
        saved = S + row * SWH if S != NULL else NULL
        if mode == MODE_LSTM:
            c = Cs + row * H if Cs != NULL else cbuf + (s % 2) * B * H + b0 * H
        gx = Gx + row * GH
        if n > 0 and WihP != NULL:
            # G_x = x_t W_ih^T + b_ih of these rows      (n, GH), into the scratch
            gx = Gx + b0 * GH
            k_gemm(n, GH, I, X + row * I, I, WihP, gx, GH, 0, bih)
        if n > 0 and not before:
            # G_h = h_{t-1} W_hh^T + b_hh                (n, GH; this loop's units)
            _gate_product(n, G, H, j0, j1, P, h_prev, ldhp, WhhP, gstride, ghs, GH, bhh)
        # the cells of this loop's units: every pointer advanced by j0 (csrc/minirnn.h)
        if n == 0:
            pass
        elif mode == MODE_RNN_TANH or mode == MODE_RNN_RELU:
            if cv != NULL:
                k_elman_v(n, H, nc, cv, gx + j0, GH, ghs + j0, GH, h + j0, DP,
                          saved + j0 if saved != NULL else NULL, SWH)
            else:
                k_elman(n, H, nc, mode == MODE_RNN_RELU, gx + j0, GH, ghs + j0, GH, h + j0, DP)
        elif mode == MODE_GRU:
            if before:
                # the split product: G_h's r, z block first ...
                _gate_product(n, 2, H, j0, j1, P, h_prev, ldhp, WhhP, gstride, ghs, GH, bhh)
                if saved != NULL:
                    q, ldq = saved + 3 * H, SWH
                else:
                    q, ldq = qbuf + b0 * H, H
                # ... r, z and q = r * h_{t-1} ...
                k_gru_rz_v(n, H, nc, cv, gx + j0, GH, ghs + j0, GH, h_prev + j0, ldhp, q + j0,
                           ldq, saved + j0 if saved != NULL else NULL, SWH)
            if before and stop != NULL:
                minirnn_barrier()                        # ... all of q written ...
            if before:
                # ... then its n block on q: gh_n = q W_hn^T + b_hn ...
                k_gemm(n, nc, H, q, ldq, WhnP + j0 * H, ghs + 2 * H + j0, GH, 0,
                       bhh + 2 * H + j0 if bhh != NULL else NULL)
                # ... and n, h_t
                k_gru_n_v(n, H, nc, cv, gx + j0, GH, ghs + j0, GH, h_prev + j0, ldhp, h + j0,
                          DP, saved + j0 if saved != NULL else NULL, SWH)
            elif cv != NULL:
                k_gru_v(n, H, nc, cv, gx + j0, GH, ghs + j0, GH, h_prev + j0, ldhp, h + j0, DP,
                        saved + j0 if saved != NULL else NULL, SWH)
            else:
                k_gru(n, H, nc, gx + j0, GH, ghs + j0, GH, h_prev + j0, ldhp, h + j0, DP,
                      saved + j0 if saved != NULL else NULL, SWH)
        else:
            # with projections the cell writes m_t = o_t tanh(c_t) (n, H), else h_t itself
            if WhrP == NULL:
                m = h
            else:
                m = M + row * H if M != NULL else mbuf + b0 * H
            if cv != NULL:
                k_lstm_v(n, H, nc, cv, pp + j0, gx + j0, GH, ghs + j0, GH, c_prev + j0, H,
                         m + j0, DP if WhrP == NULL else H, c + j0, H,
                         saved + j0 if saved != NULL else NULL, SWH)
            else:
                k_lstm(n, H, nc, gx + j0, GH, ghs + j0, GH, c_prev + j0, H, m + j0,
                       DP if WhrP == NULL else H, c + j0, H,
                       saved + j0 if saved != NULL else NULL, SWH)
            if WhrP != NULL:
                # ... and h_t = m_t W_hr^T               (n, P)
                k_gemm(n, P, H, m, H, WhrP, h, DP, 0, NULL)
        if before and stop != NULL and n == 0:
            minirnn_barrier()                            # the same barriers on every thread
        if bs != NULL:
            if reverse:
                # rows e <= b < e_next start at step t-1: their state before it is h0 (c0)
                e_next = _active_end(bs, t - 1, b0, b1) if t > 0 else e
                _fill_rows(h + (e - b0) * DP + j0, DP, hw, e_next - e, h0 + e * P + j0, P)
                if mode == MODE_LSTM:
                    _fill_rows(c + (e - b0) * H + j0, H, nc, e_next - e, c0 + e * H + j0, H)
            else:
                # rows f <= b < e have their last step here: copy out h_n (and c_n)
                f = _active_end(bs, t + 1, b0, b1) if t + 1 < T else b0
                _fill_rows(hT + f * P + j0, P, hw, e - f, h + (f - b0) * DP + j0, DP)
                if mode == MODE_LSTM:
                    _fill_rows(cT + f * H + j0, H, nc, e - f, c + (f - b0) * H + j0, H)
                e_next = e
            # padded positions: zeros (Y is the next layer's input and, like M, a factor of
            # the weight-gradient products)
            _fill_rows(h + (e_next - b0) * DP + j0, DP, hw, b1 - e_next, <floating *> NULL, 0)
            if Cs != NULL:
                _fill_rows(c + (e_next - b0) * H + j0, H, nc, b1 - e_next, <floating *> NULL, 0)
            if M != NULL:
                _fill_rows(M + (row + (e - b0)) * H, H, H, b1 - e, <floating *> NULL, 0)
        h_prev = h
        ldhp = DP
        if mode == MODE_LSTM:
            c_prev = c
    if bs != NULL and not reverse:
        return                                           # final states copied in the loop
    # the final states of these rows (and units)
    for b in range(rows):
        memcpy(hT + (b0 + b) * P + j0, h_prev + b * ldhp + j0, hw * sizeof(floating))
        if cT != NULL:
            memcpy(cT + (b0 + b) * H + j0, c_prev + b * H + j0, nc * sizeof(floating))
    if bs != NULL:
        # rows that never take a step (bs[0] < B) keep their initial states
        e = _active_end(bs, 0, b0, b1)
        _fill_rows(hT + e * P + j0, P, hw, b1 - e, h0 + e * P + j0, P)
        if cT != NULL:
            _fill_rows(cT + e * H + j0, H, nc, b1 - e, c0 + e * H + j0, H)

# minirnn/_kernel_parts/backward_units.pxi: backward_layer's work units after the loop: weight gradients, peepholes, dX.
# Included by minirnn/_kernels.pyx, in the order listed there (one extension module).

ctypedef struct _Bwd:
    # the shapes and arrays of one backward_layer call (see backward_layer)
    int mode
    Py_ssize_t D, T, B, In, H, P, DP, GH, SWH, TB, n_sl, n_mat   # In is I, as in _Fwd
    Py_ssize_t pan_I, pan_P, pan_H, size_hh, size_ih, size_hr, size_Ht, size_M
    Py_ssize_t til_I, til_P, til_M, n_pblk, n_w, n_r
    Py_ssize_t S_b, n_wsh, n_wun   # weight gradients: shared columns, their blocks, the others
    Py_ssize_t wsplit              # units per shared block: 1, or 2 (W_ih and W_hh apart)
    Py_ssize_t wg_size             # elements of each thread's work buffer for them
    bint watch                     # stop early on Ctrl-C (see "interrupts")
    bint blocks                    # the time loop's units: blocks of hidden units (schedule.pxi)
    int stop[2]                    # blocks: Ctrl-C, as the threads agreed (minirnn_step_sync)
    Py_ssize_t n_xcblk             # dX: blocks of columns per block of rows
    Py_ssize_t K_w                 # rows of their sums: T*B, or those taking a step (packed)
    const Py_ssize_t *rows         # NULL, or (packed) the rows (t*B + b) taking a step
    bint bias
    bint proj, lstm
    const int64_t *bs
    void *X
    void *Y
    void *h0
    void *c0
    void *Cs
    void *S
    void *M
    void *dY
    void *dhT
    void *dcT
    void *dX
    void *dh0
    void *dc0
    void *WhhP
    void *WihP
    void *WhrP
    void *Xt
    void *Ht
    void *wg_work
    void *Mt
    void *dGx
    void *dGh
    void *dHr
    void *dh
    void *dc
    void *dm
    void *zeros
    void *Wih[2]
    void *Whh[2]
    void *Whr[2]
    void *dWih[2]
    void *dWhh[2]
    void *dWhr[2]
    void *dbih[2]
    void *dbhh[2]
    # the cell variant (as in _Fwd); the third left operand of the weight gradients, "M":
    # with projections M itself ((D, T, B, H): ldM = H), with the reset before the product
    # Q = r * h_{t-1}, S's 4th block (ldM = SWH); M_ds the distance between its directions
    _Var var
    Py_ssize_t ldM, M_ds
    Py_ssize_t n_pp                # peepholes: units of their gradients, D * blocks of H
    void *pp[2]
    void *dpp[2]


cdef void _pack_active_rows(floating *kind, const _Bwd *g, Py_ssize_t u) noexcept nogil:
    """Phase 2 of backward_layer for a packed batch: unit u's tile of X, H_prev or M, as
    without batch_sizes, but with only the rows that take a step, (t, b) for b < bs[t], step
    after step: g.K_w rows in all, in the order of g.rows (the weight gradients leave the
    other rows out: their gate gradients are zero)."""
    cdef Py_ssize_t T = g.T, B = g.B, I = g.In, P = g.P, H = g.H, DP = g.DP, K = g.K_w
    cdef Py_ssize_t t, k = 0, n, d, p, ld
    cdef Py_ssize_t til_I = g.til_I, til_P = g.til_P
    cdef const floating *src
    cdef const floating *h0 = <const floating *> g.h0
    cdef const floating *Y = <const floating *> g.Y
    for t in range(T):
        n = g.bs[t]
        if u < til_I:
            k_pack_tiles(K, I, <floating *> g.X + t * B * I, I, <floating *> g.Xt, k, k + n, u,
                         u + 1)
        elif u < til_I + g.D * til_P:
            d = (u - til_I) // til_P
            p = (u - til_I) % til_P
            if (not g.var.rev[d] and t == 0) or (g.var.rev[d] and t == T - 1):
                src = h0 + d * B * P                                 # the direction's first step
                ld = P
            else:                      # Y at the step before: t - 1 forward, t + 1 reverse
                src = Y + (t + 1 if g.var.rev[d] else t - 1) * B * DP + d * P
                ld = DP
            k_pack_tiles(K, P, src, ld, <floating *> g.Ht + d * g.size_Ht, k, k + n, p, p + 1)
        else:
            d = (u - til_I - g.D * til_P) // g.til_M
            p = (u - til_I - g.D * til_P) % g.til_M
            k_pack_tiles(K, H, <floating *> g.M + d * g.M_ds + t * B * g.ldM, g.ldM,
                         <floating *> g.Mt + d * g.size_M, k, k + n, p, p + 1)
        k += n


cdef void _backward_unit(floating *kind, _Bwd *g, int phase, Py_ssize_t u,
                         int tid) noexcept nogil:
    """Work unit u of a phase of backward_layer: 0 pack one weight matrix, 1 the reverse time
    loop of one (direction, batch slice), 2 pack one register tile of X, H_prev or M, 3 the
    weight and bias gradients of one block of gate columns, the rows of dW_hr of one block of
    columns of dH, or one block of rows and columns of dX; 4 (the small-batch schedule, one
    per thread) the reverse time loop of this thread's block of hidden units. tid: the thread
    that runs it (0 <= tid < the team), whose work buffer it uses."""
    cdef Py_ssize_t d, k, b0, b1, r0, r1, t, g0, g1, p, rest, c0, c1
    cdef Py_ssize_t TB = g.TB, GH = g.GH, B = g.B, P = g.P, H = g.H, I = g.In, DP = g.DP
    cdef Py_ssize_t D = g.D, pan_I = g.pan_I, pan_P = g.pan_P, til_M = g.til_M
    cdef Py_ssize_t til_I = g.til_I, til_P = g.til_P
    cdef Py_ssize_t n_w = g.n_w, n_r = g.n_r
    cdef floating *WhhP = <floating *> g.WhhP
    cdef floating *WihP = <floating *> g.WihP
    cdef floating *WhrP = <floating *> g.WhrP
    cdef floating *X = <floating *> g.X
    cdef floating *Y = <floating *> g.Y
    cdef floating *h0 = <floating *> g.h0
    cdef floating *Ht = <floating *> g.Ht
    cdef floating *dbih
    cdef floating *dbhh
    cdef floating *work
    cdef floating *dGx = <floating *> g.dGx
    cdef floating *dGh = <floating *> g.dGh
    if phase == 0:
        # W_hh (K = GH, N = P), W_ih (K = GH, N = I), W_hr (K = P, N = H)
        d = u // g.n_mat
        if u % g.n_mat == 0 and g.var.before:
            # the split product: W_hh's r, z rows (K = 2H) and its n rows (K = H) apart
            k_pack(2 * H, P, <floating *> g.Whh[d], P, 1, WhhP + d * g.size_hh, 0, 2 * H, 0,
                   pan_P)
            k_pack(H, P, <floating *> g.Whh[d] + 2 * H * P, P, 1,
                   WhhP + d * g.size_hh + pan_P * k_panel_width(kind) * 2 * H, 0, H, 0, pan_P)
        elif u % g.n_mat == 0:
            k_pack(GH, P, <floating *> g.Whh[d], P, 1, WhhP + d * g.size_hh, 0, GH, 0, pan_P)
        elif u % g.n_mat == 1:
            k_pack(GH, I, <floating *> g.Wih[d], I, 1, WihP + d * g.size_ih, 0, GH, 0, pan_I)
        else:
            k_pack(P, H, <floating *> g.Whr[d], H, 1, WhrP + d * g.size_hr, 0, P, 0, g.pan_H)
    elif phase == 1:
        d = u // g.n_sl
        k = u % g.n_sl
        b0 = k * B // g.n_sl
        b1 = (k + 1) * B // g.n_sl
        _backward_slice(g.mode, g.var.rev[d], g.T, B, b0, b1, H, P, DP, g.SWH, g.bs,
                        WhhP + d * g.size_hh,
                        WhrP + d * g.size_hr if g.proj else NULL,
                        h0 + d * B * P, <floating *> g.c0 + d * B * H if g.lstm else NULL,
                        Y + d * P, <floating *> g.Cs + d * TB * H if g.lstm else NULL,
                        <floating *> g.S + d * TB * g.SWH if g.S != NULL else NULL,
                        <floating *> g.dY + d * P, <floating *> g.dhT + d * B * P,
                        <floating *> g.dcT + d * B * H if g.lstm else NULL,
                        dGx + d * TB * GH, dGh + d * TB * GH,
                        <floating *> g.dHr + d * TB * P if g.proj else NULL,
                        <floating *> g.dh0 + d * B * P,
                        <floating *> g.dc0 + d * B * H if g.lstm else NULL,
                        <floating *> g.dh + d * B * P,
                        <floating *> g.dc + d * B * H if g.lstm else NULL,
                        <floating *> g.dm + d * B * H if g.proj or g.var.before else NULL,
                        <floating *> g.zeros, _cell_variant(&g.var, d),
                        <floating *> g.pp[d],
                        WhhP + d * g.size_hh + pan_P * k_panel_width(kind) * 2 * H
                        if g.var.before else NULL, g.watch, 0, H, NULL, 0)
    elif phase == 4:
        _backward_blocks(kind, g)
    elif phase == 2:
        # X (T*B, I), H_prev (T*B, P) of each direction and, with projections, M (T*B, H) as
        # the left operands of the weight gradients (k_pack_tiles); the row (t, b) of H_prev is
        # the state the forward read at step t: h0 at the direction's first step, else Y at
        # the step before (t-1 forward, t+1 reverse). A packed batch: _pack_active_rows
        if g.bs != NULL:
            _pack_active_rows(kind, g, u)
        elif u < til_I:
            k_pack_tiles(TB, I, X, I, <floating *> g.Xt, 0, TB, u, u + 1)
        elif u < til_I + D * til_P:
            d = (u - til_I) // til_P
            p = (u - til_I) % til_P
            if not g.var.rev[d]:
                k_pack_tiles(TB, P, h0 + d * B * P, P, Ht + d * g.size_Ht, 0, B, p, p + 1)
                k_pack_tiles(TB, P, Y + d * P, DP, Ht + d * g.size_Ht, B, TB, p, p + 1)
            else:
                k_pack_tiles(TB, P, Y + B * DP + d * P, DP, Ht + d * g.size_Ht, 0, TB - B, p,
                             p + 1)
                k_pack_tiles(TB, P, h0 + d * B * P, P, Ht + d * g.size_Ht, TB - B, TB, p,
                             p + 1)
        else:
            d = (u - til_I - D * til_P) // til_M
            p = (u - til_I - D * til_P) % til_M
            k_pack_tiles(TB, H, <floating *> g.M + d * g.M_ds, g.ldM,
                         <floating *> g.Mt + d * g.size_M, 0, TB, p, p + 1)
    else:
        # dW_ih += dG_x^T X;  dW_hh += dG_h^T H_prev;  db_ih += sum dG_x, db_hh += sum dG_h;
        # dW_hr += dH^T M;  dX = sum over directions of dG_x W_ih (direction 0 first)
        if u < n_w:
            # one block of at most WG_COLS gate columns [g0, g1) of one direction: its rows of
            # dW_ih and dW_hh and its bias sums, reading that block of dG once (k_weight_grad).
            # Columns g < S_b of dG_x and dG_h are equal (all of them for Elman and LSTM,
            # whose dG_h is dG_x; r and z for GRU): one unit serves both products and one sum
            # both biases, or, when there are few blocks (wsplit = 2), one unit W_ih and the
            # sums, another W_hh. The other columns (GRU's n) take two units: dG_x for W_ih and
            # b_ih, dG_h for W_hh and b_hh. No split changes a result: each sum is the same
            rest = g.n_wsh * g.wsplit + 2 * g.n_wun              # units per direction
            d = u // rest
            k = u % rest
            dbih = <floating *> g.dbih[d] if g.bias else NULL
            dbhh = <floating *> g.dbhh[d] if g.bias else NULL
            work = <floating *> g.wg_work + tid * g.wg_size
            if k < g.n_wsh * g.wsplit:
                g0 = k // g.wsplit * WG_COLS
                g1 = min(g0 + WG_COLS, g.S_b)
                if g.wsplit == 1:
                    k_weight_grad(g.K_w, g1 - g0, dGx + d * TB * GH + g0, GH, g.rows,
                                  <floating *> g.Xt, I, <floating *> g.dWih[d] + g0 * I,
                                  Ht + d * g.size_Ht, P, <floating *> g.dWhh[d] + g0 * P,
                                  dbih + g0 if dbih else NULL, dbhh + g0 if dbhh else NULL,
                                  work)
                elif k % 2 == 0:
                    k_weight_grad(g.K_w, g1 - g0, dGx + d * TB * GH + g0, GH, g.rows,
                                  <floating *> g.Xt, I, <floating *> g.dWih[d] + g0 * I,
                                  NULL, 0, NULL, dbih + g0 if dbih else NULL,
                                  dbhh + g0 if dbhh else NULL, work)
                else:
                    k_weight_grad(g.K_w, g1 - g0, dGx + d * TB * GH + g0, GH, g.rows,
                                  Ht + d * g.size_Ht, P, <floating *> g.dWhh[d] + g0 * P,
                                  NULL, 0, NULL, NULL, NULL, work)
            elif k < g.n_wsh * g.wsplit + g.n_wun:
                g0 = g.S_b + (k - g.n_wsh * g.wsplit) * WG_COLS
                g1 = min(g0 + WG_COLS, GH)
                k_weight_grad(g.K_w, g1 - g0, dGx + d * TB * GH + g0, GH, g.rows,
                              <floating *> g.Xt, I, <floating *> g.dWih[d] + g0 * I, NULL, 0,
                              NULL, dbih + g0 if dbih else NULL, NULL, work)
            else:
                g0 = g.S_b + (k - g.n_wsh * g.wsplit - g.n_wun) * WG_COLS
                g1 = min(g0 + WG_COLS, GH)
                # (the reset before the product: the n rows of W_hh multiplied q, not h_{t-1})
                k_weight_grad(g.K_w, g1 - g0, dGh + d * TB * GH + g0, GH, g.rows,
                              <floating *> g.Mt + d * g.size_M if g.var.before
                              else Ht + d * g.size_Ht, P, <floating *> g.dWhh[d] + g0 * P,
                              NULL, 0, NULL, dbhh + g0 if dbhh else NULL, NULL, work)
        elif u < n_w + n_r:
            # one block of at most WG_COLS columns of dH: its rows of dW_hr
            rest = u - n_w
            d = rest // g.n_pblk
            g0 = (rest % g.n_pblk) * WG_COLS
            k_weight_grad(g.K_w, min(WG_COLS, P - g0), <floating *> g.dHr + d * TB * P + g0, P,
                          g.rows, <floating *> g.Mt + d * g.size_M, H,
                          <floating *> g.dWhr[d] + g0 * H, NULL, 0, NULL, NULL, NULL,
                          <floating *> g.wg_work + tid * g.wg_size)
        elif u < n_w + n_r + g.n_pp:
            _peephole_grad(kind, g, u - n_w - n_r)
        else:
            rest = u - n_w - n_r - g.n_pp
            r0 = rest // g.n_xcblk * BLOCK_ROWS
            r1 = min(r0 + BLOCK_ROWS, TB)
            # columns [c0, c1) of dX: whole panels of W_ih
            p = rest % g.n_xcblk
            c0 = p * g.pan_I // g.n_xcblk * k_panel_width(kind)
            c1 = min((p + 1) * g.pan_I // g.n_xcblk * k_panel_width(kind), I)
            if g.bs == NULL:
                _input_grad(kind, g, r0, r1, c0, c1)
            else:
                # a packed batch: the rows of each step that take it are a prefix of its B
                # rows; the others have zero gate gradients, and get dX = 0 without a product
                t = r0 // B
                while t * B < r1:
                    b0 = max(r0, t * B)
                    b1 = min(r1, t * B + g.bs[t])
                    if b1 > b0:
                        _input_grad(kind, g, b0, b1, c0, c1)
                    b0 = max(b0, b1)
                    b1 = min(r1, (t + 1) * B)
                    if b1 > b0:
                        _fill_rows(<floating *> g.dX + b0 * I + c0, I, c1 - c0, b1 - b0,
                                   <floating *> NULL, 0)
                    t += 1


cdef void _peephole_grad(floating *kind, const _Bwd *g, Py_ssize_t u) noexcept nogil:
    """Unit u of the peepholes' gradients: one direction d, one block of at most WG_COLS
    columns [j0, j1) of H.  a_i, a_f saw p * c_{t-1} and a_o saw p_o * c_t, so

        dp_i += sum over steps and rows of da_i * c_{t-1},  dp_f likewise with da_f,
        dp_o += sum of da_o * c_t

    (da = dG_x; c_{t-1} is Cs at the step before, c0 at the direction's first step), summed
    in double in the order of the steps the forward took and of the rows, then added to dp."""
    cdef Py_ssize_t nb = (g.H + WG_COLS - 1) // WG_COLS, T = g.T, B = g.B, H = g.H
    cdef Py_ssize_t d = u // nb, TB = g.TB, GH = g.GH
    cdef Py_ssize_t j0 = (u % nb) * WG_COLS, j1 = min(j0 + WG_COLS, H), j, t, b, s, nrow
    cdef double acc[3 * MR_WG_COLS]
    cdef const floating *dG
    cdef const floating *cp
    cdef const floating *ct
    cdef const floating *Cs = <const floating *> g.Cs + d * TB * H
    cdef floating *dp = <floating *> g.dpp[d]
    for j in range(3 * WG_COLS):
        acc[j] = 0
    for s in range(T):
        t = T - 1 - s if g.var.rev[d] else s
        nrow = g.bs[t] if g.bs != NULL else B
        for b in range(nrow):
            dG = <const floating *> g.dGx + (d * TB + t * B + b) * GH
            ct = Cs + (t * B + b) * H
            if s == 0:
                cp = <const floating *> g.c0 + (d * B + b) * H
            else:
                cp = Cs + ((t + 1 if g.var.rev[d] else t - 1) * B + b) * H
            for j in range(j0, j1):
                acc[j - j0] += <double> dG[LSTM_I * H + j] * cp[j]
                acc[WG_COLS + j - j0] += <double> dG[LSTM_F * H + j] * cp[j]
                acc[2 * WG_COLS + j - j0] += <double> dG[LSTM_O * H + j] * ct[j]
    for j in range(j0, j1):
        dp[j] += <floating> acc[j - j0]
        dp[H + j] += <floating> acc[WG_COLS + j - j0]
        dp[2 * H + j] += <floating> acc[2 * WG_COLS + j - j0]


cdef inline void _input_grad(floating *kind, const _Bwd *g, Py_ssize_t r0, Py_ssize_t r1,
                             Py_ssize_t c0, Py_ssize_t c1) noexcept nogil:
    """Rows r0 <= r < r1, columns c0 <= c < c1 (c0 on a panel's edge) of dX = the sum over
    directions of dG_x W_ih (direction 0 first)."""
    cdef Py_ssize_t TB = g.TB, GH = g.GH, I = g.In
    cdef floating *dGx = <floating *> g.dGx
    cdef floating *WihP = <floating *> g.WihP
    k_gemm(r1 - r0, c1 - c0, GH, dGx + r0 * GH, GH, WihP + c0 * GH,
           <floating *> g.dX + r0 * I + c0, I, 0, NULL)
    if g.D == 2:
        k_gemm(r1 - r0, c1 - c0, GH, dGx + (TB + r0) * GH, GH, WihP + g.size_ih + c0 * GH,
               <floating *> g.dX + r0 * I + c0, I, 1, NULL)


cdef void _backward_blocks(floating *kind, _Bwd *g) noexcept nogil:
    """The reverse time loops of the small-batch schedule, on the calling thread of a parallel
    region: its block of hidden units of one direction (as _forward_blocks)."""
    cdef int tid, nth
    cdef Py_ssize_t d, j0, j1, B = g.B, H = g.H, P = g.P, TB = g.TB, GH = g.GH
    cdef floating *WhhP = <floating *> g.WhhP
    cdef floating *dGx = <floating *> g.dGx
    cdef floating *dGh = <floating *> g.dGh
    minirnn_team(&tid, &nth)
    for d in range(g.D):
        if not _unit_block(g.D, H, k_panel_width(kind), tid, nth, d, &j0, &j1):
            continue
        _backward_slice(g.mode, g.var.rev[d], g.T, B, 0, B, H, P, g.DP, g.SWH, g.bs,
                        WhhP + d * g.size_hh, NULL,
                        <floating *> g.h0 + d * B * P,
                        <floating *> g.c0 + d * B * H if g.lstm else NULL,
                        <floating *> g.Y + d * P,
                        <floating *> g.Cs + d * TB * H if g.lstm else NULL,
                        <floating *> g.S + d * TB * g.SWH if g.S != NULL else NULL,
                        <floating *> g.dY + d * P, <floating *> g.dhT + d * B * P,
                        <floating *> g.dcT + d * B * H if g.lstm else NULL,
                        dGx + d * TB * GH, dGh + d * TB * GH, NULL,
                        <floating *> g.dh0 + d * B * P,
                        <floating *> g.dc0 + d * B * H if g.lstm else NULL,
                        <floating *> g.dh + d * B * P,
                        <floating *> g.dc + d * B * H if g.lstm else NULL,
                        <floating *> g.dm + d * B * H if g.var.before else NULL,
                        <floating *> g.zeros, _cell_variant(&g.var, d),
                        <floating *> g.pp[d],
                        WhhP + d * g.size_hh + g.pan_P * k_panel_width(kind) * 2 * H
                        if g.var.before else NULL, g.watch, j0, j1, g.stop, tid)


cdef void _backward_phase(floating *kind, _Bwd *g, int phase, Py_ssize_t units,
                          int team) noexcept nogil:
    """As _forward_phase, for backward_layer."""
    cdef Py_ssize_t u
    if phase == 4 and team > 1:
        # the small-batch schedule: one region, every thread its block of units
        with parallel(num_threads=team):
            _backward_unit(kind, g, 4, 0, 0)
    elif team > 1:
        for u in prange(units, schedule="dynamic", num_threads=team):
            if not (g.watch and minirnn_interrupted()):
                _backward_unit(kind, g, phase, u, threadid())
    else:
        for u in range(units):
            if not (g.watch and minirnn_interrupted()):
                _backward_unit(kind, g, phase, u, 0)

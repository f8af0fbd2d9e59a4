# minirnn/_kernel_parts/backward_loop.pxi: the backward time loop of one (direction, batch slice).
# Included by minirnn/_kernels.pyx, in the order listed there (one extension module).

# --------------------------------------------------------------------------- backward

cdef inline void _zero_gate_rows(floating *dG, Py_ssize_t GH, Py_ssize_t G, Py_ssize_t H,
                                 Py_ssize_t j0, Py_ssize_t nc, Py_ssize_t rows) noexcept nogil:
    """Zero units j0 <= j < j0 + nc of every gate block of `rows` rows of dG (row stride GH)."""
    cdef Py_ssize_t k
    if j0 == 0 and nc == H:
        _fill_rows(dG, GH, GH, rows, <floating *> NULL, 0)
        return
    for k in range(G):
        _fill_rows(dG + k * H + j0, GH, nc, rows, <floating *> NULL, 0)


cdef void _backward_slice(int mode, bint reverse, Py_ssize_t T, Py_ssize_t B, Py_ssize_t b0,
                          Py_ssize_t b1, Py_ssize_t H, Py_ssize_t P, Py_ssize_t DP,
                          Py_ssize_t SWH, const int64_t *bs, const floating *WhhP,
                          const floating *WhrP, const floating *h0,
                          const floating *c0, const floating *Y, const floating *Cs,
                          const floating *S, const floating *dY, const floating *dhT,
                          const floating *dcT, floating *dGx, floating *dGh, floating *dHr,
                          floating *dh0, floating *dc0, floating *dh, floating *dc,
                          floating *dm, const floating *zeros, const mr_cell_variant *cv,
                          const floating *pp, const floating *WhnP, bint watch, Py_ssize_t j0,
                          Py_ssize_t j1, int *stop, int tid) noexcept nogil:
    """The reverse time loop of one direction over batch rows b0 <= b < b1 and hidden units
    j0 <= j < j1.

    IN   WhhP: W_hh packed as a (GH, P) right operand (GRU reset before the product: its
         r, z rows (2H, P) only, and WhnP its n rows (H, P)); WhrP: W_hr packed as a (P, H)
         right operand (LSTM with projections) or NULL (then P = H); h0 (B, P), c0 (B, H);
         Y (this direction's column block, as in _forward_slice); Cs (T, B, H), S (T, B, SWH)
         from the forward; dY (the gradient of Y, same layout); dhT (B, P), dcT (B, H)
         gradients of the final states; zeros (B, H) of zeros (projections); bs (T,) batch
         sizes or NULL (as in _forward_slice); cv the cell variant or NULL, pp its peepholes
         (as in _forward_slice)
    OUT  dGx, dGh (T, B, GH) gate gradients of every step (dGh is dGx except for GRU);
         dHr (T, B, P) dL/dh_t of every step (projections); dh0 (B, P), dc0 (B, H)
    SCRATCH  dh (B, P), dc (B, H): dh_next = dL/dh_t and dc_next = dL/dc_t carried to the step
         before; dm (B, H): dL/dm_t (projections), dL/dq (GRU reset before the product)
    SCHEDULE as in _forward_slice: stop NULL, a batch slice alone (j0 = 0, j1 = H); else a
         block of units of the small-batch schedule, all rows, stepping with the team: the
         cells of its units, a barrier (the gate gradients dG_h of step t are then complete),
         then its columns of dh_{t-1} = dG_h W_hh (its columns of the packed W_hh; GRU with
         the reset before the product: one more barrier, before dG_h[r,z] W_hh[r,z], which
         reads the da_r of every unit). A thread reads dh_next, dc_next and dm only in its
         own units, which it wrote itself; no projections (P = H).
    """
    cdef Py_ssize_t G = GATES[mode], GH = GATES[mode] * H
    cdef Py_ssize_t rows = b1 - b0, s, t, t_prev, row, b, j, n
    cdef Py_ssize_t nc = j1 - j0                       # units of this loop
    cdef Py_ssize_t hw = P if stop == NULL else nc     # ... and its columns of h
    cdef floating *dh_next = dh + b0 * P
    cdef floating *dc_next = dc + b0 * H if dc != NULL else NULL
    cdef floating *dmb = dm + b0 * H if dm != NULL else NULL
    cdef floating *dht
    cdef const floating *dyr
    cdef const floating *h_prev
    cdef const floating *c_prev
    cdef const floating *dy_cell
    cdef const floating *dh_cell
    cdef Py_ssize_t ldhp, lddy
    for b in range(rows):
        memcpy(dh_next + b * P + j0, dhT + (b0 + b) * P + j0, hw * sizeof(floating))
        if mode == MODE_LSTM:
            memcpy(dc_next + b * H + j0, dcT + (b0 + b) * H + j0, nc * sizeof(floating))
    for s in range(T):
        if stop == NULL and watch and minirnn_interrupted():
            return                                       # Ctrl-C: see "interrupts"
        # steps in the reverse of the forward's order
        t = s if reverse else T - 1 - s
        t_prev = t + 1 if reverse else t - 1          # the step the forward did before t
        row = t * B + b0
        # only rows b0 <= b < b0 + n have a step t; the others keep their dh_next (and
        # dc_next) untouched and get zero gate gradients (see "variable lengths", lengths.pxi)
        n = _active_end(bs, t, b0, b1) - b0
        if bs != NULL:
            _zero_gate_rows(dGx + (row + n) * GH, GH, G, H, j0, nc, rows - n)
            if mode == MODE_GRU:
                _zero_gate_rows(dGh + (row + n) * GH, GH, G, H, j0, nc, rows - n)
            if WhrP != NULL:
                _fill_rows(dHr + (row + n) * P, P, P, rows - n, <floating *> NULL, 0)
        if n == 0 and stop == NULL:
            continue
        if nc == 0:
            n = 0                                        # a thread without units: barriers only
        if t_prev < 0 or t_prev >= T:
            h_prev = h0 + b0 * P
            ldhp = P
            c_prev = c0 + b0 * H if c0 != NULL else NULL
        else:
            h_prev = Y + (t_prev * B + b0) * DP
            ldhp = DP
            c_prev = Cs + (t_prev * B + b0) * H if Cs != NULL else NULL
        # the cells of this loop's units: every pointer advanced by j0 (csrc/minirnn.h)
        if n == 0:
            pass
        elif mode == MODE_RNN_TANH or mode == MODE_RNN_RELU:
            if cv != NULL:
                k_elman_back_v(n, H, nc, cv, dY + row * DP + j0, DP, dh_next + j0,
                               Y + row * DP + j0, DP, S + row * SWH + j0 if S != NULL else NULL,
                               SWH, dGx + row * GH + j0, GH)
            else:
                k_elman_back(n, H, nc, mode == MODE_RNN_RELU, dY + row * DP + j0, DP,
                             dh_next + j0, Y + row * DP + j0, DP, dGx + row * GH + j0, GH)
        elif mode == MODE_GRU and WhnP != NULL:
            # the split product (reset before it): the cell writes dh * z into dh_next and
            # da_z, da_n
            k_gru_back_v(n, H, nc, cv, 0, dY + row * DP + j0, DP, dh_next + j0,
                         S + row * SWH + j0, SWH, h_prev + j0, ldhp, dGx + row * GH + j0, GH,
                         dGh + row * GH + j0, GH)
        elif mode == MODE_GRU:
            # writes the direct part dh * z into dh_next ...
            if cv == NULL:
                k_gru_back(n, H, nc, dY + row * DP + j0, DP, dh_next + j0, S + row * SWH + j0,
                           SWH, h_prev + j0, ldhp, dGx + row * GH + j0, GH,
                           dGh + row * GH + j0, GH)
            else:
                k_gru_back_v(n, H, nc, cv, 1, dY + row * DP + j0, DP, dh_next + j0,
                             S + row * SWH + j0, SWH, h_prev + j0, ldhp, dGx + row * GH + j0,
                             GH, dGh + row * GH + j0, GH)
        else:
            if WhrP == NULL:
                # the cell's "dy" and "dh_next": dL/dh_t from the output and via step t+1
                dy_cell, lddy, dh_cell = dY + row * DP, DP, dh_next
            else:
                # h_t feeds the output and the next step: dh_t = dy_t + dh_next (kept for
                # dW_hr)
                dht = dHr + row * P
                for b in range(n):
                    dyr = dY + (row + b) * DP
                    for j in range(P):
                        dht[b * P + j] = dyr[j] + dh_next[b * P + j]
                # backprop through h_t = m_t W_hr^T:  dm_t = dh_t W_hr      (n, H)
                k_gemm(n, H, P, dht, P, WhrP, dmb, H, 0, NULL)
                # the cell takes dL/dm_t as its "dy" (plus zeros: dm_t is the whole gradient)
                dy_cell, lddy, dh_cell = dmb, H, zeros
            if cv != NULL:
                k_lstm_back_v(n, H, nc, cv, pp + j0, dy_cell + j0, lddy, dh_cell + j0,
                              dc_next + j0, S + row * SWH + j0, SWH, c_prev + j0, H,
                              Cs + row * H + j0, H, dGx + row * GH + j0, GH)
            else:
                k_lstm_back(n, H, nc, dy_cell + j0, lddy, dh_cell + j0, dc_next + j0,
                            S + row * SWH + j0, SWH, c_prev + j0, H, dGx + row * GH + j0, GH)
        if stop != NULL:
            # every unit's gate gradients of step t written (and Ctrl-C agreed on)
            if minirnn_step_sync(stop, tid, s, watch):
                return
        if n == 0:
            if stop != NULL and WhnP != NULL:
                minirnn_barrier()                        # the same barriers on every thread
            continue
        # dh_{t-1}: this loop's columns [j0, j0 + hw) of dG_h W_hh
        if mode == MODE_RNN_TANH or mode == MODE_RNN_RELU:
            # backprop through G_h = h_{t-1} W_hh^T + b_hh:  dh_{t-1} = dG_h W_hh
            k_gemm(n, hw, GH, dGx + row * GH, GH, WhhP + j0 * GH, dh_next + j0, H, 0, NULL)
        elif mode == MODE_GRU and WhnP != NULL:
            # dq = da_n W_hn ...
            k_gemm(n, nc, H, dGh + row * GH + 2 * H, GH, WhnP + j0 * H, dmb + j0, H, 0, NULL)
            # ... da_r and dh_next += dq * r; then dG_h[r,z] W_hh[r,z] is added
            k_gru_back_r_v(n, H, nc, cv, dmb + j0, H, dh_next + j0, S + row * SWH + j0, SWH,
                           h_prev + j0, ldhp, dGx + row * GH + j0, GH, dGh + row * GH + j0, GH)
            if stop != NULL:
                minirnn_barrier()                        # every unit's da_r written
            k_gemm(n, nc, 2 * H, dGh + row * GH, GH, WhhP + j0 * 2 * H, dh_next + j0, H, 1,
                   NULL)
        elif mode == MODE_GRU:
            # ... to which dG_h W_hh is added
            k_gemm(n, nc, GH, dGh + row * GH, GH, WhhP + j0 * GH, dh_next + j0, H, 1, NULL)
        else:
            # dh_{t-1} = dG_h W_hh                                       (n, P)
            k_gemm(n, hw, GH, dGx + row * GH, GH, WhhP + j0 * GH, dh_next + j0, P, 0, NULL)
    for b in range(rows):
        memcpy(dh0 + (b0 + b) * P + j0, dh_next + b * P + j0, hw * sizeof(floating))
        if mode == MODE_LSTM:
            memcpy(dc0 + (b0 + b) * H + j0, dc_next + b * H + j0, nc * sizeof(floating))

# minirnn/_kernel_parts/backward_loop.pxi: the backward time loop of one (direction, batch slice).
# Included by minirnn/_kernels.pyx, in the order listed there (one extension module).

# --------------------------------------------------------------------------- backward

cdef void _backward_slice(int mode, bint reverse, Py_ssize_t T, Py_ssize_t B, Py_ssize_t b0,
                          Py_ssize_t b1, Py_ssize_t H, Py_ssize_t P, Py_ssize_t DP,
                          Py_ssize_t SWH, const int64_t *bs, const floating *WhhP,
                          const floating *WhrP, const floating *h0,
                          const floating *c0, const floating *Y, const floating *Cs,
                          const floating *S, const floating *dY, const floating *dhT,
                          const floating *dcT, floating *dGx, floating *dGh, floating *dHr,
                          floating *dh0, floating *dc0, floating *dh, floating *dc,
                          floating *dm, const floating *zeros, const mr_cell_variant *cv,
                          const floating *pp, const floating *WhnP, bint watch) noexcept nogil:
    """The reverse time loop of one direction over batch rows b0 <= b < b1.

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
    """
    cdef Py_ssize_t GH = GATES[mode] * H
    cdef Py_ssize_t rows = b1 - b0, s, t, t_prev, row, b, j, n
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
    memcpy(dh_next, dhT + b0 * P, rows * P * sizeof(floating))
    if mode == MODE_LSTM:
        memcpy(dc_next, dcT + b0 * H, rows * H * sizeof(floating))
    for s in range(T):
        if watch and minirnn_interrupted():
            return                                       # Ctrl-C: see "interrupts"
        # steps in the reverse of the forward's order
        t = s if reverse else T - 1 - s
        t_prev = t + 1 if reverse else t - 1          # the step the forward did before t
        row = t * B + b0
        # only rows b0 <= b < b0 + n have a step t; the others keep their dh_next (and
        # dc_next) untouched and get zero gate gradients (see "variable lengths", lengths.pxi)
        n = _active_end(bs, t, b0, b1) - b0
        if bs != NULL:
            _fill_rows(dGx + (row + n) * GH, GH, GH, rows - n, <floating *> NULL, 0)
            if mode == MODE_GRU:
                _fill_rows(dGh + (row + n) * GH, GH, GH, rows - n, <floating *> NULL, 0)
            if WhrP != NULL:
                _fill_rows(dHr + (row + n) * P, P, P, rows - n, <floating *> NULL, 0)
        if n == 0:
            continue
        if t_prev < 0 or t_prev >= T:
            h_prev = h0 + b0 * P
            ldhp = P
            c_prev = c0 + b0 * H if c0 != NULL else NULL
        else:
            h_prev = Y + (t_prev * B + b0) * DP
            ldhp = DP
            c_prev = Cs + (t_prev * B + b0) * H if Cs != NULL else NULL
        if mode == MODE_RNN_TANH or mode == MODE_RNN_RELU:
            if cv != NULL:
                k_elman_back_v(n, H, cv, dY + row * DP, DP, dh_next, Y + row * DP, DP,
                               S + row * SWH if S != NULL else NULL, SWH, dGx + row * GH, GH)
            elif floating is float:
                elman_cell_backward_f(n, H, mode == MODE_RNN_RELU, dY + row * DP, DP, dh_next,
                                      Y + row * DP, DP, dGx + row * GH, GH)
            else:
                elman_cell_backward_d(n, H, mode == MODE_RNN_RELU, dY + row * DP, DP, dh_next,
                                      Y + row * DP, DP, dGx + row * GH, GH)
            # backprop through G_h = h_{t-1} W_hh^T + b_hh:  dh_{t-1} = dG_h W_hh
            k_gemm(n, H, GH, dGx + row * GH, GH, WhhP, dh_next, H, 0, NULL)
        elif mode == MODE_GRU and WhnP != NULL:
            # the split product (reset before it): the cell writes dh * z into dh_next and
            # da_z, da_n; then dq = da_n W_hn ...
            k_gru_back_v(n, H, cv, 0, dY + row * DP, DP, dh_next, S + row * SWH, SWH,
                         h_prev, ldhp, dGx + row * GH, GH, dGh + row * GH, GH)
            k_gemm(n, H, H, dGh + row * GH + 2 * H, GH, WhnP, dmb, H, 0, NULL)
            # ... da_r and dh_next += dq * r; then dG_h[r,z] W_hh[r,z] is added
            k_gru_back_r_v(n, H, cv, dmb, H, dh_next, S + row * SWH, SWH, h_prev, ldhp,
                           dGx + row * GH, GH, dGh + row * GH, GH)
            k_gemm(n, H, 2 * H, dGh + row * GH, GH, WhhP, dh_next, H, 1, NULL)
        elif mode == MODE_GRU:
            # writes the direct part dh * z into dh_next ...
            if cv != NULL:
                k_gru_back_v(n, H, cv, 1, dY + row * DP, DP, dh_next, S + row * SWH, SWH,
                             h_prev, ldhp, dGx + row * GH, GH, dGh + row * GH, GH)
            elif floating is float:
                gru_cell_backward_f(n, H, dY + row * DP, DP, dh_next, S + row * SWH, SWH,
                                    h_prev, ldhp, dGx + row * GH, GH, dGh + row * GH, GH)
            else:
                gru_cell_backward_d(n, H, dY + row * DP, DP, dh_next, S + row * SWH, SWH,
                                    h_prev, ldhp, dGx + row * GH, GH, dGh + row * GH, GH)
            # ... to which dG_h W_hh is added
            k_gemm(n, H, GH, dGh + row * GH, GH, WhhP, dh_next, H, 1, NULL)
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
                k_lstm_back_v(n, H, cv, pp, dy_cell, lddy, dh_cell, dc_next, S + row * SWH, SWH,
                              c_prev, H, Cs + row * H, H, dGx + row * GH, GH)
            elif floating is float:
                lstm_cell_backward_f(n, H, dy_cell, lddy, dh_cell, dc_next, S + row * SWH,
                                     SWH, c_prev, H, dGx + row * GH, GH)
            else:
                lstm_cell_backward_d(n, H, dy_cell, lddy, dh_cell, dc_next, S + row * SWH,
                                     SWH, c_prev, H, dGx + row * GH, GH)
            # dh_{t-1} = dG_h W_hh                                       (n, P)
            k_gemm(n, P, GH, dGx + row * GH, GH, WhhP, dh_next, P, 0, NULL)
    memcpy(dh0 + b0 * P, dh_next, rows * P * sizeof(floating))
    if mode == MODE_LSTM:
        memcpy(dc0 + b0 * H, dc_next, rows * H * sizeof(floating))

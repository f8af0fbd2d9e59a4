# minirnn/_kernel_parts/backward.pxi: backward_layer: checks, buffers, the phases in order.
# Included by minirnn/_kernels.pyx, in the order listed there (one extension module).

def backward_layer(int mode, X, tuple weights, h0, c0, Y, Cs, S, dY, dhT, dcT, dX, dh0, dc0,
                   tuple grads, M=None, batch_sizes=None, variant=None, list pack=None):
    """Backpropagate one layer (every direction) through time.

    X, weights, h0, c0, Y, Cs, S, M: as given to and written by forward_layer (training).
    dY (T, B, D*P) gradient of Y; dhT (D, B, P), dcT (D, B, H) gradients of the final states
    (dcT LSTM). OUT dX (T, B, I), dh0 (D, B, P), dc0 (D, B, H) (dc0 LSTM, else None).
    grads: per direction (dW_ih, dW_hh, db_ih or None, db_hh or None[, dW_hr or None[,
    dW_peephole]]), ACCUMULATED into; dW_hr is given exactly when the weights have W_hr, and
    dW_peephole exactly when they have W_peephole.
    batch_sizes, variant: as given to forward_layer. dX is zero at padded positions.
    pack: None (pack W_hh, W_ih (, W_hr) as right operands into scratch memory for this call),
    or a list the caller keeps with the layer (not the forward's: the backward's panels are
    laid out otherwise), empty at first: the panels are kept there and used again while the
    weights have the same fingerprints, as forward_layer's ``pack``.
    """
    dtype = _dtype_of(X)
    if dtype is _F32:
        _backward_layer(<float *> NULL, dtype, mode, X, weights, h0, c0, Y, Cs, S, dY, dhT, dcT,
                        dX, dh0, dc0, grads, M, batch_sizes, variant, pack)
    else:
        _backward_layer(<double *> NULL, dtype, mode, X, weights, h0, c0, Y, Cs, S, dY, dhT,
                        dcT, dX, dh0, dc0, grads, M, batch_sizes, variant, pack)


cdef int _backward_layer(floating *kind, object dtype, int mode, object X, tuple weights,
                         object h0, object c0, object Y, object Cs, object S, object dY,
                         object dhT, object dcT, object dX, object dh0, object dc0, tuple grads,
                         object M, object batch_sizes, object variant, list pack) except -1:
    cdef _Sizes z
    _layer_sizes(mode, X, weights, h0, c0, &z)
    cdef _Var var
    _parse_variant(mode, variant, z.D, _has_peepholes(weights, z.D), &var)
    cdef Py_ssize_t D = z.D, T = z.T, B = z.B, I = z.In, H = z.H, P = z.P
    cdef Py_ssize_t GH = z.GH, DP = D * P, SWH = _saved_width(mode, &var) * H
    cdef bint lstm = mode == MODE_LSTM, proj = z.proj
    cdef Py_ssize_t TB = T * B
    _check(len(grads) == D, "grads must hold one entry per direction")
    cdef floating *pX
    cdef floating *pY
    cdef floating *ph0
    cdef floating *pdY
    cdef floating *pdhT
    cdef floating *pdX
    cdef floating *pdh0
    cdef floating *pc0 = NULL
    cdef floating *pdcT = NULL
    cdef floating *pdc0 = NULL
    cdef floating *pCs = NULL
    cdef floating *pS = NULL
    cdef floating *pM = NULL
    _data(X, "X", dtype, False, <void **> &pX, T, B, I)
    _data(h0, "h0", dtype, False, <void **> &ph0, D, B, P)
    _data(Y, "Y", dtype, False, <void **> &pY, T, B, DP)
    _data(dY, "dY", dtype, False, <void **> &pdY, T, B, DP)
    _data(dhT, "dhT", dtype, False, <void **> &pdhT, D, B, P)
    _data(dX, "dX", dtype, True, <void **> &pdX, T, B, I)
    _data(dh0, "dh0", dtype, True, <void **> &pdh0, D, B, P)
    cdef const int64_t *pbs = NULL
    # the rows of the weight gradients' sums: all T*B, or (packed) those that take a step,
    # row t*B + b for b < bs[t], in that order (the others have zero gate gradients)
    cdef Py_ssize_t K_w = TB
    cdef const Py_ssize_t *prows = NULL
    cdef object rows = None
    if batch_sizes is not None:
        batch_sizes = _check_batch_sizes(batch_sizes, T, B)
        pbs = <const int64_t *> cnp.PyArray_DATA(<cnp.ndarray> batch_sizes)
        rows = np.arange(TB, dtype=np.intp).reshape(T, B)[
            np.arange(B)[None, :] < np.asarray(batch_sizes)[:, None]]
        K_w = rows.shape[0]
        prows = <const Py_ssize_t *> cnp.PyArray_DATA(<cnp.ndarray> rows)
    if lstm:
        for a, name in ((c0, "c0"), (dcT, "dcT"), (dc0, "dc0")):
            if a is None:
                _fail(f"LSTM needs {name}")
        _data(c0, "c0", dtype, False, <void **> &pc0, D, B, H)
        _data(dcT, "dcT", dtype, False, <void **> &pdcT, D, B, H)
        _data(dc0, "dc0", dtype, True, <void **> &pdc0, D, B, H)
        _data(Cs, "Cs", dtype, False, <void **> &pCs, D, T, B, H)
    else:
        _check(c0 is None and dcT is None and dc0 is None and Cs is None,
               "only LSTM takes c0, dcT, dc0 and Cs")
    if SWH > 0:
        _data(S, "S", dtype, False, <void **> &pS, D, T, B, SWH)
    if proj:
        _data(M, "M", dtype, False, <void **> &pM, D, T, B, H)
    else:
        _check(M is None, "M is kept only with projections (W_hr)")

    # the arrays of each direction, W_ih, W_hh, b_ih, b_hh, W_hr, and their gradients
    cdef floating *wts[2][6]
    cdef floating *grd[2][6]
    cdef Py_ssize_t d
    for d in range(D):
        _direction_arrays(weights[d], False, d, GH, I, P, H, proj, var.peephole, False, dtype,
                          <void **> wts[d])
        _direction_arrays(grads[d], True, d, GH, I, P, H, proj, var.peephole, True, dtype,
                          <void **> grd[d])
        _check((grd[d][2] == NULL) == (grd[d][3] == NULL), "bias gradients come in pairs")
    cdef const floating *Wih[2]
    cdef const floating *Whh[2]
    cdef const floating *Whr[2]
    cdef floating *dWih[2]
    cdef floating *dWhh[2]
    cdef floating *dWhr[2]
    cdef floating *dbih[2]
    cdef floating *dbhh[2]
    dbih[0] = dbih[1] = dbhh[0] = dbhh[1] = NULL     # set below (D >= 1; gcc cannot tell)
    for d in range(D):
        Wih[d], Whh[d], Whr[d] = wts[d][0], wts[d][1], wts[d][4]
        dWih[d], dWhh[d], dbih[d], dbhh[d], dWhr[d] = (grd[d][0], grd[d][1], grd[d][2], grd[d][3],
                                                     grd[d][4])
    cdef bint has_bias = dbih[0] != NULL
    if D == 2:
        _check((dbih[1] != NULL) == has_bias, "bias gradients for both directions or neither")

    cdef Py_ssize_t NR = k_panel_width(<floating *> NULL)
    cdef Py_ssize_t pan_H = (H + NR - 1) // NR, pan_P = (P + NR - 1) // NR
    cdef Py_ssize_t pan_I = (I + NR - 1) // NR
    cdef Py_ssize_t size_hh = pan_P * NR * GH, size_ih = pan_I * NR * GH
    cdef Py_ssize_t size_hr = pan_H * NR * P if proj else 0
    # X, H_prev (and M) in register tiles of TR_I, TR_P (TR_H) rows (k_pack_tiles)
    cdef Py_ssize_t TR_I = max(1, k_tile_rows(<floating *> NULL, I))
    cdef Py_ssize_t TR_P = max(1, k_tile_rows(<floating *> NULL, P))
    cdef Py_ssize_t til_I = (I + TR_I - 1) // TR_I, til_P = (P + TR_P - 1) // TR_P
    cdef Py_ssize_t size_X = til_I * TR_I * TB, size_Ht = til_P * TR_P * TB
    cdef Py_ssize_t TR_H = max(1, k_tile_rows(<floating *> NULL, H))
    # M (projections) or Q (the reset before the product)
    cdef Py_ssize_t til_M = (H + TR_H - 1) // TR_H if proj or var.before else 0
    cdef Py_ssize_t size_M = til_M * TR_H * TB
    # a work buffer for k_weight_grad per thread, whole cache lines each
    cdef int nt = _threads(), team
    cdef Py_ssize_t wg_size = (max(k_weight_grad_work(<floating *> NULL, I, P),
                                   k_weight_grad_work(<floating *> NULL, H, 0)) + 15) // 16 * 16
    cdef Py_ssize_t n_sl = _team_slices(
        _n_slices(B, D, (GH * P + (P * H if proj else 0)) * sizeof(floating)), D, nt)
    cdef Py_ssize_t n_pblk = (P + WG_COLS - 1) // WG_COLS
    cdef Py_ssize_t n_rblk = (TB + BLOCK_ROWS - 1) // BLOCK_ROWS, n_xcblk = 1
    if 0 < n_rblk < 2 * nt:
        # few blocks of rows of dX (small batches, short sequences): their columns split too
        n_xcblk = min(pan_I, (2 * nt + n_rblk - 1) // n_rblk)
    # the reverse time loop's units: batch slices, or blocks of hidden units (schedule.pxi)
    cdef int blocks_team = _blocks_team(True, D, B, H, GATES[mode], P, proj, n_sl, nt,
                                        GH * P * sizeof(floating), NR)
    cdef Py_ssize_t S_b = 2 * H if mode == MODE_GRU else GH    # see "bias gradients" there
    cdef Py_ssize_t n_wsh = (S_b + WG_COLS - 1) // WG_COLS
    cdef Py_ssize_t n_wun = (GH - S_b + WG_COLS - 1) // WG_COLS
    # few blocks (small G*H): the products of a shared block in two units, for the team
    cdef Py_ssize_t wsplit = 2 if D * (n_wsh + 2 * n_wun) < WG_UNITS else 1
    cdef Py_ssize_t n_w = D * (n_wsh * wsplit + 2 * n_wun)
    cdef Py_ssize_t n_r = D * n_pblk if proj else 0
    cdef Py_ssize_t n_mat = 3 if proj else 2
    cdef Py_ssize_t n_pack = til_I + D * (til_P + til_M)
    cdef Py_ssize_t n_pp = D * ((H + WG_COLS - 1) // WG_COLS) if var.peephole else 0
    cdef Py_ssize_t n_big = n_w + n_r + n_pp + n_rblk * n_xcblk
    global _largest_team
    _largest_team = 0
    _last_blocks[1] = blocks_team > 0
    # the work buffers of phase 4: one per thread of the team it actually runs on
    cdef int team_big = _team(nt, n_big, <double> D * TB * GH * (2 * I + P + H))
    # Pack once, as forward_layer: the backward's panels live in an array kept in `pack`, with
    # the fingerprints of the weights they were packed from and their layout; a call whose
    # weights have the same fingerprints skips phase 1 (an in-place write is always seen), and
    # a call given the frozen weights the panels were packed from skips the fingerprint too.
    cdef bint packed_ok = False, frozen = False
    cdef uint64_t fp[12]
    cdef Py_ssize_t n_fp = 0, isz = sizeof(floating)
    cdef char *pan = NULL
    if pack is not None:
        layout = ("backward", mr_get_isa(), NR, dtype, mode, D, I, H, P, proj, var.before)
        frozen = (len(pack) == 4 and pack[3] is weights and pack[0] == layout
                  and _panels_where_packed(pack) and _immutable_weights(weights, D, proj))
        if not frozen:
            with nogil:
                n_fp = _weight_fingerprints(<const void **> Wih, <const void **> Whh,
                                            <const void **> Whr, D, GH * I * isz,
                                            GH * P * isz, P * H * isz if proj else 0, fp, nt)
        if frozen or (len(pack) == 4 and pack[0] == layout and _panels_where_packed(pack)
                      and memcmp(fp, cnp.PyArray_DATA(<cnp.ndarray> pack[1]), n_fp * 8) == 0):
            packed_ok = True
            panels = pack[2]
        else:
            panels = np.empty(D * (size_hh + size_ih + size_hr) + 64 // isz, dtype)
            fps = _new_fingerprints(fp, n_fp, panels)
            kept = weights if _immutable_weights(weights, D, proj) else None
        _last_fingerprint[1] = not frozen
        pan = <char *> cnp.PyArray_DATA(<cnp.ndarray> panels)
        pan += (-<size_t> pan) % 64                      # the first 64-byte boundary
    cdef floating *bufs[14]
    cdef Py_ssize_t sizes[14]
    sizes[:] = [D * size_hh, D * size_ih, D * size_hr, size_X, D * size_Ht, D * size_M,
                D * TB * GH, D * TB * GH if mode == MODE_GRU else 1, D * TB * P if proj else 1,
                D * B * P, D * B * H if lstm else 1, D * B * H if proj or var.before else 1,
                max(B * H if proj else 1, 3 * H if lstm and var.cells else 1),
                team_big * wg_size]
    if pack is not None:
        sizes[0] = sizes[1] = sizes[2] = 1
    _scratch(dtype, sizes, 14, <void **> bufs)
    if pack is not None:
        bufs[0] = <floating *> pan
        bufs[1] = bufs[0] + D * size_hh
        bufs[2] = bufs[1] + D * size_ih
    cdef floating *pWhhP = bufs[0]
    cdef floating *pWihP = bufs[1]
    cdef floating *pWhrP = bufs[2]
    cdef floating *pXt = bufs[3]
    cdef floating *pHt = bufs[4]
    cdef floating *pMt = bufs[5]
    cdef floating *pdGx = bufs[6]
    cdef floating *pdGh = bufs[7] if mode == MODE_GRU else pdGx
    cdef floating *pdHr = bufs[8]
    cdef floating *pdh = bufs[9]
    cdef floating *pdc = bufs[10]
    cdef floating *pdm = bufs[11]
    cdef floating *pzeros = bufs[12]
    cdef floating *pwork = bufs[13]
    memset(pzeros, 0, max(B * H if proj else 1, 3 * H if lstm and var.cells else 1)
           * sizeof(floating))

    if B == 0:
        return 0
    # what the four phases need, for _backward_unit (as in forward_layer)
    cdef _Bwd g
    g.mode, g.D, g.T, g.B, g.In, g.H, g.P = mode, D, T, B, I, H, P
    g.DP, g.GH, g.SWH, g.TB = DP, GH, SWH, TB
    g.n_sl, g.n_mat, g.pan_I, g.pan_P, g.pan_H = n_sl, n_mat, pan_I, pan_P, pan_H
    g.size_hh, g.size_ih, g.size_hr = size_hh, size_ih, size_hr
    g.size_Ht, g.size_M = size_Ht, size_M
    g.til_I, g.til_P, g.til_M, g.n_pblk, g.n_w, g.n_r = til_I, til_P, til_M, n_pblk, n_w, n_r
    g.S_b, g.n_wsh, g.n_wun, g.wsplit, g.bias = S_b, n_wsh, n_wun, wsplit, has_bias
    g.wg_size, g.wg_work = wg_size, pwork
    g.watch = _watch(<double> D * TB * GH * 2 * (I + P))
    g.blocks, g.n_xcblk = blocks_team > 0, n_xcblk
    g.stop[0] = g.stop[1] = 0
    g.K_w, g.rows = K_w, prows
    g.proj, g.lstm, g.bs = proj, lstm, pbs
    g.X, g.Y, g.h0, g.c0, g.Cs, g.S, g.M = pX, pY, ph0, pc0, pCs, pS, pM
    g.var, g.n_pp, g.ldM, g.M_ds = var, n_pp, H, TB * H
    if var.before:
        g.M, g.ldM, g.M_ds = pS + 3 * H, SWH, TB * SWH       # Q: S's 4th block
    for d in range(D):
        g.pp[d] = <void *> (wts[d][5] if var.peephole else pzeros)
        g.dpp[d] = <void *> grd[d][5]
    g.dY, g.dhT, g.dcT, g.dX, g.dh0, g.dc0 = pdY, pdhT, pdcT, pdX, pdh0, pdc0
    g.WhhP, g.WihP, g.WhrP, g.Xt, g.Ht, g.Mt = pWhhP, pWihP, pWhrP, pXt, pHt, pMt
    g.dGx, g.dGh, g.dHr, g.dh, g.dc, g.dm, g.zeros = pdGx, pdGh, pdHr, pdh, pdc, pdm, pzeros
    for d in range(D):
        g.Wih[d], g.Whh[d], g.Whr[d] = <void *> Wih[d], <void *> Whh[d], <void *> Whr[d]
        g.dWih[d], g.dWhh[d], g.dWhr[d], g.dbih[d], g.dbhh[d] = (dWih[d], dWhh[d], dWhr[d],
                                                                 dbih[d], dbhh[d])
    with nogil:
        # 1. pack W_hh, W_ih (, W_hr) as right operands     units: direction x matrix
        #    (unless `pack` holds them, packed from the same weights)
        if not packed_ok:
            _backward_phase(<floating *> NULL, &g, 0, n_mat * D,
                            _team(nt, n_mat * D, PACK_COST * D * GH * (I + P + H)))
        # 2. the reverse time loops                          units: direction x batch slice,
        #                                                    or x block of hidden units
        if blocks_team > 0:
            _backward_phase(<floating *> NULL, &g, 4, 1,
                            _team(blocks_team, blocks_team, PARALLEL_MIN_WORK))
        else:
            _backward_phase(<floating *> NULL, &g, 1, D * n_sl,
                            _team(nt, D * n_sl, <double> D * TB * (GH + H) * P))
        # 3. pack X, H_prev (, M) for the weight gradients   units: register tiles
        _backward_phase(<floating *> NULL, &g, 2, n_pack,
                        _team(nt, n_pack, PACK_COST * TB * (I + D * (P + H))))
        # 4. the big products and sums after the loop        units: blocks of result rows
        #                                                    (dX: and of columns)
        _backward_phase(<floating *> NULL, &g, 3, n_big, team_big)
    cdef bint stopped = g.watch and minirnn_unwatch_sigint()
    if pack is not None and not packed_ok and not stopped:
        pack[:] = [layout, fps, panels, kept]
    if stopped:
        _interrupted()
    return 0


# --------------------------------------------------------------------------- build facts

def openmp_enabled():
    """True when this extension was compiled with OpenMP (the compiler defined ``_OPENMP``)."""
    return MINIRNN_OPENMP_VERSION != 0


def get_max_threads():
    """The number of threads an OpenMP region would use by default (``omp_get_max_threads()``,
    which honours ``OMP_NUM_THREADS``); 1 in a serial build."""
    return minirnn_omp_max_threads()


def build_info():
    """How this extension was built: ``{"openmp": bool, "openmp_version": int (yyyymm, 0 if
    none), "compile_args": str}``."""
    return {
        "openmp": MINIRNN_OPENMP_VERSION != 0,
        "openmp_version": int(MINIRNN_OPENMP_VERSION),
        "compile_args": (<bytes>MINIRNN_COMPILE_ARGS).decode("ascii", "replace"),
    }


def _threads_used(int num_threads):
    """Open an OpenMP region asking for ``num_threads`` threads and return how many it got
    (1 in a serial build). A test uses it to catch a build that silently lost OpenMP."""
    if num_threads < 1:
        raise ValueError("num_threads must be >= 1, got %d" % num_threads)
    global _teams_started
    num_threads = 1 if _forked_serial else num_threads      # see "fork", schedule.pxi
    _teams_started = _teams_started or num_threads > 1
    cdef int used
    with nogil:
        used = minirnn_omp_threads_used(num_threads)
    return used


# Work unit of _parallel_sum: fixed by the problem, not by the number of threads.
cdef Py_ssize_t SUM_CHUNK = 4096


cdef inline double _sum_range(const double *x, Py_ssize_t start, Py_ssize_t stop) noexcept nogil:
    """x[start:stop] summed left to right."""
    cdef double s = 0.0
    cdef Py_ssize_t i
    for i in range(start, stop):
        s += x[i]
    return s


def _parallel_sum(const double[::1] x, int num_threads=1):
    """Sum of ``x`` computed in parallel, bitwise identical for any ``num_threads``.

    x is cut into chunks of SUM_CHUNK elements; each chunk is summed left to right by whichever
    thread gets it (``prange``, static schedule), each into its own slot of ``partial``
    (disjoint writes); then the chunk sums are added in chunk order by one thread.

    A self-test of the OpenMP build, not a fast sum.
    """
    if num_threads < 1:
        raise ValueError("num_threads must be >= 1, got %d" % num_threads)
    global _teams_started
    num_threads = 1 if _forked_serial else num_threads      # see "fork", schedule.pxi
    _teams_started = _teams_started or num_threads > 1
    cdef Py_ssize_t n = x.shape[0]
    if n == 0:
        return 0.0
    cdef Py_ssize_t n_chunks = (n + SUM_CHUNK - 1) // SUM_CHUNK
    cdef double *partial = <double *> malloc(n_chunks * sizeof(double))   # (n_chunks,) OUT
    if partial == NULL:
        raise MemoryError()
    cdef const double *px = &x[0]
    cdef Py_ssize_t c, start, stop
    cdef double total = 0.0
    try:
        with nogil:
            for c in prange(n_chunks, schedule="static", num_threads=num_threads):
                start = c * SUM_CHUNK
                stop = start + SUM_CHUNK
                if stop > n:
                    stop = n
                partial[c] = _sum_range(px, start, stop)
            for c in range(n_chunks):
                total += partial[c]
    finally:
        free(partial)
    return total

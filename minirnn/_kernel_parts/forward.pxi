# minirnn/_kernel_parts/forward.pxi: forward_layer: its work units, phases, checks and buffers.
# Included by minirnn/_kernels.pyx, in the order listed there (one extension module).

from cpython.bytes cimport PyBytes_CheckExact
from cpython.ref cimport PyObject

ctypedef struct _Fwd:
    # the shapes and arrays of one forward_layer call (see forward_layer)
    int mode
    # In is I (a C macro: complex.h's imaginary unit)
    Py_ssize_t D, T, B, In, H, P, DP, GH, SWH, TB, n_pan, pan_P, n_mat, n_blk, n_sl
    Py_ssize_t n_cblk       # G_x: blocks of columns per block of rows
    bint blocks             # the time loop's units are blocks of hidden units (schedule.pxi)
    Py_ssize_t gstride      # blocks: where each gate's columns of W_hh^T start (else 0)
    bint gate_pan           # ... packed gate by gate (H not a multiple of the panel width)
    int stop[2]             # blocks: Ctrl-C, as the threads agreed (minirnn_step_sync)
    Py_ssize_t size_ih, size_hh, size_hr
    bint proj, lstm, training
    bint step_gx            # each time loop computes its own G_x rows (see "input product")
    bint watch              # stop early on Ctrl-C (see "interrupts")
    const int64_t *bs
    const int64_t *blk      # with batch_sizes: (first row, rows) of each block of G_x, else NULL
    void *X
    void *Y
    void *h0
    void *c0
    void *hT
    void *cT
    void *Cs
    void *S
    void *M
    void *WihP
    void *WhhP
    void *WhrP
    void *Gx
    void *gh
    void *cbuf
    void *mbuf
    void *Wih[2]
    void *Whh[2]
    void *Whr[2]
    void *bih[2]
    void *bhh[2]
    # the cell variant (see "cell variants"): var.cells, var.before, var.rev[d] ...
    _Var var
    Py_ssize_t off_n        # GRU reset before the product: where W_hn^T starts in WhhP
    void *pp[2]             # LSTM variant: the peepholes (3H,) of each direction, or zeros
    void *qbuf


cdef void _forward_unit(floating *kind, _Fwd *f, int phase, Py_ssize_t u) noexcept nogil:
    """Work unit u of a phase of forward_layer: 0 pack one matrix, 1 one block of G_x (rows
    and columns), 2 the time loop of one (direction, batch slice), 3 (the small-batch
    schedule; one per thread) the time loop of this thread's block of hidden units."""
    cdef Py_ssize_t d, k, r, r0, rows, b0, b1, q0, q1
    cdef Py_ssize_t TB = f.TB, GH = f.GH, B = f.B, P = f.P, H = f.H, I = f.In
    cdef floating *WihP = <floating *> f.WihP
    cdef floating *WhhP = <floating *> f.WhhP
    cdef floating *WhrP = <floating *> f.WhrP
    cdef floating *Gx = <floating *> f.Gx
    if phase == 0:
        # W_ih^T (K = I, N = GH), W_hh^T (K = P, N = GH), W_hr^T (K = H, N = P): B(k, n) = W[n, k]
        d = u // f.n_mat
        if u % f.n_mat == 0:
            k_pack(I, GH, <floating *> f.Wih[d], 1, I, WihP + d * f.size_ih, 0, I, 0, f.n_pan)
        elif u % f.n_mat == 1 and f.gate_pan:
            # the small-batch schedule: each gate's H columns in panels of their own
            for k in range(GATES[f.mode]):
                k_pack(P, H, <floating *> f.Whh[d] + k * H * P, 1, P,
                       WhhP + d * f.size_hh + k * f.gstride, 0, P, 0,
                       (H + k_panel_width(kind) - 1) // k_panel_width(kind))
        elif u % f.n_mat == 1 and f.var.before:
            # the split product: W_hh's r, z rows (N = 2H) and its n rows (N = H) apart
            k_pack(P, 2 * H, <floating *> f.Whh[d], 1, P, WhhP + d * f.size_hh, 0, P, 0,
                   (2 * H + k_panel_width(kind) - 1) // k_panel_width(kind))
            k_pack(P, H, <floating *> f.Whh[d] + 2 * H * P, 1, P,
                   WhhP + d * f.size_hh + f.off_n, 0, P, 0,
                   (H + k_panel_width(kind) - 1) // k_panel_width(kind))
        elif u % f.n_mat == 1:
            k_pack(P, GH, <floating *> f.Whh[d], 1, P, WhhP + d * f.size_hh, 0, P, 0, f.n_pan)
        else:
            k_pack(H, P, <floating *> f.Whr[d], 1, H, WhrP + d * f.size_hr, 0, H, 0, f.pan_P)
    elif phase == 1:
        # a block of rows and of columns [q0, q1) (whole panels) of one direction's G_x
        d = u // (f.n_blk * f.n_cblk)
        k = u % (f.n_blk * f.n_cblk)
        r = k // f.n_cblk
        q0 = k % f.n_cblk * f.n_pan // f.n_cblk * k_panel_width(kind)
        q1 = min((k % f.n_cblk + 1) * f.n_pan // f.n_cblk * k_panel_width(kind), GH)
        if f.blk == NULL:
            r0 = r * BLOCK_ROWS
            rows = min(BLOCK_ROWS, TB - r0)
        else:
            r0 = f.blk[2 * r]
            rows = f.blk[2 * r + 1]
        k_gemm(rows, q1 - q0, I, <floating *> f.X + r0 * I, I, WihP + d * f.size_ih + q0 * I,
               Gx + (d * TB + r0) * GH + q0, GH, 0,
               <floating *> f.bih[d] + q0 if f.bih[d] != NULL else NULL)
    elif phase == 3:
        _forward_blocks(kind, f)
    else:
        # each (direction, batch slice) runs alone to its end: no barrier per step
        d = u // f.n_sl
        k = u % f.n_sl
        b0 = k * B // f.n_sl
        b1 = (k + 1) * B // f.n_sl
        _forward_slice(f.mode, f.var.rev[d], f.T, B, b0, b1, H, P, f.DP, f.SWH, f.bs,
                       Gx + d * (B if f.step_gx else TB) * GH, <floating *> f.X, I,
                       WihP + d * f.size_ih if f.step_gx else NULL, <floating *> f.bih[d],
                       WhhP + d * f.size_hh, <floating *> f.bhh[d],
                       WhrP + d * f.size_hr if f.proj else NULL,
                       <floating *> f.h0 + d * B * P,
                       <floating *> f.c0 + d * B * H if f.lstm else NULL,
                       <floating *> f.Y + d * P, <floating *> f.hT + d * B * P,
                       <floating *> f.cT + d * B * H if f.lstm else NULL,
                       <floating *> f.Cs + d * TB * H if f.Cs != NULL else NULL,
                       <floating *> f.S + d * TB * f.SWH if f.S != NULL else NULL,
                       <floating *> f.M + d * TB * H if f.M != NULL else NULL,
                       <floating *> f.gh + d * B * GH, <floating *> f.cbuf + d * 2 * B * H,
                       <floating *> f.mbuf + d * B * H if f.proj and not f.training else NULL,
                       _cell_variant(&f.var, d), <floating *> f.pp[d],
                       WhhP + d * f.size_hh + f.off_n if f.var.before else NULL,
                       <floating *> f.qbuf + d * B * H if f.var.before else NULL,
                       f.watch, 0, H, 0, NULL, 0)


cdef void _forward_blocks(floating *kind, _Fwd *f) noexcept nogil:
    """The time loops of the small-batch schedule (schedule.pxi), on the calling thread of a
    parallel region: its block of hidden units of one direction, every batch row (see
    _unit_block), all threads stepping together (SCHEDULE in _forward_slice)."""
    cdef int tid, nth
    cdef Py_ssize_t d, j0, j1, B = f.B, H = f.H, P = f.P, TB = f.TB, GH = f.GH
    minirnn_team(&tid, &nth)
    cdef floating *WhhP = <floating *> f.WhhP
    for d in range(f.D):
        if not _unit_block(f.D, H, k_panel_width(kind), tid, nth, d, &j0, &j1):
            continue
        _forward_slice(f.mode, f.var.rev[d], f.T, B, 0, B, H, P, f.DP, f.SWH, f.bs,
                       <floating *> f.Gx + d * TB * GH, <floating *> f.X, f.In, NULL,
                       <floating *> f.bih[d], WhhP + d * f.size_hh, <floating *> f.bhh[d], NULL,
                       <floating *> f.h0 + d * B * P,
                       <floating *> f.c0 + d * B * H if f.lstm else NULL,
                       <floating *> f.Y + d * P, <floating *> f.hT + d * B * P,
                       <floating *> f.cT + d * B * H if f.lstm else NULL,
                       <floating *> f.Cs + d * TB * H if f.Cs != NULL else NULL,
                       <floating *> f.S + d * TB * f.SWH if f.S != NULL else NULL, NULL,
                       <floating *> f.gh + d * B * GH, <floating *> f.cbuf + d * 2 * B * H,
                       NULL, _cell_variant(&f.var, d), <floating *> f.pp[d],
                       WhhP + d * f.size_hh + f.off_n if f.var.before else NULL,
                       <floating *> f.qbuf + d * B * H if f.var.before else NULL,
                       f.watch, j0, j1, f.gstride, f.stop, tid)


cdef void _forward_phase(floating *kind, _Fwd *f, int phase, Py_ssize_t units,
                         int team) noexcept nogil:
    """Run units 0..units-1 of a phase on `team` threads. One thread runs them in a plain loop:
    entering an OpenMP region, even with if(false), costs ~0.7 us in libgomp (measured: a
    tiny LSTM call 19.1 -> 16.7 us without any region)."""
    cdef Py_ssize_t u
    if phase == 3 and team > 1:
        # the small-batch schedule: one region, every thread its block of units
        with parallel(num_threads=team):
            _forward_unit(kind, f, 3, 0)
    elif team > 1:
        for u in prange(units, schedule="dynamic", num_threads=team):
            if not (f.watch and minirnn_interrupted()):
                _forward_unit(kind, f, phase, u)
    else:
        for u in range(units):
            if not (f.watch and minirnn_interrupted()):
                _forward_unit(kind, f, phase, u)


cdef int _check_lstm_shapes(Py_ssize_t D, tuple weights, bint lstm, object c0, Py_ssize_t P,
                            Py_ssize_t *H, bint *proj) except -1:
    """The hidden size H and whether the layer projects (every direction's 5th weight W_hr
    given). Without projections H = P (the width of h); with them H is c0's width."""
    cdef Py_ssize_t d, n_hr = 0
    for d in range(D):
        w = weights[d]
        n_hr += len(w) >= 5 and w[4] is not None
    _check(n_hr == 0 or n_hr == D, "W_hr must be given for every direction or none")
    proj[0] = n_hr == D
    _check(lstm or not proj[0], "only LSTM takes W_hr (projections)")
    if proj[0]:
        _check(c0 is not None and len(c0.shape) == 3, "LSTM needs c0 of shape (D, B, H)")
    H[0] = c0.shape[2] if proj[0] else P
    return 0


# whether the latest forward_layer [0] and backward_layer [1] call with `pack` read the
# weights for their fingerprint (False: frozen weights, see "Pack once") (for tests)
cdef bint _last_fingerprint[2]


def _fingerprinted_last_call(bint backward=False):
    """Whether the latest forward_layer (backward_layer) call given a `pack` computed the
    fingerprint of its weights (False when it skipped it: frozen weights, see "Pack once")."""
    return _last_fingerprint[1 if backward else 0]


# The fingerprints of a call's weights (W_ih, W_hh, W_hr of each direction, in that order,
# two words each) read them all once more. With weights of FP_PARALLEL_BYTES or more in all
# and a team, the matrices are shared out among the threads, one whole matrix per unit: each
# fingerprint is the same number whoever takes it. Measured (AMD EPYC Zen 5, 2 threads, quiet:
# LSTM 512/512, batch 1, one step per call, 8 MiB of W_ih and W_hh): see docs/performance.md,
# "Frozen weights". Below it a team's wake-up costs more than half the read saves.
cdef Py_ssize_t FP_PARALLEL_BYTES = 2 * 1024 * 1024


def _set_fp_parallel_bytes(Py_ssize_t nbytes):
    """Set FP_PARALLEL_BYTES; returns the previous value (tests: 0 shares the fingerprints of
    any weights out among a team)."""
    global FP_PARALLEL_BYTES
    old = FP_PARALLEL_BYTES
    FP_PARALLEL_BYTES = max(nbytes, 0)
    return old


cdef Py_ssize_t _weight_fingerprints(const void **Wih, const void **Whh, const void **Whr,
                                     Py_ssize_t D, Py_ssize_t ih_bytes, Py_ssize_t hh_bytes,
                                     Py_ssize_t hr_bytes, uint64_t *fp, int nt) noexcept nogil:
    """The fingerprints of D directions' W_ih, W_hh (and, with hr_bytes > 0, W_hr) into fp,
    two words per matrix in that order; returns the words written."""
    cdef const void *mats[6]
    cdef Py_ssize_t nbytes[6]
    cdef Py_ssize_t d, u, n = 0, total = 0
    cdef int team = 1
    for d in range(D):
        mats[n], nbytes[n] = Wih[d], ih_bytes
        mats[n + 1], nbytes[n + 1] = Whh[d], hh_bytes
        n += 2
        if hr_bytes > 0:
            mats[n], nbytes[n] = Whr[d], hr_bytes
            n += 1
    for u in range(n):
        total += nbytes[u]
    if total >= FP_PARALLEL_BYTES:
        team = _team(nt, n, PARALLEL_MIN_WORK)
    if team > 1:
        for u in prange(n, num_threads=team, schedule="dynamic"):
            mr_fingerprint(mats[u], nbytes[u], fp + 2 * u)
    else:
        for u in range(n):
            mr_fingerprint(mats[u], nbytes[u], fp + 2 * u)
    return 2 * n


cdef inline size_t _panel_offset(object panels) noexcept:
    """The bytes from the start of a panels array to its first 64-byte boundary, where the
    panels begin (the array has 64 bytes to spare)."""
    return (-<size_t> cnp.PyArray_DATA(<cnp.ndarray> panels)) % 64


cdef object _new_fingerprints(const uint64_t *fp, Py_ssize_t n_fp, object panels):
    """What a pack keeps beside its panels: the n_fp words of the weights' fingerprints, then
    the panels' offset (_panel_offset) at packing time."""
    fps = np.empty(n_fp + 1, np.uint64)
    cdef uint64_t *w = <uint64_t *> cnp.PyArray_DATA(<cnp.ndarray> fps)
    memcpy(w, fp, n_fp * 8)
    w[n_fp] = _panel_offset(panels)
    return fps


cdef bint _panels_where_packed(object pack):
    """Whether a pack's panels still begin at the offset they were packed at. A copy of the
    pack (copy.deepcopy, pickle: a module's caches copied with it) holds them in a new array,
    which may start at another offset from a 64-byte boundary: then the panels, read from the
    new boundary, would be shifted, so the call packs again."""
    fps = pack[1]
    cdef Py_ssize_t n = cnp.PyArray_SIZE(<cnp.ndarray> fps)
    return n > 0 and (<uint64_t *> cnp.PyArray_DATA(<cnp.ndarray> fps))[n - 1] == \
        _panel_offset(pack[2])


cdef int _immutable_weights(tuple weights, Py_ssize_t D, bint proj) except -1:
    """Whether no byte of the packed weights (W_ih, W_hh, W_hr of every direction) can change:
    each is a read-only array whose chain of bases (PyArray_BASE: arrays viewing arrays) ends
    in a `bytes` object (minirnn.freeze: np.frombuffer of bytes), which NumPy never lets become
    writeable, and each direction's arrays are held in a tuple, which cannot be refilled."""
    cdef Py_ssize_t d, j
    cdef PyObject *b
    for d in range(D):
        w = weights[d]
        if type(w) is not tuple or len(w) < (5 if proj else 4):
            return False
        for j in range(3 if proj else 2):
            a = w[4 if j == 2 else j]
            if not cnp.PyArray_Check(a) or cnp.PyArray_ISWRITEABLE(<cnp.ndarray> a):
                return False
            while cnp.PyArray_Check(a):
                b = cnp.PyArray_BASE(<cnp.ndarray> a)
                if b == NULL:
                    return False
                a = <object> b
            if not PyBytes_CheckExact(a):
                return False
    return True


ctypedef struct _Sizes:
    # the sizes of one layer call, shared by forward_layer and backward_layer (In is I)
    Py_ssize_t D, T, B, In, H, P, GH
    bint proj


cdef int _layer_sizes(int mode, object X, tuple weights, object h0, object c0,
                      _Sizes *z) except -1:
    """Check the mode, the directions and h0, and read the sizes of a layer call from X (a 3-D
    array: _dtype_of checked it), h0 (D, B, P), and for projections c0 (D, B, H)."""
    if not 0 <= mode <= 3:
        _fail(f"unknown mode {mode}")
    z.D = len(weights)
    if z.D != 1 and z.D != 2:
        _fail(f"weights must hold 1 or 2 directions, got {z.D}")
    _check(cnp.PyArray_Check(h0) and cnp.PyArray_NDIM(<cnp.ndarray> h0) == 3,
           "h0 must be a 3-D array (D, B, P)")
    cdef cnp.ndarray Xa = <cnp.ndarray> X
    z.T, z.B, z.In = Xa.shape[0], Xa.shape[1], Xa.shape[2]
    z.P = cnp.PyArray_DIM(<cnp.ndarray> h0, 2)
    _check_lstm_shapes(z.D, weights, mode == MODE_LSTM, c0, z.P, &z.H, &z.proj)
    z.GH = GATES[mode] * z.H
    if not (z.T >= 1 and z.In >= 1 and z.H >= 1 and z.P >= 1):
        _fail(f"empty sizes T={z.T}, I={z.In}, H={z.H}, P={z.P}")
    return 0


def forward_layer(int mode, X, tuple weights, h0, c0, Y, hT, cT, Cs, S, M=None,
                  batch_sizes=None, variant=None, list pack=None):
    """One layer, every direction, whole sequence. See the module docstring for the shapes.

    weights: one (W_ih (GH, I), W_hh (GH, P), b_ih (GH,) or None, b_hh (GH,) or None[, W_hr
    (P, H) or None]) per direction (D = len(weights), 1 or 2; direction 1 runs from the last
    step to the first). W_hr (LSTM with projections) makes h P wide and c H wide; without it
    P = H. h0, hT: (D, B, P). c0, cT: (D, B, H) for LSTM, else None. Cs (D, T, B, H) (LSTM),
    S (D, T, B, SW*H) (GRU, LSTM) and M (D, T, B, H) (projections) are given to keep what the
    backward needs (training), or None (inference).
    batch_sizes: None, or an int64 array (T,) for a packed batch: the rows sorted by
    decreasing length, batch_sizes[t] of them having a step t (see "variable lengths", lengths.pxi).
    variant: None (PyTorch's cell) or the cell variant (see "cell variants", variants.pxi); an LSTM
    with peepholes has W_peephole (3H,) as the 6th array of each direction's weights (W_hr
    None without projections). S is then (D, T, B, saved_width(mode, variant) * H).
    pack: None (pack the weights into scratch memory for this call), or a list the caller
    keeps with the layer's parameters, empty at first: the packed weights are kept there and
    used again by the next call while the weights are unchanged (see "Pack once" in
    _forward_layer: checked by a fingerprint of the weights, or, for frozen weights whose
    memory is a bytes object, by the identity of `weights`).
    Writes Y, hT (and cT, Cs, S, M). Every shape is checked before any computation.
    """
    dtype = _dtype_of(X)
    if dtype is _F32:
        _forward_layer(<float *> NULL, dtype, mode, X, weights, h0, c0, Y, hT, cT, Cs, S, M,
                       batch_sizes, variant, pack)
    else:
        _forward_layer(<double *> NULL, dtype, mode, X, weights, h0, c0, Y, hT, cT, Cs, S, M,
                       batch_sizes, variant, pack)


cdef object _contiguous(object a):
    """`a` itself when it is a C-contiguous, aligned ndarray (the usual case), else a copy that
    is (None stays None; anything else is left to the checks of forward_layer)."""
    if a is None or not cnp.PyArray_Check(a) or (
            cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray> a) and cnp.PyArray_ISALIGNED(<cnp.ndarray> a)):
        return a
    return np.array(a, order="C")


cdef object _empty_like_3d(object a, int typenum, Py_ssize_t last=-1):
    """A new C-contiguous array of type `typenum` and a's 3-D shape (the last axis `last` if
    given); a is a 3-D ndarray (checked by the caller)."""
    cdef cnp.npy_intp dims[3]
    cdef cnp.ndarray arr = <cnp.ndarray> a
    dims[0], dims[1], dims[2] = arr.shape[0], arr.shape[1], arr.shape[2] if last < 0 else last
    return cnp.PyArray_EMPTY(3, dims, typenum, 0)


def infer_layer(int mode, X, tuple weights, h0, c0=None, variant=None, list pack=None):
    """forward_layer for inference, with its outputs made here: returns (Y, hT, cT) (cT None
    unless LSTM). X, h0, c0 as forward_layer's, each copied first if it is not C-contiguous
    and aligned. The one-layer inference call of the compiled backend: a streaming call of a
    small model costs a few microseconds, and making its outputs in Python was one of them."""
    X, h0, c0 = _contiguous(X), _contiguous(h0), _contiguous(c0)
    dtype = _dtype_of(X)
    _check(cnp.PyArray_Check(h0) and cnp.PyArray_NDIM(<cnp.ndarray> h0) == 3,
           "h0 must be a 3-D array (D, B, P)")
    if c0 is not None:
        _check(cnp.PyArray_Check(c0) and cnp.PyArray_NDIM(<cnp.ndarray> c0) == 3,
               "c0 must be a 3-D array (D, B, H)")
    cdef int typenum = cnp.PyArray_TYPE(<cnp.ndarray> X)
    Y = _empty_like_3d(X, typenum, len(weights) * cnp.PyArray_DIM(<cnp.ndarray> h0, 2))
    hT = _empty_like_3d(h0, typenum)
    cT = _empty_like_3d(c0, typenum) if c0 is not None else None
    if dtype is _F32:
        _forward_layer(<float *> NULL, dtype, mode, X, weights, h0, c0, Y, hT, cT, None, None,
                       None, None, variant, pack)
    else:
        _forward_layer(<double *> NULL, dtype, mode, X, weights, h0, c0, Y, hT, cT, None, None,
                       None, None, variant, pack)
    return Y, hT, cT


cdef int _forward_layer(floating *kind, object dtype, int mode, object X, tuple weights,
                        object h0, object c0, object Y, object hT, object cT, object Cs,
                        object S, object M, object batch_sizes, object variant,
                        list pack) except -1:
    cdef _Sizes z
    _layer_sizes(mode, X, weights, h0, c0, &z)
    cdef _Var var
    _parse_variant(mode, variant, z.D, _has_peepholes(weights, z.D), &var)
    cdef Py_ssize_t D = z.D, T = z.T, B = z.B, I = z.In, H = z.H, P = z.P
    cdef Py_ssize_t GH = z.GH, DP = D * P, SWH = _saved_width(mode, &var) * H
    cdef bint lstm = mode == MODE_LSTM, proj = z.proj
    cdef floating *pX
    cdef floating *pY
    cdef floating *ph0
    cdef floating *phT
    cdef floating *pc0 = NULL
    cdef floating *pcT = NULL
    cdef floating *pCs = NULL
    cdef floating *pS = NULL
    cdef floating *pM = NULL
    _data(X, "X", dtype, False, <void **> &pX, T, B, I)
    _data(h0, "h0", dtype, False, <void **> &ph0, D, B, P)
    _data(Y, "Y", dtype, True, <void **> &pY, T, B, DP)
    _data(hT, "hT", dtype, True, <void **> &phT, D, B, P)
    cdef const int64_t *pbs = NULL
    if batch_sizes is not None:
        batch_sizes = _check_batch_sizes(batch_sizes, T, B)
        pbs = <const int64_t *> cnp.PyArray_DATA(<cnp.ndarray> batch_sizes)
    if lstm:
        _check(c0 is not None and cT is not None, "LSTM needs c0 and cT")
        _data(c0, "c0", dtype, False, <void **> &pc0, D, B, H)
        _data(cT, "cT", dtype, True, <void **> &pcT, D, B, H)
    else:
        _check(c0 is None and cT is None, "only LSTM takes c0 and cT")
    cdef bint training = S is not None or Cs is not None or M is not None
    if training:
        if SWH > 0:
            _data(S, "S", dtype, True, <void **> &pS, D, T, B, SWH)
        else:
            _check(S is None, "Elman keeps no S")
        if lstm:
            _data(Cs, "Cs", dtype, True, <void **> &pCs, D, T, B, H)
        else:
            _check(Cs is None, "only LSTM keeps Cs")
        if proj:
            _data(M, "M", dtype, True, <void **> &pM, D, T, B, H)
    if not (training and proj):
        _check(M is None, "M is kept only in training with projections (W_hr)")

    # the arrays of each direction: W_ih, W_hh, b_ih, b_hh, W_hr, W_peephole
    cdef floating *wts[2][6]
    cdef Py_ssize_t d
    for d in range(D):
        _direction_arrays(weights[d], False, d, GH, I, P, H, proj, var.peephole, False, dtype,
                          <void **> wts[d])
    cdef const floating *Wih[2]
    cdef const floating *Whh[2]
    cdef const floating *Whr[2]
    cdef const floating *bih[2]
    cdef const floating *bhh[2]
    for d in range(D):
        Wih[d], Whh[d], bih[d], bhh[d], Whr[d] = (wts[d][0], wts[d][1], wts[d][2], wts[d][3],
                                                  wts[d][4])

    # scratch
    cdef Py_ssize_t NR = k_panel_width(<floating *> NULL)
    cdef Py_ssize_t n_pan = (GH + NR - 1) // NR, pan_P = (P + NR - 1) // NR
    cdef Py_ssize_t size_ih = n_pan * NR * I, size_hh = n_pan * NR * P, TB = T * B
    cdef Py_ssize_t size_hr = pan_P * NR * H if proj else 0
    cdef Py_ssize_t off_n = 0
    if var.before:
        # the split product: W_hh^T's r, z columns and its n columns packed apart
        off_n = (2 * H + NR - 1) // NR * NR * P
        size_hh = off_n + (H + NR - 1) // NR * NR * P
    cdef int nt = _threads(), team
    cdef Py_ssize_t n_sl = _team_slices(
        _n_slices(B, D, (GH * P + (P * H if proj else 0)) * sizeof(floating)), D, nt)
    # the time loop's units: batch slices, or blocks of hidden units (schedule.pxi)
    cdef int blocks_team = _blocks_team(False, D, B, H, GATES[mode], P, proj, n_sl, nt,
                                        GH * P * sizeof(floating), NR)
    cdef bint blocks = blocks_team > 0
    cdef Py_ssize_t gstride = 0
    cdef bint gate_pan = False
    if blocks:
        gstride = (H + NR - 1) // NR * NR * P
        gate_pan = H % NR != 0
        if gate_pan:
            # each gate's columns packed apart (with H a multiple of NR, as they are anyway)
            size_hh = GATES[mode] * gstride
            if var.before:
                off_n = 2 * gstride
    cdef bint step_gx = not blocks and _step_input_product(
        D, B, n_sl, I, P, nt, <double> D * TB * GH * I,
        (size_ih + size_hh + size_hr) * sizeof(floating), D * TB * GH * sizeof(floating))
    # Pack once: with `pack`, the panels live in an array kept in it, with the fingerprints
    # (csrc/fingerprint.h) of the weights they were packed from and their layout (the ISA's
    # panel width, the shapes). A call whose weights have the same fingerprints and layout
    # skips phase 1 and reads those panels; any other packs into a new array, stored in `pack`
    # when the call ends (never a half-packed one: not after Ctrl-C). A new array each time, so
    # another thread reading the old panels is never disturbed. The weights are read again on
    # every call (the fingerprint); an in-place write into a parameter is always seen.
    # Frozen weights (minirnn.freeze) are the exception: when every packed array's memory
    # belongs to a bytes object (_immutable_weights), the pack also keeps `weights` itself (4th
    # entry, else None), and a call given that very tuple (`is`: its arrays are the ones the
    # panels were packed from, and their bytes cannot have changed) skips the fingerprint.
    # Either way the panels must begin where they were packed (_panels_where_packed: a copied
    # pack may hold them at another offset from a 64-byte boundary); else the call packs again.
    cdef bint packed_ok = False, frozen = False
    cdef uint64_t fp[12]
    cdef Py_ssize_t n_fp = 0, isz = sizeof(floating)
    cdef char *pan = NULL
    if pack is not None:
        layout = (mr_get_isa(), NR, dtype, mode, D, I, H, P, proj, var.before, gate_pan)
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
            panels = np.empty(D * (size_ih + size_hh + size_hr) + 64 // isz, dtype)
            fps = _new_fingerprints(fp, n_fp, panels)
            kept = weights if _immutable_weights(weights, D, proj) else None
        _last_fingerprint[0] = not frozen
        pan = <char *> cnp.PyArray_DATA(<cnp.ndarray> panels)
        pan += (-<size_t> pan) % 64                      # the first 64-byte boundary
    cdef floating *bufs[9]
    cdef Py_ssize_t sizes[9]
    sizes[:] = [D * size_ih, D * size_hh, D * size_hr, D * (B if step_gx else TB) * GH, D * B * GH,
                D * 2 * B * H if lstm else 1, D * B * H if proj and not training else 1,
                3 * H if lstm and var.cells else 1, D * B * H if var.before else 1]
    if pack is not None:
        sizes[0] = sizes[1] = sizes[2] = 1
    _scratch(dtype, sizes, 9, <void **> bufs)
    if pack is not None:
        bufs[0] = <floating *> pan
        bufs[1] = bufs[0] + D * size_ih
        bufs[2] = bufs[1] + D * size_hh
    cdef floating *pWihP = bufs[0]
    cdef floating *pWhhP = bufs[1]
    cdef floating *pWhrP = bufs[2]
    cdef floating *pGx = bufs[3]
    cdef floating *pgh = bufs[4]
    cdef floating *pcbuf = bufs[5]
    cdef floating *pmbuf = bufs[6]
    cdef floating *pzeros = bufs[7]                 # the peepholes of an LSTM variant without
    memset(pzeros, 0, (3 * H if lstm and var.cells else 1) * sizeof(floating))     # them

    cdef Py_ssize_t n_blk = (TB + BLOCK_ROWS - 1) // BLOCK_ROWS, n_cblk = 1
    cdef Py_ssize_t n_mat = 3 if proj else 2
    cdef const int64_t *pblk = NULL
    if pbs != NULL and not step_gx:
        # G_x only where a step is taken: rows t*B .. t*B + batch_sizes[t] - 1 of each step
        # (the blocks of phase 2; time loops that compute their own G_x skip that phase)
        act_blocks = _active_blocks(batch_sizes, B)
        n_blk = act_blocks.shape[0]
        pblk = <const int64_t *> cnp.PyArray_DATA(<cnp.ndarray> act_blocks)
    if 0 < D * n_blk < 2 * nt:
        # few blocks of rows (small batches, short sequences): their columns split as well
        n_cblk = min(n_pan, (2 * nt + D * n_blk - 1) // (D * n_blk))
    global _largest_team, _last_step_gx, _last_blocks
    _last_step_gx = step_gx
    _last_blocks[0] = blocks
    if B == 0:
        return 0
    _largest_team = 0
    # what the three phases need, for _forward_unit (pointers as void *: their type is the
    # `floating` of the functions that read them)
    cdef _Fwd f
    f.mode, f.D, f.T, f.B, f.In, f.H, f.P = mode, D, T, B, I, H, P
    f.DP, f.GH, f.SWH, f.TB = DP, GH, SWH, TB
    f.n_pan, f.pan_P, f.n_mat, f.n_blk, f.n_sl = n_pan, pan_P, n_mat, n_blk, n_sl
    f.n_cblk, f.blocks, f.gstride, f.gate_pan = n_cblk, blocks, gstride, gate_pan
    f.stop[0] = f.stop[1] = 0
    f.size_ih, f.size_hh, f.size_hr = size_ih, size_hh, size_hr
    f.proj, f.lstm, f.training, f.bs, f.blk = proj, lstm, training, pbs, pblk
    f.step_gx = step_gx
    f.var, f.off_n, f.qbuf = var, off_n, bufs[8]
    for d in range(D):
        f.pp[d] = <void *> (wts[d][5] if var.peephole else pzeros)
    f.watch = _watch(<double> D * TB * GH * (I + P))
    f.X, f.Y, f.h0, f.c0, f.hT, f.cT, f.Cs, f.S, f.M = pX, pY, ph0, pc0, phT, pcT, pCs, pS, pM
    f.WihP, f.WhhP, f.WhrP, f.Gx, f.gh, f.cbuf, f.mbuf = (pWihP, pWhhP, pWhrP, pGx, pgh, pcbuf,
                                                           pmbuf)
    for d in range(D):
        f.Wih[d], f.Whh[d], f.Whr[d], f.bih[d], f.bhh[d] = (<void *> Wih[d], <void *> Whh[d],
                                                            <void *> Whr[d], <void *> bih[d],
                                                            <void *> bhh[d])
    with nogil:
        # 1. pack W_ih^T, W_hh^T (, W_hr^T)         units: direction x matrix
        #    (unless `pack` holds them, packed from the same weights)
        if not packed_ok:
            _forward_phase(<floating *> NULL, &f, 0, n_mat * D,
                           _team(nt, n_mat * D, PACK_COST * D * GH * (I + P + H)))
        # 2. G_x = X W_ih^T + b_ih, all steps       units: direction x block of rows
        #    (unless each time loop computes its own rows, step by step)
        #    (and of columns)
        if not step_gx:
            _forward_phase(<floating *> NULL, &f, 1, D * n_blk * n_cblk,
                           _team(nt, D * n_blk * n_cblk, <double> D * TB * GH * I))
        # 3. the time loops                         units: direction x batch slice, or
        #                                           direction x block of hidden units
        if blocks:
            _forward_phase(<floating *> NULL, &f, 3, 1, _team(blocks_team, blocks_team,
                                                              PARALLEL_MIN_WORK))
        else:
            _forward_phase(<floating *> NULL, &f, 2, D * n_sl,
                           _team(nt, D * n_sl, <double> D * TB * ((GH + H) * P
                                                                  + (GH * I if step_gx
                                                                     else 0))))
    cdef bint stopped = f.watch and minirnn_unwatch_sigint()
    if pack is not None and not packed_ok and not stopped:
        pack[:] = [layout, fps, panels, kept]
    if stopped:
        _interrupted()
    return 0

# minirnn/_kernel_parts/lengths.pxi: variable lengths: packed batches (batch_sizes).
# Included by minirnn/_kernels.pyx, in the order listed there (one extension module).

# --------------------------------------------------------------------------- variable lengths

# Packed sequences (minirnn.packed) reach the kernels as a padded time-major batch whose rows
# are sorted by decreasing length, plus ``batch_sizes`` (T,): bs[t] rows have a step t, and
# they are the first bs[t] rows (bs[0] <= B, non-increasing; rows b >= bs[0] are empty
# sequences, which never take a step: h_n = h0, c_n = c0, output zeros). So at step t a
# slice b0 <= b < b1 computes only its rows below bs[t], a prefix: the active rows of every
# step are contiguous, and a row that is not active is left alone, never updated.
#   forward direction: a row stops after its last step (t = len - 1), where its h_n and c_n
#       are copied out; the rows after it are written zeros.
#   reverse direction: a row starts at its own last step, from h0/c0. The loop reads the
#       state before step t from row t+1 of Y (and of Cs or the c buffer), so when a row is
#       about to start, that place -- the padded position (len, b) -- is given h0 (and c0):
#       Y holds h0 at the first padded step of a reversed sequence, and zeros after it. The
#       backward and the weight-gradient products then read the right h_{t-1} with no
#       special case. (The caller never sees padded positions: packed output is gathered
#       from the valid ones.)
# The forward computes G_x only for the rows that take a step (_active_blocks). The backward
# zeroes the gate gradients of inactive rows, and the big products after the loop leave those
# rows out: the weight gradients sum over the rows that take a step only (K_w of them, listed
# in `rows`, X and the states packed the same way by _pack_active_rows), and dX is set to zero
# at padded positions without a product. (Zero rows would add nothing, but cost as much.)

cdef inline Py_ssize_t _active_end(const int64_t *bs, Py_ssize_t t, Py_ssize_t b0,
                                   Py_ssize_t b1) noexcept nogil:
    """The end of the active rows b0 <= b < end of a slice at step t (b1 without lengths)."""
    if bs == NULL:
        return b1
    return min(max(<Py_ssize_t> bs[t], b0), b1)


cdef inline void _fill_rows(floating *dst, Py_ssize_t ld, Py_ssize_t width, Py_ssize_t rows,
                            const floating *src, Py_ssize_t ld_src) noexcept nogil:
    """rows x width of dst (row stride ld) = src (row stride ld_src), or zeros if src is NULL."""
    cdef Py_ssize_t r
    for r in range(rows):
        if src == NULL:
            memset(dst + r * ld, 0, width * sizeof(floating))
        else:
            memcpy(dst + r * ld, src + r * ld_src, width * sizeof(floating))


cdef object _check_batch_sizes(object batch_sizes, Py_ssize_t T, Py_ssize_t B):
    """batch_sizes must be int64 (T,), between 0 and B and never growing: a packed batch
    sorted by decreasing length, whose empty sequences (if any) are its last rows, the rows
    b >= batch_sizes[0]. The loops rely on it."""
    _check(isinstance(batch_sizes, np.ndarray) and batch_sizes.dtype == np.int64
           and batch_sizes.ndim == 1, "batch_sizes must be a 1-D int64 array")
    _check_shape(batch_sizes, (T,), "batch_sizes")
    bs = np.ascontiguousarray(batch_sizes)
    _check(B >= 1 and bs[0] <= B and bs[T - 1] >= 0 and bool(np.all(bs[1:] <= bs[:T - 1])),
           f"batch_sizes must be at most B={B}, never increase and end >= 0, got "
           f"{bs.tolist()}")
    return bs


cdef object _active_blocks(object batch_sizes, Py_ssize_t B):
    """(first row, rows) of blocks of at most BLOCK_ROWS rows covering, for each step t, the
    rows t*B .. t*B + batch_sizes[t] - 1 of a (T*B)-row array: the rows that take a step."""
    bs = np.asarray(batch_sizes, dtype=np.int64)
    per = (bs + BLOCK_ROWS - 1) // BLOCK_ROWS                   # blocks of each step
    t = np.repeat(np.arange(len(bs)), per)
    first = (np.arange(int(per.sum())) - np.repeat(np.cumsum(per) - per, per)) * BLOCK_ROWS
    return np.ascontiguousarray(np.stack([t * B + first, np.minimum(BLOCK_ROWS, bs[t] - first)],
                                         axis=1), dtype=np.int64)

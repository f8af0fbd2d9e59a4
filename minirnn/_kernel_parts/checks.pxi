# minirnn/_kernel_parts/checks.pxi: argument checks, scratch memory, one direction's arrays.
# Included by minirnn/_kernels.pyx, in the order listed there (one extension module).

# --------------------------------------------------------------------------- argument checks

# A message is built only when a check fails: a call of a few microseconds cannot afford to
# format a dozen f-strings it will never show (measured: 0.5 us of a 2 us kernel call).
cdef int _check(bint ok, str what) except -1:
    if not ok:
        raise ValueError("minirnn._kernels: " + what)
    return 0


cdef int _fail(str what) except -1:
    raise ValueError("minirnn._kernels: " + what)


cdef int _check_shape(object a, tuple shape, str name) except -1:
    if a is None:
        raise ValueError(f"minirnn._kernels: {name} is None, expected an array of shape {shape}")
    if a.shape != shape:
        raise ValueError(f"minirnn._kernels: {name} has shape {a.shape}, expected {shape}")
    return 0


cdef int _data(object a, object name, object dtype, bint writable, void **out,
               Py_ssize_t d0, Py_ssize_t d1=-1, Py_ssize_t d2=-1, Py_ssize_t d3=-1) except -1:
    """out[0] = the data pointer of `a`, after checking that it is a C-contiguous ndarray of
    `dtype` and exactly the shape (d0[, d1[, d2[, d3]]]) (and writeable if `writable`). Cheaper
    than a typed memoryview (these checks are all a kernel needs), which matters for calls of a
    few microseconds; the shape is C integers, made a tuple only for an error message."""
    cdef cnp.ndarray arr
    cdef Py_ssize_t dims[4]
    dims[0], dims[1], dims[2], dims[3] = d0, d1, d2, d3
    cdef int k, ndim = 1 if d1 < 0 else 2 if d2 < 0 else 3 if d3 < 0 else 4
    if a is None:
        raise ValueError(f"minirnn._kernels: {name} is None, expected an array of shape "
                         f"{_shape(dims, ndim)}")
    if not cnp.PyArray_Check(a):
        raise TypeError(f"minirnn._kernels: {name} must be a numpy.ndarray, got "
                        f"{type(a).__name__}")
    arr = <cnp.ndarray> a
    if <object> cnp.PyArray_DESCR(arr) is not dtype and arr.dtype != dtype:
        raise TypeError(f"minirnn._kernels: {name} has dtype {arr.dtype}, expected "
                        f"{dtype} (the dtype of X)")
    ok = cnp.PyArray_NDIM(arr) == ndim
    k = 0
    while ok and k < ndim:
        ok = cnp.PyArray_DIM(arr, k) == dims[k]
        k += 1
    if not ok:
        raise ValueError(f"minirnn._kernels: {name} has shape {a.shape}, expected "
                         f"{_shape(dims, ndim)}")
    if not cnp.PyArray_IS_C_CONTIGUOUS(arr):
        raise ValueError(f"minirnn._kernels: {name} must be C-contiguous")
    if not cnp.PyArray_ISALIGNED(arr):
        raise ValueError(f"minirnn._kernels: {name} is not aligned to its item size (e.g. "
                         f"numpy.frombuffer at an odd offset): copy it with numpy.array({name})")
    if writable and not cnp.PyArray_ISWRITEABLE(arr):
        raise ValueError(f"minirnn._kernels: {name} is read-only")
    out[0] = cnp.PyArray_DATA(arr)
    return 0


cdef tuple _shape(const Py_ssize_t *dims, int ndim):
    return tuple([dims[k] for k in range(ndim)])


cdef object _dtype_of(object X):
    """float32 or float64, the dtype of X that every other array must share."""
    if not cnp.PyArray_Check(X) or (<cnp.ndarray> X).ndim != 3:
        raise ValueError(f"minirnn._kernels: X must be a 3-D numpy.ndarray (T, B, I), got "
                         f"{type(X).__name__} of shape {getattr(X, 'shape', None)}")
    dt = (<cnp.ndarray> X).dtype
    if dt != _F32 and dt != _F64:
        raise TypeError(f"minirnn._kernels: X has dtype {dt}, expected float32 or float64")
    return _F32 if dt == _F32 else _F64


# --------------------------------------------------------------------------- scratch memory

# Each Python thread keeps one scratch array per dtype and reuses it from call to call. Fresh
# buffers of this size (hundreds of MB at the seed size) cost more than the arithmetic: the
# kernel zeroes every new page on first touch (measured: 41% of a seed-size training step in
# clear_page). Per thread, because two Python threads may run kernels at the same time.
_workspaces = threading.local()
_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)
_WEIGHT_NAMES = ("W_ih", "W_hh", "b_ih", "b_hh", "W_hr", "W_peephole")
# the names of a direction's weights ([0]) and gradients ([1]) in messages: "dW_hh[1]"
_ARG_NAMES = tuple(tuple(tuple(f"{g}{w}[{d}]" for w in _WEIGHT_NAMES) for d in range(2))
                   for g in ("", "d"))


def release_workspace():
    """Free this thread's scratch memory (it is kept between calls and grows to the largest
    call's need; the next call allocates again)."""
    _workspaces.__dict__.clear()


cdef int _scratch(object dtype, const Py_ssize_t *sizes, Py_ssize_t k, void **out) except -1:
    """out[i] = a part of this thread's workspace of sizes[i] elements (i < k): disjoint parts,
    each starting on a 64-byte boundary. Their contents are undefined."""
    cdef Py_ssize_t itemsize = (<cnp.dtype> dtype).itemsize, align = 64 // itemsize
    cdef Py_ssize_t total = 0, n, i
    cdef Py_ssize_t offsets[16]
    if k > 16:
        raise ValueError("minirnn._kernels: too many scratch buffers")
    for i in range(k):
        n = max(1, <Py_ssize_t> sizes[i])
        offsets[i] = total
        total += (n + align - 1) // align * align
    key = "f" if dtype is _F32 else "d"
    ws = _workspaces.__dict__.get(key)
    if ws is None or (<cnp.ndarray> ws).shape[0] < total + align:
        _workspaces.__dict__.pop(key, None)            # free the old one before allocating
        ws = np.empty(total + align, dtype)
        _workspaces.__dict__[key] = ws
    cdef char *base = <char *> cnp.PyArray_DATA(<cnp.ndarray> ws)
    base += (-<size_t> base) % 64                    # the first 64-byte boundary
    for i in range(k):
        out[i] = base + offsets[i] * itemsize
    return 0


cdef int _direction_arrays(object arrays, bint grads, Py_ssize_t d, Py_ssize_t GH, Py_ssize_t I,
                           Py_ssize_t P, Py_ssize_t H, bint proj, bint peep, bint writable,
                           object dtype, void **out) except -1:
    """Check one direction's (W_ih, W_hh, b_ih, b_hh[, W_hr[, W_peephole]]) -- or, with
    `grads`, their gradients (dW_ih, ...) -- and put their data pointers in out[0..5]: NULL for
    an absent bias, for W_hr without projections and for W_peephole without peepholes."""
    cdef str what = "d" if grads else ""
    cdef Py_ssize_t n = len(arrays)
    if n < 4 or n > 6:
        _fail(f"each direction needs ({what}W_ih, {what}W_hh, {what}b_ih, {what}b_hh[, "
              f"{what}W_hr[, {what}W_peephole]])")
    names = _ARG_NAMES[grads][d]
    cdef int j
    for j in range(6):
        a = arrays[j] if j < n else None
        out[j] = NULL
        if j == 4 and not proj:
            if a is not None:
                _fail(f"{names[4]} given without projections")
        elif j == 5 and not peep:
            if a is not None:
                _fail(f"{names[5]} given without peepholes")
        elif j != 2 and j != 3 and a is None:
            _fail(f"{names[j]} is missing")
        if a is not None:
            if j == 0:
                _data(a, names[0], dtype, writable, &out[0], GH, I)
            elif j == 1:
                _data(a, names[1], dtype, writable, &out[1], GH, P)
            elif j == 4:
                _data(a, names[4], dtype, writable, &out[4], P, H)
            elif j == 5:
                _data(a, names[5], dtype, writable, &out[5], 3 * H)
            else:
                _data(a, names[j], dtype, writable, &out[j], GH)
    return 0


cdef bint _has_peepholes(tuple weights, Py_ssize_t D) except -1:
    """Whether the layer's weights carry peepholes (every direction's 6th array, or none)."""
    cdef Py_ssize_t d, n_p = 0
    for d in range(D):
        w = weights[d]
        n_p += len(w) == 6 and w[5] is not None
    _check(n_p == 0 or n_p == D, "W_peephole must be given for every direction or none")
    return n_p == D


def fingerprint(a):
    """The fingerprint (csrc/fingerprint.h) of the bytes of a C-contiguous ndarray, as a pair
    of ints: what forward_layer compares to tell whether the weights of its kept panels
    changed. For tests and for readers; the kernels call the C function directly."""
    if not cnp.PyArray_Check(a) or not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray> a):
        raise ValueError("minirnn._kernels.fingerprint: expected a C-contiguous numpy.ndarray")
    cdef uint64_t out[2]
    cdef const void *p = cnp.PyArray_DATA(<cnp.ndarray> a)
    cdef Py_ssize_t n = cnp.PyArray_NBYTES(<cnp.ndarray> a)
    with nogil:
        mr_fingerprint(p, n, out)
    return int(out[0]), int(out[1])

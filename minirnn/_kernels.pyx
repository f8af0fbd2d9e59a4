# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""minirnn._kernels: the compiled half of minirnn.

For now this module says how it was built (with OpenMP or serial) and holds a tiny parallel
self-test that exercises the OpenMP code path. The nogil time-loop kernels of RNN, GRU and LSTM
(forward and backward) come later; the per-cell pointwise math will live in csrc/*.h.

Rules for this file:
- Validate in Python, compute in nogil: every check a caller can trigger runs before the GIL
  is released; nogil regions hold no Python objects.
- Every C function called under nogil is ``noexcept nogil`` (Cython 3 otherwise re-takes the
  GIL after each call to look for an exception).
- Parallel loops write disjoint memory, work units are fixed by the problem (never by the
  thread count), and sums happen in a fixed order: results are bitwise identical for any
  number of threads.
"""
from libc.stdlib cimport malloc, free
from cython.parallel cimport prange

cdef extern from * nogil:
    """
    /* OpenMP is optional: a serial build has neither omp.h nor _OPENMP, and Cython's prange
       then compiles to a plain loop. Never cimport Cython's `openmp` module here, since it
       includes omp.h unconditionally and would break the serial build. */
    #ifdef _OPENMP
    #include <omp.h>
    #define MINIRNN_OPENMP_VERSION _OPENMP
    static int minirnn_omp_max_threads(void) { return omp_get_max_threads(); }
    static int minirnn_omp_threads_used(int num_threads) {
        int used = 1;
        #pragma omp parallel num_threads(num_threads)
        {
            #pragma omp single
            used = omp_get_num_threads();
        }
        return used;
    }
    #else
    #define MINIRNN_OPENMP_VERSION 0
    static int minirnn_omp_max_threads(void) { return 1; }
    static int minirnn_omp_threads_used(int num_threads) { (void)num_threads; return 1; }
    #endif

    /* Set by setup.py: what the build decided. It must agree with the compiler. */
    #ifndef MINIRNN_BUILT_WITH_OPENMP
    #define MINIRNN_BUILT_WITH_OPENMP 0
    #endif
    #if MINIRNN_BUILT_WITH_OPENMP && !defined(_OPENMP)
    #error "setup.py decided on OpenMP but the compiler did not define _OPENMP"
    #endif
    #ifndef MINIRNN_COMPILE_ARGS
    #define MINIRNN_COMPILE_ARGS "unknown"
    #endif
    """
    int MINIRNN_OPENMP_VERSION
    int MINIRNN_BUILT_WITH_OPENMP
    const char *MINIRNN_COMPILE_ARGS
    int minirnn_omp_max_threads() noexcept
    int minirnn_omp_threads_used(int num_threads) noexcept


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

# minirnn/_kernel_parts/schedule.pxi: cell codes, work units and batch slices, threads and teams, fork, ISA, interrupts.
# Included by minirnn/_kernels.pyx, in the order listed there (one extension module).

# --------------------------------------------------------------------------- modes, threads, slices

# cell codes and the gates G of each (the saved width SW: _saved_width)
cdef enum:
    MODE_RNN_TANH = 0
    MODE_RNN_RELU = 1
    MODE_GRU = 2
    MODE_LSTM = 3

#: the ``mode`` argument of forward_layer/backward_layer for each cell
MODES = {"RNN_TANH": MODE_RNN_TANH, "RNN_RELU": MODE_RNN_RELU, "GRU": MODE_GRU,
         "LSTM": MODE_LSTM}
cdef int[4] GATES = [1, 1, 3, 4]

# Work units (fixed by the shape; only the batch slices also by the team, _team_slices):
#  - a batch slice has SLICE_ROWS rows or more: B // SLICE_ROWS slices (at least 1, at most
#    MAX_SLICES). Every slice reads all of its recurrent weights at every step, from the
#    cache; a product of 8 rows runs as two register tiles of 4 rows (tile_shape in
#    csrc/gemm.h) that share each block of weights loaded into L1, so it reads half the
#    weights per row of two products of 4. And with 8 rows or more, the time loops may also
#    compute their own G_x (_step_input_product). Measured (bidir, B = 32, slices of 8
#    against 4, float32 inference): LSTM 27.9 -> 25.0 ms on 2 threads, 47.7 -> 42.6 on 1;
#    GRU 19.6 -> 17.0 and 35.1 -> 31.9; float64 LSTM 57.5 -> 49.9 on 2 threads.
#  - unless that leaves fewer than SLICE_UNITS (direction, slice) units, too few to keep
#    a few threads busy: then slices of SLICE_ROWS_MIN = 4 rows, which still fill a register
#    tile (4 rows x 2 vectors x 2 panels). Measured (float32, 2 threads, LSTM inference):
#    small (B = 16) 0.39 ms with slices of >= 4 rows vs 0.91 ms with >= 32; long (B = 8)
#    7.6 ms with 2 slices of 4 vs 14.5 with 1 of 8.
#  - but when the recurrent weights (W_hh, W_hr) of a direction are larger than
#    SMALL_WEIGHTS bytes, they come from memory or the L3: a slice has at least
#    SLICE_ROWS_BIG_W rows, so that each weight read serves 32 rows. Measured (GRU, H = 512,
#    B = 64, 3 MB of W_hh, training, float32): 931 ms with 16 slices of 4 rows (slower than
#    the NumPy path's 846 ms), 726 ms with 2 slices of 32.
#  - which rows a slice holds never changes a result: each element of a product is one sum
#    over k in order, whatever the tile, and the cells work row by row.
#  - on a team, fewer slices where the units would split unevenly (_team_slices: 3 slices on
#    2 threads become 2). Measured (AMD EPYC Zen 5, 2 threads, quiet; odd-85: I = 37, H = 85,
#    B = 13, T = 70, 2 layers, float32 inference, alternating processes): LSTM 0.77 -> 0.68 ms,
#    GRU 0.566 -> 0.494 ms.
#  - the big products work on blocks of BLOCK_ROWS rows of their result (G_x, dX), or, for
#    the weight gradients, on blocks of WG_COLS gate columns.
cdef Py_ssize_t SLICE_ROWS = 8
cdef Py_ssize_t SLICE_ROWS_MIN = 4
cdef Py_ssize_t SLICE_UNITS = 4
cdef Py_ssize_t SLICE_ROWS_BIG_W = 32
cdef Py_ssize_t SMALL_WEIGHTS = 512 * 1024
cdef Py_ssize_t MAX_SLICES = 64
cdef Py_ssize_t BLOCK_ROWS = 64
cdef Py_ssize_t WG_COLS = MR_WG_COLS  # gate columns of a weight-gradient unit (csrc/gemm.h)
cdef Py_ssize_t WG_UNITS = 4         # fewer blocks of them: W_ih and W_hh in separate units

def _cores():
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


#: the most threads set_num_threads (and OMP_NUM_THREADS) may ask for: more start that many OS
#: threads for no gain (they share the cores) and can exhaust the process's address space
MAX_NUM_THREADS = max(256, _cores())


def _default_num_threads():
    """OMP_NUM_THREADS when it is a positive integer (at most MAX_NUM_THREADS: a larger value
    is clamped, with a warning), else the cores this process may run on (1 in a serial build).
    Not omp_get_max_threads(): another library in the process (torch's set_num_threads) may
    have changed it before minirnn was imported."""
    if not MINIRNN_OPENMP_VERSION:
        return 1
    raw = os.environ.get("OMP_NUM_THREADS", "")
    env = raw.split(",")[0].strip()
    if env.isdigit() and int(env) > 0:
        if int(env) > MAX_NUM_THREADS:
            warnings.warn(f"minirnn: OMP_NUM_THREADS={env} is more than the {MAX_NUM_THREADS} "
                          f"threads minirnn allows; using {MAX_NUM_THREADS}", RuntimeWarning,
                          stacklevel=2)
            return MAX_NUM_THREADS
        return int(env)
    if env:
        warnings.warn(f"minirnn: OMP_NUM_THREADS={raw!r} is not a positive integer; ignored "
                      f"(using the {_cores()} cores this process may run on)", RuntimeWarning,
                      stacklevel=2)
    return _cores()


cdef int _num_threads = _default_num_threads()

# fork: libgomp's threads do not survive it, and a child that enters a parallel region after
# its parent ran one blocks forever. So once a team of more than one thread has run
# (_teams_started), a child made by os.fork (multiprocessing's 'fork' start method included)
# runs every phase on one thread (_forked_serial): the same results, since they never depend
# on the thread count.
cdef bint _teams_started = False
cdef bint _forked_serial = False


def _after_fork_in_child():
    global _forked_serial
    if _teams_started:
        _forked_serial = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


cdef inline int _threads() noexcept:
    """The threads a call may use: 1 in a child forked after a team ran, else _num_threads."""
    return 1 if _forked_serial else _num_threads

# A phase whose work is small runs on one thread: waking the others (and, on a busy machine,
# waiting for each to be scheduled) costs more than it saves. Work is counted in multiply-adds
# (a packed element counts PACK_COST). Which threads compute a unit never changes the result.
cdef double PARALLEL_MIN_WORK = 1 << 19
cdef double PACK_COST = 16


# the largest team of the latest forward_layer/backward_layer call (for tests)
cdef int _largest_team = 0


cdef inline int _team(int nt, Py_ssize_t units, double work) noexcept nogil:
    """Threads for a phase of `units` work units and `work` multiply-adds in all."""
    global _largest_team
    cdef int n = 1
    global _teams_started
    if work >= PARALLEL_MIN_WORK and units >= 2:
        n = <int> min(<Py_ssize_t> nt, units)
        if n > 1:
            _teams_started = True
    if n > _largest_team:
        _largest_team = n
    return n


def _largest_team_of_last_call():
    """How many threads the largest phase of the latest kernel call asked for."""
    return _largest_team


def n_slices(Py_ssize_t B, Py_ssize_t D=1, Py_ssize_t weight_bytes=0, int num_threads=1):
    """How many batch slices the time loops cut a batch of B rows into, in a layer of D
    directions whose recurrent weights take ``weight_bytes`` per direction, on a team of
    ``num_threads`` (the shape's count, made fewer where its units would split unevenly over
    the team: _team_slices)."""
    return _team_slices(_n_slices(B, D, weight_bytes), D, max(num_threads, 1))


def _set_slice_rows(Py_ssize_t rows, Py_ssize_t min_rows, Py_ssize_t big_w_rows):
    """Set SLICE_ROWS, SLICE_ROWS_MIN and SLICE_ROWS_BIG_W; returns the previous triple. For
    tests and benchmarks: results must not change to the bit, whatever the slices."""
    global SLICE_ROWS, SLICE_ROWS_MIN, SLICE_ROWS_BIG_W
    old = (SLICE_ROWS, SLICE_ROWS_MIN, SLICE_ROWS_BIG_W)
    SLICE_ROWS, SLICE_ROWS_MIN = max(rows, 1), max(min_rows, 1)
    SLICE_ROWS_BIG_W = max(big_w_rows, 1)
    return old


cdef inline Py_ssize_t _n_slices(Py_ssize_t B, Py_ssize_t D,
                                 Py_ssize_t weight_bytes) noexcept nogil:
    cdef Py_ssize_t n
    if weight_bytes > SMALL_WEIGHTS:
        n = B // SLICE_ROWS_BIG_W
    else:
        n = B // SLICE_ROWS
        if D * n < SLICE_UNITS:
            n = B // SLICE_ROWS_MIN
    if n < 1:
        n = 1
    if n > MAX_SLICES:
        n = MAX_SLICES
    return n


cdef inline Py_ssize_t _team_slices(Py_ssize_t n, Py_ssize_t D, int nt) noexcept nogil:
    """The batch slices the time loops run on a team of nt threads: _n_slices's n, or fewer
    when its D * n (direction, slice) units would not split evenly over the team and are
    fewer than 4 per thread. Every step of a slice waits for nothing, so the time loops take
    as long as the thread with the most rows: 3 slices of 13 rows (4, 4 and 5) on 2 threads
    leave one thread 9 rows to the other's 4, 2 slices (6 and 7) give each about half. Fewer,
    larger slices never change a result (each element of a product is one sum over k in
    order, whatever the tile; the cells work row by row), so the thread count may choose."""
    cdef Py_ssize_t m = n
    if nt < 2 or D * n <= nt or (D * n) % nt == 0 or D * n >= 4 * nt:
        return n
    while m > 1 and (D * m) % nt != 0:
        m -= 1
    if D * m >= nt and (D * m) % nt == 0:
        return m
    return n


# --------------------------------------------------------------------------- small batches

# The small-batch schedule. With batch slices, a batch of 1-7 rows (B // 4 slices) is one
# slice: one thread runs each direction's whole time loop and the others wait. Then the time
# loop's units are blocks of hidden units instead: thread k of the team computes, for every
# batch row, the units j0 <= j < j1 of one direction -- all G gates of them (the columns
# g*H + j of the recurrent product, from its own columns of W_hh^T, packed gate by gate), then
# their cells (so each unit's cell runs where its gates were computed) -- and all threads step
# through time together in one parallel region, with a barrier at the start of each step (the
# next product reads all of h_{t-1}; GRU with the reset before the product: one more, before
# the product on q = r * h_{t-1}). The backward likewise: the cells of its units at step t,
# a barrier, then its columns of dh_{t-1} = dG_h W_hh (split by columns of W_hh) -- one barrier
# per step; the weight gradients and dX afterwards as with slices (blocks of gate columns,
# blocks of rows). _forward_slice and _backward_slice are the one time loop of both schedules.
#  - blocks: whole panels of the product (csrc/gemm.h's NR columns: 32 floats with AVX-512),
#    as many per thread as it can get: the threads of a direction (the team split evenly
#    between directions) share its panels out in contiguous runs (_unit_block), so each
#    thread reads the same 1/nth of W_hh at every step, and that slice stays in its own
#    core's cache (GRU H = 512: 3 MB of W_hh, 1.5 MB per thread on 2 threads).
#  - bitwise: a block decides which thread computes a number, never how: each element of
#    the product is still one sum over k in order (the same micro-kernel, the same K blocks),
#    each cell the same arithmetic per unit. So the results are the same bits for either
#    schedule and any thread count (tests/test_schedule.py forces both).
#  - the barrier: OpenMP's, in one region per call (libgomp spins, then sleeps). Measured
#    (AMD EPYC Zen 4, 2 threads, loaded machine): see docs/performance.md, "The small-batch
#    schedule".
#  - not with projections (h_t = m_t W_hr^T needs all of m_t: one more barrier and a split of
#    W_hr; those layers keep batch slices), nor when the batch slices already keep every
#    thread busy (D * slices >= threads), nor for a step too small to share
#    (BLOCKS_MIN_WORK multiply-adds per direction and step, B * G*H * P: below it the barrier
#    and the idle wait cost more than the half step they save).
#  - forward and backward choose apart (_blocks_team(backward, ...)): BLOCKS_MIN_WORK and
#    BLOCKS_MIN_WORK_BWD.
#  - Ctrl-C: thread 0 reads the flag before each step's barrier, every thread the answer
#    after it (minirnn_step_sync, runtime.pxi): all stop at the same step. Fork: a child
#    forked after a team ran has one thread (_threads), so it keeps batch slices.
cdef double BLOCKS_MIN_WORK = 1 << 15
cdef double BLOCKS_MIN_WORK_BWD = 1 << 16

# 0: by shape; 1: always batch slices; 2: unit blocks wherever allowed (no projections), even
# on one thread (tests: both schedules must give the same bits)
cdef int _force_schedule = 0

# the schedule of the latest forward_layer [0] and backward_layer [1] call (for tests)
cdef bint _last_blocks[2]


def _set_schedule(str name):
    """Force the time loops' schedule: "auto" (by shape), "slices" or "blocks" (wherever
    allowed, even on one thread); returns the previous setting. For tests and benchmarks:
    results must not change to the bit."""
    global _force_schedule
    names = ("auto", "slices", "blocks")
    if name not in names:
        raise ValueError(f"schedule must be one of {names}, got {name!r}")
    old = names[_force_schedule]
    _force_schedule = names.index(name)
    return old


def _schedule_of_last_call(bint backward=False):
    """"blocks" or "slices": the schedule of the latest forward_layer (backward_layer)."""
    return "blocks" if _last_blocks[1 if backward else 0] else "slices"


def _set_blocks_min_work(double forward, double backward):
    """Set BLOCKS_MIN_WORK and BLOCKS_MIN_WORK_BWD; returns the previous pair (benchmarks)."""
    global BLOCKS_MIN_WORK, BLOCKS_MIN_WORK_BWD
    old = (BLOCKS_MIN_WORK, BLOCKS_MIN_WORK_BWD)
    BLOCKS_MIN_WORK, BLOCKS_MIN_WORK_BWD = forward, backward
    return old


cdef int _blocks_team(bint backward, Py_ssize_t D, Py_ssize_t B, Py_ssize_t H, Py_ssize_t G,
                      Py_ssize_t P, bint proj, Py_ssize_t n_sl, int nt,
                      Py_ssize_t whh_bytes, Py_ssize_t NR) noexcept:
    """0: the time loops run batch slices; else they run blocks of hidden units on a team of
    that many threads (1: forced, on one thread). A function of the shape and the threads."""
    cdef Py_ssize_t npan = (H + NR - 1) // NR
    cdef int team = <int> min(<Py_ssize_t> nt, D * npan)
    if proj or _force_schedule == 1:
        return 0
    if _force_schedule == 2:
        return max(team, 1)
    if team < 2 or team < D or D * n_sl >= nt:
        return 0
    if <double> B * G * H * P < (BLOCKS_MIN_WORK_BWD if backward else BLOCKS_MIN_WORK):
        return 0
    return team


cdef inline bint _unit_block(Py_ssize_t D, Py_ssize_t H, Py_ssize_t NR, int tid, int nth,
                             Py_ssize_t d, Py_ssize_t *j0, Py_ssize_t *j1) noexcept nogil:
    """The units j0 <= j < j1 of direction d that thread tid of a team of nth computes, or
    False if it has none of that direction. The team is split between the directions (threads
    ceil(d*nth/D) <= tid < ceil((d+1)*nth/D) run direction d), each direction's panels of NR
    units between its threads, in contiguous runs; one thread alone runs every unit of every
    direction, one direction after the other (no barrier has another thread to wait for)."""
    cdef Py_ssize_t npan = (H + NR - 1) // NR, first, end, k, c
    if nth < D or nth == 1:
        j0[0], j1[0] = 0, H
        return True
    first = (d * nth + D - 1) // D
    end = ((d + 1) * nth + D - 1) // D
    if tid < first or tid >= end:
        return False
    k, c = tid - first, end - first
    j0[0] = min(k * npan // c * NR, H)
    j1[0] = min((k + 1) * npan // c * NR, H)
    return True


def set_num_threads(n):
    """Use ``n`` threads (1 <= n <= MAX_NUM_THREADS) in the kernels from now on. Results do not
    depend on it. In a child forked after the kernels ran a team, the kernels run on one thread
    whatever ``n`` says (see get_num_threads)."""
    global _num_threads
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, numbers.Integral):
        raise TypeError(f"num_threads must be an int, got {type(n).__name__}")
    n = int(n)
    if not 1 <= n <= MAX_NUM_THREADS:
        raise ValueError(f"num_threads must be between 1 and {MAX_NUM_THREADS} (the most threads "
                         f"minirnn allows), got {n}")
    _num_threads = n


def get_num_threads():
    """The number of threads the kernels use: set_num_threads(n), else OMP_NUM_THREADS, else
    the cores this process may run on; 1 in a child forked after the kernels ran a team of
    threads (libgomp's threads do not survive fork). A serial build runs on one thread whatever
    this says."""
    return _threads()


#: the compiled variants, in the order of mr_set_isa's codes (csrc/minirnn.h)
ISAS = ("base", "avx2", "avx512")


def get_isa():
    """Which compiled variant runs: ``"avx512"`` (AVX-512 F/VL/DQ/BW, 64-byte vectors),
    ``"avx2"`` (AVX2 + FMA) or ``"base"`` (the compiler's default target)."""
    return ISAS[mr_get_isa()]


def set_isa(name):
    """Choose the compiled variant, one of :data:`ISAS` (for tests and benchmarks; the default
    is the best the CPU runs). Raises ValueError if the CPU or the build lacks it."""
    if name not in ISAS:
        raise ValueError(f"isa must be one of {', '.join(map(repr, ISAS))}, got {name!r}")
    if mr_set_isa(ISAS.index(name)) != 0:
        raise ValueError(f"isa {name!r} is not available: this CPU or build runs only "
                         f"{', '.join(map(repr, available_isas()))}")


def available_isas():
    """The variants this build and CPU can run, best last."""
    return ISAS[:mr_best_isa() + 1]


mr_set_isa(mr_best_isa())


# --------------------------------------------------------------------------- interrupts

# Ctrl-C. A call with the GIL released cannot run Python's SIGINT handler, so a long one used
# to answer Ctrl-C only when it returned. A call of at least WATCH_MIN_WORK multiply-adds, made
# from the main thread while Python's default SIGINT handler is in place, is "watched": it puts
# minirnn_on_sigint (C, runtime.pxi) in front of that handler for its duration; the time loops check
# the flag it raises before every step, the phases before every work unit, and stop early.
# The call then restores the handler and raises KeyboardInterrupt, its outputs (and, in a
# backward, the gradients accumulated into) partly written. Smaller calls, and calls from other
# threads (Python delivers signals to the main thread only), are not watched: they cost no
# system call more.
cdef double WATCH_MIN_WORK = 1 << 24


cdef bint _watch(double work) except -1:
    """Watch Ctrl-C during a call of `work` multiply-adds? Installs the handler if so."""
    if work < WATCH_MIN_WORK:
        return False
    if threading.current_thread() is not threading.main_thread():
        return False
    if _signal.getsignal(_signal.SIGINT) is not _signal.default_int_handler:
        return False
    return minirnn_watch_sigint() != 0


cdef int _interrupted() except -1:
    """A watched call stopped early on SIGINT: let Python run its handler, which raises."""
    PyErr_CheckSignals()
    raise KeyboardInterrupt

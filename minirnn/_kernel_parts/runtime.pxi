# minirnn/_kernel_parts/runtime.pxi: OpenMP (optional), what the build decided, and the SIGINT flag: C written inline.
# Included by minirnn/_kernels.pyx, in the order listed there (one extension module).

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

    /* Ctrl-C during a long call (see "interrupts", schedule.pxi). While a watched call runs, SIGINT
       goes to minirnn_on_sigint, which raises minirnn_sigint and then calls the handler it
       replaced (Python's, which records the signal for the interpreter); the time loops and
       the phases' work units read the flag and stop early. POSIX only. */
    #include <signal.h>
    #include <stddef.h>
    #include <string.h>
    static volatile sig_atomic_t minirnn_sigint = 0;
    #if defined(__unix__) || defined(__APPLE__)
    static struct sigaction minirnn_prev_sigint;
    static void minirnn_on_sigint(int sig, siginfo_t *info, void *ctx) {
        minirnn_sigint = 1;
        if (minirnn_prev_sigint.sa_flags & SA_SIGINFO) {
            if (minirnn_prev_sigint.sa_sigaction) minirnn_prev_sigint.sa_sigaction(sig, info, ctx);
        } else if (minirnn_prev_sigint.sa_handler != SIG_DFL
                   && minirnn_prev_sigint.sa_handler != SIG_IGN) {
            minirnn_prev_sigint.sa_handler(sig);
        }
    }
    /* Install minirnn_on_sigint in front of the current handler; 1 when done. */
    static int minirnn_watch_sigint(void) {
        struct sigaction sa;
        if (sigaction(SIGINT, NULL, &minirnn_prev_sigint) != 0) return 0;
        if (!(minirnn_prev_sigint.sa_flags & SA_SIGINFO)
            && (minirnn_prev_sigint.sa_handler == SIG_DFL
                || minirnn_prev_sigint.sa_handler == SIG_IGN)) return 0;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = minirnn_on_sigint;
        sa.sa_flags = SA_SIGINFO | (minirnn_prev_sigint.sa_flags & SA_RESTART);
        sigemptyset(&sa.sa_mask);
        minirnn_sigint = 0;
        return sigaction(SIGINT, &sa, NULL) == 0;
    }
    /* Put the replaced handler back; 1 when SIGINT came while watching. */
    static int minirnn_unwatch_sigint(void) {
        int got;
        sigaction(SIGINT, &minirnn_prev_sigint, NULL);
        got = minirnn_sigint;
        minirnn_sigint = 0;
        return got;
    }
    #else
    static int minirnn_watch_sigint(void) { return 0; }
    static int minirnn_unwatch_sigint(void) { return 0; }
    #endif
    static int minirnn_interrupted(void) { return minirnn_sigint != 0; }

    /* The small-batch schedule (schedule.pxi): one parallel region whose threads step through
       time together. minirnn_team() is the calling thread's number and the size of its team
       (0 and 1 outside a region, and in a serial build). minirnn_step_sync() is the barrier
       at the start of step s: before it, thread 0 reads the Ctrl-C flag into stop[s % 2]
       (when the call is watched), after it every thread reads that slot, so all of them stop
       at the same step or none does (a thread that left the loop alone would leave the others
       waiting in the next barrier forever). Two slots: thread 0 writes slot s % 2 again only
       at step s + 2, after barrier s + 1, which no thread passes before it has read slot
       s % 2 of step s. The barrier is also a memory flush: what a thread wrote before it is
       seen by the others after it. An OpenMP barrier in a function called from the region
       ("orphaned") binds to that region's team. */
    #ifdef _OPENMP
    static void minirnn_team(int *tid, int *nth) {
        *tid = omp_get_thread_num();
        *nth = omp_get_num_threads();
    }
    static void minirnn_barrier(void) {
        #pragma omp barrier
    }
    #else
    static void minirnn_team(int *tid, int *nth) { *tid = 0; *nth = 1; }
    static void minirnn_barrier(void) { }
    #endif
    static int minirnn_step_sync(int *stop, int tid, ptrdiff_t s, int watch) {
        if (watch && tid == 0)
            stop[s & 1] = minirnn_interrupted();
        minirnn_barrier();
        return watch && stop[s & 1];
    }
    """
    int MINIRNN_OPENMP_VERSION
    int MINIRNN_BUILT_WITH_OPENMP
    const char *MINIRNN_COMPILE_ARGS
    int minirnn_omp_max_threads() noexcept
    int minirnn_omp_threads_used(int num_threads) noexcept
    int minirnn_watch_sigint() noexcept
    int minirnn_unwatch_sigint() noexcept
    int minirnn_interrupted() noexcept
    void minirnn_team(int *tid, int *nth) noexcept
    void minirnn_barrier() noexcept
    int minirnn_step_sync(int *stop, int tid, Py_ssize_t s, int watch) noexcept

# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""minirnn._kernels: the compiled time loops of RNN, GRU and LSTM, forward and backward.

One layer at a time (both directions at once), called by :mod:`minirnn._backend_c`:

    forward_layer:   pack W_ih^T, W_hh^T (, W_hr^T)   (units: direction x matrix)
                     G_x = X W_ih^T + b_ih            (units: direction x block of T*B rows)
                     the time loop                    (units: direction x batch slice)
                       (or G_x inside the time loop, step by step: "input product" below)
    backward_layer:  pack W_hh, W_ih (, W_hr)         (units: direction x matrix)
                     the reverse time loop            (units: direction x batch slice)
                     pack X, H_prev (, M)             (units: register tiles)
                     dW_ih += dG_x^T X, dW_hh += dG_h^T H_prev, db += sums, dW_hr += dH^T M
                                                      (units: blocks of columns of dG or dH)
                     dX = dG_x W_ih                   (units: blocks of rows of dX)

Each phase is one loop over work units (``_forward_unit``/``_backward_unit``), an OpenMP
``prange`` when the phase is big enough for several threads, else a plain loop (``_team``,
``_forward_phase``). A unit writes memory no other unit of its phase touches, and the units are
fixed by the problem's shape, never by the thread count; a unit computes each number in a fixed
order. So the results are bitwise identical for any number of threads. A batch slice runs its
whole time loop alone: no barrier per time step.

The math is C (csrc/minirnn.h): the product ``gemm`` (B packed in panels), each cell's pointwise
``*_cell_forward``/``*_cell_backward``, and the weight gradients with their bias sums
``weight_grad`` (X^T dG, after the backward's loops). Glossary: T time, B batch, I input size,
H hidden, G gates (1, 3, 4), GH = G*H, D directions; P the width of h: proj_size for an LSTM with
projections (P < H), else P = H; DP = D*P; SW*H floats saved per step and row.

Packed sequences (``batch_sizes``): see "variable lengths" below.

Input product: G_x = X W_ih^T + b_ih is computed either for all steps before the time loops (a
phase of its own, in blocks of 64 rows: the fastest products), or by each time loop for its own
rows, one step at a time, just before that step's gates read them (``_step_input_product``
decides: when G_x of all steps would leave the cache and the weights stay in it). The second
scheme keeps G_x in the L1/L2 cache instead of a (T, B, GH) array read back from memory, where
the gates waited on it. Every element is the same sum either way, so results do not change.

LSTM with projections (``proj_size = P``): the cell writes ``m_t = o_t * tanh(c_t)`` (B, H) and one
more small product per step gives ``h_t = m_t W_hr^T`` (B, P), which is the output and the state
the next step multiplies by ``W_hh`` (GH, P). The backward adds ``dm_t = dh_t W_hr`` per step and,
after the loop, ``dW_hr += dH^T M`` over the saved ``m_t`` (M) and ``dh_t`` (dH).

Memory map of one layer and direction (time-major; all buffers allocated by the caller):

    X    (T, B, I)        layer input                                  read
    Y    (T, B, D*P)      layer output; column block d*P is direction d  forward writes
    h0   (D, B, P)        initial state                                read
    c0   (D, B, H)        LSTM initial cell state                      read
    Cs   (D, T, B, H)     LSTM c_t of every step (training only)       forward writes
    S    (D, T, B, SW*H)  saved gate values (training only; GRU 4H: r|z|n|gh_n,
                          LSTM 5H: i|f|g|o|tanh c_t; Elman none: it uses Y)  forward writes
    M    (D, T, B, H)     LSTM with projections: m_t = o_t tanh(c_t) (training only)  forward writes
    dGx  (D, T, B, GH)    gate gradients dL/dG_x (scratch of the backward)
    dGh  (D, T, B, GH)    dL/dG_h; the same memory as dGx except for GRU
    dH   (D, T, B, P)     LSTM with projections: dL/dh_t (scratch of the backward)

Rules for this file:
- Validate in Python, compute in nogil: every check a caller can trigger runs before the GIL
  is released (here: every shape, so no argument can make a kernel step out of its arrays);
  nogil regions hold no Python objects.
- Every C function called under nogil is ``noexcept nogil``.
- Why not BLAS: see csrc/gemm.h (call overhead at one step's size, threads inside our threads,
  row results that depend on where a slice starts).
"""
import numbers
import os
import signal as _signal
import threading
import warnings

import numpy as np

cimport numpy as cnp
cnp.import_array()
from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.stdlib cimport malloc, free
from libc.stdint cimport int64_t
from libc.string cimport memcpy, memset
from cpython.exc cimport PyErr_CheckSignals

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

    /* Ctrl-C during a long call (see "interrupts" below). While a watched call runs, SIGINT
       goes to minirnn_on_sigint, which raises minirnn_sigint and then calls the handler it
       replaced (Python's, which records the signal for the interpreter); the time loops and
       the phases' work units read the flag and stop early. POSIX only. */
    #include <signal.h>
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
    """
    int MINIRNN_OPENMP_VERSION
    int MINIRNN_BUILT_WITH_OPENMP
    const char *MINIRNN_COMPILE_ARGS
    int minirnn_omp_max_threads() noexcept
    int minirnn_omp_threads_used(int num_threads) noexcept
    int minirnn_watch_sigint() noexcept
    int minirnn_unwatch_sigint() noexcept
    int minirnn_interrupted() noexcept


cdef extern from "minirnn.h" nogil:
    int mr_best_isa() noexcept
    int mr_set_isa(int isa) noexcept
    int mr_get_isa() noexcept

    enum: MR_WG_COLS
    enum: LSTM_I, LSTM_F, LSTM_G, LSTM_O
    Py_ssize_t tile_rows_f(Py_ssize_t M) noexcept
    Py_ssize_t tile_rows_d(Py_ssize_t M) noexcept
    void pack_tiles_f(Py_ssize_t K, Py_ssize_t N, const float *X, Py_ssize_t ldx, float *Xt,
                      Py_ssize_t k0, Py_ssize_t k1, Py_ssize_t t0, Py_ssize_t t1) noexcept
    void pack_tiles_d(Py_ssize_t K, Py_ssize_t N, const double *X, Py_ssize_t ldx, double *Xt,
                      Py_ssize_t k0, Py_ssize_t k1, Py_ssize_t t0, Py_ssize_t t1) noexcept
    Py_ssize_t weight_grad_work_f(Py_ssize_t N1, Py_ssize_t N2) noexcept
    Py_ssize_t weight_grad_work_d(Py_ssize_t N1, Py_ssize_t N2) noexcept
    void weight_grad_f(Py_ssize_t K, Py_ssize_t nj, const float *dG, Py_ssize_t ldg,
                       const Py_ssize_t *rows, const float *Xt1, Py_ssize_t N1, float *dW1,
                       const float *Xt2, Py_ssize_t N2, float *dW2, float *db, float *db2,
                       float *work) noexcept
    void weight_grad_d(Py_ssize_t K, Py_ssize_t nj, const double *dG, Py_ssize_t ldg,
                       const Py_ssize_t *rows, const double *Xt1, Py_ssize_t N1, double *dW1,
                       const double *Xt2, Py_ssize_t N2, double *dW2, double *db, double *db2,
                       double *work) noexcept
    Py_ssize_t panel_width_f() noexcept
    Py_ssize_t panel_width_d() noexcept
    void pack_panels_f(Py_ssize_t K, Py_ssize_t N, const float *B, Py_ssize_t rsb, Py_ssize_t csb,
                       float *Bp, Py_ssize_t k0, Py_ssize_t k1, Py_ssize_t p0,
                       Py_ssize_t p1) noexcept
    void pack_panels_d(Py_ssize_t K, Py_ssize_t N, const double *B, Py_ssize_t rsb, Py_ssize_t csb,
                       double *Bp, Py_ssize_t k0, Py_ssize_t k1, Py_ssize_t p0,
                       Py_ssize_t p1) noexcept
    void gemm_f(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, const float *A, Py_ssize_t lda,
                const float *Bp, float *C, Py_ssize_t ldc, int accumulate,
                const float *bias) noexcept
    void gemm_d(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, const double *A, Py_ssize_t lda,
                const double *Bp, double *C, Py_ssize_t ldc, int accumulate,
                const double *bias) noexcept
    void elman_cell_forward_f(Py_ssize_t rows, Py_ssize_t H, int relu, const float *gx,
                              Py_ssize_t ldgx, const float *gh, Py_ssize_t ldgh, float *h,
                              Py_ssize_t ldh) noexcept
    void elman_cell_forward_d(Py_ssize_t rows, Py_ssize_t H, int relu, const double *gx,
                              Py_ssize_t ldgx, const double *gh, Py_ssize_t ldgh, double *h,
                              Py_ssize_t ldh) noexcept
    void elman_cell_backward_f(Py_ssize_t rows, Py_ssize_t H, int relu, const float *dy,
                               Py_ssize_t lddy, const float *dh_next, const float *h,
                               Py_ssize_t ldh, float *dg, Py_ssize_t ldg) noexcept
    void elman_cell_backward_d(Py_ssize_t rows, Py_ssize_t H, int relu, const double *dy,
                               Py_ssize_t lddy, const double *dh_next, const double *h,
                               Py_ssize_t ldh, double *dg, Py_ssize_t ldg) noexcept
    void gru_cell_forward_f(Py_ssize_t rows, Py_ssize_t H, const float *gx, Py_ssize_t ldgx,
                            const float *gh, Py_ssize_t ldgh, const float *h_prev,
                            Py_ssize_t ldhp, float *h, Py_ssize_t ldh, float *saved,
                            Py_ssize_t lds) noexcept
    void gru_cell_forward_d(Py_ssize_t rows, Py_ssize_t H, const double *gx, Py_ssize_t ldgx,
                            const double *gh, Py_ssize_t ldgh, const double *h_prev,
                            Py_ssize_t ldhp, double *h, Py_ssize_t ldh, double *saved,
                            Py_ssize_t lds) noexcept
    void gru_cell_backward_f(Py_ssize_t rows, Py_ssize_t H, const float *dy, Py_ssize_t lddy,
                             float *dh_next, const float *saved, Py_ssize_t lds,
                             const float *h_prev, Py_ssize_t ldhp, float *dgx, Py_ssize_t ldgx,
                             float *dgh, Py_ssize_t ldgh) noexcept
    void gru_cell_backward_d(Py_ssize_t rows, Py_ssize_t H, const double *dy, Py_ssize_t lddy,
                             double *dh_next, const double *saved, Py_ssize_t lds,
                             const double *h_prev, Py_ssize_t ldhp, double *dgx, Py_ssize_t ldgx,
                             double *dgh, Py_ssize_t ldgh) noexcept
    void lstm_cell_forward_f(Py_ssize_t rows, Py_ssize_t H, const float *gx, Py_ssize_t ldgx,
                             const float *gh, Py_ssize_t ldgh, const float *c_prev,
                             Py_ssize_t ldcp, float *h, Py_ssize_t ldh, float *c, Py_ssize_t ldc,
                             float *saved, Py_ssize_t lds) noexcept
    void lstm_cell_forward_d(Py_ssize_t rows, Py_ssize_t H, const double *gx, Py_ssize_t ldgx,
                             const double *gh, Py_ssize_t ldgh, const double *c_prev,
                             Py_ssize_t ldcp, double *h, Py_ssize_t ldh, double *c, Py_ssize_t ldc,
                             double *saved, Py_ssize_t lds) noexcept
    void lstm_cell_backward_f(Py_ssize_t rows, Py_ssize_t H, const float *dy, Py_ssize_t lddy,
                              const float *dh_next, float *dc_next, const float *saved,
                              Py_ssize_t lds, const float *c_prev, Py_ssize_t ldcp, float *dg,
                              Py_ssize_t ldg) noexcept
    void lstm_cell_backward_d(Py_ssize_t rows, Py_ssize_t H, const double *dy, Py_ssize_t lddy,
                              const double *dh_next, double *dc_next, const double *saved,
                              Py_ssize_t lds, const double *c_prev, Py_ssize_t ldcp, double *dg,
                              Py_ssize_t ldg) noexcept

    # the cell variants (csrc/activations.h, the *_v rows of elman.h, gru.h, lstm.h)
    enum: MR_N_ACTIVATIONS
    ctypedef struct mr_cell_variant:
        int act[3]
        double alpha[3]
        double beta[3]
        int std_acts
        int save_pre
        int coupled
        double clip
    void elman_cell_forward_v_f(Py_ssize_t rows, Py_ssize_t H, const mr_cell_variant *v,
                                const float *gx, Py_ssize_t ldgx, const float *gh, Py_ssize_t ldgh,
                                float *h, Py_ssize_t ldh, float *saved, Py_ssize_t lds) noexcept
    void elman_cell_backward_v_f(Py_ssize_t rows, Py_ssize_t H, const mr_cell_variant *v,
                                 const float *dy, Py_ssize_t lddy, const float *dh_next,
                                 const float *h, Py_ssize_t ldh, const float *saved, Py_ssize_t lds,
                                 float *dg, Py_ssize_t ldg) noexcept
    void gru_cell_forward_v_f(Py_ssize_t rows, Py_ssize_t H, const mr_cell_variant *v,
                              const float *gx, Py_ssize_t ldgx, const float *gh, Py_ssize_t ldgh,
                              const float *h_prev, Py_ssize_t ldhp, float *h, Py_ssize_t ldh,
                              float *saved, Py_ssize_t lds) noexcept
    void gru_cell_rz_v_f(Py_ssize_t rows, Py_ssize_t H, const mr_cell_variant *v,
                         const float *gx, Py_ssize_t ldgx, float *gh, Py_ssize_t ldgh,
                         const float *h_prev, Py_ssize_t ldhp, float *q, Py_ssize_t ldq,
                         float *saved, Py_ssize_t lds) noexcept
    void gru_cell_n_v_f(Py_ssize_t rows, Py_ssize_t H, const mr_cell_variant *v,
                        const float *gx, Py_ssize_t ldgx, const float *gh, Py_ssize_t ldgh,
                        const float *h_prev, Py_ssize_t ldhp, float *h, Py_ssize_t ldh,
                        float *saved, Py_ssize_t lds) noexcept
    void gru_cell_backward_v_f(Py_ssize_t rows, Py_ssize_t H, const mr_cell_variant *v,
                               int after, const float *dy, Py_ssize_t lddy, float *dh_next,
                               const float *saved, Py_ssize_t lds, const float *h_prev,
                               Py_ssize_t ldhp, float *dgx, Py_ssize_t ldgx, float *dgh,
                               Py_ssize_t ldgh) noexcept
    void gru_cell_back_r_v_f(Py_ssize_t rows, Py_ssize_t H, const mr_cell_variant *v,
                             const float *dq, Py_ssize_t ldq, float *dh_next, const float *saved,
                             Py_ssize_t lds, const float *h_prev, Py_ssize_t ldhp, float *dgx,
                             Py_ssize_t ldgx, float *dgh, Py_ssize_t ldgh) noexcept
    void lstm_cell_forward_v_f(Py_ssize_t rows, Py_ssize_t H, const mr_cell_variant *v,
                               const float *pp, const float *gx, Py_ssize_t ldgx, const float *gh,
                               Py_ssize_t ldgh, const float *c_prev, Py_ssize_t ldcp, float *h,
                               Py_ssize_t ldh, float *c, Py_ssize_t ldc, float *saved,
                               Py_ssize_t lds) noexcept
    void lstm_cell_backward_v_f(Py_ssize_t rows, Py_ssize_t H, const mr_cell_variant *v,
                                const float *pp, const float *dy, Py_ssize_t lddy,
                                const float *dh_next, float *dc_next, const float *saved,
                                Py_ssize_t lds, const float *c_prev, Py_ssize_t ldcp,
                                const float *c, Py_ssize_t ldc, float *dg, Py_ssize_t ldg) noexcept
    void elman_cell_forward_v_d(Py_ssize_t rows, Py_ssize_t H, const mr_cell_variant *v,
                                const double *gx, Py_ssize_t ldgx, const double *gh,
                                Py_ssize_t ldgh, double *h, Py_ssize_t ldh, double *saved,
                                Py_ssize_t lds) noexcept
    void elman_cell_backward_v_d(Py_ssize_t rows, Py_ssize_t H, const mr_cell_variant *v,
                                 const double *dy, Py_ssize_t lddy, const double *dh_next,
                                 const double *h, Py_ssize_t ldh, const double *saved,
                                 Py_ssize_t lds, double *dg, Py_ssize_t ldg) noexcept
    void gru_cell_forward_v_d(Py_ssize_t rows, Py_ssize_t H, const mr_cell_variant *v,
                              const double *gx, Py_ssize_t ldgx, const double *gh, Py_ssize_t ldgh,
                              const double *h_prev, Py_ssize_t ldhp, double *h, Py_ssize_t ldh,
                              double *saved, Py_ssize_t lds) noexcept
    void gru_cell_rz_v_d(Py_ssize_t rows, Py_ssize_t H, const mr_cell_variant *v,
                         const double *gx, Py_ssize_t ldgx, double *gh, Py_ssize_t ldgh,
                         const double *h_prev, Py_ssize_t ldhp, double *q, Py_ssize_t ldq,
                         double *saved, Py_ssize_t lds) noexcept
    void gru_cell_n_v_d(Py_ssize_t rows, Py_ssize_t H, const mr_cell_variant *v,
                        const double *gx, Py_ssize_t ldgx, const double *gh, Py_ssize_t ldgh,
                        const double *h_prev, Py_ssize_t ldhp, double *h, Py_ssize_t ldh,
                        double *saved, Py_ssize_t lds) noexcept
    void gru_cell_backward_v_d(Py_ssize_t rows, Py_ssize_t H, const mr_cell_variant *v,
                               int after, const double *dy, Py_ssize_t lddy, double *dh_next,
                               const double *saved, Py_ssize_t lds, const double *h_prev,
                               Py_ssize_t ldhp, double *dgx, Py_ssize_t ldgx, double *dgh,
                               Py_ssize_t ldgh) noexcept
    void gru_cell_back_r_v_d(Py_ssize_t rows, Py_ssize_t H, const mr_cell_variant *v,
                             const double *dq, Py_ssize_t ldq, double *dh_next, const double *saved,
                             Py_ssize_t lds, const double *h_prev, Py_ssize_t ldhp, double *dgx,
                             Py_ssize_t ldgx, double *dgh, Py_ssize_t ldgh) noexcept
    void lstm_cell_forward_v_d(Py_ssize_t rows, Py_ssize_t H, const mr_cell_variant *v,
                               const double *pp, const double *gx, Py_ssize_t ldgx,
                               const double *gh, Py_ssize_t ldgh, const double *c_prev,
                               Py_ssize_t ldcp, double *h, Py_ssize_t ldh, double *c,
                               Py_ssize_t ldc, double *saved, Py_ssize_t lds) noexcept
    void lstm_cell_backward_v_d(Py_ssize_t rows, Py_ssize_t H, const mr_cell_variant *v,
                                const double *pp, const double *dy, Py_ssize_t lddy,
                                const double *dh_next, double *dc_next, const double *saved,
                                Py_ssize_t lds, const double *c_prev, Py_ssize_t ldcp,
                                const double *c, Py_ssize_t ldc, double *dg,
                                Py_ssize_t ldg) noexcept


# --------------------------------------------------------------------------- the C calls, by dtype

cdef inline Py_ssize_t k_panel_width(floating *kind) noexcept nogil:
    if floating is float:
        return panel_width_f()
    else:
        return panel_width_d()


cdef inline void k_pack(Py_ssize_t K, Py_ssize_t N, const floating *B, Py_ssize_t rsb,
                        Py_ssize_t csb, floating *Bp, Py_ssize_t k0, Py_ssize_t k1,
                        Py_ssize_t p0, Py_ssize_t p1) noexcept nogil:
    if floating is float:
        pack_panels_f(K, N, B, rsb, csb, Bp, k0, k1, p0, p1)
    else:
        pack_panels_d(K, N, B, rsb, csb, Bp, k0, k1, p0, p1)


cdef inline Py_ssize_t k_tile_rows(floating *kind, Py_ssize_t M) noexcept nogil:
    if floating is float:
        return tile_rows_f(M)
    else:
        return tile_rows_d(M)


cdef inline void k_pack_tiles(Py_ssize_t K, Py_ssize_t N, const floating *X, Py_ssize_t ldx,
                              floating *Xt, Py_ssize_t k0, Py_ssize_t k1, Py_ssize_t t0,
                              Py_ssize_t t1) noexcept nogil:
    if floating is float:
        pack_tiles_f(K, N, X, ldx, Xt, k0, k1, t0, t1)
    else:
        pack_tiles_d(K, N, X, ldx, Xt, k0, k1, t0, t1)


cdef inline Py_ssize_t k_weight_grad_work(floating *kind, Py_ssize_t N1,
                                          Py_ssize_t N2) noexcept nogil:
    if floating is float:
        return weight_grad_work_f(N1, N2)
    else:
        return weight_grad_work_d(N1, N2)


cdef inline void k_weight_grad(Py_ssize_t K, Py_ssize_t nj, const floating *dG, Py_ssize_t ldg,
                               const Py_ssize_t *rows, const floating *Xt1, Py_ssize_t N1,
                               floating *dW1, const floating *Xt2, Py_ssize_t N2, floating *dW2,
                               floating *db, floating *db2, floating *work) noexcept nogil:
    if floating is float:
        weight_grad_f(K, nj, dG, ldg, rows, Xt1, N1, dW1, Xt2, N2, dW2, db, db2, work)
    else:
        weight_grad_d(K, nj, dG, ldg, rows, Xt1, N1, dW1, Xt2, N2, dW2, db, db2, work)


cdef inline void k_gemm(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, const floating *A,
                        Py_ssize_t lda, const floating *Bp, floating *C, Py_ssize_t ldc,
                        int accumulate, const floating *bias) noexcept nogil:
    if floating is float:
        gemm_f(M, N, K, A, lda, Bp, C, ldc, accumulate, bias)
    else:
        gemm_d(M, N, K, A, lda, Bp, C, ldc, accumulate, bias)


# the cell variants (see "cell variants" below)

cdef inline void k_elman_v(Py_ssize_t n, Py_ssize_t H, const mr_cell_variant *v,
                           const floating *gx, Py_ssize_t ldgx, const floating *gh,
                           Py_ssize_t ldgh, floating *h, Py_ssize_t ldh, floating *saved,
                           Py_ssize_t lds) noexcept nogil:
    if floating is float:
        elman_cell_forward_v_f(n, H, v, gx, ldgx, gh, ldgh, h, ldh, saved, lds)
    else:
        elman_cell_forward_v_d(n, H, v, gx, ldgx, gh, ldgh, h, ldh, saved, lds)


cdef inline void k_elman_back_v(Py_ssize_t n, Py_ssize_t H, const mr_cell_variant *v,
                                const floating *dy, Py_ssize_t lddy, const floating *dh_next,
                                const floating *h, Py_ssize_t ldh, const floating *saved,
                                Py_ssize_t lds, floating *dg, Py_ssize_t ldg) noexcept nogil:
    if floating is float:
        elman_cell_backward_v_f(n, H, v, dy, lddy, dh_next, h, ldh, saved, lds, dg, ldg)
    else:
        elman_cell_backward_v_d(n, H, v, dy, lddy, dh_next, h, ldh, saved, lds, dg, ldg)


cdef inline void k_gru_v(Py_ssize_t n, Py_ssize_t H, const mr_cell_variant *v,
                         const floating *gx, Py_ssize_t ldgx, const floating *gh,
                         Py_ssize_t ldgh, const floating *hp, Py_ssize_t ldhp, floating *h,
                         Py_ssize_t ldh, floating *saved, Py_ssize_t lds) noexcept nogil:
    if floating is float:
        gru_cell_forward_v_f(n, H, v, gx, ldgx, gh, ldgh, hp, ldhp, h, ldh, saved, lds)
    else:
        gru_cell_forward_v_d(n, H, v, gx, ldgx, gh, ldgh, hp, ldhp, h, ldh, saved, lds)


cdef inline void k_gru_rz_v(Py_ssize_t n, Py_ssize_t H, const mr_cell_variant *v,
                            const floating *gx, Py_ssize_t ldgx, floating *gh, Py_ssize_t ldgh,
                            const floating *hp, Py_ssize_t ldhp, floating *q, Py_ssize_t ldq,
                            floating *saved, Py_ssize_t lds) noexcept nogil:
    if floating is float:
        gru_cell_rz_v_f(n, H, v, gx, ldgx, gh, ldgh, hp, ldhp, q, ldq, saved, lds)
    else:
        gru_cell_rz_v_d(n, H, v, gx, ldgx, gh, ldgh, hp, ldhp, q, ldq, saved, lds)


cdef inline void k_gru_n_v(Py_ssize_t n, Py_ssize_t H, const mr_cell_variant *v,
                           const floating *gx, Py_ssize_t ldgx, const floating *gh,
                           Py_ssize_t ldgh, const floating *hp, Py_ssize_t ldhp, floating *h,
                           Py_ssize_t ldh, floating *saved, Py_ssize_t lds) noexcept nogil:
    if floating is float:
        gru_cell_n_v_f(n, H, v, gx, ldgx, gh, ldgh, hp, ldhp, h, ldh, saved, lds)
    else:
        gru_cell_n_v_d(n, H, v, gx, ldgx, gh, ldgh, hp, ldhp, h, ldh, saved, lds)


cdef inline void k_gru_back_v(Py_ssize_t n, Py_ssize_t H, const mr_cell_variant *v, int after,
                              const floating *dy, Py_ssize_t lddy, floating *dh_next,
                              const floating *saved, Py_ssize_t lds, const floating *hp,
                              Py_ssize_t ldhp, floating *dgx, Py_ssize_t ldgx, floating *dgh,
                              Py_ssize_t ldgh) noexcept nogil:
    if floating is float:
        gru_cell_backward_v_f(n, H, v, after, dy, lddy, dh_next, saved, lds, hp, ldhp, dgx,
                              ldgx, dgh, ldgh)
    else:
        gru_cell_backward_v_d(n, H, v, after, dy, lddy, dh_next, saved, lds, hp, ldhp, dgx,
                              ldgx, dgh, ldgh)


cdef inline void k_gru_back_r_v(Py_ssize_t n, Py_ssize_t H, const mr_cell_variant *v,
                                const floating *dq, Py_ssize_t ldq, floating *dh_next,
                                const floating *saved, Py_ssize_t lds, const floating *hp,
                                Py_ssize_t ldhp, floating *dgx, Py_ssize_t ldgx, floating *dgh,
                                Py_ssize_t ldgh) noexcept nogil:
    if floating is float:
        gru_cell_back_r_v_f(n, H, v, dq, ldq, dh_next, saved, lds, hp, ldhp, dgx, ldgx, dgh,
                            ldgh)
    else:
        gru_cell_back_r_v_d(n, H, v, dq, ldq, dh_next, saved, lds, hp, ldhp, dgx, ldgx, dgh,
                            ldgh)


cdef inline void k_lstm_v(Py_ssize_t n, Py_ssize_t H, const mr_cell_variant *v,
                          const floating *pp, const floating *gx, Py_ssize_t ldgx,
                          const floating *gh, Py_ssize_t ldgh, const floating *cp,
                          Py_ssize_t ldcp, floating *h, Py_ssize_t ldh, floating *c,
                          Py_ssize_t ldc, floating *saved, Py_ssize_t lds) noexcept nogil:
    if floating is float:
        lstm_cell_forward_v_f(n, H, v, pp, gx, ldgx, gh, ldgh, cp, ldcp, h, ldh, c, ldc, saved,
                              lds)
    else:
        lstm_cell_forward_v_d(n, H, v, pp, gx, ldgx, gh, ldgh, cp, ldcp, h, ldh, c, ldc, saved,
                              lds)


cdef inline void k_lstm_back_v(Py_ssize_t n, Py_ssize_t H, const mr_cell_variant *v,
                               const floating *pp, const floating *dy, Py_ssize_t lddy,
                               const floating *dh_next, floating *dc_next,
                               const floating *saved, Py_ssize_t lds, const floating *cp,
                               Py_ssize_t ldcp, const floating *c, Py_ssize_t ldc, floating *dg,
                               Py_ssize_t ldg) noexcept nogil:
    if floating is float:
        lstm_cell_backward_v_f(n, H, v, pp, dy, lddy, dh_next, dc_next, saved, lds, cp, ldcp, c,
                               ldc, dg, ldg)
    else:
        lstm_cell_backward_v_d(n, H, v, pp, dy, lddy, dh_next, dc_next, saved, lds, cp, ldcp, c,
                               ldc, dg, ldg)


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

# Work units (fixed by the shape, never by the thread count):
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


def n_slices(Py_ssize_t B, Py_ssize_t D=1, Py_ssize_t weight_bytes=0):
    """How many batch slices the time loops cut a batch of B rows into, in a layer of D
    directions whose recurrent weights take ``weight_bytes`` per direction (a function of
    the shape only)."""
    return _n_slices(B, D, weight_bytes)


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
# minirnn_on_sigint (C, above) in front of that handler for its duration; the time loops check
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


# --------------------------------------------------------------------------- cell variants

# A layer may compute another cell than PyTorch's (minirnn.variants.Variant). The kernels get
# it as ``variant``: None (PyTorch's cell), or a tuple
#     (reset_after, coupled_input_forget, cell_clip or None, reverse, activations)
# with activations None (PyTorch's) or one tuple per direction of (id, alpha, beta) per slot
# (ids: csrc/activations.h = the index in minirnn.variants.ACTIVATIONS; slots LSTM f, g, h,
# GRU f, g, Elman f), and the LSTM's peepholes as a 6th array of each direction's weights
# (weight_peephole (3H,), blocks i, f, o; its gradient the 6th of grads). The time loops
# stay the same loops; a variant adds to them
#   - the variant's rows of the cell (the *_v functions of csrc/{elman,gru,lstm}.h: other
#     activations, the clip, coupled gates, peepholes), whenever the cell is not PyTorch's;
#   - a split recurrent product (GRU with the reset before the product): the step multiplies
#     h_{t-1} by W_hh's r, z rows, the cell computes r, z and q = r * h_{t-1}, a second
#     product multiplies q by W_hn, and the cell finishes n and h_t. Backward: dq = da_n W_hn
#     between the two halves of the cell, then dh_{t-1} += dG_h[r,z] W_hh[r,z]; after the
#     loop, dW_hn = dG_h[n]^T Q over the saved q (S's 4th block) instead of H_prev;
#   - a cell-state input to the gates (peepholes): pointwise in the cell; dp_i, dp_f, dp_o
#     are sums over the steps of dG * c, computed after the loop (_peephole_grad);
#   - the time order of each direction: reversed for direction 1, and for direction 0 of a
#     one-direction layer with ``reverse``.
# Rows that never take a step (batch_sizes[0] < B, empty sequences) need no variant: they
# keep h0/c0 as h_n/c_n, output zeros, and their dh0/dc0 are dhT/dcT.

ctypedef struct _Var:
    bint cells          # the cell is not PyTorch's: the *_v rows
    bint before         # GRU: the reset before the product (the split recurrent product)
    bint peephole       # LSTM: weight_peephole given (the cell-state input to the gates)
    bint pre            # the training forward saves the pre-activations
    bint rev[2]         # direction d runs from the last step to the first
    mr_cell_variant cv[2]


# PyTorch's activation ids per slot (Sigmoid 0, Tanh 1, Relu 2) and the ids whose derivative
# needs the input (LeakyRelu 4, ThresholdedRelu 5, ScaledTanh 6, Elu 8), as
# minirnn.variants.PYTORCH_ACTIVATIONS and DERIVATIVE_FROM_INPUT say
_STD_ACT_IDS = {MODE_RNN_TANH: (1,), MODE_RNN_RELU: (2,), MODE_GRU: (0, 1), MODE_LSTM: (0, 1, 1)}
_ACT_IDS_FROM_INPUT = frozenset((4, 5, 6, 8))


cdef int _parse_variant(int mode, object variant, Py_ssize_t D, bint peephole,
                        _Var *v) except -1:
    """Fill v from the ``variant`` argument (see above) of a layer of D directions."""
    cdef Py_ssize_t d, k
    cdef int n_slots = len(_STD_ACT_IDS[mode])
    std = _STD_ACT_IDS[mode]
    memset(v, 0, sizeof(_Var))
    v.rev[1] = True
    v.peephole = peephole
    reset_after, coupled, clip, reverse, acts = True, False, None, False, None
    if variant is not None:
        _check(isinstance(variant, tuple) and len(variant) == 5,
               "variant must be None or (reset_after, coupled_input_forget, cell_clip, "
               "reverse, activations)")
        reset_after, coupled, clip, reverse, acts = variant
    _check(reset_after or mode == MODE_GRU, "reset_after=False is a GRU variant")
    _check(not coupled or mode == MODE_LSTM, "coupled_input_forget is an LSTM variant")
    _check(not peephole or mode == MODE_LSTM, "only LSTM takes peepholes")
    _check(clip is None or clip > 0, "cell_clip must be None or > 0")
    _check(not reverse or D == 1, "reverse is for a layer of one direction")
    v.rev[0] = bool(reverse)
    if acts is not None:
        _check(isinstance(acts, tuple) and len(acts) == D
               and all(isinstance(a, tuple) and len(a) == n_slots for a in acts),
               f"activations must hold {n_slots} (id, alpha, beta) per direction")
    v.before = not reset_after
    v.cells = (not reset_after or bool(coupled) or clip is not None or acts is not None
               or peephole)
    pre = clip is not None
    for d in range(D):
        for k in range(n_slots):
            act = acts[d][k] if acts is not None else (std[k], 0.0, 0.0)
            _check(0 <= act[0] < MR_N_ACTIVATIONS, f"unknown activation id {act[0]}")
            v.cv[d].act[k] = act[0]
            v.cv[d].alpha[k] = act[1]
            v.cv[d].beta[k] = act[2]
            pre = pre or act[0] in _ACT_IDS_FROM_INPUT
        v.cv[d].std_acts = acts is None or tuple(a[0] for a in acts[d]) == std
        v.cv[d].coupled = bool(coupled)
        v.cv[d].clip = clip if clip is not None else float("inf")
    v.pre = v.cells and pre
    for d in range(D):
        v.cv[d].save_pre = v.pre
    return 0


cdef inline const mr_cell_variant *_cell_variant(const _Var *v, Py_ssize_t d) noexcept nogil:
    """The cell variant of direction d for the time loops: NULL for PyTorch's cell."""
    if not v.cells:
        return NULL
    return &v.cv[d]


cdef Py_ssize_t _saved_width(int mode, const _Var *v) noexcept:
    """SW: the floats saved per step and row, in units of H (S's last axis is SW*H)."""
    if mode == MODE_GRU:
        return 4 + (3 if v.pre else 0)        # r | z | n | gh_n or q (| a_r | a_z | a_n)
    if mode == MODE_LSTM:
        return 5 + (4 if v.pre else 0)        # i | f | g | o | h(c) (| a_i | a_f | a_g | a_o)
    return 1 if v.pre else 0                  # Elman: (a); h_t is in Y


def saved_width(int mode, variant=None):
    """SW of a layer (S is (D, T, B, SW*H) in training), for the cell ``mode`` and
    ``variant`` (the argument of forward_layer)."""
    cdef _Var v
    if not 0 <= mode <= 3:
        _fail(f"unknown mode {mode}")
    _parse_variant(mode, variant, 1 if variant is None or variant[4] is None
                   else len(variant[4]), False, &v)
    return _saved_width(mode, &v)


# --------------------------------------------------------------------------- forward

cdef Py_ssize_t STEP_GX_WEIGHTS = 2 * 1024 * 1024
cdef Py_ssize_t STEP_GX_MIN_BYTES = 2 * 1024 * 1024


# whether the latest forward_layer call computed G_x in its time loops (for tests)
cdef bint _last_step_gx = False


def _set_step_gx_limits(Py_ssize_t weights, Py_ssize_t min_bytes):
    """Set STEP_GX_WEIGHTS and STEP_GX_MIN_BYTES; returns the previous pair. For tests and
    benchmarks: (0, any) turns the per-step input product off, (huge, 0) on wherever the
    other conditions allow; results must not change to the bit either way."""
    global STEP_GX_WEIGHTS, STEP_GX_MIN_BYTES
    old = (STEP_GX_WEIGHTS, STEP_GX_MIN_BYTES)
    STEP_GX_WEIGHTS, STEP_GX_MIN_BYTES = weights, min_bytes
    return old


def _step_gx_of_last_call():
    """Whether the latest forward_layer call computed G_x step by step in its time loops."""
    return _last_step_gx


cdef inline bint _step_input_product(Py_ssize_t D, Py_ssize_t B, Py_ssize_t n_sl,
                                     Py_ssize_t I, Py_ssize_t P, int nt, double work,
                                     Py_ssize_t weight_bytes, Py_ssize_t gx_bytes) noexcept:
    """Whether each time loop computes its own rows of G_x, step by step, just before its
    gates read them (see "input product" above). Measured gains and losses, float32, 1 and
    2 threads, LSTM and GRU inference (bench sizes, see docs/performance.md):
      - G_x of all steps well beyond the L2 (1 MiB), weights of at most 2 MiB: seed +12 to
        +20 %, long +2 to +16 %, medium (float32) +2 %; large (8 MiB of weights, re-read at
        every step) -5 to -20 %: off above STEP_GX_WEIGHTS bytes of packed weights;
      - G_x that stays in cache anyway (small: 0.8 MB in float32, 1.6 MB in float64; tiny):
        -3 to -7 %, the cost of one more product call per step: off below
        STEP_GX_MIN_BYTES;
      - slices of fewer than 8 rows with a wide input (measured on bidir, I = 128 and 256
        for P = 128, when it had slices of 4 rows; it has 8 now): -3 to +3 %: each step
        reads all of W_ih for 4 rows; on only when I <= P / 2;
      - and only when the time loops keep every thread busy, or the input product is too
        small for a team anyway: the G_x phase is the one that runs in parallel when a
        batch has a single slice.
    Either way every element of G_x is the same sum, so results do not change to the bit."""
    if weight_bytes > STEP_GX_WEIGHTS or gx_bytes < STEP_GX_MIN_BYTES:
        return False
    if B // n_sl < 8 and 2 * I > P:
        return False
    return D * n_sl >= nt or work < PARALLEL_MIN_WORK


cdef void _forward_slice(int mode, bint reverse, Py_ssize_t T, Py_ssize_t B, Py_ssize_t b0,
                         Py_ssize_t b1, Py_ssize_t H, Py_ssize_t P, Py_ssize_t DP, Py_ssize_t SWH,
                         const int64_t *bs, floating *Gx, const floating *X,
                         Py_ssize_t I, const floating *WihP, const floating *bih,
                         const floating *WhhP,
                         const floating *bhh, const floating *WhrP, const floating *h0,
                         const floating *c0, floating *Y, floating *hT, floating *cT,
                         floating *Cs, floating *S, floating *M, floating *gh, floating *cbuf,
                         floating *mbuf, const mr_cell_variant *cv, const floating *pp,
                         const floating *WhnP, floating *qbuf, bint watch) noexcept nogil:
    """The time loop of one direction over batch rows b0 <= b < b1.

    IN   Gx (T, B, GH) = X W_ih^T + b_ih, or, when WihP is not NULL, a scratch (B, GH): then
         each step computes its own rows of G_x there, from X (T, B, I), WihP (W_ih^T packed)
         and bih (GH,) or NULL, just before its gates read them (see "input product");
         WhhP: W_hh^T (P, GH) packed (GRU reset before the product: its r, z columns (P, 2H)
         only, and WhnP its n columns (P, H));  bhh (GH,) or NULL;
         WhrP: W_hr^T (H, P) packed (LSTM with projections) or NULL (then P = H);
         h0 (B, P), c0 (B, H) (c0 LSTM only);  bs (T,) batch sizes of a packed batch, or
         NULL (every row has every step; see "variable lengths" above);
         cv: the cell variant, or NULL for PyTorch's cell (see "cell variants");
         pp (3H,) the LSTM variant's peepholes (zeros without them)
    OUT  Y: this direction's column block of the layer output, Y[t, b, j] at Y[(t*B + b)*DP + j];
         hT (B, P), cT (B, H) final states; Cs (T, B, H), S (T, B, SWH) and, with
         projections, M (T, B, H) when training, else NULL
    SCRATCH  gh (B, GH);  cbuf (2, B, H) (LSTM inference: c_t alternates between two rows);
         mbuf (B, H) (projections, inference: m_t); qbuf (B, H) (GRU reset before the
         product, inference: q = r * h_{t-1}; training keeps q in S)
    """
    cdef Py_ssize_t G = GATES[mode], GH = GATES[mode] * H
    cdef Py_ssize_t rows = b1 - b0, s, t, j, b, row, n, e, e_next, f, ldq
    cdef const floating *h_prev = h0 + b0 * P
    cdef Py_ssize_t ldhp = P
    cdef const floating *c_prev = NULL
    cdef floating *h
    cdef floating *c = NULL
    cdef floating *m
    cdef floating *q
    cdef floating *saved
    cdef floating *ghs = gh + b0 * GH
    cdef floating *gx
    cdef bint before = cv != NULL and WhnP != NULL      # the split recurrent product
    if c0 != NULL:
        c_prev = c0 + b0 * H
    if bs != NULL and not reverse:
        # rows that never take a step (bs[0] < B) keep their initial states
        e = _active_end(bs, 0, b0, b1)
        _fill_rows(hT + e * P, P, P, b1 - e, h0 + e * P, P)
        if mode == MODE_LSTM:
            _fill_rows(cT + e * H, H, H, b1 - e, c0 + e * H, H)
    for s in range(T):
        if watch and minirnn_interrupted():
            return                                       # Ctrl-C: see "interrupts"
        t = T - 1 - s if reverse else s
        row = t * B + b0                                 # first row of this slice at step t
        e = _active_end(bs, t, b0, b1)                   # rows b0 <= b < e have a step t
        n = e - b0
        h = Y + row * DP
        saved = S + row * SWH if S != NULL else NULL
        if mode == MODE_LSTM:
            c = Cs + row * H if Cs != NULL else cbuf + (s % 2) * B * H + b0 * H
        gx = Gx + row * GH
        if n > 0 and WihP != NULL:
            # G_x = x_t W_ih^T + b_ih of these rows      (n, GH), into the scratch
            gx = Gx + b0 * GH
            k_gemm(n, GH, I, X + row * I, I, WihP, gx, GH, 0, bih)
        if n > 0 and not before:
            # G_h = h_{t-1} W_hh^T + b_hh                (n, GH)
            k_gemm(n, GH, P, h_prev, ldhp, WhhP, ghs, GH, 0, bhh)
        if n == 0:
            pass
        elif mode == MODE_RNN_TANH or mode == MODE_RNN_RELU:
            if cv != NULL:
                k_elman_v(n, H, cv, gx, GH, ghs, GH, h, DP, saved, SWH)
            elif floating is float:
                elman_cell_forward_f(n, H, mode == MODE_RNN_RELU, gx, GH, ghs, GH, h, DP)
            else:
                elman_cell_forward_d(n, H, mode == MODE_RNN_RELU, gx, GH, ghs, GH, h, DP)
        elif mode == MODE_GRU:
            if before:
                # the split product: G_h's r, z block first ...
                k_gemm(n, 2 * H, P, h_prev, ldhp, WhhP, ghs, GH, 0, bhh)
                if saved != NULL:
                    q, ldq = saved + 3 * H, SWH
                else:
                    q, ldq = qbuf + b0 * H, H
                # ... r, z and q = r * h_{t-1} ...
                k_gru_rz_v(n, H, cv, gx, GH, ghs, GH, h_prev, ldhp, q, ldq, saved, SWH)
                # ... then its n block on q: gh_n = q W_hn^T + b_hn ...
                k_gemm(n, H, H, q, ldq, WhnP, ghs + 2 * H, GH, 0,
                       bhh + 2 * H if bhh != NULL else NULL)
                # ... and n, h_t
                k_gru_n_v(n, H, cv, gx, GH, ghs, GH, h_prev, ldhp, h, DP, saved, SWH)
            elif cv != NULL:
                k_gru_v(n, H, cv, gx, GH, ghs, GH, h_prev, ldhp, h, DP, saved, SWH)
            elif floating is float:
                gru_cell_forward_f(n, H, gx, GH, ghs, GH, h_prev, ldhp, h, DP,
                                   saved, SWH)
            else:
                gru_cell_forward_d(n, H, gx, GH, ghs, GH, h_prev, ldhp, h, DP,
                                   saved, SWH)
        else:
            # with projections the cell writes m_t = o_t tanh(c_t) (n, H), else h_t itself
            if WhrP == NULL:
                m = h
            else:
                m = M + row * H if M != NULL else mbuf + b0 * H
            if cv != NULL:
                k_lstm_v(n, H, cv, pp, gx, GH, ghs, GH, c_prev, H, m, DP if WhrP == NULL else H,
                         c, H, saved, SWH)
            elif floating is float:
                lstm_cell_forward_f(n, H, gx, GH, ghs, GH, c_prev, H, m,
                                    DP if WhrP == NULL else H, c, H, saved, SWH)
            else:
                lstm_cell_forward_d(n, H, gx, GH, ghs, GH, c_prev, H, m,
                                    DP if WhrP == NULL else H, c, H, saved, SWH)
            if WhrP != NULL:
                # ... and h_t = m_t W_hr^T               (n, P)
                k_gemm(n, P, H, m, H, WhrP, h, DP, 0, NULL)
        if bs != NULL:
            if reverse:
                # rows e <= b < e_next start at step t-1: their state before it is h0 (c0)
                e_next = _active_end(bs, t - 1, b0, b1) if t > 0 else e
                _fill_rows(h + n * DP, DP, P, e_next - e, h0 + e * P, P)
                if mode == MODE_LSTM:
                    _fill_rows(c + n * H, H, H, e_next - e, c0 + e * H, H)
            else:
                # rows f <= b < e have their last step here: copy out h_n (and c_n)
                f = _active_end(bs, t + 1, b0, b1) if t + 1 < T else b0
                _fill_rows(hT + f * P, P, P, e - f, h + (f - b0) * DP, DP)
                if mode == MODE_LSTM:
                    _fill_rows(cT + f * H, H, H, e - f, c + (f - b0) * H, H)
                e_next = e
            # padded positions: zeros (Y is the next layer's input and, like M, a factor of
            # the weight-gradient products)
            _fill_rows(h + (e_next - b0) * DP, DP, P, b1 - e_next, <floating *> NULL, 0)
            if Cs != NULL:
                _fill_rows(c + (e_next - b0) * H, H, H, b1 - e_next, <floating *> NULL, 0)
            if M != NULL:
                _fill_rows(M + (row + n) * H, H, H, rows - n, <floating *> NULL, 0)
        h_prev = h
        ldhp = DP
        if mode == MODE_LSTM:
            c_prev = c
    if bs != NULL and not reverse:
        return                                           # final states copied in the loop
    # the final states of these rows
    for b in range(rows):
        memcpy(hT + (b0 + b) * P, h_prev + b * ldhp, P * sizeof(floating))
        if cT != NULL:
            memcpy(cT + (b0 + b) * H, c_prev + b * H, H * sizeof(floating))
    if bs != NULL:
        # rows that never take a step (bs[0] < B) keep their initial states
        e = _active_end(bs, 0, b0, b1)
        _fill_rows(hT + e * P, P, P, b1 - e, h0 + e * P, P)
        if cT != NULL:
            _fill_rows(cT + e * H, H, H, b1 - e, c0 + e * H, H)


ctypedef struct _Fwd:
    # the shapes and arrays of one forward_layer call (see forward_layer)
    int mode
    # In is I (a C macro: complex.h's imaginary unit)
    Py_ssize_t D, T, B, In, H, P, DP, GH, SWH, TB, n_pan, pan_P, n_mat, n_blk, n_sl
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


cdef void _forward_unit(floating *kind, const _Fwd *f, int phase, Py_ssize_t u) noexcept nogil:
    """Work unit u of a phase of forward_layer: 0 pack one matrix, 1 one block of G_x rows,
    2 the time loop of one (direction, batch slice)."""
    cdef Py_ssize_t d, k, r0, rows, b0, b1
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
        d = u // f.n_blk
        if f.blk == NULL:
            r0 = (u % f.n_blk) * BLOCK_ROWS
            rows = min(BLOCK_ROWS, TB - r0)
        else:
            r0 = f.blk[2 * (u % f.n_blk)]
            rows = f.blk[2 * (u % f.n_blk) + 1]
        k_gemm(rows, GH, I, <floating *> f.X + r0 * I, I, WihP + d * f.size_ih,
               Gx + (d * TB + r0) * GH, GH, 0, <floating *> f.bih[d])
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
                       f.watch)


cdef void _forward_phase(floating *kind, const _Fwd *f, int phase, Py_ssize_t units,
                         int team) noexcept nogil:
    """Run units 0..units-1 of a phase on `team` threads. One thread runs them in a plain loop:
    entering an OpenMP region, even with if(false), costs ~0.7 us in libgomp (measured: a
    tiny LSTM call 19.1 -> 16.7 us without any region)."""
    cdef Py_ssize_t u
    if team > 1:
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
                  batch_sizes=None, variant=None):
    """One layer, every direction, whole sequence. See the module docstring for the shapes.

    weights: one (W_ih (GH, I), W_hh (GH, P), b_ih (GH,) or None, b_hh (GH,) or None[, W_hr
    (P, H) or None]) per direction (D = len(weights), 1 or 2; direction 1 runs from the last
    step to the first). W_hr (LSTM with projections) makes h P wide and c H wide; without it
    P = H. h0, hT: (D, B, P). c0, cT: (D, B, H) for LSTM, else None. Cs (D, T, B, H) (LSTM),
    S (D, T, B, SW*H) (GRU, LSTM) and M (D, T, B, H) (projections) are given to keep what the
    backward needs (training), or None (inference).
    batch_sizes: None, or an int64 array (T,) for a packed batch: the rows sorted by
    decreasing length, batch_sizes[t] of them having a step t (see "variable lengths" above).
    variant: None (PyTorch's cell) or the cell variant (see "cell variants" above); an LSTM
    with peepholes has W_peephole (3H,) as the 6th array of each direction's weights (W_hr
    None without projections). S is then (D, T, B, saved_width(mode, variant) * H).
    Writes Y, hT (and cT, Cs, S, M). Every shape is checked before any computation.
    """
    dtype = _dtype_of(X)
    if dtype is _F32:
        _forward_layer(<float *> NULL, dtype, mode, X, weights, h0, c0, Y, hT, cT, Cs, S, M,
                       batch_sizes, variant)
    else:
        _forward_layer(<double *> NULL, dtype, mode, X, weights, h0, c0, Y, hT, cT, Cs, S, M,
                       batch_sizes, variant)


cdef int _forward_layer(floating *kind, object dtype, int mode, object X, tuple weights,
                        object h0, object c0, object Y, object hT, object cT, object Cs,
                        object S, object M, object batch_sizes, object variant) except -1:
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
    cdef Py_ssize_t n_sl = _n_slices(B, D, (GH * P + (P * H if proj else 0)) * sizeof(floating))
    cdef int nt = _threads(), team
    cdef bint step_gx = _step_input_product(D, B, n_sl, I, P, nt, <double> D * TB * GH * I,
                                            (size_ih + size_hh + size_hr) * sizeof(floating),
                                            D * TB * GH * sizeof(floating))
    cdef floating *bufs[9]
    cdef Py_ssize_t sizes[9]
    sizes[:] = [D * size_ih, D * size_hh, D * size_hr, D * (B if step_gx else TB) * GH, D * B * GH,
                D * 2 * B * H if lstm else 1, D * B * H if proj and not training else 1,
                3 * H if lstm and var.cells else 1, D * B * H if var.before else 1]
    _scratch(dtype, sizes, 9, <void **> bufs)
    cdef floating *pWihP = bufs[0]
    cdef floating *pWhhP = bufs[1]
    cdef floating *pWhrP = bufs[2]
    cdef floating *pGx = bufs[3]
    cdef floating *pgh = bufs[4]
    cdef floating *pcbuf = bufs[5]
    cdef floating *pmbuf = bufs[6]
    cdef floating *pzeros = bufs[7]                 # the peepholes of an LSTM variant without
    memset(pzeros, 0, (3 * H if lstm and var.cells else 1) * sizeof(floating))     # them

    cdef Py_ssize_t n_blk = (TB + BLOCK_ROWS - 1) // BLOCK_ROWS
    cdef Py_ssize_t n_mat = 3 if proj else 2
    cdef const int64_t *pblk = NULL
    if pbs != NULL and not step_gx:
        # G_x only where a step is taken: rows t*B .. t*B + batch_sizes[t] - 1 of each step
        # (the blocks of phase 2; time loops that compute their own G_x skip that phase)
        blocks = _active_blocks(batch_sizes, B)
        n_blk = blocks.shape[0]
        pblk = <const int64_t *> cnp.PyArray_DATA(<cnp.ndarray> blocks)
    global _largest_team, _last_step_gx
    _last_step_gx = step_gx
    if B == 0:
        return 0
    _largest_team = 0
    # what the three phases need, for _forward_unit (pointers as void *: their type is the
    # `floating` of the functions that read them)
    cdef _Fwd f
    f.mode, f.D, f.T, f.B, f.In, f.H, f.P = mode, D, T, B, I, H, P
    f.DP, f.GH, f.SWH, f.TB = DP, GH, SWH, TB
    f.n_pan, f.pan_P, f.n_mat, f.n_blk, f.n_sl = n_pan, pan_P, n_mat, n_blk, n_sl
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
        _forward_phase(<floating *> NULL, &f, 0, n_mat * D,
                       _team(nt, n_mat * D, PACK_COST * D * GH * (I + P + H)))
        # 2. G_x = X W_ih^T + b_ih, all steps       units: direction x block of rows
        #    (unless each time loop computes its own rows, step by step)
        if not step_gx:
            _forward_phase(<floating *> NULL, &f, 1, D * n_blk,
                           _team(nt, D * n_blk, <double> D * TB * GH * I))
        # 3. the time loops                         units: direction x batch slice
        _forward_phase(<floating *> NULL, &f, 2, D * n_sl,
                       _team(nt, D * n_sl, <double> D * TB * ((GH + H) * P
                                                              + (GH * I if step_gx else 0))))
    if f.watch and minirnn_unwatch_sigint():
        _interrupted()
    return 0


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
        # dc_next) untouched and get zero gate gradients (see "variable lengths" above)
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


cdef void _backward_unit(floating *kind, const _Bwd *g, int phase, Py_ssize_t u,
                         int tid) noexcept nogil:
    """Work unit u of a phase of backward_layer: 0 pack one weight matrix, 1 the reverse time
    loop of one (direction, batch slice), 2 pack one register tile of X, H_prev or M, 3 the
    weight and bias gradients of one block of gate columns, the rows of dW_hr of one block of
    columns of dH, or one block of rows of dX. tid: the thread that runs it (0 <= tid < the
    team), whose work buffer it uses."""
    cdef Py_ssize_t d, k, b0, b1, r0, r1, t, g0, g1, p, rest
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
                        if g.var.before else NULL, g.watch)
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
            r0 = (u - n_w - n_r - g.n_pp) * BLOCK_ROWS
            r1 = min(r0 + BLOCK_ROWS, TB)
            if g.bs == NULL:
                _input_grad(kind, g, r0, r1)
            else:
                # a packed batch: the rows of each step that take it are a prefix of its B
                # rows; the others have zero gate gradients, and get dX = 0 without a product
                t = r0 // B
                while t * B < r1:
                    b0 = max(r0, t * B)
                    b1 = min(r1, t * B + g.bs[t])
                    if b1 > b0:
                        _input_grad(kind, g, b0, b1)
                    b0 = max(b0, b1)
                    b1 = min(r1, (t + 1) * B)
                    if b1 > b0:
                        memset(<floating *> g.dX + b0 * I, 0, (b1 - b0) * I * sizeof(floating))
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


cdef inline void _input_grad(floating *kind, const _Bwd *g, Py_ssize_t r0,
                             Py_ssize_t r1) noexcept nogil:
    """Rows r0 <= r < r1 of dX = the sum over directions of dG_x W_ih (direction 0 first)."""
    cdef Py_ssize_t TB = g.TB, GH = g.GH, I = g.In
    cdef floating *dGx = <floating *> g.dGx
    cdef floating *WihP = <floating *> g.WihP
    k_gemm(r1 - r0, I, GH, dGx + r0 * GH, GH, WihP, <floating *> g.dX + r0 * I, I, 0, NULL)
    if g.D == 2:
        k_gemm(r1 - r0, I, GH, dGx + (TB + r0) * GH, GH, WihP + g.size_ih,
               <floating *> g.dX + r0 * I, I, 1, NULL)


cdef void _backward_phase(floating *kind, const _Bwd *g, int phase, Py_ssize_t units,
                          int team) noexcept nogil:
    """As _forward_phase, for backward_layer."""
    cdef Py_ssize_t u
    if team > 1:
        for u in prange(units, schedule="dynamic", num_threads=team):
            if not (g.watch and minirnn_interrupted()):
                _backward_unit(kind, g, phase, u, threadid())
    else:
        for u in range(units):
            if not (g.watch and minirnn_interrupted()):
                _backward_unit(kind, g, phase, u, 0)


def backward_layer(int mode, X, tuple weights, h0, c0, Y, Cs, S, dY, dhT, dcT, dX, dh0, dc0,
                   tuple grads, M=None, batch_sizes=None, variant=None):
    """Backpropagate one layer (every direction) through time.

    X, weights, h0, c0, Y, Cs, S, M: as given to and written by forward_layer (training).
    dY (T, B, D*P) gradient of Y; dhT (D, B, P), dcT (D, B, H) gradients of the final states
    (dcT LSTM). OUT dX (T, B, I), dh0 (D, B, P), dc0 (D, B, H) (dc0 LSTM, else None).
    grads: per direction (dW_ih, dW_hh, db_ih or None, db_hh or None[, dW_hr or None[,
    dW_peephole]]), ACCUMULATED into; dW_hr is given exactly when the weights have W_hr, and
    dW_peephole exactly when they have W_peephole.
    batch_sizes, variant: as given to forward_layer. dX is zero at padded positions.
    """
    dtype = _dtype_of(X)
    if dtype is _F32:
        _backward_layer(<float *> NULL, dtype, mode, X, weights, h0, c0, Y, Cs, S, dY, dhT, dcT,
                        dX, dh0, dc0, grads, M, batch_sizes, variant)
    else:
        _backward_layer(<double *> NULL, dtype, mode, X, weights, h0, c0, Y, Cs, S, dY, dhT,
                        dcT, dX, dh0, dc0, grads, M, batch_sizes, variant)


cdef int _backward_layer(floating *kind, object dtype, int mode, object X, tuple weights,
                         object h0, object c0, object Y, object Cs, object S, object dY,
                         object dhT, object dcT, object dX, object dh0, object dc0, tuple grads,
                         object M, object batch_sizes, object variant) except -1:
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
    cdef Py_ssize_t n_sl = _n_slices(B, D, (GH * P + (P * H if proj else 0)) * sizeof(floating))
    cdef Py_ssize_t n_pblk = (P + WG_COLS - 1) // WG_COLS
    cdef Py_ssize_t n_rblk = (TB + BLOCK_ROWS - 1) // BLOCK_ROWS
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
    cdef Py_ssize_t n_big = n_w + n_r + n_pp + n_rblk
    global _largest_team
    _largest_team = 0
    # the work buffers of phase 4: one per thread of the team it actually runs on
    cdef int team_big = _team(nt, n_big, <double> D * TB * GH * (2 * I + P + H))
    cdef floating *bufs[14]
    cdef Py_ssize_t sizes[14]
    sizes[:] = [D * size_hh, D * size_ih, D * size_hr, size_X, D * size_Ht, D * size_M,
                D * TB * GH, D * TB * GH if mode == MODE_GRU else 1, D * TB * P if proj else 1,
                D * B * P, D * B * H if lstm else 1, D * B * H if proj or var.before else 1,
                max(B * H if proj else 1, 3 * H if lstm and var.cells else 1),
                team_big * wg_size]
    _scratch(dtype, sizes, 14, <void **> bufs)
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
        _backward_phase(<floating *> NULL, &g, 0, n_mat * D,
                        _team(nt, n_mat * D, PACK_COST * D * GH * (I + P + H)))
        # 2. the reverse time loops                          units: direction x batch slice
        _backward_phase(<floating *> NULL, &g, 1, D * n_sl,
                        _team(nt, D * n_sl, <double> D * TB * (GH + H) * P))
        # 3. pack X, H_prev (, M) for the weight gradients   units: register tiles
        _backward_phase(<floating *> NULL, &g, 2, n_pack,
                        _team(nt, n_pack, PACK_COST * TB * (I + D * (P + H))))
        # 4. the big products and sums after the loop        units: blocks of result rows
        _backward_phase(<floating *> NULL, &g, 3, n_big, team_big)
    if g.watch and minirnn_unwatch_sigint():
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
    num_threads = 1 if _forked_serial else num_threads      # see "fork" above
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
    num_threads = 1 if _forked_serial else num_threads      # see "fork" above
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

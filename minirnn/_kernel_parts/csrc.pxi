# minirnn/_kernel_parts/csrc.pxi: the C of csrc/ (minirnn.h) declared, and each call picked by dtype (k_*).
# Included by minirnn/_kernels.pyx, in the order listed there (one extension module).

cdef extern from "minirnn.h" nogil:
    int mr_best_isa() noexcept
    int mr_set_isa(int isa) noexcept
    int mr_get_isa() noexcept
    void mr_fingerprint(const void *data, Py_ssize_t nbytes, uint64_t *out) noexcept

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
    void elman_cell_forward_f(Py_ssize_t rows, Py_ssize_t H, Py_ssize_t nc, int relu,
                              const float *gx, Py_ssize_t ldgx, const float *gh, Py_ssize_t ldgh,
                              float *h, Py_ssize_t ldh) noexcept
    void elman_cell_forward_d(Py_ssize_t rows, Py_ssize_t H, Py_ssize_t nc, int relu,
                              const double *gx, Py_ssize_t ldgx, const double *gh, Py_ssize_t ldgh,
                              double *h, Py_ssize_t ldh) noexcept
    void elman_cell_backward_f(Py_ssize_t rows, Py_ssize_t H, Py_ssize_t nc, int relu,
                               const float *dy, Py_ssize_t lddy, const float *dh_next,
                               const float *h, Py_ssize_t ldh, float *dg, Py_ssize_t ldg) noexcept
    void elman_cell_backward_d(Py_ssize_t rows, Py_ssize_t H, Py_ssize_t nc, int relu,
                               const double *dy, Py_ssize_t lddy, const double *dh_next,
                               const double *h, Py_ssize_t ldh, double *dg, Py_ssize_t ldg) noexcept
    void gru_cell_forward_f(Py_ssize_t rows, Py_ssize_t H, Py_ssize_t nc, const float *gx,
                            Py_ssize_t ldgx, const float *gh, Py_ssize_t ldgh, const float *h_prev,
                            Py_ssize_t ldhp, float *h, Py_ssize_t ldh, float *saved,
                            Py_ssize_t lds) noexcept
    void gru_cell_forward_d(Py_ssize_t rows, Py_ssize_t H, Py_ssize_t nc, const double *gx,
                            Py_ssize_t ldgx, const double *gh, Py_ssize_t ldgh,
                            const double *h_prev, Py_ssize_t ldhp, double *h, Py_ssize_t ldh,
                            double *saved, Py_ssize_t lds) noexcept
    void gru_cell_backward_f(Py_ssize_t rows, Py_ssize_t H, Py_ssize_t nc, const float *dy,
                             Py_ssize_t lddy, float *dh_next, const float *saved, Py_ssize_t lds,
                             const float *h_prev, Py_ssize_t ldhp, float *dgx, Py_ssize_t ldgx,
                             float *dgh, Py_ssize_t ldgh) noexcept
    void gru_cell_backward_d(Py_ssize_t rows, Py_ssize_t H, Py_ssize_t nc, const double *dy,
                             Py_ssize_t lddy, double *dh_next, const double *saved, Py_ssize_t lds,
                             const double *h_prev, Py_ssize_t ldhp, double *dgx, Py_ssize_t ldgx,
                             double *dgh, Py_ssize_t ldgh) noexcept
    void lstm_cell_forward_f(Py_ssize_t rows, Py_ssize_t H, Py_ssize_t nc, const float *gx,
                             Py_ssize_t ldgx, const float *gh, Py_ssize_t ldgh, const float *c_prev,
                             Py_ssize_t ldcp, float *h, Py_ssize_t ldh, float *c, Py_ssize_t ldc,
                             float *saved, Py_ssize_t lds) noexcept
    void lstm_cell_forward_d(Py_ssize_t rows, Py_ssize_t H, Py_ssize_t nc, const double *gx,
                             Py_ssize_t ldgx, const double *gh, Py_ssize_t ldgh,
                             const double *c_prev, Py_ssize_t ldcp, double *h, Py_ssize_t ldh,
                             double *c, Py_ssize_t ldc, double *saved, Py_ssize_t lds) noexcept
    void lstm_cell_backward_f(Py_ssize_t rows, Py_ssize_t H, Py_ssize_t nc, const float *dy,
                              Py_ssize_t lddy, const float *dh_next, float *dc_next,
                              const float *saved, Py_ssize_t lds, const float *c_prev,
                              Py_ssize_t ldcp, float *dg, Py_ssize_t ldg) noexcept
    void lstm_cell_backward_d(Py_ssize_t rows, Py_ssize_t H, Py_ssize_t nc, const double *dy,
                              Py_ssize_t lddy, const double *dh_next, double *dc_next,
                              const double *saved, Py_ssize_t lds, const double *c_prev,
                              Py_ssize_t ldcp, double *dg, Py_ssize_t ldg) noexcept

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
    void elman_cell_forward_v_f(Py_ssize_t rows, Py_ssize_t H, Py_ssize_t nc,
                                const mr_cell_variant *v, const float *gx, Py_ssize_t ldgx,
                                const float *gh, Py_ssize_t ldgh, float *h, Py_ssize_t ldh,
                                float *saved, Py_ssize_t lds) noexcept
    void elman_cell_backward_v_f(Py_ssize_t rows, Py_ssize_t H, Py_ssize_t nc,
                                 const mr_cell_variant *v, const float *dy, Py_ssize_t lddy,
                                 const float *dh_next, const float *h, Py_ssize_t ldh,
                                 const float *saved, Py_ssize_t lds, float *dg,
                                 Py_ssize_t ldg) noexcept
    void gru_cell_forward_v_f(Py_ssize_t rows, Py_ssize_t H, Py_ssize_t nc,
                              const mr_cell_variant *v, const float *gx, Py_ssize_t ldgx,
                              const float *gh, Py_ssize_t ldgh, const float *h_prev,
                              Py_ssize_t ldhp, float *h, Py_ssize_t ldh, float *saved,
                              Py_ssize_t lds) noexcept
    void gru_cell_rz_v_f(Py_ssize_t rows, Py_ssize_t H, Py_ssize_t nc, const mr_cell_variant *v,
                         const float *gx, Py_ssize_t ldgx, float *gh, Py_ssize_t ldgh,
                         const float *h_prev, Py_ssize_t ldhp, float *q, Py_ssize_t ldq,
                         float *saved, Py_ssize_t lds) noexcept
    void gru_cell_n_v_f(Py_ssize_t rows, Py_ssize_t H, Py_ssize_t nc, const mr_cell_variant *v,
                        const float *gx, Py_ssize_t ldgx, const float *gh, Py_ssize_t ldgh,
                        const float *h_prev, Py_ssize_t ldhp, float *h, Py_ssize_t ldh,
                        float *saved, Py_ssize_t lds) noexcept
    void gru_cell_backward_v_f(Py_ssize_t rows, Py_ssize_t H, Py_ssize_t nc,
                               const mr_cell_variant *v, int after, const float *dy,
                               Py_ssize_t lddy, float *dh_next, const float *saved, Py_ssize_t lds,
                               const float *h_prev, Py_ssize_t ldhp, float *dgx, Py_ssize_t ldgx,
                               float *dgh, Py_ssize_t ldgh) noexcept
    void gru_cell_back_r_v_f(Py_ssize_t rows, Py_ssize_t H, Py_ssize_t nc, const mr_cell_variant *v,
                             const float *dq, Py_ssize_t ldq, float *dh_next, const float *saved,
                             Py_ssize_t lds, const float *h_prev, Py_ssize_t ldhp, float *dgx,
                             Py_ssize_t ldgx, float *dgh, Py_ssize_t ldgh) noexcept
    void lstm_cell_forward_v_f(Py_ssize_t rows, Py_ssize_t H, Py_ssize_t nc,
                               const mr_cell_variant *v, const float *pp, const float *gx,
                               Py_ssize_t ldgx, const float *gh, Py_ssize_t ldgh,
                               const float *c_prev, Py_ssize_t ldcp, float *h, Py_ssize_t ldh,
                               float *c, Py_ssize_t ldc, float *saved, Py_ssize_t lds) noexcept
    void lstm_cell_backward_v_f(Py_ssize_t rows, Py_ssize_t H, Py_ssize_t nc,
                                const mr_cell_variant *v, const float *pp, const float *dy,
                                Py_ssize_t lddy, const float *dh_next, float *dc_next,
                                const float *saved, Py_ssize_t lds, const float *c_prev,
                                Py_ssize_t ldcp, const float *c, Py_ssize_t ldc, float *dg,
                                Py_ssize_t ldg) noexcept
    void elman_cell_forward_v_d(Py_ssize_t rows, Py_ssize_t H, Py_ssize_t nc,
                                const mr_cell_variant *v, const double *gx, Py_ssize_t ldgx,
                                const double *gh, Py_ssize_t ldgh, double *h, Py_ssize_t ldh,
                                double *saved, Py_ssize_t lds) noexcept
    void elman_cell_backward_v_d(Py_ssize_t rows, Py_ssize_t H, Py_ssize_t nc,
                                 const mr_cell_variant *v, const double *dy, Py_ssize_t lddy,
                                 const double *dh_next, const double *h, Py_ssize_t ldh,
                                 const double *saved, Py_ssize_t lds, double *dg,
                                 Py_ssize_t ldg) noexcept
    void gru_cell_forward_v_d(Py_ssize_t rows, Py_ssize_t H, Py_ssize_t nc,
                              const mr_cell_variant *v, const double *gx, Py_ssize_t ldgx,
                              const double *gh, Py_ssize_t ldgh, const double *h_prev,
                              Py_ssize_t ldhp, double *h, Py_ssize_t ldh, double *saved,
                              Py_ssize_t lds) noexcept
    void gru_cell_rz_v_d(Py_ssize_t rows, Py_ssize_t H, Py_ssize_t nc, const mr_cell_variant *v,
                         const double *gx, Py_ssize_t ldgx, double *gh, Py_ssize_t ldgh,
                         const double *h_prev, Py_ssize_t ldhp, double *q, Py_ssize_t ldq,
                         double *saved, Py_ssize_t lds) noexcept
    void gru_cell_n_v_d(Py_ssize_t rows, Py_ssize_t H, Py_ssize_t nc, const mr_cell_variant *v,
                        const double *gx, Py_ssize_t ldgx, const double *gh, Py_ssize_t ldgh,
                        const double *h_prev, Py_ssize_t ldhp, double *h, Py_ssize_t ldh,
                        double *saved, Py_ssize_t lds) noexcept
    void gru_cell_backward_v_d(Py_ssize_t rows, Py_ssize_t H, Py_ssize_t nc,
                               const mr_cell_variant *v, int after, const double *dy,
                               Py_ssize_t lddy, double *dh_next, const double *saved,
                               Py_ssize_t lds, const double *h_prev, Py_ssize_t ldhp, double *dgx,
                               Py_ssize_t ldgx, double *dgh, Py_ssize_t ldgh) noexcept
    void gru_cell_back_r_v_d(Py_ssize_t rows, Py_ssize_t H, Py_ssize_t nc, const mr_cell_variant *v,
                             const double *dq, Py_ssize_t ldq, double *dh_next, const double *saved,
                             Py_ssize_t lds, const double *h_prev, Py_ssize_t ldhp, double *dgx,
                             Py_ssize_t ldgx, double *dgh, Py_ssize_t ldgh) noexcept
    void lstm_cell_forward_v_d(Py_ssize_t rows, Py_ssize_t H, Py_ssize_t nc,
                               const mr_cell_variant *v, const double *pp, const double *gx,
                               Py_ssize_t ldgx, const double *gh, Py_ssize_t ldgh,
                               const double *c_prev, Py_ssize_t ldcp, double *h, Py_ssize_t ldh,
                               double *c, Py_ssize_t ldc, double *saved, Py_ssize_t lds) noexcept
    void lstm_cell_backward_v_d(Py_ssize_t rows, Py_ssize_t H, Py_ssize_t nc,
                                const mr_cell_variant *v, const double *pp, const double *dy,
                                Py_ssize_t lddy, const double *dh_next, double *dc_next,
                                const double *saved, Py_ssize_t lds, const double *c_prev,
                                Py_ssize_t ldcp, const double *c, Py_ssize_t ldc, double *dg,
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


# PyTorch's cells (units j < nc of every gate block, counted from the pointers: csrc/minirnn.h)

cdef inline void k_elman(Py_ssize_t n, Py_ssize_t H, Py_ssize_t nc, bint relu,
                         const floating *gx, Py_ssize_t ldgx, const floating *gh,
                         Py_ssize_t ldgh, floating *h, Py_ssize_t ldh) noexcept nogil:
    if floating is float:
        elman_cell_forward_f(n, H, nc, relu, gx, ldgx, gh, ldgh, h, ldh)
    else:
        elman_cell_forward_d(n, H, nc, relu, gx, ldgx, gh, ldgh, h, ldh)


cdef inline void k_elman_back(Py_ssize_t n, Py_ssize_t H, Py_ssize_t nc, bint relu,
                              const floating *dy, Py_ssize_t lddy, const floating *dh_next,
                              const floating *h, Py_ssize_t ldh, floating *dg,
                              Py_ssize_t ldg) noexcept nogil:
    if floating is float:
        elman_cell_backward_f(n, H, nc, relu, dy, lddy, dh_next, h, ldh, dg, ldg)
    else:
        elman_cell_backward_d(n, H, nc, relu, dy, lddy, dh_next, h, ldh, dg, ldg)


cdef inline void k_gru(Py_ssize_t n, Py_ssize_t H, Py_ssize_t nc, const floating *gx,
                       Py_ssize_t ldgx, const floating *gh, Py_ssize_t ldgh,
                       const floating *hp, Py_ssize_t ldhp, floating *h, Py_ssize_t ldh,
                       floating *saved, Py_ssize_t lds) noexcept nogil:
    if floating is float:
        gru_cell_forward_f(n, H, nc, gx, ldgx, gh, ldgh, hp, ldhp, h, ldh, saved, lds)
    else:
        gru_cell_forward_d(n, H, nc, gx, ldgx, gh, ldgh, hp, ldhp, h, ldh, saved, lds)


cdef inline void k_gru_back(Py_ssize_t n, Py_ssize_t H, Py_ssize_t nc, const floating *dy,
                            Py_ssize_t lddy, floating *dh_next, const floating *saved,
                            Py_ssize_t lds, const floating *hp, Py_ssize_t ldhp,
                            floating *dgx, Py_ssize_t ldgx, floating *dgh,
                            Py_ssize_t ldgh) noexcept nogil:
    if floating is float:
        gru_cell_backward_f(n, H, nc, dy, lddy, dh_next, saved, lds, hp, ldhp, dgx, ldgx, dgh,
                            ldgh)
    else:
        gru_cell_backward_d(n, H, nc, dy, lddy, dh_next, saved, lds, hp, ldhp, dgx, ldgx, dgh,
                            ldgh)


cdef inline void k_lstm(Py_ssize_t n, Py_ssize_t H, Py_ssize_t nc, const floating *gx,
                        Py_ssize_t ldgx, const floating *gh, Py_ssize_t ldgh,
                        const floating *cp, Py_ssize_t ldcp, floating *h, Py_ssize_t ldh,
                        floating *c, Py_ssize_t ldc, floating *saved,
                        Py_ssize_t lds) noexcept nogil:
    if floating is float:
        lstm_cell_forward_f(n, H, nc, gx, ldgx, gh, ldgh, cp, ldcp, h, ldh, c, ldc, saved, lds)
    else:
        lstm_cell_forward_d(n, H, nc, gx, ldgx, gh, ldgh, cp, ldcp, h, ldh, c, ldc, saved, lds)


cdef inline void k_lstm_back(Py_ssize_t n, Py_ssize_t H, Py_ssize_t nc, const floating *dy,
                             Py_ssize_t lddy, const floating *dh_next, floating *dc_next,
                             const floating *saved, Py_ssize_t lds, const floating *cp,
                             Py_ssize_t ldcp, floating *dg, Py_ssize_t ldg) noexcept nogil:
    if floating is float:
        lstm_cell_backward_f(n, H, nc, dy, lddy, dh_next, dc_next, saved, lds, cp, ldcp, dg, ldg)
    else:
        lstm_cell_backward_d(n, H, nc, dy, lddy, dh_next, dc_next, saved, lds, cp, ldcp, dg, ldg)


# the cell variants (see "cell variants", variants.pxi)

cdef inline void k_elman_v(Py_ssize_t n, Py_ssize_t H, Py_ssize_t nc, const mr_cell_variant *v,
                           const floating *gx, Py_ssize_t ldgx, const floating *gh,
                           Py_ssize_t ldgh, floating *h, Py_ssize_t ldh, floating *saved,
                           Py_ssize_t lds) noexcept nogil:
    if floating is float:
        elman_cell_forward_v_f(n, H, nc, v, gx, ldgx, gh, ldgh, h, ldh, saved, lds)
    else:
        elman_cell_forward_v_d(n, H, nc, v, gx, ldgx, gh, ldgh, h, ldh, saved, lds)


cdef inline void k_elman_back_v(Py_ssize_t n, Py_ssize_t H, Py_ssize_t nc, const mr_cell_variant *v,
                                const floating *dy, Py_ssize_t lddy, const floating *dh_next,
                                const floating *h, Py_ssize_t ldh, const floating *saved,
                                Py_ssize_t lds, floating *dg, Py_ssize_t ldg) noexcept nogil:
    if floating is float:
        elman_cell_backward_v_f(n, H, nc, v, dy, lddy, dh_next, h, ldh, saved, lds, dg, ldg)
    else:
        elman_cell_backward_v_d(n, H, nc, v, dy, lddy, dh_next, h, ldh, saved, lds, dg, ldg)


cdef inline void k_gru_v(Py_ssize_t n, Py_ssize_t H, Py_ssize_t nc, const mr_cell_variant *v,
                         const floating *gx, Py_ssize_t ldgx, const floating *gh,
                         Py_ssize_t ldgh, const floating *hp, Py_ssize_t ldhp, floating *h,
                         Py_ssize_t ldh, floating *saved, Py_ssize_t lds) noexcept nogil:
    if floating is float:
        gru_cell_forward_v_f(n, H, nc, v, gx, ldgx, gh, ldgh, hp, ldhp, h, ldh, saved, lds)
    else:
        gru_cell_forward_v_d(n, H, nc, v, gx, ldgx, gh, ldgh, hp, ldhp, h, ldh, saved, lds)


cdef inline void k_gru_rz_v(Py_ssize_t n, Py_ssize_t H, Py_ssize_t nc, const mr_cell_variant *v,
                            const floating *gx, Py_ssize_t ldgx, floating *gh, Py_ssize_t ldgh,
                            const floating *hp, Py_ssize_t ldhp, floating *q, Py_ssize_t ldq,
                            floating *saved, Py_ssize_t lds) noexcept nogil:
    if floating is float:
        gru_cell_rz_v_f(n, H, nc, v, gx, ldgx, gh, ldgh, hp, ldhp, q, ldq, saved, lds)
    else:
        gru_cell_rz_v_d(n, H, nc, v, gx, ldgx, gh, ldgh, hp, ldhp, q, ldq, saved, lds)


cdef inline void k_gru_n_v(Py_ssize_t n, Py_ssize_t H, Py_ssize_t nc, const mr_cell_variant *v,
                           const floating *gx, Py_ssize_t ldgx, const floating *gh,
                           Py_ssize_t ldgh, const floating *hp, Py_ssize_t ldhp, floating *h,
                           Py_ssize_t ldh, floating *saved, Py_ssize_t lds) noexcept nogil:
    if floating is float:
        gru_cell_n_v_f(n, H, nc, v, gx, ldgx, gh, ldgh, hp, ldhp, h, ldh, saved, lds)
    else:
        gru_cell_n_v_d(n, H, nc, v, gx, ldgx, gh, ldgh, hp, ldhp, h, ldh, saved, lds)


cdef inline void k_gru_back_v(Py_ssize_t n, Py_ssize_t H, Py_ssize_t nc,
                              const mr_cell_variant *v, int after,
                              const floating *dy, Py_ssize_t lddy, floating *dh_next,
                              const floating *saved, Py_ssize_t lds, const floating *hp,
                              Py_ssize_t ldhp, floating *dgx, Py_ssize_t ldgx, floating *dgh,
                              Py_ssize_t ldgh) noexcept nogil:
    if floating is float:
        gru_cell_backward_v_f(n, H, nc, v, after, dy, lddy, dh_next, saved, lds, hp, ldhp, dgx,
                              ldgx, dgh, ldgh)
    else:
        gru_cell_backward_v_d(n, H, nc, v, after, dy, lddy, dh_next, saved, lds, hp, ldhp, dgx,
                              ldgx, dgh, ldgh)


cdef inline void k_gru_back_r_v(Py_ssize_t n, Py_ssize_t H, Py_ssize_t nc, const mr_cell_variant *v,
                                const floating *dq, Py_ssize_t ldq, floating *dh_next,
                                const floating *saved, Py_ssize_t lds, const floating *hp,
                                Py_ssize_t ldhp, floating *dgx, Py_ssize_t ldgx, floating *dgh,
                                Py_ssize_t ldgh) noexcept nogil:
    if floating is float:
        gru_cell_back_r_v_f(n, H, nc, v, dq, ldq, dh_next, saved, lds, hp, ldhp, dgx, ldgx, dgh,
                            ldgh)
    else:
        gru_cell_back_r_v_d(n, H, nc, v, dq, ldq, dh_next, saved, lds, hp, ldhp, dgx, ldgx, dgh,
                            ldgh)


cdef inline void k_lstm_v(Py_ssize_t n, Py_ssize_t H, Py_ssize_t nc, const mr_cell_variant *v,
                          const floating *pp, const floating *gx, Py_ssize_t ldgx,
                          const floating *gh, Py_ssize_t ldgh, const floating *cp,
                          Py_ssize_t ldcp, floating *h, Py_ssize_t ldh, floating *c,
                          Py_ssize_t ldc, floating *saved, Py_ssize_t lds) noexcept nogil:
    if floating is float:
        lstm_cell_forward_v_f(n, H, nc, v, pp, gx, ldgx, gh, ldgh, cp, ldcp, h, ldh, c, ldc, saved,
                              lds)
    else:
        lstm_cell_forward_v_d(n, H, nc, v, pp, gx, ldgx, gh, ldgh, cp, ldcp, h, ldh, c, ldc, saved,
                              lds)


cdef inline void k_lstm_back_v(Py_ssize_t n, Py_ssize_t H, Py_ssize_t nc, const mr_cell_variant *v,
                               const floating *pp, const floating *dy, Py_ssize_t lddy,
                               const floating *dh_next, floating *dc_next,
                               const floating *saved, Py_ssize_t lds, const floating *cp,
                               Py_ssize_t ldcp, const floating *c, Py_ssize_t ldc, floating *dg,
                               Py_ssize_t ldg) noexcept nogil:
    if floating is float:
        lstm_cell_backward_v_f(n, H, nc, v, pp, dy, lddy, dh_next, dc_next, saved, lds, cp, ldcp, c,
                               ldc, dg, ldg)
    else:
        lstm_cell_backward_v_d(n, H, nc, v, pp, dy, lddy, dh_next, dc_next, saved, lds, cp, ldcp, c,
                               ldc, dg, ldg)

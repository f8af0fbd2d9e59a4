/* csrc/dispatch.h -- name_f / name_d call the variant chosen by mr_set_isa (see minirnn.h).
 * Expects REAL and SFX(name). No include guard on purpose. */

static inline ptrdiff_t SFX(panel_width)(void) { return MR_PICK(SFX(panel_width))(); }

static inline void SFX(pack_panels)(ptrdiff_t K, ptrdiff_t N, const REAL *B, ptrdiff_t rsb,
                                    ptrdiff_t csb, REAL *Bp, ptrdiff_t k0, ptrdiff_t k1,
                                    ptrdiff_t p0, ptrdiff_t p1)
{
    MR_PICK(SFX(pack_panels))(K, N, B, rsb, csb, Bp, k0, k1, p0, p1);
}

static inline void SFX(gemm)(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, const REAL *A,
                             ptrdiff_t lda, const REAL *Bp, REAL *C, ptrdiff_t ldc,
                             int accumulate, const REAL *bias)
{
    MR_PICK(SFX(gemm))(M, N, K, A, lda, Bp, C, ldc, accumulate, bias);
}

static inline void SFX(elman_cell_forward)(ptrdiff_t rows, ptrdiff_t H, ptrdiff_t nc, int relu,
                                           const REAL *gx, ptrdiff_t ldgx, const REAL *gh,
                                           ptrdiff_t ldgh, REAL *h, ptrdiff_t ldh)
{
    MR_PICK(SFX(elman_cell_forward))(rows, H, nc, relu, gx, ldgx, gh, ldgh, h, ldh);
}

static inline void SFX(elman_cell_backward)(ptrdiff_t rows, ptrdiff_t H, ptrdiff_t nc, int relu,
                                            const REAL *dy, ptrdiff_t lddy, const REAL *dh_next,
                                            const REAL *h, ptrdiff_t ldh, REAL *dg, ptrdiff_t ldg)
{
    MR_PICK(SFX(elman_cell_backward))(rows, H, nc, relu, dy, lddy, dh_next, h, ldh, dg, ldg);
}

static inline void SFX(gru_cell_forward)(ptrdiff_t rows, ptrdiff_t H, ptrdiff_t nc, const REAL *gx,
                                         ptrdiff_t ldgx, const REAL *gh, ptrdiff_t ldgh,
                                         const REAL *h_prev, ptrdiff_t ldhp, REAL *h,
                                         ptrdiff_t ldh, REAL *saved, ptrdiff_t lds)
{
    MR_PICK(SFX(gru_cell_forward))(rows, H, nc, gx, ldgx, gh, ldgh, h_prev, ldhp, h, ldh, saved,
                                   lds);
}

static inline void SFX(gru_cell_backward)(ptrdiff_t rows, ptrdiff_t H, ptrdiff_t nc, const REAL *dy,
                                          ptrdiff_t lddy, REAL *dh_next, const REAL *saved,
                                          ptrdiff_t lds, const REAL *h_prev, ptrdiff_t ldhp,
                                          REAL *dgx, ptrdiff_t ldgx, REAL *dgh, ptrdiff_t ldgh)
{
    MR_PICK(SFX(gru_cell_backward))(rows, H, nc, dy, lddy, dh_next, saved, lds, h_prev, ldhp,
                                    dgx, ldgx, dgh, ldgh);
}

static inline void SFX(lstm_cell_forward)(ptrdiff_t rows, ptrdiff_t H, ptrdiff_t nc, const REAL *gx,
                                          ptrdiff_t ldgx, const REAL *gh, ptrdiff_t ldgh,
                                          const REAL *c_prev, ptrdiff_t ldcp, REAL *h,
                                          ptrdiff_t ldh, REAL *c, ptrdiff_t ldc, REAL *saved,
                                          ptrdiff_t lds)
{
    MR_PICK(SFX(lstm_cell_forward))(rows, H, nc, gx, ldgx, gh, ldgh, c_prev, ldcp, h, ldh, c, ldc,
                                    saved, lds);
}

static inline void SFX(lstm_cell_backward)(ptrdiff_t rows, ptrdiff_t H, ptrdiff_t nc,
                                           const REAL *dy,
                                           ptrdiff_t lddy, const REAL *dh_next, REAL *dc_next,
                                           const REAL *saved, ptrdiff_t lds, const REAL *c_prev,
                                           ptrdiff_t ldcp, REAL *dg, ptrdiff_t ldg)
{
    MR_PICK(SFX(lstm_cell_backward))(rows, H, nc, dy, lddy, dh_next, dc_next, saved, lds, c_prev,
                                     ldcp, dg, ldg);
}

static inline ptrdiff_t SFX(tile_rows)(ptrdiff_t M) { return MR_PICK(SFX(tile_rows))(M); }

static inline void SFX(pack_tiles)(ptrdiff_t K, ptrdiff_t N, const REAL *X, ptrdiff_t ldx,
                                   REAL *Xt, ptrdiff_t k0, ptrdiff_t k1, ptrdiff_t t0,
                                   ptrdiff_t t1)
{
    MR_PICK(SFX(pack_tiles))(K, N, X, ldx, Xt, k0, k1, t0, t1);
}

static inline ptrdiff_t SFX(weight_grad_work)(ptrdiff_t N1, ptrdiff_t N2)
{
    return MR_PICK(SFX(weight_grad_work))(N1, N2);
}

static inline void SFX(weight_grad)(ptrdiff_t K, ptrdiff_t nj, const REAL *dG, ptrdiff_t ldg,
                                    const ptrdiff_t *rows, const REAL *Xt1, ptrdiff_t N1,
                                    REAL *dW1, const REAL *Xt2, ptrdiff_t N2, REAL *dW2,
                                    REAL *db, REAL *db2, REAL *work)
{
    MR_PICK(SFX(weight_grad))(K, nj, dG, ldg, rows, Xt1, N1, dW1, Xt2, N2, dW2, db, db2, work);
}

/* the cell variants (the *_v rows of elman.h, gru.h, lstm.h) */
static inline void SFX(elman_cell_forward_v)(ptrdiff_t rows, ptrdiff_t H, ptrdiff_t nc,
                                             const mr_cell_variant *v, const REAL *gx,
                                             ptrdiff_t ldgx, const REAL *gh, ptrdiff_t ldgh,
                                             REAL *h, ptrdiff_t ldh, REAL *saved, ptrdiff_t lds)
{
    MR_PICK(SFX(elman_cell_forward_v))(rows, H, nc, v, gx, ldgx, gh, ldgh, h, ldh, saved, lds);
}

static inline void SFX(elman_cell_backward_v)(ptrdiff_t rows, ptrdiff_t H, ptrdiff_t nc,
                                              const mr_cell_variant *v, const REAL *dy,
                                              ptrdiff_t lddy, const REAL *dh_next, const REAL *h,
                                              ptrdiff_t ldh, const REAL *saved, ptrdiff_t lds,
                                              REAL *dg, ptrdiff_t ldg)
{
    MR_PICK(SFX(elman_cell_backward_v))(rows, H, nc, v, dy, lddy, dh_next, h, ldh, saved, lds, dg,
                                        ldg);
}

static inline void SFX(gru_cell_forward_v)(ptrdiff_t rows, ptrdiff_t H, ptrdiff_t nc,
                                           const mr_cell_variant *v,
                                           const REAL *gx, ptrdiff_t ldgx, const REAL *gh,
                                           ptrdiff_t ldgh, const REAL *h_prev, ptrdiff_t ldhp,
                                           REAL *h, ptrdiff_t ldh, REAL *saved, ptrdiff_t lds)
{
    MR_PICK(SFX(gru_cell_forward_v))(rows, H, nc, v, gx, ldgx, gh, ldgh, h_prev, ldhp, h, ldh,
                                     saved,
                                     lds);
}

static inline void SFX(gru_cell_rz_v)(ptrdiff_t rows, ptrdiff_t H, ptrdiff_t nc,
                                      const mr_cell_variant *v,
                                      const REAL *gx, ptrdiff_t ldgx, REAL *gh, ptrdiff_t ldgh,
                                      const REAL *h_prev, ptrdiff_t ldhp, REAL *q, ptrdiff_t ldq,
                                      REAL *saved, ptrdiff_t lds)
{
    MR_PICK(SFX(gru_cell_rz_v))(rows, H, nc, v, gx, ldgx, gh, ldgh, h_prev, ldhp, q, ldq, saved,
                                lds);
}

static inline void SFX(gru_cell_n_v)(ptrdiff_t rows, ptrdiff_t H, ptrdiff_t nc,
                                     const mr_cell_variant *v,
                                     const REAL *gx, ptrdiff_t ldgx, const REAL *gh,
                                     ptrdiff_t ldgh, const REAL *h_prev, ptrdiff_t ldhp, REAL *h,
                                     ptrdiff_t ldh, REAL *saved, ptrdiff_t lds)
{
    MR_PICK(SFX(gru_cell_n_v))(rows, H, nc, v, gx, ldgx, gh, ldgh, h_prev, ldhp, h, ldh, saved,
                               lds);
}

static inline void SFX(gru_cell_backward_v)(ptrdiff_t rows, ptrdiff_t H, ptrdiff_t nc,
                                            const mr_cell_variant *v, int after, const REAL *dy,
                                            ptrdiff_t lddy, REAL *dh_next, const REAL *saved,
                                            ptrdiff_t lds, const REAL *h_prev, ptrdiff_t ldhp,
                                            REAL *dgx, ptrdiff_t ldgx, REAL *dgh, ptrdiff_t ldgh)
{
    MR_PICK(SFX(gru_cell_backward_v))(rows, H, nc, v, after, dy, lddy, dh_next, saved, lds, h_prev,
                                      ldhp, dgx, ldgx, dgh, ldgh);
}

static inline void SFX(gru_cell_back_r_v)(ptrdiff_t rows, ptrdiff_t H, ptrdiff_t nc,
                                          const mr_cell_variant *v,
                                          const REAL *dq, ptrdiff_t ldq, REAL *dh_next,
                                          const REAL *saved, ptrdiff_t lds, const REAL *h_prev,
                                          ptrdiff_t ldhp, REAL *dgx, ptrdiff_t ldgx, REAL *dgh,
                                          ptrdiff_t ldgh)
{
    MR_PICK(SFX(gru_cell_back_r_v))(rows, H, nc, v, dq, ldq, dh_next, saved, lds, h_prev, ldhp, dgx,
                                    ldgx, dgh, ldgh);
}

static inline void SFX(lstm_cell_forward_v)(ptrdiff_t rows, ptrdiff_t H, ptrdiff_t nc,
                                            const mr_cell_variant *v, const REAL *pp,
                                            const REAL *gx, ptrdiff_t ldgx, const REAL *gh,
                                            ptrdiff_t ldgh, const REAL *c_prev, ptrdiff_t ldcp,
                                            REAL *h, ptrdiff_t ldh, REAL *c, ptrdiff_t ldc,
                                            REAL *saved, ptrdiff_t lds)
{
    MR_PICK(SFX(lstm_cell_forward_v))(rows, H, nc, v, pp, gx, ldgx, gh, ldgh, c_prev, ldcp, h, ldh,
                                      c, ldc, saved, lds);
}

static inline void SFX(lstm_cell_backward_v)(ptrdiff_t rows, ptrdiff_t H, ptrdiff_t nc,
                                             const mr_cell_variant *v, const REAL *pp,
                                             const REAL *dy, ptrdiff_t lddy, const REAL *dh_next,
                                             REAL *dc_next, const REAL *saved, ptrdiff_t lds,
                                             const REAL *c_prev, ptrdiff_t ldcp, const REAL *c,
                                             ptrdiff_t ldc, REAL *dg, ptrdiff_t ldg)
{
    MR_PICK(SFX(lstm_cell_backward_v))(rows, H, nc, v, pp, dy, lddy, dh_next, dc_next, saved, lds,
                                       c_prev, ldcp, c, ldc, dg, ldg);
}

/* csrc/elman.h -- Elman RNN cell (tanh or relu): pointwise forward and backward (template).
 *
 *     h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh) = act(gx + gh),   act = tanh or relu
 *
 * The products are done by the caller: gx = x_t W_ih^T + b_ih (all steps at once), gh =
 * h_{t-1} W_hh^T + b_hh (one product per step). G = 1 gate block.
 *
 * Backward, given dh = dL/dh_t = dy (from the output) + dh_next (from step t+1):
 *
 *     dpre = dh * act'(.)    with tanh' = 1 - h_t^2 and relu' = [h_t > 0], from the saved output
 *     dG_x = dG_h = dpre     (so grad bias_ih == grad bias_hh)
 *     dh_{t-1} = dpre @ W_hh (by the caller); no direct path.
 *
 * Shapes: rows = batch rows of one slice, H hidden; every row pointer has its own stride (ld*).
 */

static inline __attribute__((always_inline)) void FN(elman_forward_row)(
    ptrdiff_t H, ptrdiff_t nc, const int relu, const REAL *MR_RESTRICT x, const REAL *MR_RESTRICT u,
    REAL *MR_RESTRICT y)
{
    if (relu) {
        for (ptrdiff_t j = 0; j < nc; j++) {
            const REAL a = x[j] + u[j];
            y[j] = a < 0 ? (REAL)0 : a;                     /* h = relu(gx + gh); NaN stays */
        }
    } else {
        for (ptrdiff_t j = 0; j < nc; j++)
            y[j] = FN(mr_tanh)(x[j] + u[j]);                /* h = tanh(gx + gh) */
    }
}

/* IN  gx (rows, H) [ldgx], gh (rows, H) [ldgh];  OUT h (rows, H) [ldh] */
static void FN(elman_cell_forward)(ptrdiff_t rows, ptrdiff_t H, ptrdiff_t nc, int relu,
                                   const REAL *gx, ptrdiff_t ldgx, const REAL *gh, ptrdiff_t ldgh,
                                   REAL *h, ptrdiff_t ldh)
{
    for (ptrdiff_t b = 0; b < rows; b++)
        FN(elman_forward_row)(H, nc, relu, gx + b * ldgx, gh + b * ldgh, h + b * ldh);
}

static inline __attribute__((always_inline)) void FN(elman_backward_row)(
    ptrdiff_t H, ptrdiff_t nc,
    const int relu, const REAL *MR_RESTRICT dyb, const REAL *MR_RESTRICT dn,
    const REAL *MR_RESTRICT y, REAL *MR_RESTRICT d)
{
    /* dyb = dL/dh_t from the output, dn = dL/dh_t via step t+1 */
    if (relu) {
        for (ptrdiff_t j = 0; j < nc; j++)               /* backprop through h = relu(.) */
            d[j] = y[j] > 0 ? dyb[j] + dn[j] : (REAL)0;
    } else {
        for (ptrdiff_t j = 0; j < nc; j++)               /* backprop through h = tanh(.) */
            d[j] = (dyb[j] + dn[j]) * ((REAL)1 - y[j] * y[j]);
    }
}

/* IN  dy (rows, H) [lddy], dh_next (rows, H) contiguous, h (rows, H) [ldh] = h_t;
   OUT dg (rows, H) [ldg] = dG_x = dG_h */
static void FN(elman_cell_backward)(ptrdiff_t rows, ptrdiff_t H, ptrdiff_t nc, int relu,
                                    const REAL *dy, ptrdiff_t lddy, const REAL *dh_next,
                                    const REAL *h, ptrdiff_t ldh, REAL *dg, ptrdiff_t ldg)
{
    for (ptrdiff_t b = 0; b < rows; b++)
        FN(elman_backward_row)(H, nc, relu, dy + b * lddy, dh_next + b * H, h + b * ldh,
                               dg + b * ldg);
}

/* ---- the Elman variants: another activation F (slot f) or a clip ----
 *
 *     h_t = F(clip(gx + gh)),   dpre = dh * F'(clip(a)) * [-clip <= a <= clip]
 *
 * Saved per step and row, when v->save_pre: the unclipped a = gx + gh (H); h_t is in Y. */
static void FN(elman_cell_forward_v)(ptrdiff_t rows, ptrdiff_t H, ptrdiff_t nc,
                                     const mr_cell_variant *v,
                                     const REAL *gx, ptrdiff_t ldgx, const REAL *gh,
                                     ptrdiff_t ldgh, REAL *h, ptrdiff_t ldh, REAL *saved,
                                     ptrdiff_t lds)
{
    const int fa = v->act[0];
    const REAL al = (REAL)v->alpha[0], be = (REAL)v->beta[0], cl = (REAL)v->clip;
    for (ptrdiff_t b = 0; b < rows; b++) {
        const REAL *x = gx + b * ldgx, *u = gh + b * ldgh;
        REAL *y = h + b * ldh;
        for (ptrdiff_t j = 0; j < nc; j++) {
            const REAL a = x[j] + u[j];
            y[j] = FN(mr_act)(fa, al, be, FN(mr_clip)(a, cl));     /* h = F(clip(gx + gh)) */
            if (saved && v->save_pre)
                saved[b * lds + j] = a;
        }
    }
}

/* IN dy [lddy], dh_next (rows, H) contiguous, h [ldh] = h_t, saved [lds] (the pre-activations
   when v->save_pre, else unread); OUT dg (rows, H) [ldg] = dG_x = dG_h */
static void FN(elman_cell_backward_v)(ptrdiff_t rows, ptrdiff_t H, ptrdiff_t nc,
                                      const mr_cell_variant *v,
                                      const REAL *dy, ptrdiff_t lddy, const REAL *dh_next,
                                      const REAL *h, ptrdiff_t ldh, const REAL *saved,
                                      ptrdiff_t lds, REAL *dg, ptrdiff_t ldg)
{
    const int fa = v->act[0];
    const REAL al = (REAL)v->alpha[0], be = (REAL)v->beta[0], cl = (REAL)v->clip;
    for (ptrdiff_t b = 0; b < rows; b++) {
        for (ptrdiff_t j = 0; j < nc; j++) {
            REAL x = 0, m = 1;
            if (v->save_pre) {
                const REAL a = saved[b * lds + j];
                x = FN(mr_clip)(a, cl);
                m = FN(mr_clip_mask)(a, cl);
            }
            /* backprop through h = F(clip(.)) */
            dg[b * ldg + j] = (dy[b * lddy + j] + dh_next[b * H + j])
                              * FN(mr_act_grad)(fa, al, be, x, h[b * ldh + j]) * m;
        }
    }
}

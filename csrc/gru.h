/* csrc/gru.h -- GRU cell: pointwise forward and backward (template). Gate order r, z, n.
 *
 *     r_t = sigmoid(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
 *     z_t = sigmoid(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
 *     n_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn))     reset applied AFTER the product
 *     h_t = (1 - z_t) * n_t + z_t * h_{t-1}
 *
 * Rows GRU_k*H:(GRU_k+1)*H of weight_ih are the paper's W_k, of weight_hh its U_k. The caller
 * gives gx = x_t W_ih^T + b_ih and gh = h_{t-1} W_hh^T + b_hh, so gh's n block is
 * (W_hn h + b_hn), which the forward saves for the backward.
 *
 * Backward, given dh = dL/dh_t = dy + dh_next:
 *
 *     dz    = dh * (h_{t-1} - n) * z * (1 - z)
 *     dn    = dh * (1 - z) * (1 - n^2)             = dL/d(gx_n + r * gh_n)
 *     dgh_n = dn * r
 *     dr    = dn * gh_n * r * (1 - r)
 *     dG_x = [dr | dz | dn],  dG_h = [dr | dz | dgh_n]
 *     dh_{t-1} = dh * z (direct, written here)  +  dG_h @ W_hh (added by the caller)
 *
 * Saved per step and row (4H): r | z | n | gh_n.
 */

/* IN  gx, gh (rows, 3H) [ldgx, ldgh], h_prev (rows, H) [ldhp];
   OUT h (rows, H) [ldh]; saved (rows, 4H) [lds] or NULL (inference) */
static inline __attribute__((always_inline)) void FN(gru_forward_row)(
    ptrdiff_t H, const REAL *MR_RESTRICT x, const REAL *MR_RESTRICT u,
    const REAL *MR_RESTRICT hp, REAL *MR_RESTRICT y, REAL *MR_RESTRICT s, const int save)
{
    const REAL *x_r = x + GRU_R * H, *x_z = x + GRU_Z * H, *x_n = x + GRU_N * H;
    const REAL *u_r = u + GRU_R * H, *u_z = u + GRU_Z * H, *u_n = u + GRU_N * H;
    for (ptrdiff_t j = 0; j < H; j++) {
        const REAL r = FN(mr_sigmoid)(x_r[j] + u_r[j]);        /* r = sigmoid(gx_r + gh_r) */
        const REAL z = FN(mr_sigmoid)(x_z[j] + u_z[j]);        /* z = sigmoid(gx_z + gh_z) */
        const REAL n = FN(mr_tanh)(x_n[j] + r * u_n[j]);       /* n = tanh(gx_n + r * gh_n) */
        y[j] = ((REAL)1 - z) * n + z * hp[j];                  /* h = (1 - z) n + z h_prev */
        if (save) {
            s[0 * H + j] = r;
            s[1 * H + j] = z;
            s[2 * H + j] = n;
            s[3 * H + j] = u_n[j];
        }
    }
}

static void FN(gru_cell_forward)(ptrdiff_t rows, ptrdiff_t H,
                                 const REAL *gx, ptrdiff_t ldgx, const REAL *gh, ptrdiff_t ldgh,
                                 const REAL *h_prev, ptrdiff_t ldhp, REAL *h, ptrdiff_t ldh,
                                 REAL *saved, ptrdiff_t lds)
{
    for (ptrdiff_t b = 0; b < rows; b++) {
        if (saved)
            FN(gru_forward_row)(H, gx + b * ldgx, gh + b * ldgh, h_prev + b * ldhp, h + b * ldh,
                                saved + b * lds, 1);
        else
            FN(gru_forward_row)(H, gx + b * ldgx, gh + b * ldgh, h_prev + b * ldhp, h + b * ldh,
                                NULL, 0);
    }
}

static inline __attribute__((always_inline)) void FN(gru_backward_row)(
    ptrdiff_t H, const REAL *MR_RESTRICT dyb, REAL *MR_RESTRICT dn_,
    const REAL *MR_RESTRICT s, const REAL *MR_RESTRICT hp, REAL *MR_RESTRICT dx,
    REAL *MR_RESTRICT du)
{
    /* dyb = dL/dh_t from the output, dn_ = dL/dh_t via step t+1; saved s = r | z | n | gh_n */
    const REAL *r_ = s, *z_ = s + H, *n_ = s + 2 * H, *un_ = s + 3 * H;
    for (ptrdiff_t j = 0; j < H; j++) {
        const REAL r = r_[j], z = z_[j], n = n_[j];
        const REAL dh = dyb[j] + dn_[j];
        /* backprop through h = (1 - z) n + z h_prev, then z = sigmoid(.), n = tanh(.) */
        const REAL dz = dh * (hp[j] - n) * z * ((REAL)1 - z);
        const REAL dn = dh * ((REAL)1 - z) * ((REAL)1 - n * n);
        dn_[j] = dh * z;                                       /* the direct path z * h_prev */
        /* backprop through n = tanh(gx_n + r * gh_n), then r = sigmoid(.) */
        const REAL dr = dn * un_[j] * r * ((REAL)1 - r);
        dx[GRU_R * H + j] = dr;
        dx[GRU_Z * H + j] = dz;
        dx[GRU_N * H + j] = dn;
        du[GRU_R * H + j] = dr;
        du[GRU_Z * H + j] = dz;
        du[GRU_N * H + j] = dn * r;
    }
}

/* IN  dy (rows, H) [lddy]; saved (rows, 4H) [lds]; h_prev (rows, H) [ldhp];
   IN/OUT dh_next (rows, H) contiguous: in dL/dh_t via step t+1, out the direct part dh * z;
   OUT dgx, dgh (rows, 3H) [ldgx, ldgh] */
static void FN(gru_cell_backward)(ptrdiff_t rows, ptrdiff_t H,
                                  const REAL *dy, ptrdiff_t lddy, REAL *dh_next,
                                  const REAL *saved, ptrdiff_t lds,
                                  const REAL *h_prev, ptrdiff_t ldhp,
                                  REAL *dgx, ptrdiff_t ldgx, REAL *dgh, ptrdiff_t ldgh)
{
    for (ptrdiff_t b = 0; b < rows; b++)
        FN(gru_backward_row)(H, dy + b * lddy, dh_next + b * H, saved + b * lds,
                             h_prev + b * ldhp, dgx + b * ldgx, dgh + b * ldgh);
}

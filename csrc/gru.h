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
    ptrdiff_t H, ptrdiff_t nc, const REAL *MR_RESTRICT x, const REAL *MR_RESTRICT u,
    const REAL *MR_RESTRICT hp, REAL *MR_RESTRICT y, REAL *MR_RESTRICT s, const int save)
{
    const REAL *x_r = x + GRU_R * H, *x_z = x + GRU_Z * H, *x_n = x + GRU_N * H;
    const REAL *u_r = u + GRU_R * H, *u_z = u + GRU_Z * H, *u_n = u + GRU_N * H;
    for (ptrdiff_t j = 0; j < nc; j++) {
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

static void FN(gru_cell_forward)(ptrdiff_t rows, ptrdiff_t H, ptrdiff_t nc,
                                 const REAL *gx, ptrdiff_t ldgx, const REAL *gh, ptrdiff_t ldgh,
                                 const REAL *h_prev, ptrdiff_t ldhp, REAL *h, ptrdiff_t ldh,
                                 REAL *saved, ptrdiff_t lds)
{
    for (ptrdiff_t b = 0; b < rows; b++) {
        if (saved)
            FN(gru_forward_row)(H, nc, gx + b * ldgx, gh + b * ldgh, h_prev + b * ldhp, h + b * ldh,
                                saved + b * lds, 1);
        else
            FN(gru_forward_row)(H, nc, gx + b * ldgx, gh + b * ldgh, h_prev + b * ldhp, h + b * ldh,
                                NULL, 0);
    }
}

static inline __attribute__((always_inline)) void FN(gru_backward_row)(
    ptrdiff_t H, ptrdiff_t nc, const REAL *MR_RESTRICT dyb, REAL *MR_RESTRICT dn_,
    const REAL *MR_RESTRICT s, const REAL *MR_RESTRICT hp, REAL *MR_RESTRICT dx,
    REAL *MR_RESTRICT du)
{
    /* dyb = dL/dh_t from the output, dn_ = dL/dh_t via step t+1; saved s = r | z | n | gh_n */
    const REAL *r_ = s, *z_ = s + H, *n_ = s + 2 * H, *un_ = s + 3 * H;
    for (ptrdiff_t j = 0; j < nc; j++) {
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
static void FN(gru_cell_backward)(ptrdiff_t rows, ptrdiff_t H, ptrdiff_t nc,
                                  const REAL *dy, ptrdiff_t lddy, REAL *dh_next,
                                  const REAL *saved, ptrdiff_t lds,
                                  const REAL *h_prev, ptrdiff_t ldhp,
                                  REAL *dgx, ptrdiff_t ldgx, REAL *dgh, ptrdiff_t ldgh)
{
    for (ptrdiff_t b = 0; b < rows; b++)
        FN(gru_backward_row)(H, nc, dy + b * lddy, dh_next + b * H, saved + b * lds,
                             h_prev + b * ldhp, dgx + b * ldgx, dgh + b * ldgh);
}

/* ---- the GRU variants (rows for the layers whose Variant is not PyTorch's) ----
 *
 * Reset after the product (PyTorch's form, with other activations or a clip):
 *
 *     r = F(clip(gx_r + gh_r)),  z = F(clip(gx_z + gh_z)),  n = G(clip(gx_n + r * gh_n))
 *     h_t = (1 - z) * n + z * h_{t-1}
 *
 * Reset BEFORE the product (Cho et al. 2014; ONNX linear_before_reset=0, Keras
 * reset_after=False): n needs r * h_{t-1} multiplied by W_hn, so the caller splits the step's
 * recurrent product in two:
 *
 *     gh_rz = h_{t-1} W_hh[r,z]^T + b_hh[r,z]                 (the caller's first product)
 *     r = F(clip(gx_r + gh_r)),  z = F(clip(gx_z + gh_z)),  q = r * h_{t-1}   (gru_cell_rz_v)
 *     gh_n = q W_hn^T + b_hn                                  (the caller's second product)
 *     n = G(clip(gx_n + gh_n)),  h_t = (1 - z) * n + z * h_{t-1}              (gru_cell_n_v)
 *
 * F, G: the activation slots f, g (PyTorch: sigmoid, tanh); clip(a) = min(max(a, -clip),
 * clip) (clip = +inf: none). Backward, given dh = dL/dh_t, with F', G' the derivatives at the
 * clipped inputs times the clip's masks:
 *
 *     da_z = dh * (h_{t-1} - n) * F'(z),   da_n = dh * (1 - z) * G'(n)
 *   after:                                 before:
 *     da_r = da_n * gh_n * F'(r)             dq = da_n W_hn           (the caller's product)
 *     dG_x = [da_r | da_z | da_n]            da_r = dq * h_{t-1} * F'(r)
 *     dG_h = [da_r | da_z | da_n * r]        dG_x = dG_h = [da_r | da_z | da_n]
 *     dh_{t-1} = dh * z + dG_h W_hh          dh_{t-1} = dh * z + dq * r + dG_h[r,z] W_hh[r,z]
 *                                            dW_hn += da_n^T q  (q is the left operand)
 *
 * Saved per step and row: r | z | n | gh_n (after) or q (before), 4H, and, when v->save_pre,
 * the unclipped a_r | a_z | a_n (3H more).
 */

#define MR_GRU_F(std) ((std) ? MR_SIGMOID : v->act[0])
#define MR_GRU_G(std) ((std) ? MR_TANH : v->act[1])

static inline __attribute__((always_inline)) void FN(gru_forward_row_v)(
    ptrdiff_t H, ptrdiff_t nc,
    const mr_cell_variant *v, const int std, const int save, const int pre,
    const REAL *MR_RESTRICT x, const REAL *MR_RESTRICT u, const REAL *MR_RESTRICT hp,
    REAL *MR_RESTRICT y, REAL *MR_RESTRICT s)
{
    const int fa = MR_GRU_F(std), ga = MR_GRU_G(std);
    const REAL fal = (REAL)v->alpha[0], fbe = (REAL)v->beta[0];
    const REAL gal = (REAL)v->alpha[1], gbe = (REAL)v->beta[1], cl = (REAL)v->clip;
    for (ptrdiff_t j = 0; j < nc; j++) {
        const REAL ar = x[GRU_R * H + j] + u[GRU_R * H + j];
        const REAL az = x[GRU_Z * H + j] + u[GRU_Z * H + j];
        const REAL r = FN(mr_act)(fa, fal, fbe, FN(mr_clip)(ar, cl));
        const REAL z = FN(mr_act)(fa, fal, fbe, FN(mr_clip)(az, cl));
        const REAL an = x[GRU_N * H + j] + r * u[GRU_N * H + j];
        const REAL n = FN(mr_act)(ga, gal, gbe, FN(mr_clip)(an, cl));
        y[j] = ((REAL)1 - z) * n + z * hp[j];                  /* h = (1 - z) n + z h_prev */
        if (save) {
            s[0 * H + j] = r;
            s[1 * H + j] = z;
            s[2 * H + j] = n;
            s[3 * H + j] = u[GRU_N * H + j];
        }
        if (pre) {
            s[4 * H + j] = ar;
            s[5 * H + j] = az;
            s[6 * H + j] = an;
        }
    }
}

/* As gru_cell_forward, for a variant v with the reset after the product. */
static void FN(gru_cell_forward_v)(ptrdiff_t rows, ptrdiff_t H, ptrdiff_t nc,
                                   const mr_cell_variant *v,
                                   const REAL *gx, ptrdiff_t ldgx, const REAL *gh,
                                   ptrdiff_t ldgh, const REAL *h_prev, ptrdiff_t ldhp, REAL *h,
                                   ptrdiff_t ldh, REAL *saved, ptrdiff_t lds)
{
    const int save = saved != NULL, pre = save && v->save_pre;
    for (ptrdiff_t b = 0; b < rows; b++) {
#define MR_ROW(std, save, pre) FN(gru_forward_row_v)(H, nc, v, std, save, pre, gx + b * ldgx, \
    gh + b * ldgh, h_prev + b * ldhp, h + b * ldh, save ? saved + b * lds : NULL)
        MR_DISPATCH_ROW(v->std_acts, save, pre);
#undef MR_ROW
    }
}

/* Reset before the product, first half. IN gx (rows, 3H) [ldgx]; gh (rows, 3H) [ldgh] whose
   r, z blocks hold gh_rz; h_prev (rows, H) [ldhp]. OUT z into gh's z block (for
   gru_cell_n_v), q = r * h_prev (rows, H) [ldq]; saved (rows, 4H or 7H) [lds] or NULL: r, z
   (and a_r, a_z). With saved, q is its 4th block (the caller passes q = saved + 3H). */
static inline __attribute__((always_inline)) void FN(gru_rz_row_v)(
    ptrdiff_t H, ptrdiff_t nc,
    const mr_cell_variant *v, const int std, const int save, const int pre,
    const REAL *MR_RESTRICT x, REAL *MR_RESTRICT u, const REAL *MR_RESTRICT hp,
    REAL *MR_RESTRICT q, REAL *MR_RESTRICT s)
{
    const int fa = MR_GRU_F(std);
    const REAL fal = (REAL)v->alpha[0], fbe = (REAL)v->beta[0], cl = (REAL)v->clip;
    for (ptrdiff_t j = 0; j < nc; j++) {
        const REAL ar = x[GRU_R * H + j] + u[GRU_R * H + j];
        const REAL az = x[GRU_Z * H + j] + u[GRU_Z * H + j];
        const REAL r = FN(mr_act)(fa, fal, fbe, FN(mr_clip)(ar, cl));
        const REAL z = FN(mr_act)(fa, fal, fbe, FN(mr_clip)(az, cl));
        u[GRU_Z * H + j] = z;
        q[j] = r * hp[j];                                       /* q = r * h_prev */
        if (save) {
            s[0 * H + j] = r;
            s[1 * H + j] = z;
        }
        if (pre) {
            s[4 * H + j] = ar;
            s[5 * H + j] = az;
        }
    }
}

static void FN(gru_cell_rz_v)(ptrdiff_t rows, ptrdiff_t H, ptrdiff_t nc, const mr_cell_variant *v,
                              const REAL *gx, ptrdiff_t ldgx, REAL *gh, ptrdiff_t ldgh,
                              const REAL *h_prev, ptrdiff_t ldhp, REAL *q, ptrdiff_t ldq,
                              REAL *saved, ptrdiff_t lds)
{
    const int save = saved != NULL, pre = save && v->save_pre;
    for (ptrdiff_t b = 0; b < rows; b++) {
#define MR_ROW(std, save, pre) FN(gru_rz_row_v)(H, nc, v, std, save, pre, gx + b * ldgx, \
    gh + b * ldgh, h_prev + b * ldhp, q + b * ldq, save ? saved + b * lds : NULL)
        MR_DISPATCH_ROW(v->std_acts, save, pre);
#undef MR_ROW
    }
}

/* Reset before the product, second half. IN gx (rows, 3H); gh (rows, 3H): z in its z block
   (from gru_cell_rz_v), gh_n = q W_hn^T + b_hn in its n block; h_prev. OUT h (rows, H) [ldh];
   saved: n (and a_n). */
static inline __attribute__((always_inline)) void FN(gru_n_row_v)(
    ptrdiff_t H, ptrdiff_t nc,
    const mr_cell_variant *v, const int std, const int save, const int pre,
    const REAL *MR_RESTRICT x, const REAL *MR_RESTRICT u, const REAL *MR_RESTRICT hp,
    REAL *MR_RESTRICT y, REAL *MR_RESTRICT s)
{
    const int ga = MR_GRU_G(std);
    const REAL gal = (REAL)v->alpha[1], gbe = (REAL)v->beta[1], cl = (REAL)v->clip;
    for (ptrdiff_t j = 0; j < nc; j++) {
        const REAL z = u[GRU_Z * H + j];
        const REAL an = x[GRU_N * H + j] + u[GRU_N * H + j];
        const REAL n = FN(mr_act)(ga, gal, gbe, FN(mr_clip)(an, cl));
        y[j] = ((REAL)1 - z) * n + z * hp[j];                  /* h = (1 - z) n + z h_prev */
        if (save)
            s[2 * H + j] = n;
        if (pre)
            s[6 * H + j] = an;
    }
}

static void FN(gru_cell_n_v)(ptrdiff_t rows, ptrdiff_t H, ptrdiff_t nc, const mr_cell_variant *v,
                             const REAL *gx, ptrdiff_t ldgx, const REAL *gh, ptrdiff_t ldgh,
                             const REAL *h_prev, ptrdiff_t ldhp, REAL *h, ptrdiff_t ldh,
                             REAL *saved, ptrdiff_t lds)
{
    const int save = saved != NULL, pre = save && v->save_pre;
    for (ptrdiff_t b = 0; b < rows; b++) {
#define MR_ROW(std, save, pre) FN(gru_n_row_v)(H, nc, v, std, save, pre, gx + b * ldgx, \
    gh + b * ldgh, h_prev + b * ldhp, h + b * ldh, save ? saved + b * lds : NULL)
        MR_DISPATCH_ROW(v->std_acts, save, pre);
#undef MR_ROW
    }
}

/* The gates' inputs (clipped) and the clip's masks of gate k; without saved pre-activations
   (no clip, derivatives from the outputs) neither is read. */
#define MR_GRU_PRE(k, xk, mk)                                                               \
    REAL xk = 0, mk = 1;                                                                    \
    if (pre) {                                                                              \
        const REAL a_ = s[(4 + (k)) * H + j];                                               \
        xk = FN(mr_clip)(a_, cl);                                                           \
        mk = FN(mr_clip_mask)(a_, cl);                                                      \
    }

/* Backward of either form, first half (all of it for the reset after the product):
   IN dyb, dn_ = dL/dh_t (from the output, via step t+1), s saved, hp h_prev;
   OUT dn_ = dh * z; dx, du: the gate gradients (before: r left for gru_cell_back_r_v). */
static inline __attribute__((always_inline)) void FN(gru_backward_row_v)(
    ptrdiff_t H, ptrdiff_t nc,
    const mr_cell_variant *v, const int std, const int pre, const int after,
    const REAL *MR_RESTRICT dyb, REAL *MR_RESTRICT dn_, const REAL *MR_RESTRICT s,
    const REAL *MR_RESTRICT hp, REAL *MR_RESTRICT dx, REAL *MR_RESTRICT du)
{
    const int fa = MR_GRU_F(std), ga = MR_GRU_G(std);
    const REAL fal = (REAL)v->alpha[0], fbe = (REAL)v->beta[0];
    const REAL gal = (REAL)v->alpha[1], gbe = (REAL)v->beta[1], cl = (REAL)v->clip;
    const REAL *r_ = s, *z_ = s + H, *n_ = s + 2 * H, *un_ = s + 3 * H;
    for (ptrdiff_t j = 0; j < nc; j++) {
        const REAL r = r_[j], z = z_[j], n = n_[j];
        MR_GRU_PRE(GRU_R, xr, mr)
        MR_GRU_PRE(GRU_Z, xz, mz)
        MR_GRU_PRE(GRU_N, xn, mn)
        const REAL dh = dyb[j] + dn_[j];
        /* backprop through h = (1 - z) n + z h_prev, then z = F(.), n = G(.) */
        const REAL dz = dh * (hp[j] - n) * FN(mr_act_grad)(fa, fal, fbe, xz, z) * mz;
        const REAL dn = dh * ((REAL)1 - z) * FN(mr_act_grad)(ga, gal, gbe, xn, n) * mn;
        dn_[j] = dh * z;                                       /* the direct path z * h_prev */
        dx[GRU_Z * H + j] = dz;
        dx[GRU_N * H + j] = dn;
        du[GRU_Z * H + j] = dz;
        if (after) {
            /* backprop through n = G(gx_n + r * gh_n), then r = F(.) */
            const REAL dr = dn * un_[j] * FN(mr_act_grad)(fa, fal, fbe, xr, r) * mr;
            dx[GRU_R * H + j] = dr;
            du[GRU_R * H + j] = dr;
            du[GRU_N * H + j] = dn * r;
        } else {
            (void)xr, (void)mr;
            du[GRU_N * H + j] = dn;               /* gh_n = q W_hn^T + b_hn: no r factor */
        }
    }
}

/* IN dy (rows, H) [lddy], saved (rows, 4H or 7H) [lds], h_prev [ldhp]; IN/OUT dh_next
   (rows, H) contiguous; OUT dgx, dgh (rows, 3H) [ldgx, ldgh] (reset before: r left out,
   gru_cell_back_r_v writes it) */
static void FN(gru_cell_backward_v)(ptrdiff_t rows, ptrdiff_t H, ptrdiff_t nc,
                                    const mr_cell_variant *v,
                                    int after, const REAL *dy, ptrdiff_t lddy, REAL *dh_next,
                                    const REAL *saved, ptrdiff_t lds, const REAL *h_prev,
                                    ptrdiff_t ldhp, REAL *dgx, ptrdiff_t ldgx, REAL *dgh,
                                    ptrdiff_t ldgh)
{
    for (ptrdiff_t b = 0; b < rows; b++) {
#define MR_ROW(std, save, pre)                                                              \
        do {                                                                                \
            if (after)                                                                      \
                FN(gru_backward_row_v)(H, nc, v, std, pre, 1, dy + b * lddy, dh_next + b * H,   \
                                       saved + b * lds, h_prev + b * ldhp, dgx + b * ldgx,  \
                                       dgh + b * ldgh);                                     \
            else                                                                            \
                FN(gru_backward_row_v)(H, nc, v, std, pre, 0, dy + b * lddy, dh_next + b * H,   \
                                       saved + b * lds, h_prev + b * ldhp, dgx + b * ldgx,  \
                                       dgh + b * ldgh);                                     \
        } while (0)
        MR_DISPATCH_ROW(v->std_acts, 1, v->save_pre);
#undef MR_ROW
    }
}

/* Reset before the product, second half of the backward, after the caller's dq = da_n W_hn:
   IN dq (rows, H) [ldq], saved, h_prev; OUT da_r into dgx and dgh's r blocks;
   dh_next += dq * r (the caller then adds dG_h[r,z] W_hh[r,z]). */
static inline __attribute__((always_inline)) void FN(gru_back_r_row_v)(
    ptrdiff_t H, ptrdiff_t nc, const mr_cell_variant *v, const int std, const int pre,
    const REAL *MR_RESTRICT dq, REAL *MR_RESTRICT dn_, const REAL *MR_RESTRICT s,
    const REAL *MR_RESTRICT hp, REAL *MR_RESTRICT dx, REAL *MR_RESTRICT du)
{
    const int fa = MR_GRU_F(std);
    const REAL fal = (REAL)v->alpha[0], fbe = (REAL)v->beta[0], cl = (REAL)v->clip;
    for (ptrdiff_t j = 0; j < nc; j++) {
        const REAL r = s[j];
        MR_GRU_PRE(GRU_R, xr, mr)
        /* backprop through q = r * h_prev, then r = F(.) */
        const REAL dr = dq[j] * hp[j] * FN(mr_act_grad)(fa, fal, fbe, xr, r) * mr;
        dx[GRU_R * H + j] = dr;
        du[GRU_R * H + j] = dr;
        dn_[j] += dq[j] * r;
    }
}

static void FN(gru_cell_back_r_v)(ptrdiff_t rows, ptrdiff_t H, ptrdiff_t nc,
                                  const mr_cell_variant *v,
                                  const REAL *dq, ptrdiff_t ldq, REAL *dh_next,
                                  const REAL *saved, ptrdiff_t lds, const REAL *h_prev,
                                  ptrdiff_t ldhp, REAL *dgx, ptrdiff_t ldgx, REAL *dgh,
                                  ptrdiff_t ldgh)
{
    for (ptrdiff_t b = 0; b < rows; b++) {
#define MR_ROW(std, save, pre) FN(gru_back_r_row_v)(H, nc, v, std, pre, dq + b * ldq,          \
    dh_next + b * H, saved + b * lds, h_prev + b * ldhp, dgx + b * ldgx, dgh + b * ldgh)
        MR_DISPATCH_ROW(v->std_acts, 1, v->save_pre);
#undef MR_ROW
    }
}

#undef MR_GRU_PRE
#undef MR_GRU_F
#undef MR_GRU_G

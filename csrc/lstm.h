/* csrc/lstm.h -- LSTM cell: pointwise forward and backward (template). Gate order i, f, g, o.
 *
 *     i_t = sigmoid(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)
 *     f_t = sigmoid(W_if x_t + b_if + W_hf h_{t-1} + b_hf)
 *     g_t = tanh(W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)
 *     o_t = sigmoid(W_io x_t + b_io + W_ho h_{t-1} + b_ho)
 *     c_t = f_t * c_{t-1} + i_t * g_t
 *     h_t = o_t * tanh(c_t)
 *
 * Rows LSTM_k*H:(LSTM_k+1)*H of weight_ih are the paper's W_k, of weight_hh its U_k; the caller
 * gives gx = x_t W_ih^T + b_ih and gh = h_{t-1} W_hh^T + b_hh, whose sum is the four
 * pre-activations a_i | a_f | a_g | a_o.
 *
 * Backward, given dh = dL/dh_t = dy + dh_next and dc = dL/dc_t from step t+1:
 *
 *     do  = dh * tanh(c_t) * o * (1 - o)
 *     dc' = dh * o * (1 - tanh(c_t)^2) + dc          the total gradient of c_t
 *     di  = dc' * g * i * (1 - i)
 *     df  = dc' * c_{t-1} * f * (1 - f)
 *     dg  = dc' * i * (1 - g^2)
 *     dc_{t-1} = dc' * f
 *     dG_x = dG_h = [di | df | dg | do];   dh_{t-1} = dG_h @ W_hh (by the caller)
 *
 * Saved per step and row (5H): i | f | g | o | tanh(c_t); c_t itself is kept by the caller.
 */

static inline __attribute__((always_inline)) void FN(lstm_forward_row)(
    ptrdiff_t H, ptrdiff_t nc, const REAL *MR_RESTRICT x, const REAL *MR_RESTRICT u,
    const REAL *MR_RESTRICT cp, REAL *MR_RESTRICT y, REAL *MR_RESTRICT c,
    REAL *MR_RESTRICT s, const int save)
{
    for (ptrdiff_t j = 0; j < nc; j++) {
        const REAL i = FN(mr_sigmoid)(x[LSTM_I * H + j] + u[LSTM_I * H + j]);
        const REAL f = FN(mr_sigmoid)(x[LSTM_F * H + j] + u[LSTM_F * H + j]);
        const REAL g = FN(mr_tanh)(x[LSTM_G * H + j] + u[LSTM_G * H + j]);
        const REAL o = FN(mr_sigmoid)(x[LSTM_O * H + j] + u[LSTM_O * H + j]);
        const REAL ct = f * cp[j] + i * g;                     /* c_t = f c_{t-1} + i g */
        const REAL tc = FN(mr_tanh)(ct);
        c[j] = ct;
        y[j] = o * tc;                                          /* h_t = o tanh(c_t) */
        if (save) {
            s[LSTM_I * H + j] = i;
            s[LSTM_F * H + j] = f;
            s[LSTM_G * H + j] = g;
            s[LSTM_O * H + j] = o;
            s[4 * H + j] = tc;
        }
    }
}

/* IN  gx, gh (rows, 4H) [ldgx, ldgh], c_prev (rows, H) [ldcp];
   OUT h (rows, H) [ldh], c (rows, H) [ldc], saved (rows, 5H) [lds] or NULL (inference).
   No output may overlap an input. */
static void FN(lstm_cell_forward)(ptrdiff_t rows, ptrdiff_t H, ptrdiff_t nc,
                                  const REAL *gx, ptrdiff_t ldgx, const REAL *gh, ptrdiff_t ldgh,
                                  const REAL *c_prev, ptrdiff_t ldcp, REAL *h, ptrdiff_t ldh,
                                  REAL *c, ptrdiff_t ldc, REAL *saved, ptrdiff_t lds)
{
    for (ptrdiff_t b = 0; b < rows; b++) {
        if (saved)
            FN(lstm_forward_row)(H, nc, gx + b * ldgx, gh + b * ldgh, c_prev + b * ldcp,
                                 h + b * ldh, c + b * ldc, saved + b * lds, 1);
        else
            FN(lstm_forward_row)(H, nc, gx + b * ldgx, gh + b * ldgh, c_prev + b * ldcp,
                                 h + b * ldh, c + b * ldc, NULL, 0);
    }
}

static inline __attribute__((always_inline)) void FN(lstm_backward_row)(
    ptrdiff_t H, ptrdiff_t nc, const REAL *MR_RESTRICT dyb, const REAL *MR_RESTRICT dhn,
    REAL *MR_RESTRICT dcn, const REAL *MR_RESTRICT s, const REAL *MR_RESTRICT cp,
    REAL *MR_RESTRICT d)
{
    /* dyb = dL/dh_t from the output, dhn = dL/dh_t via step t+1, dcn = dL/dc_t via t+1 */
    for (ptrdiff_t j = 0; j < nc; j++) {
        const REAL i = s[LSTM_I * H + j], f = s[LSTM_F * H + j];
        const REAL g = s[LSTM_G * H + j], o = s[LSTM_O * H + j], tc = s[4 * H + j];
        const REAL dh = dyb[j] + dhn[j];
        /* backprop through h_t = o tanh(c_t), then o = sigmoid(a_o) */
        d[LSTM_O * H + j] = dh * tc * o * ((REAL)1 - o);
        const REAL dc = dh * o * ((REAL)1 - tc * tc) + dcn[j];
        /* backprop through c_t = f c_{t-1} + i g, then the gates' activations */
        d[LSTM_I * H + j] = dc * g * i * ((REAL)1 - i);
        d[LSTM_F * H + j] = dc * cp[j] * f * ((REAL)1 - f);
        d[LSTM_G * H + j] = dc * i * ((REAL)1 - g * g);
        dcn[j] = dc * f;                                       /* dc_{t-1} = dc' f */
    }
}

/* IN  dy (rows, H) [lddy], dh_next (rows, H) contiguous, saved (rows, 5H) [lds],
       c_prev (rows, H) [ldcp];
   IN/OUT dc_next (rows, H) contiguous: in dL/dc_t via step t+1, out dL/dc_{t-1};
   OUT dg (rows, 4H) [ldg] = dG_x = dG_h */
static void FN(lstm_cell_backward)(ptrdiff_t rows, ptrdiff_t H, ptrdiff_t nc,
                                   const REAL *dy, ptrdiff_t lddy, const REAL *dh_next,
                                   REAL *dc_next, const REAL *saved, ptrdiff_t lds,
                                   const REAL *c_prev, ptrdiff_t ldcp, REAL *dg, ptrdiff_t ldg)
{
    for (ptrdiff_t b = 0; b < rows; b++)
        FN(lstm_backward_row)(H, nc, dy + b * lddy, dh_next + b * H, dc_next + b * H,
                              saved + b * lds, c_prev + b * ldcp, dg + b * ldg);
}

/* ---- the LSTM variants (rows for the layers whose Variant is not PyTorch's) ----
 *
 *     a_i = W_ii x_t + b_ii + W_hi h_{t-1} + b_hi + p_i * c_{t-1}      peepholes: p (3H,) i|f|o
 *     a_f = W_if x_t + b_if + W_hf h_{t-1} + b_hf + p_f * c_{t-1}      (p = 0 without them)
 *     a_g = W_ig x_t + b_ig + W_hg h_{t-1} + b_hg
 *     i = F(clip(a_i)),  f = F(clip(a_f)) or, coupled, f = 1 - i,  g = G(clip(a_g))
 *     c_t = f * c_{t-1} + i * g
 *     a_o = W_io x_t + b_io + W_ho h_{t-1} + b_ho + p_o * c_t           (o sees c_t)
 *     o = F(clip(a_o)),  h_t = o * Hc(c_t)                             (Hc not clipped)
 *
 * F, G, Hc: the activation slots f, g, h (PyTorch: sigmoid, tanh, tanh); clip(a) =
 * min(max(a, -clip), clip) (clip = +inf: none). Backward, with F' etc. the derivatives at the
 * clipped input (times the clip's mask [-clip <= a <= clip]):
 *
 *     da_o = dh * Hc(c_t) * F'(o)
 *     dc'  = dh * o * Hc'(c_t) + dc + da_o * p_o
 *     da_i = dc' * g * F'(i)        (coupled: dc' * (g - c_{t-1}) * F'(i));   da_f = dc' * c_{t-1}
 *            * F'(f) (coupled: 0);  da_g = dc' * i * G'(g)
 *     dc_{t-1} = dc' * f + da_i * p_i + da_f * p_f
 *     dp_i += da_i * c_{t-1},  dp_f += da_f * c_{t-1},  dp_o += da_o * c_t   (by the caller,
 *     after the loop, from dG and the saved c)
 *
 * Saved per step and row: i | f | g | o | Hc(c_t) (5H) and, when v->save_pre, the unclipped
 * a_i | a_f | a_g | a_o (4H more).
 */

#define MR_LSTM_ACT(k, std, dflt) ((std) ? (dflt) : v->act[k])

static inline __attribute__((always_inline)) void FN(lstm_forward_row_v)(
    ptrdiff_t H, ptrdiff_t nc,
    const mr_cell_variant *v, const int std, const int save, const int pre,
    const REAL *MR_RESTRICT x, const REAL *MR_RESTRICT u, const REAL *MR_RESTRICT pp,
    const REAL *MR_RESTRICT cp, REAL *MR_RESTRICT y, REAL *MR_RESTRICT c, REAL *MR_RESTRICT s)
{
    const int fa = MR_LSTM_ACT(0, std, MR_SIGMOID), ga = MR_LSTM_ACT(1, std, MR_TANH);
    const int ha = MR_LSTM_ACT(2, std, MR_TANH);
    const REAL fal = (REAL)v->alpha[0], fbe = (REAL)v->beta[0];
    const REAL gal = (REAL)v->alpha[1], gbe = (REAL)v->beta[1];
    const REAL hal = (REAL)v->alpha[2], hbe = (REAL)v->beta[2];
    const REAL cl = (REAL)v->clip;
    const int coupled = v->coupled;
    const REAL *p_i = pp, *p_f = pp + H, *p_o = pp + 2 * H;
    for (ptrdiff_t j = 0; j < nc; j++) {
        const REAL ai = x[LSTM_I * H + j] + u[LSTM_I * H + j] + p_i[j] * cp[j];
        const REAL af = x[LSTM_F * H + j] + u[LSTM_F * H + j] + p_f[j] * cp[j];
        const REAL ag = x[LSTM_G * H + j] + u[LSTM_G * H + j];
        const REAL i = FN(mr_act)(fa, fal, fbe, FN(mr_clip)(ai, cl));
        const REAL f = coupled ? (REAL)1 - i : FN(mr_act)(fa, fal, fbe, FN(mr_clip)(af, cl));
        const REAL g = FN(mr_act)(ga, gal, gbe, FN(mr_clip)(ag, cl));
        const REAL ct = f * cp[j] + i * g;                     /* c_t = f c_{t-1} + i g */
        const REAL ao = x[LSTM_O * H + j] + u[LSTM_O * H + j] + p_o[j] * ct;
        const REAL o = FN(mr_act)(fa, fal, fbe, FN(mr_clip)(ao, cl));
        const REAL hc = FN(mr_act)(ha, hal, hbe, ct);
        c[j] = ct;
        y[j] = o * hc;                                          /* h_t = o Hc(c_t) */
        if (save) {
            s[LSTM_I * H + j] = i;
            s[LSTM_F * H + j] = f;
            s[LSTM_G * H + j] = g;
            s[LSTM_O * H + j] = o;
            s[4 * H + j] = hc;
        }
        if (pre) {
            s[(5 + LSTM_I) * H + j] = ai;
            s[(5 + LSTM_F) * H + j] = af;
            s[(5 + LSTM_G) * H + j] = ag;
            s[(5 + LSTM_O) * H + j] = ao;
        }
    }
}

/* As lstm_cell_forward, for a variant v; pp (3H,) the peepholes p_i | p_f | p_o (zeros
   without them); saved (rows, (5 or 9) H) [lds] or NULL. */
static void FN(lstm_cell_forward_v)(ptrdiff_t rows, ptrdiff_t H, ptrdiff_t nc,
                                    const mr_cell_variant *v,
                                    const REAL *pp, const REAL *gx, ptrdiff_t ldgx,
                                    const REAL *gh, ptrdiff_t ldgh, const REAL *c_prev,
                                    ptrdiff_t ldcp, REAL *h, ptrdiff_t ldh, REAL *c,
                                    ptrdiff_t ldc, REAL *saved, ptrdiff_t lds)
{
    const int save = saved != NULL, pre = save && v->save_pre;
    for (ptrdiff_t b = 0; b < rows; b++) {
#define MR_ROW(std, save, pre) FN(lstm_forward_row_v)(H, nc, v, std, save, pre, gx + b * ldgx, \
    gh + b * ldgh, pp, c_prev + b * ldcp, h + b * ldh, c + b * ldc, save ? saved + b * lds : NULL)
        MR_DISPATCH_ROW(v->std_acts, save, pre);
#undef MR_ROW
    }
}

static inline __attribute__((always_inline)) void FN(lstm_backward_row_v)(
    ptrdiff_t H, ptrdiff_t nc, const mr_cell_variant *v, const int std, const int pre,
    const REAL *MR_RESTRICT dyb,
    const REAL *MR_RESTRICT dhn, REAL *MR_RESTRICT dcn, const REAL *MR_RESTRICT s,
    const REAL *MR_RESTRICT pp, const REAL *MR_RESTRICT cp, const REAL *MR_RESTRICT ct_,
    REAL *MR_RESTRICT d)
{
    const int fa = MR_LSTM_ACT(0, std, MR_SIGMOID), ga = MR_LSTM_ACT(1, std, MR_TANH);
    const int ha = MR_LSTM_ACT(2, std, MR_TANH);
    const REAL fal = (REAL)v->alpha[0], fbe = (REAL)v->beta[0];
    const REAL gal = (REAL)v->alpha[1], gbe = (REAL)v->beta[1];
    const REAL hal = (REAL)v->alpha[2], hbe = (REAL)v->beta[2];
    const REAL cl = (REAL)v->clip;
    const int coupled = v->coupled;
    const REAL *p_i = pp, *p_f = pp + H, *p_o = pp + 2 * H;
    for (ptrdiff_t j = 0; j < nc; j++) {
        const REAL i = s[LSTM_I * H + j], f = s[LSTM_F * H + j];
        const REAL g = s[LSTM_G * H + j], o = s[LSTM_O * H + j], hc = s[4 * H + j];
        /* the gates' inputs (clipped) and the clip's masks; without saved pre-activations
           (no clip, derivatives from the outputs) neither is read */
        REAL xi = 0, xf = 0, xg = 0, xo = 0, mi = 1, mf = 1, mg = 1, mo = 1;
        if (pre) {
            const REAL ai = s[(5 + LSTM_I) * H + j], af = s[(5 + LSTM_F) * H + j];
            const REAL ag = s[(5 + LSTM_G) * H + j], ao = s[(5 + LSTM_O) * H + j];
            xi = FN(mr_clip)(ai, cl), xf = FN(mr_clip)(af, cl);
            xg = FN(mr_clip)(ag, cl), xo = FN(mr_clip)(ao, cl);
            mi = FN(mr_clip_mask)(ai, cl), mf = FN(mr_clip_mask)(af, cl);
            mg = FN(mr_clip_mask)(ag, cl), mo = FN(mr_clip_mask)(ao, cl);
        }
        const REAL dh = dyb[j] + dhn[j];
        /* backprop through h_t = o Hc(c_t), then o = F(clip(a_o)) */
        const REAL dao = dh * hc * FN(mr_act_grad)(fa, fal, fbe, xo, o) * mo;
        d[LSTM_O * H + j] = dao;
        /* c_t reaches the loss through h_t, through c_{t+1} and, with peepholes, through a_o */
        const REAL dc = dh * o * FN(mr_act_grad)(ha, hal, hbe, ct_[j], hc) + dcn[j]
                        + dao * p_o[j];
        /* backprop through c_t = f c_{t-1} + i g, then the gates' activations */
        const REAL dai = coupled
            ? dc * (g - cp[j]) * FN(mr_act_grad)(fa, fal, fbe, xi, i) * mi
            : dc * g * FN(mr_act_grad)(fa, fal, fbe, xi, i) * mi;
        const REAL daf = coupled ? (REAL)0
                                 : dc * cp[j] * FN(mr_act_grad)(fa, fal, fbe, xf, f) * mf;
        d[LSTM_I * H + j] = dai;
        d[LSTM_F * H + j] = daf;
        d[LSTM_G * H + j] = dc * i * FN(mr_act_grad)(ga, gal, gbe, xg, g) * mg;
        dcn[j] = dc * f + dai * p_i[j] + daf * p_f[j];   /* dc_{t-1}, peepholes included */
    }
}

/* As lstm_cell_backward, for a variant v; pp (3H,) the peepholes (zeros without them);
   c (rows, H) [ldc] = c_t (read by Hc' from the input and by nothing else). */
static void FN(lstm_cell_backward_v)(ptrdiff_t rows, ptrdiff_t H, ptrdiff_t nc,
                                     const mr_cell_variant *v,
                                     const REAL *pp, const REAL *dy, ptrdiff_t lddy,
                                     const REAL *dh_next, REAL *dc_next, const REAL *saved,
                                     ptrdiff_t lds, const REAL *c_prev, ptrdiff_t ldcp,
                                     const REAL *c, ptrdiff_t ldc, REAL *dg, ptrdiff_t ldg)
{
    for (ptrdiff_t b = 0; b < rows; b++) {
#define MR_ROW(std, save, pre) FN(lstm_backward_row_v)(H, nc, v, std, pre, dy + b * lddy, \
    dh_next + b * H, dc_next + b * H, saved + b * lds, pp, c_prev + b * ldcp, c + b * ldc, \
    dg + b * ldg)
        MR_DISPATCH_ROW(v->std_acts, 1, v->save_pre);
#undef MR_ROW
    }
}

#undef MR_LSTM_ACT

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
    ptrdiff_t H, const REAL *MR_RESTRICT x, const REAL *MR_RESTRICT u,
    const REAL *MR_RESTRICT cp, REAL *MR_RESTRICT y, REAL *MR_RESTRICT c,
    REAL *MR_RESTRICT s, const int save)
{
    for (ptrdiff_t j = 0; j < H; j++) {
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
static void FN(lstm_cell_forward)(ptrdiff_t rows, ptrdiff_t H,
                                  const REAL *gx, ptrdiff_t ldgx, const REAL *gh, ptrdiff_t ldgh,
                                  const REAL *c_prev, ptrdiff_t ldcp, REAL *h, ptrdiff_t ldh,
                                  REAL *c, ptrdiff_t ldc, REAL *saved, ptrdiff_t lds)
{
    for (ptrdiff_t b = 0; b < rows; b++) {
        if (saved)
            FN(lstm_forward_row)(H, gx + b * ldgx, gh + b * ldgh, c_prev + b * ldcp, h + b * ldh,
                                 c + b * ldc, saved + b * lds, 1);
        else
            FN(lstm_forward_row)(H, gx + b * ldgx, gh + b * ldgh, c_prev + b * ldcp, h + b * ldh,
                                 c + b * ldc, NULL, 0);
    }
}

static inline __attribute__((always_inline)) void FN(lstm_backward_row)(
    ptrdiff_t H, const REAL *MR_RESTRICT dyb, const REAL *MR_RESTRICT dhn,
    REAL *MR_RESTRICT dcn, const REAL *MR_RESTRICT s, const REAL *MR_RESTRICT cp,
    REAL *MR_RESTRICT d)
{
    /* dyb = dL/dh_t from the output, dhn = dL/dh_t via step t+1, dcn = dL/dc_t via t+1 */
    for (ptrdiff_t j = 0; j < H; j++) {
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
static void FN(lstm_cell_backward)(ptrdiff_t rows, ptrdiff_t H,
                                   const REAL *dy, ptrdiff_t lddy, const REAL *dh_next,
                                   REAL *dc_next, const REAL *saved, ptrdiff_t lds,
                                   const REAL *c_prev, ptrdiff_t ldcp, REAL *dg, ptrdiff_t ldg)
{
    for (ptrdiff_t b = 0; b < rows; b++)
        FN(lstm_backward_row)(H, dy + b * lddy, dh_next + b * H, dc_next + b * H,
                              saved + b * lds, c_prev + b * ldcp, dg + b * ldg);
}

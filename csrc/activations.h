/* csrc/activations.h -- sigmoid and tanh from one exp kernel of our own (template).
 *
 * Included by isa.h once per (instruction set, dtype) with REAL, FN(), MR_UINT and the
 * MR_* constants below defined. No include guard on purpose.
 *
 * Why our own exp: glibc's expf/exp are calls the compiler cannot vectorise (~100 ns per
 * element measured here), and the cells' pointwise loops are pure exp/tanh/sigmoid. This one is
 * branch-free, so a loop `for j < H` calling it compiles to SIMD code:
 *
 *     x = n ln2 + r,   n = round(x / ln2),   |r| <= ln2/2           (Cody-Waite, ln2 = hi + lo)
 *     expm1(r) = r + r^2/2! + r^3/3! + ...   (Taylor, to r^7 in float, r^13 in double: the first
 *                                            omitted term is < 2e-8 resp. 2e-17 relative)
 *     exp(x)   = 2^n (1 + expm1(r)),   expm1(x) = 2^n expm1(r) + (2^n - 1)
 *
 * 2^n is built from its bits; n comes out of the "add 1.5*2^mantissa" rounding trick. x is first
 * clamped to where 2^n is a normal number, which only matters where sigmoid/tanh are already
 * saturated to the last bit. NaN propagates (r is NaN). Error: a few ulp (tests compare with
 * NumPy's libm to 1e-10 relative in float64).
 */

/* min(max(x, lo), hi) written so that a NaN x stays NaN */
static inline REAL FN(mr_clamp)(REAL x, REAL lo, REAL hi)
{
    return x < lo ? lo : (x > hi ? hi : x);
}

/* x -> (expm1(r), 2^n) with x = n ln2 + r */
static inline __attribute__((always_inline)) void FN(mr_exp_parts)(REAL x, REAL *expm1_r, REAL *two_n)
{
    x = FN(mr_clamp)(x, MR_EXP_LO, MR_EXP_HI);
    const REAL t = x * (REAL)1.4426950408889634074 + MR_MAGIC;    /* n + magic, rounded */
    const REAL n = t - MR_MAGIC;
    MR_UINT bits;
    memcpy(&bits, &t, sizeof bits);
    bits = (bits - MR_MAGIC_BITS + MR_EXP_BIAS) << MR_MANT_BITS;  /* (n + bias) << mantissa */
    memcpy(two_n, &bits, sizeof bits);
    const REAL r = (x - n * MR_LN2_HI) - n * MR_LN2_LO;
    /* q = 1/2! + r/3! + r^2/4! + ...  (Horner), expm1(r) = r + r^2 q */
#if MR_REAL_IS_FLOAT
    REAL q = (REAL)(1.0 / 5040);
    q = q * r + (REAL)(1.0 / 720);
    q = q * r + (REAL)(1.0 / 120);
    q = q * r + (REAL)(1.0 / 24);
    q = q * r + (REAL)(1.0 / 6);
    q = q * r + (REAL)0.5;
#else
    REAL q = 1.0 / 6227020800.0;          /* 1/13! */
    q = q * r + 1.0 / 479001600.0;        /* 1/12! */
    q = q * r + 1.0 / 39916800.0;
    q = q * r + 1.0 / 3628800.0;
    q = q * r + 1.0 / 362880.0;
    q = q * r + 1.0 / 40320.0;
    q = q * r + 1.0 / 5040.0;
    q = q * r + 1.0 / 720.0;
    q = q * r + 1.0 / 120.0;
    q = q * r + 1.0 / 24.0;
    q = q * r + 1.0 / 6.0;
    q = q * r + 0.5;
#endif
    *expm1_r = r + (r * r) * q;
}

/* sigmoid(x) = 1 / (1 + exp(-x)) */
static inline __attribute__((always_inline)) REAL FN(mr_sigmoid)(REAL x)
{
    REAL p, s;
    FN(mr_exp_parts)(-x, &p, &s);
    return (REAL)1 / ((REAL)1 + (s + s * p));
}

/* tanh(x) = sign(x) * (1 - e^{-2|x|}) / (1 + e^{-2|x|}) = -sign(x) * m / (2 + m),
   m = expm1(-2|x|): no cancellation near 0, so tanh keeps its relative precision there. */
static inline __attribute__((always_inline)) REAL FN(mr_tanh)(REAL x)
{
    REAL p, s;
    FN(mr_exp_parts)((REAL)-2 * MR_FABS(x), &p, &s);
    const REAL m = (s * p) + (s - (REAL)1);
    return MR_COPYSIGN(-m / ((REAL)2 + m), x);
}

/* ---- ONNX's activations, for the cell variants (csrc/{elman,gru,lstm}.h, the *_v rows) ----
 *
 * One enum, in the order of minirnn.variants.ACTIVATIONS (the id is the index there), and one
 * slot type: an activation with its alpha and beta (0 where unused). The default cells never
 * come here: they call mr_sigmoid/mr_tanh directly. A variant row called with a constant id
 * (PyTorch's activations, see MR_STD_ACTS) has the switch folded away by the compiler and still
 * vectorises; with ids known only at run time it is a switch per element.
 *
 * Derivatives as minirnn.variants computes them: from the output y, except LeakyRelu,
 * ThresholdedRelu, ScaledTanh and Elu, which need the input x. */
#ifndef MR_ACTIVATION_IDS
#define MR_ACTIVATION_IDS
enum {
    MR_SIGMOID, MR_TANH, MR_RELU, MR_AFFINE, MR_LEAKY_RELU, MR_THRESHOLDED_RELU,
    MR_SCALED_TANH, MR_HARD_SIGMOID, MR_ELU, MR_SOFTSIGN, MR_SOFTPLUS, MR_N_ACTIVATIONS
};

/* What a variant cell computes besides PyTorch's cell (one per layer and direction):
 * the activation of each slot in ONNX's order (LSTM f, g, h; GRU f, g; Elman f), the clip of
 * the gate pre-activations (+inf: none), LSTM's coupled gates (f = 1 - i), and whether the
 * pre-activations are saved for the backward (a clip, or a derivative from the input). */
typedef struct {
    int act[3];
    double alpha[3], beta[3];
    int std_acts;       /* the slots hold PyTorch's activations: the vectorised calls */
    int save_pre;       /* the training forward saves the (unclipped) pre-activations */
    int coupled;        /* LSTM: f = 1 - i */
    double clip;        /* gate pre-activations clipped to [-clip, clip]; +inf for none */
} mr_cell_variant;

/* Call MR_ROW(std, save, pre) with constant flags where they matter for speed: PyTorch's
 * activations (std) are folded into vectorised calls, for each combination of save (the
 * training forward) and pre (saved pre-activations); other activations take the flags at
 * run time (a switch per element is not vectorised anyway). */
#define MR_DISPATCH_ROW(std, save, pre)                                                     \
    do {                                                                                    \
        if (!(std))                                                                         \
            MR_ROW(0, (save), (pre));                                                       \
        else if (!(save))                                                                   \
            MR_ROW(1, 0, 0);                                                                \
        else if (!(pre))                                                                    \
            MR_ROW(1, 1, 0);                                                                \
        else                                                                                \
            MR_ROW(1, 1, 1);                                                                \
    } while (0)
#endif

/* act(x) of activation id with parameters a, b */
static inline __attribute__((always_inline)) REAL FN(mr_act)(const int id, REAL a, REAL b,
                                                             REAL x)
{
    REAL p, s;
    switch (id) {
    case MR_SIGMOID:                                            /* 1 / (1 + e^-x) */
        return FN(mr_sigmoid)(x);
    case MR_TANH:
        return FN(mr_tanh)(x);
    case MR_RELU:                                               /* max(0, x); NaN stays */
        return x < 0 ? (REAL)0 : x;
    case MR_AFFINE:                                             /* a x + b */
        return a * x + b;
    case MR_LEAKY_RELU:                                         /* x >= 0 ? x : a x */
        return x >= 0 ? x : a * x;
    case MR_THRESHOLDED_RELU:                                   /* x > a ? x : 0 */
        return x > a ? x : (REAL)0 * x;
    case MR_SCALED_TANH:                                        /* a tanh(b x) */
        return a * FN(mr_tanh)(b * x);
    case MR_HARD_SIGMOID:                                       /* clip(a x + b, 0, 1) */
        return FN(mr_clamp)(a * x + b, (REAL)0, (REAL)1);
    case MR_ELU:                                                /* x > 0 ? x : a (e^x - 1) */
        if (x > 0)
            return x;
        FN(mr_exp_parts)(x, &p, &s);
        return a * ((s * p) + (s - (REAL)1));
    case MR_SOFTSIGN:                                           /* x / (1 + |x|) */
        return x / ((REAL)1 + MR_FABS(x));
    case MR_SOFTPLUS:                    /* log(1 + e^x) = max(x, 0) + log1p(e^-|x|) */
        FN(mr_exp_parts)(-MR_FABS(x), &p, &s);
        return (x > 0 ? x : (REAL)0) + MR_LOG1P(s + s * p);
    default:
        return x;
    }
}

/* d act(x) / dx from the input x and the output y = act(x) */
static inline __attribute__((always_inline)) REAL FN(mr_act_grad)(const int id, REAL a, REAL b,
                                                                  REAL x, REAL y)
{
    REAL p, s, t;
    switch (id) {
    case MR_SIGMOID:
        return y * ((REAL)1 - y);
    case MR_TANH:
        return (REAL)1 - y * y;
    case MR_RELU:
        return y > 0 ? (REAL)1 : (REAL)0;
    case MR_AFFINE:
        return a;
    case MR_LEAKY_RELU:
        return x >= 0 ? (REAL)1 : a;
    case MR_THRESHOLDED_RELU:
        return x > a ? (REAL)1 : (REAL)0;
    case MR_SCALED_TANH:                                        /* a b (1 - tanh(b x)^2) */
        t = FN(mr_tanh)(b * x);
        return (a * b) * ((REAL)1 - t * t);
    case MR_HARD_SIGMOID:                                       /* a inside (0, 1), else 0 */
        return y > 0 && y < 1 ? a : (REAL)0;
    case MR_ELU:                                                /* x > 0 ? 1 : a e^x */
        if (x > 0)
            return (REAL)1;
        FN(mr_exp_parts)(x, &p, &s);
        return a * (s + s * p);
    case MR_SOFTSIGN:                                           /* (1 - |y|)^2 */
        t = (REAL)1 - MR_FABS(y);
        return t * t;
    case MR_SOFTPLUS:                                           /* sigmoid(x) = 1 - e^-y */
        FN(mr_exp_parts)(-y, &p, &s);
        return -((s * p) + (s - (REAL)1));
    default:
        return (REAL)1;
    }
}

/* The clip of a gate pre-activation, and its derivative: 1 where -c <= x <= c, else 0. */
static inline __attribute__((always_inline)) REAL FN(mr_clip)(REAL x, REAL c)
{
    return FN(mr_clamp)(x, -c, c);
}

static inline __attribute__((always_inline)) REAL FN(mr_clip_mask)(REAL x, REAL c)
{
    return x >= -c && x <= c ? (REAL)1 : (REAL)0;
}

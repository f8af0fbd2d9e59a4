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

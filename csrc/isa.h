/* csrc/isa.h -- the body compiled once per (instruction set, dtype); see minirnn.h.
 * Expects REAL, FN(name), VEC_BYTES and MR_REAL_IS_FLOAT. No include guard on purpose. */

#if MR_REAL_IS_FLOAT
#define MR_UINT uint32_t
#define MR_MAGIC 12582912.0f                  /* 1.5 * 2^23 */
#define MR_MAGIC_BITS ((uint32_t)0x4B400000)
#define MR_EXP_BIAS ((uint32_t)127)
#define MR_MANT_BITS 23
#define MR_EXP_LO (-87.0f)                    /* 2^n stays a normal number */
#define MR_EXP_HI 88.0f
#define MR_LN2_HI 0.693359375f                /* ln 2 = hi + lo, hi with few mantissa bits */
#define MR_LN2_LO (-2.12194440e-4f)
#define MR_FABS __builtin_fabsf
#define MR_COPYSIGN __builtin_copysignf
#define MR_LOG1P log1pf
#else
#define MR_UINT uint64_t
#define MR_MAGIC 6755399441055744.0           /* 1.5 * 2^52 */
#define MR_MAGIC_BITS ((uint64_t)0x4338000000000000ULL)
#define MR_EXP_BIAS ((uint64_t)1023)
#define MR_MANT_BITS 52
#define MR_EXP_LO (-708.0)
#define MR_EXP_HI 709.0
#define MR_LN2_HI 6.93147180369123816490e-01
#define MR_LN2_LO 1.90821492927058770002e-10
#define MR_FABS __builtin_fabs
#define MR_COPYSIGN __builtin_copysign
#define MR_LOG1P log1p
#endif

#include "activations.h"
#include "gemm.h"
#include "elman.h"
#include "gru.h"
#include "lstm.h"

#undef MR_UINT
#undef MR_MAGIC
#undef MR_MAGIC_BITS
#undef MR_EXP_BIAS
#undef MR_MANT_BITS
#undef MR_EXP_LO
#undef MR_EXP_HI
#undef MR_LN2_HI
#undef MR_LN2_LO
#undef MR_FABS
#undef MR_COPYSIGN
#undef MR_LOG1P

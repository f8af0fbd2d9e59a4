/* csrc/variant.h -- one instruction-set variant: isa.h for float, then for double, the
 * functions named name_f<MR_SUFFIX> and name_d<MR_SUFFIX> (e.g. gemm_f_avx2).
 * Expects VEC_BYTES, MR_SUFFIX, MR_CAT and the caller's target pragma (see minirnn.h).
 * No include guard on purpose. */

#define REAL float
#define MR_REAL_IS_FLOAT 1
#define FN(name) MR_CAT(name##_f, MR_SUFFIX)
#include "isa.h"
#undef FN
#undef REAL
#undef MR_REAL_IS_FLOAT

#define REAL double
#define MR_REAL_IS_FLOAT 0
#define FN(name) MR_CAT(name##_d, MR_SUFFIX)
#include "isa.h"
#undef FN
#undef REAL
#undef MR_REAL_IS_FLOAT

/* once per instruction set, for both dtypes */
#include "fingerprint.h"

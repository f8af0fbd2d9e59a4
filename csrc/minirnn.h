/* csrc/minirnn.h -- the C half of minirnn's kernels: everything minirnn/_kernels.pyx calls.
 *
 * Glossary (also used in _kernels.pyx): T time steps, B batch, I input size, H hidden size,
 * G gates (1 Elman, 3 GRU, 4 LSTM), GH = G*H, D directions, L layers. All offsets ptrdiff_t.
 *
 * What is here (one source for float and double, one source for every instruction set):
 *   activations.h  exp/sigmoid/tanh that vectorise
 *   gemm.h         the matrix product, B packed in panels (pack_panels, gemm)
 *   elman.h gru.h lstm.h   each cell's pointwise forward and backward, adjacent
 * isa.h includes those five; this file includes isa.h four times:
 *
 *   dtype  x  instruction set:  _f / _d  x  _base (the compiler's default target, e.g. SSE2 on
 *   x86-64: runs anywhere)  and  _avx2 (AVX2 + FMA, x86-64 with gcc or clang only)
 *
 * and defines the names _kernels.pyx uses, `gemm_f`, `lstm_cell_forward_d`, ..., which call the
 * _avx2 version when the CPU has AVX2 and FMA (checked once, at import) and the _base version
 * otherwise. So the default build is portable and still uses the machine's vector units; no
 * -march flag is needed (MINIRNN_NATIVE=1 adds -march=native to the _base version too).
 * mr_set_isa() lets tests run the _base path on an AVX2 machine.
 *
 * Never -ffast-math: the kernels are exact to a few ulp and NaN/Inf propagate.
 */
#ifndef MINIRNN_H
#define MINIRNN_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) || defined(__clang__)
#define MR_RESTRICT __restrict__
#else
#define MR_RESTRICT
#endif

/* Gates have names, not offsets: block k of the G*H gate axis. */
enum { LSTM_I, LSTM_F, LSTM_G, LSTM_O };
enum { GRU_R, GRU_Z, GRU_N };

/* Blocking of the product (gemm.h): rows of the tallest register tile, K block, M block. */
#define MR_MR 6
#define MR_KC 256
#define MR_MC 64

/* ---- _base: the compiler's default target (16-byte vectors) ---- */
#define VEC_BYTES 16
#define REAL float
#define MR_REAL_IS_FLOAT 1
#define FN(name) name##_f_base
#include "isa.h"
#undef FN
#undef REAL
#undef MR_REAL_IS_FLOAT
#define REAL double
#define MR_REAL_IS_FLOAT 0
#define FN(name) name##_d_base
#include "isa.h"
#undef FN
#undef REAL
#undef MR_REAL_IS_FLOAT
#undef VEC_BYTES

/* ---- _avx2: AVX2 + FMA (32-byte vectors), x86-64 with gcc or clang ---- */
#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#define MR_HAVE_AVX2_VARIANT 1
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif
#define VEC_BYTES 32
#define REAL float
#define MR_REAL_IS_FLOAT 1
#define FN(name) name##_f_avx2
#include "isa.h"
#undef FN
#undef REAL
#undef MR_REAL_IS_FLOAT
#define REAL double
#define MR_REAL_IS_FLOAT 0
#define FN(name) name##_d_avx2
#include "isa.h"
#undef FN
#undef REAL
#undef MR_REAL_IS_FLOAT
#undef VEC_BYTES
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#else
#define MR_HAVE_AVX2_VARIANT 0
#endif

/* ---- instruction-set choice, made once ---- */
static int mr_use_avx2 = 0;

/* 1 if this CPU can run the _avx2 variant */
static int mr_cpu_has_avx2(void)
{
#if MR_HAVE_AVX2_VARIANT
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

/* isa: 1 = avx2, 0 = base. Returns 0, or -1 if the CPU cannot run it (nothing changes). */
static int mr_set_isa(int isa)
{
    if (isa && !mr_cpu_has_avx2())
        return -1;
    mr_use_avx2 = isa;
    return 0;
}

static int mr_get_isa(void) { return mr_use_avx2; }

#define MR_CAT2(a, b) a##b
#define MR_CAT(a, b) MR_CAT2(a, b)
#if MR_HAVE_AVX2_VARIANT
#define MR_PICK(name) (mr_use_avx2 ? MR_CAT(name, _avx2) : MR_CAT(name, _base))
#else
#define MR_PICK(name) MR_CAT(name, _base)
#endif

/* The dispatching names, float then double. */
#define REAL float
#define SFX(name) name##_f
#include "dispatch.h"
#undef SFX
#undef REAL
#define REAL double
#define SFX(name) name##_d
#include "dispatch.h"
#undef SFX
#undef REAL

#endif /* MINIRNN_H */

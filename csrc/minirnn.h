/* csrc/minirnn.h -- the C half of minirnn's kernels: everything minirnn/_kernels.pyx calls.
 *
 * Glossary (also used in _kernels.pyx): T time steps, B batch, I input size, H hidden size,
 * G gates (1 Elman, 3 GRU, 4 LSTM), GH = G*H, D directions, L layers. All offsets ptrdiff_t.
 *
 * The cells (elman.h, gru.h, lstm.h) take (rows, H, nc, ...): H is the hidden size, the
 * distance between gate blocks (gate k of unit j at [k*H + j]) and between the rows of their
 * contiguous (rows, H) arrays; they compute units j < nc, counted from the pointers. A caller
 * computing units j0 <= j < j0 + nc (one block of hidden units: the small-batch schedule,
 * _kernel_parts/schedule.pxi) passes every pointer advanced by j0; all units: nc = H.
 *
 * What is here (one source for float and double, one source for every instruction set):
 *   activations.h  exp/sigmoid/tanh that vectorise
 *   gemm.h         the matrix product, B packed in panels (pack_panels, gemm), and the
 *                  weight gradients X^T dG with their bias sums (pack_tiles, weight_grad)
 *   elman.h gru.h lstm.h   each cell's pointwise forward and backward, adjacent
 *   fingerprint.h  a fingerprint of an array's bytes (are the packed weights still valid?)
 * isa.h includes those five; variant.h includes isa.h for float and for double, and this file
 * includes variant.h once per instruction set:
 *
 *   dtype  x  instruction set:  _f / _d  x  _base (the compiler's default target, e.g. SSE2 on
 *   x86-64: runs anywhere), _avx2 (AVX2 + FMA) and _avx512 (AVX-512 F/VL/DQ/BW); the last two
 *   x86-64 with gcc or clang only
 *
 * and defines the names _kernels.pyx uses, `gemm_f`, `lstm_cell_forward_d`, ..., which call the
 * best variant the CPU runs (checked once, at import). So the default build is portable and
 * still uses the machine's vector units; no -march flag is needed (MINIRNN_NATIVE=1 adds
 * -march=native to the _base version too). mr_set_isa() lets tests run the other variants.
 *
 * Never -ffast-math: the kernels are exact to a few ulp and NaN/Inf propagate.
 */
#ifndef MINIRNN_H
#define MINIRNN_H

#include <math.h>
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

#define MR_CAT2(a, b) a##b
#define MR_CAT(a, b) MR_CAT2(a, b)

/* ---- _base: the compiler's default target (16-byte vectors) ---- */
#define VEC_BYTES 16
#define MR_SUFFIX _base
#include "variant.h"
#undef MR_SUFFIX
#undef VEC_BYTES

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
/* ---- _avx2: AVX2 + FMA (32-byte vectors), x86-64 with gcc or clang ---- */
#define MR_HAVE_AVX2_VARIANT 1
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif
#define VEC_BYTES 32
#define MR_SUFFIX _avx2
#include "variant.h"
#undef MR_SUFFIX
#undef VEC_BYTES
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

/* ---- _avx512: AVX-512 F/VL/DQ/BW (64-byte vectors, 32 vector registers), gcc >= 10 or
 * clang >= 10. On AMD Zen 4 a 512-bit operation runs as two 256-bit halves, so the peak is
 * AVX2's; what pays is half the instructions and twice the registers (measured, one core,
 * float32: the LSTM gate math 12.4 -> 7.1 cycles per cell, no more spills; the product of 4
 * rows 104 -> 111 GFLOP/s, of 32 rows 107 -> 112). On AMD Zen 5 (full 512-bit FMA units:
 * 274 GFLOP/s float32 per core at 512 bits, 137 at 256) it doubles the products: an LSTM
 * 512/512, B = 64, T = 50, one core, 114.5 ms with _avx2 (43 % of the 512-bit peak), 56.0 ms
 * with _avx512 (87 %). Each number is the same expression either way, so the results are
 * those of _avx2, bit for bit (tests/test_kernels.py checks). */
#if (defined(__clang__) && __clang_major__ >= 10) || (!defined(__clang__) && __GNUC__ >= 10)
#define MR_HAVE_AVX512_VARIANT 1
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma,prefer-vector-width=512")
#endif
#define VEC_BYTES 64
#define MR_SUFFIX _avx512
#include "variant.h"
#undef MR_SUFFIX
#undef VEC_BYTES
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#else
#define MR_HAVE_AVX512_VARIANT 0
#endif
#else
#define MR_HAVE_AVX2_VARIANT 0
#define MR_HAVE_AVX512_VARIANT 0
#endif

/* ---- instruction-set choice, made once: 0 base, 1 avx2, 2 avx512 ---- */
static int mr_isa = 0;

/* The best variant this build and CPU can run (0, 1 or 2). */
static int mr_best_isa(void)
{
    int best = 0;
#if MR_HAVE_AVX2_VARIANT
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        best = 1;
#if MR_HAVE_AVX512_VARIANT
    /* the compiler's check includes the operating system's support of the 512-bit state */
    if (best == 1 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")
        && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw"))
        best = 2;
#endif
#endif
    return best;
}

/* Returns 0, or -1 if this build or CPU cannot run variant isa (then nothing changes). */
static int mr_set_isa(int isa)
{
    if (isa < 0 || isa > mr_best_isa())
        return -1;
    mr_isa = isa;
    return 0;
}

static int mr_get_isa(void) { return mr_isa; }

#if MR_HAVE_AVX512_VARIANT
#define MR_PICK(name) (mr_isa == 2 ? MR_CAT(name, _avx512) : mr_isa == 1 ? MR_CAT(name, _avx2) \
                                                                         : MR_CAT(name, _base))
#elif MR_HAVE_AVX2_VARIANT
#define MR_PICK(name) (mr_isa == 1 ? MR_CAT(name, _avx2) : MR_CAT(name, _base))
#else
#define MR_PICK(name) MR_CAT(name, _base)
#endif

/* The fingerprint of an array's bytes (fingerprint.h), on the chosen instruction set. */
static inline void mr_fingerprint(const void *data, ptrdiff_t nbytes, uint64_t out[2])
{
    MR_PICK(mr_fingerprint)(data, nbytes, out);
}

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

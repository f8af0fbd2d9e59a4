/* bench/gemm_rows.c -- the few-row products of csrc/gemm.h against a plain read of their B.
 *
 * A step of a batch of M rows (1 to 4) multiplies h_{t-1} (M, K) by W_hh^T packed in panels
 * (K, N): the product streams B once, so its speed is bounded by the bandwidth of the cache
 * level B lives in (or, with several rows, by the FMA peak). This prints, for one product
 * shape, its time, GB/s of B, GFLOP/s and the fraction of a plain vector read of the same
 * packed B measured in the same run (one thread, CPU time of this thread: best of 7).
 *
 *     gcc -O3 -fno-trapping-math -Icsrc bench/gemm_rows.c -o /tmp/gemm_rows
 *     /tmp/gemm_rows M N K reps        e.g.  /tmp/gemm_rows 1 2048 512 300   (LSTM H=512)
 *
 * The instruction set is the best this CPU runs (as the extension chooses). */
#include "minirnn.h"
#include <stdio.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* the sum of n floats, in 8 independent vector sums: as fast as the memory level allows;
   compiled for the instruction sets the products have (the widest this CPU runs is used) */
typedef float v16 __attribute__((vector_size(64)));
#define READ_ALL(name)                                                                       \
    static float name(const float *p, ptrdiff_t n)                                           \
    {                                                                                        \
        v16 s[8] = {{0}};                                                                    \
        for (ptrdiff_t i = 0; i + 128 <= n; i += 128)                                        \
            for (int g = 0; g < 8; g++) {                                                    \
                v16 w;                                                                       \
                memcpy(&w, p + i + 16 * g, sizeof w);                                        \
                s[g] += w;                                                                   \
            }                                                                                \
        for (int g = 1; g < 8; g++)                                                          \
            s[0] += s[g];                                                                    \
        return s[0][0];                                                                      \
    }
READ_ALL(read_base)
#if MR_HAVE_AVX2_VARIANT
__attribute__((target("avx2"))) READ_ALL(read_avx2)
#endif
#if MR_HAVE_AVX512_VARIANT
__attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx2,prefer-vector-width=512")))
READ_ALL(read_avx512)
#endif

static float read_all(const float *p, ptrdiff_t n)
{
#if MR_HAVE_AVX512_VARIANT
    if (mr_get_isa() == 2)
        return read_avx512(p, n);
#endif
#if MR_HAVE_AVX2_VARIANT
    if (mr_get_isa() == 1)
        return read_avx2(p, n);
#endif
    return read_base(p, n);
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: %s M N K reps\n", argv[0]);
        return 2;
    }
    const ptrdiff_t M = atol(argv[1]), N = atol(argv[2]), K = atol(argv[3]);
    const int reps = atoi(argv[4]);
    mr_set_isa(mr_best_isa());
    const ptrdiff_t NR = panel_width_f(), np = (N + NR - 1) / NR, nB = np * NR * K;
    float *W = aligned_alloc(64, (N * K * 4 + 63) / 64 * 64);
    float *Bp = aligned_alloc(64, (nB * 4 + 63) / 64 * 64);
    float *A = aligned_alloc(64, (M * K * 4 + 63) / 64 * 64);
    float *C = aligned_alloc(64, (M * N * 4 + 63) / 64 * 64);
    float *bias = aligned_alloc(64, (N * 4 + 63) / 64 * 64);
    for (ptrdiff_t i = 0; i < N * K; i++) W[i] = (float) (i % 17) * 0.01f;
    for (ptrdiff_t i = 0; i < M * K; i++) A[i] = (float) (i % 5) * 0.1f;
    for (ptrdiff_t i = 0; i < N; i++) bias[i] = 0.5f;
    pack_panels_f(K, N, W, 1, K, Bp, 0, K, 0, np);      /* B = W^T, as the forward packs it */
    double best = 1e9, best_read = 1e9;
    float sink = 0;
    for (int r = 0; r < 7; r++) {
        double t0 = now();
        for (int k = 0; k < reps; k++) {
            gemm_f(M, N, K, A, K, Bp, C, N, 0, bias);
            sink += C[k % N];
        }
        double t = (now() - t0) / reps;
        best = t < best ? t : best;
        t0 = now();
        for (int k = 0; k < reps; k++) {
            const float *q = Bp;
            __asm__ volatile("" : "+r"(q) : : "memory");   /* read it again every time */
            sink += read_all(q, nB);
        }
        t = (now() - t0) / reps;
        best_read = t < best_read ? t : best_read;
    }
    const double bytes = (double) nB * 4;
    printf("M=%ld N=%ld K=%ld (B %.0f KiB, isa %d): %8.2f us  %6.1f GB/s of B  %6.1f GFLOP/s"
           "  plain read %6.1f GB/s: %3.0f%%%s\n", (long) M, (long) N, (long) K, bytes / 1024,
           mr_get_isa(), best * 1e6, bytes / best / 1e9, 2.0 * M * N * K / best / 1e9,
           bytes / best_read / 1e9, 100 * best_read / best, sink == 12345.f ? " " : "");
    return 0;
}

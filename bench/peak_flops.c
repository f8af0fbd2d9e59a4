/* bench/peak_flops.c -- the FMA peak of this machine, the ceiling of every matrix product.
 *
 * Each thread runs NCHAIN independent chains of vector FMAs (acc = acc * a + b) for `iters`
 * iterations: enough independent chains to cover the FMA latency on every unit, no memory
 * traffic. 2 flops per lane per FMA. Built and run by bench/peak_flops.py:
 *     cc -O3 -mavx2 -mfma -fopenmp peak_flops.c -o peak_flops && ./peak_flops THREADS
 * prints "float32 <GFLOP/s>" and "float64 <GFLOP/s>" for THREADS threads together.
 */
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#define NCHAIN 12

/* run_f32 and run_f64: GFLOP/s of `threads` threads together, each running NCHAIN chains of
 * `iters` FMAs on vectors of `lanes` elements of REAL (the same function for both types). */
#define DEFINE_RUN(name, REAL, VEC, set1, fmadd, first, lanes)                              \
    static double name(long iters, int threads)                                             \
    {                                                                                       \
        double t0 = omp_get_wtime();                                                        \
        REAL sink = 0;                                                                      \
        _Pragma("omp parallel num_threads(threads) reduction(+ : sink)")                    \
        {                                                                                   \
            VEC acc[NCHAIN];                                                                \
            const VEC a = set1((REAL)0.999999), b = set1((REAL)1e-7);                       \
            for (int c = 0; c < NCHAIN; c++)                                                \
                acc[c] = set1((REAL)c);                                                     \
            for (long i = 0; i < iters; i++)                                                \
                /* each acc[c] a register, not a stack slot */                              \
                _Pragma("GCC unroll 12") for (int c = 0; c < NCHAIN; c++)                   \
                    acc[c] = fmadd(acc[c], a, b);                                           \
            for (int c = 0; c < NCHAIN; c++)                                                \
                sink += first(acc[c]);                                                      \
        }                                                                                   \
        double dt = omp_get_wtime() - t0;                                                   \
        if (sink == (REAL)12345)                                                            \
            printf("#");                        /* keep the result alive */                 \
        return 2.0 * (lanes) * NCHAIN * iters * threads / dt / 1e9;                         \
    }

DEFINE_RUN(run_f32, float, __m256, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_cvtss_f32, 8)
DEFINE_RUN(run_f64, double, __m256d, _mm256_set1_pd, _mm256_fmadd_pd, _mm256_cvtsd_f64, 4)

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    long iters = 100000000L;
    double best32 = 0, best64 = 0;
    for (int rep = 0; rep < 5; rep++) {           /* the best of 5: the machine is noisy */
        double g32 = run_f32(iters, threads), g64 = run_f64(iters, threads);
        best32 = g32 > best32 ? g32 : best32;
        best64 = g64 > best64 ? g64 : best64;
    }
    printf("float32 %.1f\nfloat64 %.1f\n", best32, best64);
    return 0;
}

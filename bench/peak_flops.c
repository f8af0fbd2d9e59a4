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

static double run_f32(long iters, int threads)
{
    double t0 = omp_get_wtime();
    float sink = 0;
#pragma omp parallel num_threads(threads) reduction(+ : sink)
    {
        __m256 acc[NCHAIN];
        const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
        for (int c = 0; c < NCHAIN; c++)
            acc[c] = _mm256_set1_ps((float)c);
        for (long i = 0; i < iters; i++)
#pragma GCC unroll 12      /* each acc[c] a register, not a stack slot */
            for (int c = 0; c < NCHAIN; c++)
                acc[c] = _mm256_fmadd_ps(acc[c], a, b);
        for (int c = 0; c < NCHAIN; c++)
            sink += _mm256_cvtss_f32(acc[c]);
    }
    double dt = omp_get_wtime() - t0;
    if (sink == 12345.f)
        printf("#");                            /* keep the result alive */
    return 2.0 * 8 * NCHAIN * iters * threads / dt / 1e9;
}

static double run_f64(long iters, int threads)
{
    double t0 = omp_get_wtime();
    double sink = 0;
#pragma omp parallel num_threads(threads) reduction(+ : sink)
    {
        __m256d acc[NCHAIN];
        const __m256d a = _mm256_set1_pd(0.999999), b = _mm256_set1_pd(1e-7);
        for (int c = 0; c < NCHAIN; c++)
            acc[c] = _mm256_set1_pd((double)c);
        for (long i = 0; i < iters; i++)
#pragma GCC unroll 12      /* each acc[c] a register, not a stack slot */
            for (int c = 0; c < NCHAIN; c++)
                acc[c] = _mm256_fmadd_pd(acc[c], a, b);
        for (int c = 0; c < NCHAIN; c++)
            sink += _mm256_cvtsd_f64(acc[c]);
    }
    double dt = omp_get_wtime() - t0;
    if (sink == 12345.)
        printf("#");
    return 2.0 * 4 * NCHAIN * iters * threads / dt / 1e9;
}

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

/* bench/bandwidth.c -- read bandwidth of each cache level and of memory.
 *
 * At batch 1-4 a step of the recurrence reads all of W_hh once and does 1-4 multiply-adds
 * per weight: the step is bound by how fast W_hh can be read from where it lives (L1, L2, L3
 * or memory), not by the FMA peak. This measures that ceiling: `threads` threads together
 * read a footprint of BYTES bytes, each thread its own contiguous slice (BYTES / threads,
 * first touched by that thread), the way a schedule that splits W_hh's columns over the
 * threads reads it. Each pass sums the slice with 512-bit loads (256-bit without AVX-512F)
 * into 8 accumulators; passes repeat for ~1 ms; the best of 80 timings.
 * Built and run by bench/bench_bandwidth.py:
 *     cc -O3 -mavx2 -mfma -fopenmp bandwidth.c -o bandwidth && ./bandwidth THREADS BYTES...
 * prints "<bytes> <GB/s>" per footprint (GB = 1e9 bytes).
 */
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((target("avx512f"))) static float sum512(const float *p, size_t n)
{
    __m512 a[8];
    for (int k = 0; k < 8; k++)
        a[k] = _mm512_setzero_ps();
    for (size_t i = 0; i + 128 <= n; i += 128)
        for (int k = 0; k < 8; k++)
            a[k] = _mm512_add_ps(a[k], _mm512_load_ps(p + i + 16 * k));
    for (int k = 1; k < 8; k++)
        a[0] = _mm512_add_ps(a[0], a[k]);
    return _mm512_reduce_add_ps(a[0]);
}

static float sum256(const float *p, size_t n)
{
    __m256 a[8];
    for (int k = 0; k < 8; k++)
        a[k] = _mm256_setzero_ps();
    for (size_t i = 0; i + 64 <= n; i += 64)
        for (int k = 0; k < 8; k++)
            a[k] = _mm256_add_ps(a[k], _mm256_load_ps(p + i + 8 * k));
    for (int k = 1; k < 8; k++)
        a[0] = _mm256_add_ps(a[0], a[k]);
    float out[8];
    _mm256_storeu_ps(out, a[0]);
    return out[0] + out[1] + out[2] + out[3] + out[4] + out[5] + out[6] + out[7];
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    int reps = 80;
    __builtin_cpu_init();
    int wide = __builtin_cpu_supports("avx512f");
    for (int a = 2; a < argc; a++) {
        size_t bytes = (size_t)atoll(argv[a]);
        size_t n = bytes / sizeof(float) / threads / 128 * 128;   /* floats per thread */
        if (n < 128)
            n = 128;
        double best = 1e30;
        long passes = 1;
        volatile float sink = 0;
        #pragma omp parallel num_threads(threads)
        {
            float *p = aligned_alloc(64, n * sizeof(float));
            for (size_t i = 0; i < n; i++)
                p[i] = (float)(i & 7);
            #pragma omp single
            {   /* passes per timing: ~1 ms at 50 GB/s per thread */
                passes = (long)(5e7 / (double)(n * sizeof(float))) + 1;
            }
            for (int r = 0; r < reps; r++) {
                #pragma omp barrier
                double t0 = omp_get_wtime();
                float s = 0;
                for (long k = 0; k < passes; k++)
                    s += wide ? sum512(p, n) : sum256(p, n);
                #pragma omp barrier
                double dt = omp_get_wtime() - t0;
                #pragma omp master
                {
                    if (dt < best)
                        best = dt;
                    sink += s;
                }
            }
            free(p);
        }
        printf("%zu %.2f\n", n * sizeof(float) * threads,
               (double)n * sizeof(float) * threads * passes / best / 1e9);
    }
    return 0;
}

/* bench/peak_flops.c -- the FMA peak of this machine, the ceiling of every matrix product.
 *
 * Each thread runs NCHAIN independent chains of vector FMAs (acc = acc * a + b) for `iters`
 * iterations: enough independent chains to cover the FMA latency on every unit, no memory
 * traffic. 2 flops per lane per FMA. Timed at each vector width the CPU has: 256-bit (AVX2
 * + FMA) and, where the CPU reports AVX-512F, 512-bit. The two differ by CPU kind: Zen 4
 * runs a 512-bit FMA as two 256-bit halves (the same peak at both widths), Intel cores with
 * two 512-bit FMA units reach twice the 256-bit peak. Built and run by bench/peak_flops.py:
 *     cc -O3 -mavx2 -mfma -fopenmp peak_flops.c -o peak_flops && ./peak_flops THREADS
 * prints, for THREADS threads together, "float32_256 <GFLOP/s>", "float64_256 ...",
 * "float32_512 ...", "float64_512 ..." (the 512-bit lines only with AVX-512F), and
 * "float32"/"float64": the widest width's figure, "width <bits>" that width.
 */
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#define NCHAIN 12

/* GFLOP/s of `threads` threads together, each running NCHAIN chains of `iters` FMAs on
 * vectors of `lanes` elements of REAL (the same function for every type and width). */
#define DEFINE_RUN(name, ATTR, REAL, VEC, set1, fmadd, first, lanes)                        \
    ATTR static double name(long iters, int threads)                                        \
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

#define AVX512 __attribute__((target("avx512f")))
DEFINE_RUN(run_f32_256, , float, __m256, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_cvtss_f32, 8)
DEFINE_RUN(run_f64_256, , double, __m256d, _mm256_set1_pd, _mm256_fmadd_pd, _mm256_cvtsd_f64, 4)
DEFINE_RUN(run_f32_512, AVX512, float, __m512, _mm512_set1_ps, _mm512_fmadd_ps,
           _mm512_cvtss_f32, 16)
DEFINE_RUN(run_f64_512, AVX512, double, __m512d, _mm512_set1_pd, _mm512_fmadd_pd,
           _mm512_cvtsd_f64, 8)

typedef double (*run_fn)(long, int);

static double best_of(run_fn fn, long iters, int threads)
{
    double best = 0;
    for (int rep = 0; rep < 200; rep++) {  /* the best of 200 short runs: the machine is noisy */
        double g = fn(iters, threads);
        best = g > best ? g : best;
    }
    return best;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    long iters = argc > 2 ? atol(argv[2]) : 2000000L;
    __builtin_cpu_init();
    int has512 = __builtin_cpu_supports("avx512f");
    double f32 = best_of(run_f32_256, iters, threads), f64 = best_of(run_f64_256, iters, threads);
    printf("float32_256 %.1f\nfloat64_256 %.1f\n", f32, f64);
    if (has512) {
        double g32 = best_of(run_f32_512, iters / 2, threads);
        double g64 = best_of(run_f64_512, iters / 2, threads);
        printf("float32_512 %.1f\nfloat64_512 %.1f\n", g32, g64);
        f32 = g32;
        f64 = g64;
    }
    printf("float32 %.1f\nfloat64 %.1f\nwidth %d\n", f32, f64, has512 ? 512 : 256);
    return 0;
}

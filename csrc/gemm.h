/* csrc/gemm.h -- the one matrix product all kernels use (template; see isa.h).
 *
 *     C (M, N)  =  [C or bias or 0]  +  A (M, K) @ B (K, N)
 *
 * B is always *packed* first (pack_panels): cut into column panels of NR columns, each stored
 * k-major and zero-padded, so the inner loop reads B contiguously. The weights are packed once
 * per call (W_hh then serves every time step), activations once per backward.
 * A is read in place through two strides: element (i, k) is A[i*rsa + k*csa], which covers
 * both A (rsa = lda, csa = 1) and A^T (rsa = 1, csa = lda) without copying.
 *
 * Why our own product instead of BLAS (measured on this kind of machine, see docs/kernels.md
 * and DESIGN.md): at the sizes of one recurrent step (B rows of 1..64) BLAS call overhead
 * dominates; OpenBLAS starts threads of its own inside our OpenMP threads; and its results
 * depend on where a slice of rows starts, which would break bitwise thread-count invariance.
 * Here every C element is one sum over k in increasing order, whoever computes it.
 *
 * Blocking: K in blocks of MR_KC (a block of a B panel, MR_KC x NR, stays in L1), M in blocks
 * of MR_MC rows, then a micro-kernel computing MR_MR rows x NR columns in registers.
 */

#define NR ((ptrdiff_t)(2 * VEC_BYTES / sizeof(REAL)))  /* columns of a panel: two vectors */

/* The register tile: mr (<= MR_MR, a constant after inlining) rows x NR columns.
   C[r, j] = base[r, j] + sum_k A(r, k) B(k, j); only the first nr columns are stored. */
static inline __attribute__((always_inline)) void FN(mr_microkernel)(
    const int mr, ptrdiff_t kc, const REAL *A, ptrdiff_t rsa, ptrdiff_t csa,
    const REAL *Bp, REAL *C, ptrdiff_t ldc, ptrdiff_t nr, int load_c, const REAL *bias)
{
    typedef REAL vec __attribute__((vector_size(VEC_BYTES)));
    vec acc0[MR_MR], acc1[MR_MR];                 /* columns [0, NR/2) and [NR/2, NR) */
    for (int r = 0; r < MR_MR; r++)
        acc0[r] = acc1[r] = (vec){0};
    for (ptrdiff_t k = 0; k < kc; k++) {
        vec b0, b1;                               /* row k of the panel, in two vectors */
        memcpy(&b0, Bp + k * NR, sizeof b0);
        memcpy(&b1, Bp + k * NR + NR / 2, sizeof b1);
        for (int r = 0; r < mr; r++) {
            const REAL a = A[r * rsa + k * csa];
            acc0[r] += a * b0;
            acc1[r] += a * b1;
        }
    }
    REAL tile[MR_MR][NR];
    for (int r = 0; r < MR_MR; r++) {
        memcpy(&tile[r][0], &acc0[r], sizeof acc0[r]);
        memcpy(&tile[r][NR / 2], &acc1[r], sizeof acc1[r]);
    }
    for (int r = 0; r < mr; r++) {
        REAL *c = C + r * ldc;
        for (ptrdiff_t j = 0; j < nr; j++)
            c[j] = (load_c ? c[j] : (bias ? bias[j] : (REAL)0)) + tile[r][j];
    }
}

/* C (M, N) [ldc] = (accumulate ? C : bias or 0) + A (M, K) @ B, with B packed by pack_panels.
 * IN  A: element (i, k) at A[i*rsa + k*csa];  Bp: ceil(N/NR) panels of K x NR;
 *     bias: (N,) or NULL, used only when !accumulate.
 * OUT/ACC C: M x N, row stride ldc. */
static void FN(gemm)(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, const REAL *A, ptrdiff_t rsa,
                     ptrdiff_t csa, const REAL *Bp, REAL *C, ptrdiff_t ldc, int accumulate,
                     const REAL *bias)
{
    const ptrdiff_t panels = (N + NR - 1) / NR;
    if (K == 0) {   /* an empty sum: C = base */
        for (ptrdiff_t i = 0; i < M; i++)
            for (ptrdiff_t j = 0; j < N; j++)
                C[i * ldc + j] = accumulate ? C[i * ldc + j] : (bias ? bias[j] : (REAL)0);
        return;
    }
    /* A read along its columns (csa != 1: A^T, the weight gradients dG^T X): the micro-kernel
       would touch a new cache line for every k. Copy each MR_MC x MR_KC block of A once into
       `ablock`, MR_MR rows interleaved, and read that instead (the same numbers, in the same
       order: the results do not change). It pays from about 96 columns of C on (measured,
       float32 AVX2, M = 1024, K = 6400: N = 256 64 -> 83 GFLOP/s, N = 128 64 -> 71, N = 64
       63 -> 55); below, and without memory for it, A is read in place. */
    REAL *ablock = NULL;
    if (csa != 1 && M > MR_MR && N >= 96)
        ablock = (REAL *)malloc(sizeof(REAL) * MR_MC * MR_KC);
    for (ptrdiff_t pc = 0; pc < K; pc += MR_KC) {
        const ptrdiff_t kc = K - pc < MR_KC ? K - pc : MR_KC;
        const int load_c = accumulate || pc > 0;
        for (ptrdiff_t ic = 0; ic < M; ic += MR_MC) {
            const ptrdiff_t i_end = M - ic < MR_MC ? M : ic + MR_MC;
            if (ablock) {
                /* ablock[((i - ic)/MR_MR * kc + k) * MR_MR + (i - ic) % MR_MR] = A(i, pc + k) */
                for (ptrdiff_t k = 0; k < kc; k++)
                    for (ptrdiff_t i = ic; i < i_end; i++)
                        ablock[((i - ic) / MR_MR * kc + k) * MR_MR + (i - ic) % MR_MR] =
                            A[i * rsa + (pc + k) * csa];
            }
            for (ptrdiff_t p = 0; p < panels; p++) {
                const REAL *b = Bp + (p * K + pc) * NR;
                const ptrdiff_t nr = N - p * NR < NR ? N - p * NR : NR;
                const REAL *bias_p = bias ? bias + p * NR : NULL;
                for (ptrdiff_t i = ic; i < i_end; i += MR_MR) {
                    const REAL *a = ablock ? ablock + (i - ic) * kc : A + i * rsa + pc * csa;
                    const ptrdiff_t ars = ablock ? 1 : rsa, acs = ablock ? MR_MR : csa;
                    REAL *c = C + i * ldc + p * NR;
                    const ptrdiff_t rows = i_end - i;
                    /* constant row counts, so each call is specialised with the tile in registers */
                    if (rows >= 4)
                        FN(mr_microkernel)(4, kc, a, ars, acs, b, c, ldc, nr, load_c, bias_p);
                    else if (rows == 3)
                        FN(mr_microkernel)(3, kc, a, ars, acs, b, c, ldc, nr, load_c, bias_p);
                    else if (rows == 2)
                        FN(mr_microkernel)(2, kc, a, ars, acs, b, c, ldc, nr, load_c, bias_p);
                    else
                        FN(mr_microkernel)(1, kc, a, ars, acs, b, c, ldc, nr, load_c, bias_p);
                }
            }
        }
    }
    free(ablock);
}

/* Pack rows k0 <= k < k1 of panels p0 <= p < p1 of the K x N matrix B into Bp.
 * IN  B: element (k, n) at B[(k - k0)*rsb + n*csb] (B points at row k0);
 * OUT Bp: panel p at Bp + p*K*NR, element (k, j) at [k*NR + j], zero where p*NR + j >= N.
 * Packing row ranges separately lets a caller assemble B from two sources (h0, then outputs). */
static void FN(pack_panels)(ptrdiff_t K, ptrdiff_t N, const REAL *B, ptrdiff_t rsb,
                            ptrdiff_t csb, REAL *Bp, ptrdiff_t k0, ptrdiff_t k1,
                            ptrdiff_t p0, ptrdiff_t p1)
{
    for (ptrdiff_t p = p0; p < p1; p++) {
        const ptrdiff_t nr = N - p * NR < NR ? N - p * NR : NR;
        for (ptrdiff_t k = k0; k < k1; k++) {
            REAL *dst = Bp + (p * K + k) * NR;
            const REAL *src = B + (k - k0) * rsb + p * NR * csb;
            for (ptrdiff_t j = 0; j < nr; j++)
                dst[j] = src[j * csb];
            for (ptrdiff_t j = nr; j < NR; j++)
                dst[j] = 0;
        }
    }
}

/* db[j] += sum over rows r < R of G[r*ldg + j], for j < n: the bias gradients (sums of the
 * gate gradients over every step and batch row). Summed in double, rows in order, whatever
 * the dtype: float32 sums over ~10^5 rows lose digits otherwise. Columns in blocks of 64
 * (the accumulators stay in registers). */
static void FN(column_sums)(ptrdiff_t R, ptrdiff_t n, const REAL *G, ptrdiff_t ldg, REAL *db)
{
    for (ptrdiff_t j0 = 0; j0 < n; j0 += 64) {
        const ptrdiff_t m = n - j0 < 64 ? n - j0 : 64;
        double acc[64];
        for (ptrdiff_t j = 0; j < 64; j++)
            acc[j] = 0.0;
        for (ptrdiff_t r = 0; r < R; r++) {
            const REAL *g = G + r * ldg + j0;
            if (m == 64) {
                for (ptrdiff_t j = 0; j < 64; j++)
                    acc[j] += (double)g[j];
            } else {
                for (ptrdiff_t j = 0; j < m; j++)
                    acc[j] += (double)g[j];
            }
        }
        for (ptrdiff_t j = 0; j < m; j++)
            db[j0 + j] += (REAL)acc[j];
    }
}

static ptrdiff_t FN(panel_width)(void) { return NR; }

#undef NR

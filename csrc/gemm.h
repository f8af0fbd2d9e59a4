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
 * of MR_MC rows, then a micro-kernel computing a tile of up to MR_MR rows x NR columns in
 * registers, or, for products of 1 to 3 rows, of fewer rows but 2 to 4 panels (tile_shape).
 */

#define NR ((ptrdiff_t)(2 * VEC_BYTES / sizeof(REAL)))  /* columns of a panel: two vectors */

/* The register tile: mr rows x np panels (np*NR columns, 2*np vectors), both constants after
   inlining, so the mr*2*np accumulators live in registers.
   C[r, j] = base[r, j] + sum_k A(r, k) B(k, j); only the first nr columns are stored.
   The np panels of the tile are pstride elements apart in Bp. */
static inline __attribute__((always_inline)) void FN(mr_microkernel)(
    const int mr, const int np, ptrdiff_t kc, const REAL *A, ptrdiff_t rsa, ptrdiff_t csa,
    const REAL *Bp, ptrdiff_t pstride, REAL *C, ptrdiff_t ldc, ptrdiff_t nr, int load_c,
    const REAL *bias)
{
    typedef REAL vec __attribute__((vector_size(VEC_BYTES)));
    enum { V = VEC_BYTES / sizeof(REAL) };            /* lanes; a panel is two vectors */
    vec acc[MR_MR][8];                                /* [r][v]: columns [v*V, (v+1)*V) */
    _Pragma("GCC unroll 8") for (int r = 0; r < mr; r++)
        _Pragma("GCC unroll 8") for (int v = 0; v < 2 * np; v++)
            acc[r][v] = (vec){0};
    for (ptrdiff_t k = 0; k < kc; k++) {
        vec b[8];                                     /* row k of the np panels */
        _Pragma("GCC unroll 8") for (int v = 0; v < 2 * np; v++)
            memcpy(&b[v], Bp + (v / 2) * pstride + k * NR + (v % 2) * V, sizeof b[v]);
        _Pragma("GCC unroll 8") for (int r = 0; r < mr; r++) {
            const REAL a = A[r * rsa + k * csa];
            _Pragma("GCC unroll 8") for (int v = 0; v < 2 * np; v++)
                acc[r][v] += a * b[v];
        }
    }
    _Pragma("GCC unroll 8") for (int r = 0; r < mr; r++) {
        REAL *c = C + r * ldc;
        if (nr == np * NR) {                          /* whole panels: vector stores */
            _Pragma("GCC unroll 8") for (int v = 0; v < 2 * np; v++) {
                vec base = (vec){0};
                if (load_c)
                    memcpy(&base, c + v * V, sizeof base);
                else if (bias)
                    memcpy(&base, bias + v * V, sizeof base);
                base += acc[r][v];
                memcpy(c + v * V, &base, sizeof base);
            }
        } else {                                      /* the last, partial panel */
            REAL tile[8 * V] = {0};
            _Pragma("GCC unroll 8") for (int v = 0; v < 2 * np; v++)
                memcpy(&tile[v * V], &acc[r][v], sizeof acc[r][v]);
            for (ptrdiff_t j = 0; j < nr; j++)
                c[j] = (load_c ? c[j] : (bias ? bias[j] : (REAL)0)) + tile[j];
        }
    }
}

/* The tile shape for a product of M rows: TR rows x TP panels. Measured on AMD Zen 4 (one
 * core, float32 AVX2; peak of its two FMA units 117 GFLOP/s, latency 4 cycles, so 8
 * independent accumulators are the bare minimum and 12 leave slack for the loads; with 16
 * the 16 vector registers overflow, spill, and 8 x 16 ran at 65 GFLOP/s):
 *  - M >= 9: 6 rows x 1 panel (12 accumulators; per k 2 loads of B + 6 broadcasts of A for
 *    12 FMAs). 64 x 1024 x 256: 104 -> 111 GFLOP/s (95% of peak) against 4 x 1 before.
 *  - a few rows (the per-step products of small batches): more panels instead, so that the
 *    tile still has 8 to 12 independent sums: 1 x 4, 2 x 3, 3 x 2, and 4, 5 or 6 rows x 1.
 *    1 x 512 x 128: 29 -> 50 GFLOP/s; 2 rows: 50 -> 62; 5: 67 -> 105; 6: 75 -> 110.
 *  - M = 7 or 8: two tiles of 4 (6 + 1 or 6 + 2 would leave a slow thin tile).
 *  - AVX-512 (32 registers): tiles of 4 to 6 rows take 2 panels (up to 24 accumulators; per
 *    k 4 loads of B + 6 broadcasts for 24 FMAs). Whole models, large (products of 32 and
 *    6400 rows), one thread, against 1 panel: float64 LSTM inference 1.12-1.19 -> 1.07 s,
 *    GRU 826 -> 792 ms, float32 LSTM training +3 %; small, medium, long within the noise.
 * Remainder tiles (rows < TR) use the same panels. Which tile computes a row never changes
 * its result: each element is still one sum over k in order. */
static inline void FN(tile_shape)(ptrdiff_t M, int *TR, int *TP)
{
    *TR = M <= MR_MR ? (int)M : M <= 8 ? 4 : MR_MR;
    *TP = *TR == 1 ? 4 : *TR == 2 ? 3 : *TR == 3 ? 2 : VEC_BYTES == 64 ? 2 : 1;
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
    int TR, TP;
    FN(tile_shape)(M, &TR, &TP);
    /* A read along its columns (csa != 1: A^T, the weight gradients dG^T X): the micro-kernel
       would touch a new cache line for every k. Copy each MR_MC x MR_KC block of A once into
       `ablock`, the TR rows of a tile interleaved, and read that instead (the same numbers,
       in the same order: the results do not change). It pays from about 96 columns of C on
       (measured, float32 AVX2, M = 1024, K = 6400: N = 256 64 -> 83 GFLOP/s, N = 128 64 -> 71,
       N = 64 63 -> 55); below, and without memory for it, A is read in place.
       (Copying A when csa == 1 too was measured: it costs more than it saves.) */
    REAL *ablock = NULL;
    if (csa != 1 && M > MR_MR && N >= 96)   /* + MR_MR rows: the last tile may be partial */
        ablock = (REAL *)malloc(sizeof(REAL) * (MR_MC + MR_MR) * MR_KC);
    for (ptrdiff_t pc = 0; pc < K; pc += MR_KC) {
        const ptrdiff_t kc = K - pc < MR_KC ? K - pc : MR_KC;
        const int load_c = accumulate || pc > 0;
        for (ptrdiff_t ic = 0; ic < M; ic += MR_MC) {
            const ptrdiff_t i_end = M - ic < MR_MC ? M : ic + MR_MC;
            if (ablock) {   /* the tile at row i: ablock[(i - ic)*kc + k*TR + r] = A(i + r, pc + k) */
                for (ptrdiff_t k = 0; k < kc; k++)     /* k outer: A^T is read row after row */
                    for (ptrdiff_t i = ic; i < i_end; i += TR) {
                        const ptrdiff_t rows = i_end - i < TR ? i_end - i : TR;
                        REAL *dst = ablock + (i - ic) * kc + k * TR;
                        const REAL *src = A + i * rsa + (pc + k) * csa;
                        if (rsa == 1 && rows == MR_MR)   /* dG^T's usual tile: a constant */
                            memcpy(dst, src, MR_MR * sizeof(REAL));     /* size, inlined */
                        else            /* (for rsa == 1 gcc makes this loop a call to libc's
                                           memmove: 8 % of a seed-size training step) */
                            for (ptrdiff_t r = 0; r < rows; r++)
                                dst[r] = src[r * rsa];
                    }
            }
            for (ptrdiff_t p = 0; p < panels; p += TP) {
                const int np = panels - p < TP ? (int)(panels - p) : TP;
                const REAL *b = Bp + (p * K + pc) * NR;
                const ptrdiff_t nr = N - p * NR < np * NR ? N - p * NR : np * NR;
                const REAL *bias_p = bias ? bias + p * NR : NULL;
                for (ptrdiff_t i = ic; i < i_end; i += TR) {
                    const REAL *a = ablock ? ablock + (i - ic) * kc : A + i * rsa + pc * csa;
                    const ptrdiff_t ars = ablock ? 1 : rsa, acs = ablock ? TR : csa;
                    REAL *c = C + i * ldc + p * NR;
                    const int rows = i_end - i < TR ? (int)(i_end - i) : TR;
                    /* constant shapes, so each call is specialised with the tile in registers;
                       only the shapes tile_shape can produce */
#define MR_TILE(mr, np) FN(mr_microkernel)(mr, np, kc, a, ars, acs, b, K * NR, c, ldc, nr, \
                                           load_c, bias_p)
                    switch (rows * 8 + np) {
                    case 1 * 8 + 4: MR_TILE(1, 4); break;
                    case 1 * 8 + 3: MR_TILE(1, 3); break;
                    case 1 * 8 + 2: MR_TILE(1, 2); break;
                    case 2 * 8 + 3: MR_TILE(2, 3); break;
                    case 2 * 8 + 2: MR_TILE(2, 2); break;
                    case 3 * 8 + 2: MR_TILE(3, 2); break;
#if VEC_BYTES == 64
                    case 6 * 8 + 2: MR_TILE(6, 2); break;
                    case 5 * 8 + 2: MR_TILE(5, 2); break;
                    case 4 * 8 + 2: MR_TILE(4, 2); break;
#endif
                    case 6 * 8 + 1: MR_TILE(6, 1); break;
                    case 5 * 8 + 1: MR_TILE(5, 1); break;
                    case 4 * 8 + 1: MR_TILE(4, 1); break;
                    case 3 * 8 + 1: MR_TILE(3, 1); break;
                    case 2 * 8 + 1: MR_TILE(2, 1); break;
                    default:        MR_TILE(1, 1); break;
                    }
#undef MR_TILE
                }
            }
        }
    }
    free(ablock);
}

/* The lanes of a vector, and the masks that interleave the low and the high halves of two
 * vectors a, b: zip_lo = a0 b0 a1 b1 ..., zip_hi = the same from the middle lane on. */
#define MR_LANES (VEC_BYTES / (MR_REAL_IS_FLOAT ? 4 : 8))
#if MR_LANES == 16
#define MR_ZIP_LO {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23}
#define MR_ZIP_HI {8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31}
#elif MR_LANES == 8
#define MR_ZIP_LO {0, 8, 1, 9, 2, 10, 3, 11}
#define MR_ZIP_HI {4, 12, 5, 13, 6, 14, 7, 15}
#elif MR_LANES == 4
#define MR_ZIP_LO {0, 4, 1, 5}
#define MR_ZIP_HI {2, 6, 3, 7}
#else
#define MR_ZIP_LO {0, 2}
#define MR_ZIP_HI {1, 3}
#endif

/* Transpose MR_LANES x MR_LANES elements in registers: dst row k (MR_LANES elements, at
 * dst + k*ldd) = column k of the MR_LANES rows src + j*lds. log2(lanes) rounds of pairing row
 * j with row j + lanes/2 and interleaving them give the transpose (a perfect shuffle). */
static inline __attribute__((always_inline)) void FN(mr_transpose_block)(
    const REAL *src, ptrdiff_t lds, REAL *dst, ptrdiff_t ldd)
{
#if MR_REAL_IS_FLOAT
    typedef int32_t ivec __attribute__((vector_size(VEC_BYTES)));
#else
    typedef int64_t ivec __attribute__((vector_size(VEC_BYTES)));
#endif
    typedef REAL vec __attribute__((vector_size(VEC_BYTES)));
    const ivec lo = MR_ZIP_LO, hi = MR_ZIP_HI;
    vec r[MR_LANES], t[MR_LANES];
    _Pragma("GCC unroll 16") for (int j = 0; j < MR_LANES; j++)
        memcpy(&r[j], src + j * lds, sizeof r[j]);
    _Pragma("GCC unroll 4") for (int round = 1; round < MR_LANES; round *= 2) {
        _Pragma("GCC unroll 8") for (int j = 0; j < MR_LANES / 2; j++) {
            t[2 * j] = __builtin_shuffle(r[j], r[j + MR_LANES / 2], lo);
            t[2 * j + 1] = __builtin_shuffle(r[j], r[j + MR_LANES / 2], hi);
        }
        _Pragma("GCC unroll 16") for (int j = 0; j < MR_LANES; j++)
            r[j] = t[j];
    }
    _Pragma("GCC unroll 16") for (int k = 0; k < MR_LANES; k++)
        memcpy(dst + k * ldd, &r[k], sizeof r[k]);
}

/* Pack rows k0 <= k < k1 of panels p0 <= p < p1 of the K x N matrix B into Bp.
 * IN  B: element (k, n) at B[(k - k0)*rsb + n*csb] (B points at row k0);
 * OUT Bp: panel p at Bp + p*K*NR, element (k, j) at [k*NR + j], zero where p*NR + j >= N.
 * Packing row ranges separately lets a caller assemble B from two sources (h0, then outputs).
 * Two layouts are common and have their own loops (the same values land in the same places):
 * rows of B contiguous (csb = 1: activations, the backward's weights), copied row by row; and
 * B = W^T for a row-major W (rsb = 1: the forward's weights), transposed in register blocks
 * of MR_LANES x MR_LANES (measured on a 128 x 32 W_hh, float32: 4x faster than element by
 * element, which was half of a one-step call). */
static void FN(pack_panels)(ptrdiff_t K, ptrdiff_t N, const REAL *B, ptrdiff_t rsb,
                            ptrdiff_t csb, REAL *Bp, ptrdiff_t k0, ptrdiff_t k1,
                            ptrdiff_t p0, ptrdiff_t p1)
{
    for (ptrdiff_t p = p0; p < p1; p++) {
        const ptrdiff_t nr = N - p * NR < NR ? N - p * NR : NR;
        const REAL *src0 = B + p * NR * csb;
        REAL *dst0 = Bp + p * K * NR;
        ptrdiff_t k = k0;
        if (rsb == 1 && nr == NR)     /* whole blocks of W^T: columns of B are rows of W */
            for (; k + MR_LANES <= k1; k += MR_LANES)
                for (ptrdiff_t j = 0; j < NR; j += MR_LANES)
                    FN(mr_transpose_block)(src0 + (k - k0) + j * csb, csb, dst0 + k * NR + j, NR);
        for (; k < k1; k++) {
            REAL *dst = dst0 + k * NR;
            const REAL *src = src0 + (k - k0) * rsb;
            if (csb == 1 && nr == NR) {
                memcpy(dst, src, NR * sizeof(REAL));    /* a constant size: inlined, no call */
            } else if (csb == 1) {
                memcpy(dst, src, (size_t)nr * sizeof(REAL));
            } else {
                for (ptrdiff_t j = 0; j < nr; j++)
                    dst[j] = src[j * csb];
            }
            for (ptrdiff_t j = nr; j < NR; j++)
                dst[j] = 0;
        }
    }
}

#undef MR_ZIP_LO
#undef MR_ZIP_HI
#undef MR_LANES

/* db[j] += sum over rows r < R of G[r*ldg + j], for j < n: the bias gradients (sums of the
 * gate gradients over every step and batch row); db2[j] += the same sum too, unless db2 is
 * NULL (b_ih and b_hh have the same gradient wherever dG_x and dG_h are equal: summed once).
 * Summed in double, rows in order, whatever the dtype: float32 sums over ~10^5 rows lose
 * digits otherwise. Columns in blocks of 64 (the accumulators stay in registers). */
static void FN(column_sums)(ptrdiff_t R, ptrdiff_t n, const REAL *G, ptrdiff_t ldg, REAL *db,
                            REAL *db2)
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
        if (db2)
            for (ptrdiff_t j = 0; j < m; j++)
                db2[j0 + j] += (REAL)acc[j];
    }
}

static ptrdiff_t FN(panel_width)(void) { return NR; }

#undef NR

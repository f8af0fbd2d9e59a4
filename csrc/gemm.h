/* csrc/gemm.h -- the one matrix product all kernels use (template; see isa.h).
 *
 *     C (M, N)  =  [C or bias or 0]  +  A (M, K) @ B (K, N)
 *
 * B is always *packed* first (pack_panels): cut into column panels of NR columns, each stored
 * k-major and zero-padded, so the inner loop reads B contiguously. The weights are packed once
 * per call (W_hh then serves every time step).
 * A is read in place, row by row (rows lda apart). A product whose A is a transpose, read down
 * its columns, would touch a new cache line for every k: the weight gradients, dG^T X, are
 * computed as X^T dG instead (weight_grad, below).
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
#define MR_NP 6                                /* the most panels of a register tile */

/* The register tile: mr rows x np panels (np*NR columns, 2*np vectors), both constants after
   inlining, so the mr*2*np accumulators live in registers.
   C[r, j] = base[r, j] + sum_k A(r, k) B(k, j); only the first nr columns are stored.
   A(r, k) is A[r*rsa + k*csa]: rows of A in place (rsa = lda, csa = 1: gemm) or a register
   tile packed k-major (rsa = 1, csa = the tile's rows: weight_grad). The np panels of the
   tile are pstride elements apart in Bp. */
static inline __attribute__((always_inline)) void FN(mr_microkernel)(
    const int mr, const int np, ptrdiff_t kc, const REAL *A, ptrdiff_t rsa, ptrdiff_t csa,
    const REAL *Bp, ptrdiff_t pstride, REAL *C, ptrdiff_t ldc, ptrdiff_t nr, int load_c,
    const REAL *bias)
{
    typedef REAL vec __attribute__((vector_size(VEC_BYTES)));
    enum { V = VEC_BYTES / sizeof(REAL) };            /* lanes; a panel is two vectors */
    vec acc[MR_MR][2 * MR_NP];                        /* [r][v]: columns [v*V, (v+1)*V) */
    _Pragma("GCC unroll 8") for (int r = 0; r < mr; r++)
        _Pragma("GCC unroll 12") for (int v = 0; v < 2 * np; v++)
            acc[r][v] = (vec){0};
    for (ptrdiff_t k = 0; k < kc; k++) {
        vec b[2 * MR_NP];                             /* row k of the np panels */
        _Pragma("GCC unroll 12") for (int v = 0; v < 2 * np; v++)
            memcpy(&b[v], Bp + (v / 2) * pstride + k * NR + (v % 2) * V, sizeof b[v]);
        _Pragma("GCC unroll 8") for (int r = 0; r < mr; r++) {
            const REAL a = A[r * rsa + k * csa];
            _Pragma("GCC unroll 12") for (int v = 0; v < 2 * np; v++)
                acc[r][v] += a * b[v];
        }
    }
    _Pragma("GCC unroll 8") for (int r = 0; r < mr; r++) {
        REAL *c = C + r * ldc;
        if (nr == np * NR) {                          /* whole panels: vector stores */
            _Pragma("GCC unroll 12") for (int v = 0; v < 2 * np; v++) {
                vec base = (vec){0};
                if (load_c)
                    memcpy(&base, c + v * V, sizeof base);
                else if (bias)
                    memcpy(&base, bias + v * V, sizeof base);
                base += acc[r][v];
                memcpy(c + v * V, &base, sizeof base);
            }
        } else {                                      /* the last, partial panel */
            REAL tile[2 * MR_NP * V] = {0};
            _Pragma("GCC unroll 12") for (int v = 0; v < 2 * np; v++)
                memcpy(&tile[v * V], &acc[r][v], sizeof acc[r][v]);
            for (ptrdiff_t j = 0; j < nr; j++)
                c[j] = (load_c ? c[j] : (bias ? bias[j] : (REAL)0)) + tile[j];
        }
    }
}

/* The tile shape for a product of M rows: TR rows x TP panels (TP <= MR_NP). Measured on AMD Zen 4 (one
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
 *  - The few-row products (1 to 4 rows: the per-step products of batch 1 to 4, which stream
 *    W_hh once per step) with AVX-512: wider tiles, 1 x 6, 2 x 4, 3 x 3, 4 x 3 panels (12 to 24
 *    accumulators). Per FMA they load no more of B (that is fixed by the rows), but the tile
 *    has more independent sums and each broadcast of A serves more FMAs. On Zen 4 a product of
 *    1 row is bound by the bandwidth of the cache W_hh lives in (2 flops per 4 bytes of B),
 *    one of 3 or more rows by the FMA peak (2 FMA units of 256 bits: 117 GFLOP/s float32),
 *    2 rows by both. Measured (one core, float32, AMD EPYC Zen 4 under load ~9; % of a plain
 *    read of the same packed B in the same run, GFLOP/s), 1x4/2x3/3x2/4x2 -> 1x6/2x4/3x3/4x3:
 *      N=512 K=128 (B 256 KiB, L2):  1 row 96 -> 96 %, 2 rows 81 -> 85 %,
 *                                    3 rows 88 -> 92 GFLOP/s, 4 rows 113 -> 113 GFLOP/s;
 *      N=2048 K=512 (B 4 MiB, L3):   1 row 91 -> 97 %, 2 rows 80 -> 84 %,
 *                                    3 rows 77 -> 94 GFLOP/s, 4 rows 110 -> 112 GFLOP/s.
 *    (bench/gemm_rows.c; docs/performance.md, "Few-row products").
 * Remainder tiles (rows < TR) use the same panels; after whole tiles of 6, gemm leaves none
 * of fewer than 3 rows (next_tile_rows). Which tile computes a row never changes its result:
 * each element is still one sum over k in order. */
static inline void FN(tile_shape)(ptrdiff_t M, int *TR, int *TP)
{
    *TR = M <= MR_MR ? (int)M : M <= 8 ? 4 : MR_MR;
#if VEC_BYTES == 64
    *TP = *TR == 1 ? 6 : *TR == 2 ? 4 : *TR <= 4 ? 3 : 2;
#else
    *TP = *TR == 1 ? 4 : *TR == 2 ? 3 : *TR == 3 ? 2 : 1;
#endif
}

/* The rows of gemm's next register tile, when `left` rows are left and whole tiles have TR.
 * A last tile of 1 to 3 rows after whole tiles of 6 is slow (it takes the whole tiles' panels:
 * fewer independent sums, more loads per FMA), so the last 7 to 9 rows go in a tile of 4 and
 * one of 3 to 5 instead. Measured, one core, products of M rows (N = 1024, K = 256, B in L2),
 * AVX-512 | AVX2, % of the FMA peak: M = 9 85 -> 93 | 83 -> 86; 14 89 -> 93 | 82 -> 90;
 * 15 88 -> 93 | 87 -> 90; 32 (the slices of medium and large) 91-92 -> 93-95 | 89 -> 88-92. */
static inline ptrdiff_t FN(next_tile_rows)(ptrdiff_t left, int TR)
{
    if (left <= TR)
        return left;
    return left - TR < 4 ? 4 : TR;
}

/* One register tile, rows x np panels (the shapes tile_shape can produce): the micro-kernel
 * with constant shapes, so each call is specialised with the tile in registers. */
static inline void FN(tile_call)(int rows, int np, ptrdiff_t kc, const REAL *a, ptrdiff_t ars,
                                 ptrdiff_t acs, const REAL *b, ptrdiff_t pstride, REAL *c,
                                 ptrdiff_t ldc, ptrdiff_t nr, int load_c, const REAL *bias)
{
#define MR_TILE(mr, np) FN(mr_microkernel)(mr, np, kc, a, ars, acs, b, pstride, c, ldc, nr, \
                                           load_c, bias)
    /* every (rows, np) with np <= the TP of tile_shape(rows) (a last group of panels may be
       narrower), and np <= the TP of TR for the remainder tiles gemm cuts */
    switch (rows * 8 + np) {
#if VEC_BYTES == 64
    case 1 * 8 + 6: MR_TILE(1, 6); break;
    case 1 * 8 + 5: MR_TILE(1, 5); break;
    case 2 * 8 + 4: MR_TILE(2, 4); break;
    case 3 * 8 + 3: MR_TILE(3, 3); break;
    case 4 * 8 + 3: MR_TILE(4, 3); break;
    case 4 * 8 + 2: MR_TILE(4, 2); break;
    case 5 * 8 + 2: MR_TILE(5, 2); break;
    case 6 * 8 + 2: MR_TILE(6, 2); break;
#endif
    case 1 * 8 + 4: MR_TILE(1, 4); break;
    case 1 * 8 + 3: MR_TILE(1, 3); break;
    case 1 * 8 + 2: MR_TILE(1, 2); break;
    case 2 * 8 + 3: MR_TILE(2, 3); break;
    case 2 * 8 + 2: MR_TILE(2, 2); break;
    case 3 * 8 + 2: MR_TILE(3, 2); break;
    case 6 * 8 + 1: MR_TILE(6, 1); break;
    case 5 * 8 + 1: MR_TILE(5, 1); break;
    case 4 * 8 + 1: MR_TILE(4, 1); break;
    case 3 * 8 + 1: MR_TILE(3, 1); break;
    case 2 * 8 + 1: MR_TILE(2, 1); break;
    case 1 * 8 + 1: MR_TILE(1, 1); break;
    default:        /* a shape tile_shape never makes: one row and one panel at a time (the same
                       sums; kept so that no shape can compute a wrong answer) */
        for (int r = 0; r < rows; r++)
            for (int p = 0; p < np; p++) {
                const ptrdiff_t nr_p = nr - p * NR < NR ? nr - p * NR : NR;
                if (nr_p > 0)
                    FN(mr_microkernel)(1, 1, kc, a + r * ars, ars, acs, b + p * pstride,
                                       pstride, c + r * ldc + p * NR, ldc, nr_p, load_c,
                                       bias ? bias + p * NR : NULL);
            }
        break;
    }
#undef MR_TILE
}

/* C (M, N) [ldc] = (accumulate ? C : bias or 0) + A (M, K) @ B, with B packed by pack_panels.
 * IN  A: row i at A + i*lda;  Bp: ceil(N/NR) panels of K x NR;
 *     bias: (N,) or NULL, used only when !accumulate.
 * OUT/ACC C: M x N, row stride ldc. */
static void FN(gemm)(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, const REAL *A, ptrdiff_t lda,
                     const REAL *Bp, REAL *C, ptrdiff_t ldc, int accumulate, const REAL *bias)
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
    for (ptrdiff_t pc = 0; pc < K; pc += MR_KC) {
        const ptrdiff_t kc = K - pc < MR_KC ? K - pc : MR_KC;
        const int load_c = accumulate || pc > 0;
        for (ptrdiff_t ic = 0; ic < M; ic += MR_MC) {
            const ptrdiff_t i_end = M - ic < MR_MC ? M : ic + MR_MC;
            for (ptrdiff_t p = 0; p < panels; p += TP) {
                const int np = panels - p < TP ? (int)(panels - p) : TP;
                const REAL *b = Bp + (p * K + pc) * NR;
                const ptrdiff_t nr = N - p * NR < np * NR ? N - p * NR : np * NR;
                const REAL *bias_p = bias ? bias + p * NR : NULL;
                for (ptrdiff_t i = ic, rows; i < i_end; i += rows) {
                    rows = FN(next_tile_rows)(i_end - i, TR);
                    FN(tile_call)((int)rows, np, kc, A + i * lda + pc, lda, 1, b, K * NR,
                                  C + i * ldc + p * NR, ldc, nr, load_c, bias_p);
                }
            }
        }
    }
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

/* dst[c*ldd + r] = src[r*lds + c] for r < rows, c < cols: whole blocks of MR_LANES x
 * MR_LANES in registers, the edges element by element. */
static void FN(transpose)(const REAL *src, ptrdiff_t lds, ptrdiff_t rows, ptrdiff_t cols,
                          REAL *dst, ptrdiff_t ldd)
{
    const ptrdiff_t R = rows / MR_LANES * MR_LANES, C = cols / MR_LANES * MR_LANES;
    for (ptrdiff_t r = 0; r < R; r += MR_LANES)
        for (ptrdiff_t c = 0; c < C; c += MR_LANES)
            FN(mr_transpose_block)(src + r * lds + c, lds, dst + c * ldd + r, ldd);
    for (ptrdiff_t r = 0; r < rows; r++)
        for (ptrdiff_t c = r < R ? C : 0; c < cols; c++)
            dst[c * ldd + r] = src[r * lds + c];
}

#undef MR_ZIP_LO
#undef MR_ZIP_HI
#undef MR_LANES

/* The weight gradients are products over every step and batch row (K = T*B, thousands):
 *     dW (GH, N) += dG^T (GH, K) X (K, N),   db (GH) += the column sums of dG,
 * where dG (the gate gradients) and X (the layer's input, or the previous states) are both
 * stored K-major. As gemm(dG^T, X) they needed a copy of dG^T into `ablock` tile by tile
 * (a few elements per tile and k), and read dG from memory once per product and once more for
 * the sums. weight_grad computes the transposed product instead, C = dW^T = X^T dG, a block
 * of at most MR_WG_COLS gate columns at a time: dG is the right operand, packed MR_KC rows at
 * a time into panels (each row of a panel is a whole cache line of dG), once for both
 * products and the sums; X^T is the left operand, packed once per call in register tiles
 * (pack_tiles). Measured on one core (float32, AVX-512 variant, packing included), dW_ih,
 * dW_hh and the bias sums of a long LSTM layer (GH = 512, I = 32, P = 128, K = 8000):
 * 20.5 -> 15.3 ms (64 -> 86 GFLOP/s), 13.8 ms (95) with the prefetch of the next block of
 * dG below; medium (GH = 1024, I = 128, P = 256, K = 6400): 68.8 -> 54.2 ms (73 -> 93).
 * Each element of dW is still the same sum in the same order as gemm(dG^T, X) computed it,
 * dW + the sum over the first MR_KC values of k + the sum over the next MR_KC + ..., and each
 * bias the same sum in double, k in order: the results are the same, bit for bit. */
#define MR_WG_COLS 64

/* The rows of a register tile for a product of M rows (see tile_shape). */
static ptrdiff_t FN(tile_rows)(ptrdiff_t M)
{
    int TR, TP;
    FN(tile_shape)(M, &TR, &TP);
    return TR;
}

/* Pack X (K, N) as the left operand X^T of weight_grad: tile t (TR = tile_rows(N)) holds the
 * columns t*TR <= n < (t+1)*TR of X, k-major: element (n, k) at Xt[t*TR*K + k*TR + n - t*TR]
 * (the places of columns past N are left alone and never read).
 * IN  X: rows k0 <= k < k1 of X, row k at X + (k - k0)*ldx.  OUT Xt: those rows of tiles
 * t0 <= t < t1. Packing row ranges separately lets the caller assemble X from two sources. */
static void FN(pack_tiles)(ptrdiff_t K, ptrdiff_t N, const REAL *X, ptrdiff_t ldx, REAL *Xt,
                           ptrdiff_t k0, ptrdiff_t k1, ptrdiff_t t0, ptrdiff_t t1)
{
    const ptrdiff_t TR = FN(tile_rows)(N);
    for (ptrdiff_t t = t0; t < t1; t++) {
        const ptrdiff_t cols = N - t * TR < TR ? N - t * TR : TR;
        REAL *dst = Xt + t * TR * K;
        const REAL *src = X + t * TR;
        for (ptrdiff_t k = k0; k < k1; k++) {
            if (cols == MR_MR)                          /* a constant size: inlined */
                memcpy(dst + k * TR, src + (k - k0) * ldx, MR_MR * sizeof(REAL));
            else
                for (ptrdiff_t r = 0; r < cols; r++)
                    dst[k * TR + r] = src[(k - k0) * ldx + r];
        }
    }
}

/* The elements of the work buffer weight_grad needs for products of N1 and N2 columns: a
 * block of dG (MR_KC rows of MR_WG_COLS columns in whole panels) and C^T (N1 + N2 rows). */
static ptrdiff_t FN(weight_grad_work)(ptrdiff_t N1, ptrdiff_t N2)
{
    const ptrdiff_t ldct = (MR_WG_COLS + NR - 1) / NR * NR;
    return ldct * (MR_KC + N1 + N2);
}

/* The tiles of a product of M rows, for weight_grad: whole tiles of TR rows x TP panels, then
 * the rows left (fewer than TR) in a tile of their own shape (2 rows take 3 panels where the
 * whole tiles take 1: twice the independent sums). Which tile computes an element never
 * changes it. */
typedef struct { ptrdiff_t M, full; int TR, TP, rest, rest_TP; } FN(wg_tiles_t);

static FN(wg_tiles_t) FN(wg_tiles)(ptrdiff_t M)
{
    FN(wg_tiles_t) t = {M, 0, 1, 1, 0, 1};
    if (M > 0) {
        int tr;
        FN(tile_shape)(M, &t.TR, &t.TP);
        t.full = M / t.TR * t.TR;
        t.rest = (int)(M - t.full);
        if (t.rest > 0)
            FN(tile_shape)(t.rest, &tr, &t.rest_TP);
    }
    return t;
}

/* weight_grad for nj <= MR_WG_COLS columns. */
static void FN(weight_grad_block)(ptrdiff_t K, ptrdiff_t nj, const REAL *dG, ptrdiff_t ldg,
                                  const ptrdiff_t *g_rows,
                                  const REAL *Xt1, ptrdiff_t N1, REAL *dW1, ptrdiff_t ldw1,
                                  const REAL *Xt2, ptrdiff_t N2, REAL *dW2, ptrdiff_t ldw2,
                                  REAL *db, REAL *db2, REAL *work)
{
    const ptrdiff_t npan = (nj + NR - 1) / NR;
    const ptrdiff_t ldct = (MR_WG_COLS + NR - 1) / NR * NR;     /* C^T's rows: whole panels */
    const int nx = Xt2 ? 2 : 1;
    const REAL *Xt[2] = {Xt1, Xt2};
    const ptrdiff_t Nx[2] = {N1, Xt2 ? N2 : 0};
    REAL *dW[2] = {dW1, dW2};
    const ptrdiff_t ldw[2] = {ldw1, ldw2};
    REAL *Bb = work;                                  /* the packed block of dG */
    REAL *Ct[2] = {work + ldct * MR_KC, work + ldct * (MR_KC + N1)};
    FN(wg_tiles_t) tl[2];
    ptrdiff_t n_calls = 0;                            /* tile calls per block of K */
    for (int x = 0; x < nx; x++) {
        tl[x] = FN(wg_tiles)(Nx[x]);
        n_calls += tl[x].full / tl[x].TR * ((npan + tl[x].TP - 1) / tl[x].TP)
                   + (tl[x].rest ? (npan + tl[x].rest_TP - 1) / tl[x].rest_TP : 0);
    }
    const ptrdiff_t row_bytes = nj * (ptrdiff_t)sizeof(REAL);    /* of dG, in a block */
    double acc[MR_WG_COLS];
    for (ptrdiff_t j = 0; j < nj; j++)
        acc[j] = 0.0;
    /* C^T starts as dW^T, so that each sum starts from dW, as in gemm */
    for (int x = 0; x < nx; x++)
        FN(transpose)(dW[x], ldw[x], nj, Nx[x], Ct[x], ldct);
    /* its columns past nj, up to the end of the last panel, are summed but never copied back:
       they start at zero (so does the packed block of dG there), so no stale value is used */
    if (nj < npan * NR)
        for (int x = 0; x < nx; x++)
            for (ptrdiff_t r = 0; r < Nx[x]; r++)
                memset(Ct[x] + r * ldct + nj, 0, (size_t)(npan * NR - nj) * sizeof(REAL));
    for (ptrdiff_t pc = 0; pc < K; pc += MR_KC) {
        const ptrdiff_t kc = K - pc < MR_KC ? K - pc : MR_KC;
        if (!g_rows)
            FN(pack_panels)(kc, nj, dG + pc * ldg, ldg, 1, Bb, 0, kc, 0, npan);
        else                              /* row k of the block is row g_rows[pc + k] of dG */
            for (ptrdiff_t k = 0; k < kc; k++)
                FN(pack_panels)(kc, nj, dG + g_rows[pc + k] * ldg, ldg, 1, Bb, k, k + 1, 0,
                                npan);
        if (db || db2)                    /* column j, rows in order, from the packed block */
            for (ptrdiff_t p = 0; p < npan; p++) {
                const ptrdiff_t m = nj - p * NR < NR ? nj - p * NR : NR;
                const REAL *bp = Bb + p * kc * NR;
                double *a = acc + p * NR;
                for (ptrdiff_t k = 0; k < kc; k++)
                    for (ptrdiff_t j = 0; j < m; j++)
                        a[j] += (double)bp[k * NR + j];
            }
        /* the next block of dG comes from memory: its rows are prefetched a few before each
           tile call, so that they arrive while this block is multiplied (long LSTM, one
           thread: 93 -> 101 GFLOP/s) */
        ptrdiff_t pf = pc + kc;
        const ptrdiff_t pf_end = K - pf < MR_KC ? K : pf + MR_KC;
        const ptrdiff_t pf_step = n_calls > 0 ? (pf_end - pf + n_calls - 1) / n_calls : 0;
        for (int x = 0; x < nx; x++) {
            const FN(wg_tiles_t) t = tl[x];
            for (ptrdiff_t i = 0; i < t.M; i += t.TR) {
                const int rows = i < t.full ? t.TR : t.rest;
                const int TP = i < t.full ? t.TP : t.rest_TP;
                for (ptrdiff_t p = 0; p < npan; p += TP) {
                    const int np = npan - p < TP ? (int)(npan - p) : TP;
                    for (ptrdiff_t e = pf + pf_step < pf_end ? pf + pf_step : pf_end; pf < e;
                         pf++) {
                        const char *row = (const char *)(dG + (g_rows ? g_rows[pf] : pf) * ldg);
                        for (ptrdiff_t b = 0; b < row_bytes; b += 64)
                            __builtin_prefetch(row + b, 0, 2);
                        __builtin_prefetch(row + row_bytes - 1, 0, 2);
                    }
                    FN(tile_call)(rows, np, kc, Xt[x] + i * K + pc * t.TR, 1, t.TR,
                                  Bb + p * kc * NR, kc * NR, Ct[x] + i * ldct + p * NR, ldct,
                                  np * NR, 1, NULL);
                }
            }
        }
    }
    for (int x = 0; x < nx; x++)
        FN(transpose)(Ct[x], ldct, Nx[x], nj, dW[x], ldw[x]);
    for (ptrdiff_t j = 0; j < nj; j++) {
        if (db)
            db[j] += (REAL)acc[j];
        if (db2)
            db2[j] += (REAL)acc[j];
    }
}

/* The weight gradients of the nj gate columns of dG:
 *     dW1[j, n] += sum_k dG[k, j] X1[k, n]     (j < nj, n < N1; the same for X2 and dW2)
 *     db[j] += sum_k dG[k, j], and db2[j] += the same sum (summed in double, k in order)
 * in blocks of MR_WG_COLS columns (a caller's unit of work is usually one such block).
 * IN  dG: K x nj, row k at dG + k*ldg, or, when g_rows is not NULL, at dG + g_rows[k]*ldg
 *     (the rows that take a step of a packed batch: the others are zero and left out);
 *     Xt1, Xt2: X1 (K, N1), X2 (K, N2) packed by pack_tiles (rows in the same order);
 *     Xt2 may be NULL (one product); db and db2 may be NULL (no sums, or one).
 * ACC dW1 (nj, N1), dW2 (nj, N2): rows contiguous; db, db2 (nj,).
 * SCRATCH work: weight_grad_work(N1, N2) elements (N2 = 0 without Xt2). */
static void FN(weight_grad)(ptrdiff_t K, ptrdiff_t nj, const REAL *dG, ptrdiff_t ldg,
                            const ptrdiff_t *g_rows, const REAL *Xt1, ptrdiff_t N1, REAL *dW1,
                            const REAL *Xt2, ptrdiff_t N2, REAL *dW2, REAL *db, REAL *db2,
                            REAL *work)
{
    for (ptrdiff_t j0 = 0; j0 < nj; j0 += MR_WG_COLS)
        FN(weight_grad_block)(K, nj - j0 < MR_WG_COLS ? nj - j0 : MR_WG_COLS, dG + j0, ldg,
                              g_rows, Xt1, N1, dW1 + j0 * N1, N1, Xt2, N2,
                              Xt2 ? dW2 + j0 * N2 : NULL, N2, db ? db + j0 : NULL,
                              db2 ? db2 + j0 : NULL, work);
}

static ptrdiff_t FN(panel_width)(void) { return NR; }

#undef MR_NP
#undef NR

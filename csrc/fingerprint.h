/* csrc/fingerprint.h -- a fingerprint of an array's bytes, to tell whether weights changed.
 *
 * The kernels keep each layer's packed weights (W_ih^T, W_hh^T, W_hr^T in panels) from one call
 * to the next, and use them again only while the weights they were packed from are unchanged.
 * Parameters are plain writable NumPy arrays (`m.weight_hh_l0[...] = 0` must work), so a write
 * leaves no trace: each call reads the weights once more and compares this fingerprint with the
 * one taken when they were packed. Reading is sequential and vectorises; packing is a strided
 * copy into panels, several times slower.
 *
 * Words w_0 .. w_{n-1} (8 bytes; the tail zero-padded) go round-robin to 8 lanes; lane j keeps
 *     s1_j = sum of its words            s2_j = sum of its running sums s1_j (position-weighted)
 * modulo 2^64, and the result mixes the 16 sums and n. Any change of one word changes s1 of
 * its lane, so it is always seen; changes of several words go unseen only if they cancel in
 * both sums of every lane at once (moving a value to another position changes s2).
 * Compiled once per instruction set (variant.h); the same numbers on every one.
 */

static void MR_CAT(mr_fingerprint, MR_SUFFIX)(const void *data, ptrdiff_t nbytes,
                                              uint64_t out[2])
{
#if defined(__GNUC__) || defined(__clang__)
    typedef uint64_t __attribute__((may_alias)) word;
#else
    typedef uint64_t word;
#endif
    const word *w = (const word *) data;
    ptrdiff_t n = nbytes / 8, i, j;
    uint64_t s1[8] = {0}, s2[8] = {0}, a = 0x9E3779B97F4A7C15ULL, b = (uint64_t) nbytes;
    for (i = 0; i + 8 <= n; i += 8)
        for (j = 0; j < 8; j++) {
            s1[j] += w[i + j];
            s2[j] += s1[j];
        }
    for (j = 0; i < n; i++, j++) {
        s1[j] += w[i];
        s2[j] += s1[j];
    }
    if (nbytes % 8) {
        uint64_t t = 0;
        memcpy(&t, (const char *) data + n * 8, (size_t) (nbytes % 8));
        s1[0] += t;
        s2[0] += s1[0];
    }
    for (j = 0; j < 8; j++) {
        a = (a ^ s1[j]) * 0x100000001B3ULL + (uint64_t) j;
        b = (b ^ s2[j]) * 0xC2B2AE3D27D4EB4FULL + (uint64_t) j;
    }
    out[0] = a;
    out[1] = b;
}

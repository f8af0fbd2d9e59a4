/* csrc/fingerprint.h -- a fingerprint of an array's bytes, to tell whether weights changed.
 *
 * The kernels keep each layer's packed weights (W_ih^T, W_hh^T, W_hr^T in panels) from one call
 * to the next, and use them again only while the weights they were packed from are unchanged.
 * Parameters are plain writable NumPy arrays (`m.weight_hh_l0[...] = 0` must work), so a write
 * leaves no trace: each call reads the weights once more and compares this fingerprint with the
 * one taken when they were packed. Reading is sequential and vectorises; packing is a strided
 * copy into panels, several times slower.
 *
 * Words w_0 .. w_{n-1} (8 bytes; the tail zero-padded) go round-robin to 32 lanes; lane j keeps
 *     s1_j = sum of its words            s2_j = sum of its running sums s1_j (position-weighted)
 * modulo 2^64, and the result mixes the 64 sums and the byte count. Any change of one word
 * changes s1 of its lane, so it is always seen; changes of several words go unseen only if they
 * cancel in both sums of every lane at once (moving a value to another position changes s2).
 * The 32 lanes are four vectors of 8 words, summed independently: the loop is as fast as
 * reading the bytes (measured on AMD Zen 4, one core, AVX-512: 512 KiB in L2 23.6 -> 62 GB/s,
 * plain reading 72 GB/s; 8 MiB in L3 25 -> 50 GB/s, reading 50), where the 8 lanes before
 * (one dependent chain of adds) ran at a third of it. At H = 128 the check had cost more than
 * the streaming call's product it guards.
 * Frozen weights (minirnn.freeze: arrays over an immutable `bytes` object) skip this read: the
 * kernels keep the weights tuple the panels were packed from and, given that very tuple again,
 * know its bytes cannot have changed (see "Pack once" in _kernel_parts/forward.pxi). The
 * fingerprint is still taken when they pack, so every pack holds one.
 * Compiled once per instruction set (variant.h); the same numbers on every one (the vectors
 * are the compiler's generic vectors of 64 bytes: two or four registers where they are narrower).
 */

static void MR_CAT(mr_fingerprint, MR_SUFFIX)(const void *data, ptrdiff_t nbytes,
                                              uint64_t out[2])
{
    typedef uint64_t lanes8 __attribute__((vector_size(64)));
    enum { ROUND = 4 * 64 };                          /* bytes per round: 4 vectors of 8 words */
    const char *p = (const char *) data;
    const ptrdiff_t rounds = nbytes / ROUND;
    lanes8 s1[4] = {{0}}, s2[4] = {{0}}, w;
    uint64_t tail[ROUND / 8] = {0}, a = 0x9E3779B97F4A7C15ULL, b = (uint64_t) nbytes;
    for (ptrdiff_t i = 0; i < rounds; i++)
        for (int g = 0; g < 4; g++) {
            memcpy(&w, p + i * ROUND + g * 64, sizeof w);
            s1[g] += w;
            s2[g] += s1[g];
        }
    if (nbytes % ROUND) {                             /* the rest, zero-padded to a round */
        memcpy(tail, p + rounds * ROUND, (size_t) (nbytes % ROUND));
        for (int g = 0; g < 4; g++) {
            memcpy(&w, tail + 8 * g, sizeof w);
            s1[g] += w;
            s2[g] += s1[g];
        }
    }
    for (int g = 0; g < 4; g++)
        for (int j = 0; j < 8; j++) {
            a = (a ^ s1[g][j]) * 0x100000001B3ULL + (uint64_t) (8 * g + j);
            b = (b ^ s2[g][j]) * 0xC2B2AE3D27D4EB4FULL + (uint64_t) (8 * g + j);
        }
    out[0] = a;
    out[1] = b;
}

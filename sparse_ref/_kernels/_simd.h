/* One row of SpMM for float64 and float32, with vectors as wide as the CPU has: AVX-512,
 * AVX2 or SSE2 (every x86-64), chosen once at run time from the CPU's features.
 *
 *     out[j] = ((0 + val[q0] * b[col[q0], j]) + val[q1] * b[col[q1], j]) + ...  for j0 <= j < j1
 *
 * Each vector lane is one output column j, and every lane adds the row's products in the
 * stored order q0 < q1 < ..., exactly as the scalar loop of the reference does: vectors run
 * ACROSS the independent columns, never along one column's sum. A multiply and an add are
 * never fused (no FMA: the target strings below do not enable it, and the build passes
 * -ffp-contract=off), so every ISA gives the same bits as the reference, on any thread
 * count. What the vectors buy: a block of up to 8 vectors of `out` stays in registers for
 * the whole row, instead of a load and a store of out[j] per stored entry.
 *
 * Blocks: 8 vectors of columns, then what is left in one pass: 1 to 7 whole vectors, or up
 * to 8 with the last one masked under AVX-512 (12 floats: one vector with 12 lanes on) or,
 * under AVX2 and SSE2, ending at the row's end and overlapping the one before it (12
 * floats under AVX2: columns 0-7 and 4-11). Only a block narrower than one vector goes to
 * the next narrower level, and below SSE2's 2 or 4 lanes to single columns. (What is left used to go block by block and then to the next narrower level,
 * a pass over the row's entries each: 96-byte rows, 24 floats, took about as long as
 * 192-byte ones; 1.26-1.57x faster now, bench_levers.py "row widths". Before
 * that, a row narrower than one vector, say 8 floats under AVX-512, ran column by column
 * with no prefetch at all: 1.2-1.5x slower, "narrow tails".)
 * While it does its first block, the kernel asks for the row of B of the entry
 * sr_prefetch_ahead places on (sr_prefetch_ahead_narrow for a row under 512 bytes,
 * sr_prefetch_ahead_tiny for one of 128 bytes or less: a short row asks for fewer lines,
 * so more rows can be on their way at once; 20 against 10 was measured 1.02-1.22x for
 * rows of 64 to 256 bytes, while 512 bytes and more were 2-11 % slower at 16-28; with
 * streaming stores, 40 against 20 was 0.99-1.13x for rows of 64 and 128 bytes on the
 * random matrices and 0.96-1.0x on the Laplacian, 0.84-0.99x for rows of 256 bytes):
 * every cache line its first sr_prefetch_bytes touch (one more than bytes / 64 when the
 * row does not start on a line). The CPU's own prefetcher
 * follows a long row once it has started; asking for every line of a 2 KiB row was
 * measured 1.2-1.7x slower, asking for only 256 bytes of a 512-byte row 10 % slower:
 * benchmarks/bench_levers.py. Both are tuning knobs (spmm._set_prefetch), never a change
 * of order.
 *
 * `stream`: a block whose place in `out` starts on a vector boundary is written with
 * non-temporal stores (no read of the line first, no room taken in the cache); spmm.pyx
 * says when it asks for them, and fences each thread's stores when its rows are done.
 * The values and their bits are the same either way.
 *
 * GCC or Clang elsewhere get the compiler's portable 16-byte vectors (SR_SIMD_BASELINE)
 * and cached stores; any other compiler gets single columns: the same bits, other speed.
 *
 * Also here: SDDMM's dot products (sr_dot_*, AVX-512 only), spmm_reduce's amax and
 * amin (sr_reduce_pick_*), and the ranks that put SpGEMM's and coalesce's short rows in
 * order without a sort (sr_key_ranks), each described where it is defined.
 */
#ifndef SPARSE_REF_SIMD_H
#define SPARSE_REF_SIMD_H

#include <stdint.h>
#include <string.h>

static int64_t sr_prefetch_ahead = 10;  /* entries */
static int64_t sr_prefetch_ahead_narrow = 20;  /* entries, for rows of B under 512 bytes */
static int64_t sr_prefetch_ahead_tiny = 40;  /* entries, for rows of B of 128 bytes or less */
static int64_t sr_prefetch_bytes = 512;
static int64_t sr_prefetch_from_line = 1;  /* 0: the old way, lines from the row's first byte */
static int64_t sr_prefetch_outer = 0;  /* rows of 64-511 bytes: 1 prefetcht2, 0 prefetcht0 */
static int64_t sr_prefetch_band = 4096;  /* ... except rows of A spanning fewer rows of B */
static int sr_cpu_is_amd(void);
static void sr_set_prefetch(int64_t ahead, int64_t nbytes, int64_t from_line, int64_t ahead_narrow,
                            int64_t ahead_tiny, int64_t outer, int64_t band) {
    sr_prefetch_outer = outer < 0 ? sr_cpu_is_amd() : outer != 0;
    sr_prefetch_band = band;
    sr_prefetch_ahead = ahead;
    sr_prefetch_ahead_tiny = ahead_tiny;
    sr_prefetch_bytes = nbytes;
    sr_prefetch_from_line = from_line;
    sr_prefetch_ahead_narrow = ahead_narrow;
}

enum { SR_SIMD_BASELINE = 0, SR_SIMD_AVX2 = 1, SR_SIMD_AVX512 = 2 };

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define SR_X86 1
#endif

/* 1 on an AMD CPU (prefetcht2 for narrow random rows: SR_PREFETCH_TO), else 0. */
static int sr_cpu_is_amd(void) {
#ifdef SR_X86
    __builtin_cpu_init();
    return __builtin_cpu_is("amd") ? 1 : 0;
#else
    return 0;
#endif
}
static int64_t sr_get_prefetch_outer(void) { return sr_prefetch_outer; }

/* 1: the rows of B that a block of row start..end of A asks for ahead, `reach` bytes of
 * each, are asked for with prefetcht2 (SR_PREFETCH_TO says when and why). */
/* 1 when row start..end of A (sorted columns) is a band: two or more entries whose
 * columns span fewer than `band` rows of B, whose rows its neighbours reached too (a
 * mesh's, a stencil's). SpMM's hint and SpGEMM's prefetch (spgemm.pyx) both ask. */
static inline int sr_band_row(const int64_t* col, int64_t start, int64_t end, int64_t band) {
    return end - start >= 2 && col[end - 1] - col[start] < band;
}

static inline int sr_outer_hint(int64_t reach, const int64_t* col, int64_t start, int64_t end) {
    return sr_prefetch_outer && 64 <= reach && reach < 512 && !sr_band_row(col, start, end, sr_prefetch_band);
}

/* SR_PREFETCH asks for a line into every level of cache (x86's prefetcht0); SR_PREFETCH_TO
 * with `outer` set asks with locality 1 (prefetcht2), for rows of B of 64 to 511 bytes
 * when sr_prefetch_outer is 1 (sr_outer_hint), except in a row of A of two or more
 * entries whose columns span fewer than sr_prefetch_band rows of B (a band, as a mesh's:
 * its rows of B are mostly in the cache already). Chosen at run time by the CPU's maker
 * (sr_cpu_is_amd), as measured (bench_levers.py "prefetch hint", kernel alone, B cached
 * and from memory):
 * - AMD EPYC (family 25, model 17; 1 MiB L2), 2026-12-02: prefetcht2 1.14-1.84x faster on
 *   the random matrices' rows of 64 to 256 bytes (whole sr.sparse.mm calls 0.97-1.76x);
 *   slower on 48-byte rows (0.61-0.89x), which keep prefetcht0, and on the Laplacian's
 *   rows (0.83-0.96x), hence the band rule (0.96-1.02x with it). So 1 on AMD.
 * - Intel Xeon (model 207; 2 MiB L2), 2026-12-02: prefetcht2 0.83-1.07x; and on another
 *   (model 167; 2 MiB L2, 105 MiB L3) the same evening, 0.81-1.05x (whole calls
 *   0.96-1.06x). So 0 on Intel (and on any other maker: untried).
 * One explanation, not measured here: a line asked for into L1 holds one of L1's few
 * miss buffers until it comes, and a random row from memory comes late; asked for into
 * L2 it waits in L2's. The values are the same either way: only where a line waits
 * changes. */
#if defined(__GNUC__) || defined(__clang__)
#define SR_PREFETCH(p) __builtin_prefetch(p)
#define SR_PREFETCH_TO(p, outer)                                                             \
    do {                                                                                     \
        if (outer) __builtin_prefetch(p, 0, 1);                                              \
        else __builtin_prefetch(p, 0, 3);                                                    \
    } while (0)
#else
#define SR_PREFETCH(p) ((void)0)
#define SR_PREFETCH_TO(p, outer) ((void)0)
#endif

/* In a row's first block (`first`), the row of B of the entry `ahead` places on: every line
 * the first `reach` bytes touch (a row that does not start on a line, as NumPy's big arrays
 * start 16 bytes into one, reaches one more); `lines` > 0: the row starts on a line and
 * has that many to ask for. Otherwise the same count for every entry, `span` = reach / 64
 * rounded up, from the row's first byte, and its last byte (maybe a line asked for twice):
 * no branch that depends on where the row starts. Counting the lines of each row instead
 * (one or two for a 48-byte row, as it lies) mispredicted about every other entry, and
 * each miss threw away the loads in flight: the general loop took 5-7x the time of the
 * fixed-width one with B in the cache, and from memory 48-byte rows took longer than
 * torch's (1.75-2.4x slower than now, with the one-pass rests; bench_levers.py
 * "row widths"). */
#define SR_ASK_AHEAD(T)                                                                      \
    if (first && q + ahead < nnz) {                                                          \
        const char* next = (const char*)(b + col[q + ahead] * n + j0);                       \
        if (lines > 0) {                                                                     \
            for (t = 0; t < lines; t++) SR_PREFETCH_TO(next + 64 * t, outer);                \
        } else {                                                                             \
            for (t = 0; t < span; t++) SR_PREFETCH_TO(next + 64 * t, outer);                 \
            if (sr_prefetch_from_line && span > 0) SR_PREFETCH_TO(next + reach - 1, outer);  \
        }                                                                                    \
    }

/* A block's prefetch: the first `reach` bytes of the row of B `ahead` entries on (40
 * entries for rows of 128 bytes or less, 20 under 512, 10 beyond), `span` lines of them. */
#define SR_REACH(T)                                                                          \
    int64_t reach = (j1 - j0) * (int64_t)sizeof(T);                                          \
    ahead = reach <= 128 ? sr_prefetch_ahead_tiny                                            \
            : reach < 512 ? sr_prefetch_ahead_narrow : sr_prefetch_ahead;                    \
    int outer = sr_outer_hint(reach, col, start, end);                                       \
    if (reach > sr_prefetch_bytes) reach = sr_prefetch_bytes;                                \
    span = (reach + 63) / 64

/* A row's block of NACC vectors of columns, starting at column j; returns the next column.
 * T: float or double; VT: a vector of them; L: lanes per vector. */
#define SR_BLOCK(NAME, T, VT, L, NACC, TARGET, STREAM)                                       \
    TARGET static inline __attribute__((always_inline)) int64_t NAME(                       \
        const int64_t* col, const T* val, int64_t start, int64_t end, int64_t nnz,           \
        const T* b, int64_t n, int64_t j, int64_t j0, int64_t j1, int first, T* out,         \
        int stream, int64_t lines) {                                                         \
        VT acc[NACC], x;                                                                     \
        int64_t q, t, ahead, span;                                                           \
        SR_REACH(T);                                                                         \
        for (t = 0; t < NACC; t++) acc[t] = (VT){0};                                         \
        for (q = start; q < end; q++) {                                                      \
            SR_ASK_AHEAD(T);                                                                 \
            for (t = 0; t < NACC; t++) {                                                     \
                memcpy(&x, b + col[q] * n + j + t * L, sizeof(VT)); /* unaligned load */      \
                acc[t] = acc[t] + val[q] * x; /* val[q] in every lane */                 \
            }                                                                                \
        }                                                                                    \
        if (stream && ((uintptr_t)(out + j) & (sizeof(VT) - 1)) == 0) {                      \
            for (t = 0; t < NACC; t++) STREAM(out + j + t * L, acc[t]);                       \
        } else {                                                                             \
            memcpy(out + j, acc, sizeof(acc));                                               \
        }                                                                                    \
        return j + NACC * L;                                                                 \
    }

/* A level's plain blocks of 1 to 8 vectors (SR_BLOCK). */
#define SR_PLAIN_BLOCKS(NAME, T, VT, L, TARGET, STREAM)                                      \
    SR_BLOCK(NAME##_8, T, VT, L, 8, TARGET, STREAM)                                          \
    SR_BLOCK(NAME##_7, T, VT, L, 7, TARGET, STREAM)                                          \
    SR_BLOCK(NAME##_6, T, VT, L, 6, TARGET, STREAM)                                          \
    SR_BLOCK(NAME##_5, T, VT, L, 5, TARGET, STREAM)                                          \
    SR_BLOCK(NAME##_4, T, VT, L, 4, TARGET, STREAM)                                          \
    SR_BLOCK(NAME##_3, T, VT, L, 3, TARGET, STREAM)                                          \
    SR_BLOCK(NAME##_2, T, VT, L, 2, TARGET, STREAM)                                          \
    SR_BLOCK(NAME##_1, T, VT, L, 1, TARGET, STREAM)

/* The head of a level's row function: blocks of 8 vectors, then a rest of 1 to 7 whole
 * vectors in one plain block; `rest` is left for the next `else` (a rest that is not a
 * whole number of vectors). */
#define SR_ROW_START(NAME, T, L, TARGET)                                                     \
    TARGET static void NAME(const int64_t* col, const T* val, int64_t start, int64_t end,    \
                            int64_t nnz, const T* b, int64_t n, int64_t j0, int64_t j1,      \
                            T* out, int stream, int first) {                                 \
        int64_t j = j0, rest;                                                                \
        while (j + 8 * L <= j1) j = NAME##_8(col, val, start, end, nnz, b, n, j, j0, j1, first && j == j0, out, stream, 0); \
        rest = j1 - j;                                                                       \
        first = first && j == j0;                                                            \
        if (rest % L == 0) switch (rest / L) {                                               \
            case 0: break;                                                                   \
            case 1: NAME##_1(col, val, start, end, nnz, b, n, j, j0, j1, first, out, stream, 0); break; \
            case 2: NAME##_2(col, val, start, end, nnz, b, n, j, j0, j1, first, out, stream, 0); break; \
            case 3: NAME##_3(col, val, start, end, nnz, b, n, j, j0, j1, first, out, stream, 0); break; \
            case 4: NAME##_4(col, val, start, end, nnz, b, n, j, j0, j1, first, out, stream, 0); break; \
            case 5: NAME##_5(col, val, start, end, nnz, b, n, j, j0, j1, first, out, stream, 0); break; \
            case 6: NAME##_6(col, val, start, end, nnz, b, n, j, j0, j1, first, out, stream, 0); break; \
            default: NAME##_7(col, val, start, end, nnz, b, n, j, j0, j1, first, out, stream, 0); break; \
        }

/* A rest that is not a whole number of vectors: the block PRE1 .. PRE8 (masked or
 * overlapping) of rest / L + 1 vectors. */
#define SR_REST(PRE, L)                                                                      \
    switch (rest / L + 1) {                                                                  \
        case 1: PRE##1(col, val, start, end, nnz, b, n, j, j0, j1, first, out); break;       \
        case 2: PRE##2(col, val, start, end, nnz, b, n, j, j0, j1, first, out); break;       \
        case 3: PRE##3(col, val, start, end, nnz, b, n, j, j0, j1, first, out); break;       \
        case 4: PRE##4(col, val, start, end, nnz, b, n, j, j0, j1, first, out); break;       \
        case 5: PRE##5(col, val, start, end, nnz, b, n, j, j0, j1, first, out); break;       \
        case 6: PRE##6(col, val, start, end, nnz, b, n, j, j0, j1, first, out); break;       \
        case 7: PRE##7(col, val, start, end, nnz, b, n, j, j0, j1, first, out); break;       \
        default: PRE##8(col, val, start, end, nnz, b, n, j, j0, j1, first, out); break;      \
    }

/* The last columns of a row, j <= j' < j1 (fewer than 8 vectors, not a whole number of
 * them), in one pass with NACC vectors, the last one masked: MASK(m) keeps its first m
 * lanes (1 <= m < L); MLOAD reads only those (a masked lane is never read, so never past
 * the end of B) and MSTORE writes only those. Each lane still adds its own column in the
 * stored order: the same bits as narrower vectors or single columns. AVX-512 only: its
 * masked loads never fault on a masked lane, on every CPU that has them; AMD's manual lets
 * AVX2's fault on a masked lane's page, so AVX2 and SSE2 take SR_BLOCK_OVERLAP. Such a
 * row is never whole lines, so never streamed (spmm.pyx).
 * The loop over entries has no branch: it asks for PF lines of the row ahead, at offsets
 * worked out once (every line of its first `reach` bytes, the last byte's line last; some
 * asked for twice when the row is narrower), and near the end of A for its own row. With
 * a branch in it (the prefetch of SR_BLOCK, or a streaming choice), GCC 12 kept the sums
 * of the whole vectors on the stack next to the masked load, a store and a load in every
 * entry's additions (2-3x the time per entry with B in the cache). The sums of the whole
 * vectors are one array copied out whole, the masked one's a variable of its own, for the
 * same reason. */
/* SR_BLOCK_MASKED's loop over the row's entries, asking for lines with locality HINT (a
 * copy for each, chosen before the loop: no branch in it). */
#define SR_MASKED_ENTRIES(HINT, T, VT, L, NACC, MLOAD)                                    \
    for (q = start; q < end; q++) {                                                          \
        const T* row = b + col[q] * n + j;                                                   \
        const char* next = (const char*)(b + col[q + ahead < nnz ? q + ahead : q] * n + j0); \
        for (t = 0; t < PF; t++) __builtin_prefetch(next + off[t], 0, HINT);                 \
        for (t = 0; t < NACC - 1; t++) {                                                     \
            memcpy(&x, row + t * L, sizeof(VT));                                             \
            acc[t] = acc[t] + val[q] * x;                                                    \
        }                                                                                    \
        x = MLOAD(row + (NACC - 1) * L, mask);                                               \
        last = last + val[q] * x;                                                            \
    }

#define SR_BLOCK_MASKED(NAME, T, VT, L, NACC, TARGET, MASK_T, MASK, MLOAD, MSTORE)           \
    TARGET static inline __attribute__((always_inline)) void NAME(                          \
        const int64_t* col, const T* val, int64_t start, int64_t end, int64_t nnz,           \
        const T* b, int64_t n, int64_t j, int64_t j0, int64_t j1, int first, T* out) {       \
        enum { PF = (NACC * (int)sizeof(VT) + 63) / 64 + 1 < 9 ? (NACC * (int)sizeof(VT) + 63) / 64 + 1 : 9 }; \
        VT acc[NACC > 1 ? NACC - 1 : 1], last = (VT){0}, x;                                  \
        int64_t q, t, ahead, span, off[PF], m = j1 - j - (NACC - 1) * L;                     \
        MASK_T mask = MASK(m);                                                               \
        SR_REACH(T);                                                                         \
        (void)span; /* (a fixed list of offsets instead) */                                  \
        for (t = 0; t < PF; t++) /* (from_line off: no last byte's line, as SR_ASK_AHEAD) */ \
            off[t] = (t < PF - 1 || !sr_prefetch_from_line) && 64 * t < reach ? 64 * t       \
                     : (reach > 0 ? reach - 1 : 0);                                          \
        if (!first || reach == 0) ahead = 0; /* not the row's first block, or no prefetch:   \
                                              * the entry's own row, on its way already */   \
        for (t = 0; t < NACC - 1; t++) acc[t] = (VT){0};                                     \
        if (outer) SR_MASKED_ENTRIES(1, T, VT, L, NACC, MLOAD)                               \
        else SR_MASKED_ENTRIES(3, T, VT, L, NACC, MLOAD)                                     \
        if (NACC > 1) memcpy(out + j, acc, sizeof(acc));                                     \
        MSTORE(out + j + (NACC - 1) * L, mask, last);                                        \
    }

/* SR_ROW with masked last vectors (AVX-512): blocks of 8 vectors, then what is left in
 * one pass: 1 to 7 whole vectors, or up to 8 with the last one masked. Any width. */
#define SR_ROW_MASKED(NAME, T, VT, L, TARGET, STREAM, MASK_T, MASK, MLOAD, MSTORE)          \
    SR_PLAIN_BLOCKS(NAME, T, VT, L, TARGET, STREAM)                                          \
    SR_BLOCK_MASKED(NAME##_m1, T, VT, L, 1, TARGET, MASK_T, MASK, MLOAD, MSTORE)             \
    SR_BLOCK_MASKED(NAME##_m2, T, VT, L, 2, TARGET, MASK_T, MASK, MLOAD, MSTORE)             \
    SR_BLOCK_MASKED(NAME##_m3, T, VT, L, 3, TARGET, MASK_T, MASK, MLOAD, MSTORE)             \
    SR_BLOCK_MASKED(NAME##_m4, T, VT, L, 4, TARGET, MASK_T, MASK, MLOAD, MSTORE)             \
    SR_BLOCK_MASKED(NAME##_m5, T, VT, L, 5, TARGET, MASK_T, MASK, MLOAD, MSTORE)             \
    SR_BLOCK_MASKED(NAME##_m6, T, VT, L, 6, TARGET, MASK_T, MASK, MLOAD, MSTORE)             \
    SR_BLOCK_MASKED(NAME##_m7, T, VT, L, 7, TARGET, MASK_T, MASK, MLOAD, MSTORE)             \
    SR_BLOCK_MASKED(NAME##_m8, T, VT, L, 8, TARGET, MASK_T, MASK, MLOAD, MSTORE)             \
    SR_ROW_START(NAME, T, L, TARGET)                                                         \
        else SR_REST(NAME##_m, L)                                                            \
    }

/* The last columns of a row, j <= j' < j1 (fewer than 8 vectors, not a whole number of
 * them), in one pass with NACC vectors: NACC - 1 from j on, and a last one that ends at
 * j1, overlapping the one before it (12 floats under AVX2: columns 0-7, then 4-11). A
 * column in two vectors is summed in both, in the same order with the same instructions,
 * so both give its bits, and the last store writes them again. Every load lies inside the
 * row and every store inside j0..j1 (the caller asks only when j1 - j0 is at least one
 * vector), so the end of B can be the end of a mapping. AVX2 and SSE2 (AVX-512 masks
 * its last vector instead: SR_BLOCK_MASKED, 1.05-1.35x faster at 48 to 96 bytes). */
#define SR_BLOCK_OVERLAP(NAME, T, VT, L, NACC, TARGET)                                       \
    TARGET static inline __attribute__((always_inline)) void NAME(                          \
        const int64_t* col, const T* val, int64_t start, int64_t end, int64_t nnz,           \
        const T* b, int64_t n, int64_t j, int64_t j0, int64_t j1, int first, T* out) {       \
        VT acc[NACC], x;                                                                     \
        int64_t q, t, ahead, span, lines = 0, jl = j1 - L; /* the last vector's column */    \
        SR_REACH(T);                                                                         \
        for (t = 0; t < NACC; t++) acc[t] = (VT){0};                                         \
        for (q = start; q < end; q++) {                                                      \
            SR_ASK_AHEAD(T);                                                                 \
            for (t = 0; t < NACC; t++) {                                                     \
                memcpy(&x, b + col[q] * n + (t < NACC - 1 ? j + t * L : jl), sizeof(VT));   \
                acc[t] = acc[t] + val[q] * x;                                                \
            }                                                                                \
        }                                                                                    \
        if (NACC > 1) memcpy(out + j, acc, (NACC - 1) * sizeof(VT));                         \
        memcpy(out + jl, &acc[NACC - 1], sizeof(VT));                                        \
    }

/* A row's columns j0 <= j < j1 at one level: blocks of 8 vectors, then what is left in one
 * pass, 1 to 7 whole vectors or up to 8 with the last one overlapping (SR_BLOCK_OVERLAP);
 * a block narrower than one vector goes to TAIL, the next narrower level (AVX-512 hands
 * over to AVX2, AVX2 to SSE2, SSE2 to single columns; CLEAN: vzeroupper before SSE2 code).
 * `first`: the row's first block asks for the rows of B ahead (a later one must not ask
 * again). */
#define SR_ROW(NAME, T, VT, L, TARGET, STREAM, TAIL, CLEAN)                                  \
    SR_PLAIN_BLOCKS(NAME, T, VT, L, TARGET, STREAM)                                          \
    SR_BLOCK_OVERLAP(NAME##_o1, T, VT, L, 1, TARGET)                                         \
    SR_BLOCK_OVERLAP(NAME##_o2, T, VT, L, 2, TARGET)                                         \
    SR_BLOCK_OVERLAP(NAME##_o3, T, VT, L, 3, TARGET)                                         \
    SR_BLOCK_OVERLAP(NAME##_o4, T, VT, L, 4, TARGET)                                         \
    SR_BLOCK_OVERLAP(NAME##_o5, T, VT, L, 5, TARGET)                                         \
    SR_BLOCK_OVERLAP(NAME##_o6, T, VT, L, 6, TARGET)                                         \
    SR_BLOCK_OVERLAP(NAME##_o7, T, VT, L, 7, TARGET)                                         \
    SR_BLOCK_OVERLAP(NAME##_o8, T, VT, L, 8, TARGET)                                         \
    SR_ROW_START(NAME, T, L, TARGET)                                                         \
        else if (j1 - j0 >= L) SR_REST(NAME##_o, L) /* 1 vector: after blocks of 8 */       \
        else {                                                                               \
            CLEAN; /* AVX2 before SSE2 code: clear the upper halves (vzeroupper) */          \
            TAIL(col, val, start, end, nnz, b, n, j, j1, out, stream, first);                \
        }                                                                                    \
    }

/* Rows lo <= i < hi of the product, row i's block j0 <= j < j1 to out + i * n (out is C-contiguous,
 * n columns). One call per block of rows, so the level is chosen once per block, not per row.
 * A whole row (j0 = 0, j1 = n) that is 1, 2, 4 or 8 vectors wide, in rows of B that start on
 * a cache line and are whole lines (at most sr_prefetch_bytes of them), runs a copy of the row
 * loop compiled for that width: the row's address is a shift, its lines a fixed list to ask
 * for, and no tail is left. The same additions in the same order: only fewer instructions
 * around them (k = 16 float32, rows of 64 bytes: the loop's own work was about half the time
 * of the whole product; bench_levers.py "fixed widths"). Rows of 16 or 32 bytes (4 or 8
 * floats, 2 or 4 doubles) take it too: with B on a line each lies inside one line, the one
 * line to ask for (they run at the level whose vectors they fill: sr_rows_level; 2.1x on
 * the uniform matrix at 8 floats, bench_levers.py "row widths"). Every other shape takes
 * SR_ROW per row. */
static int sr_fixed_vectors(const void* b, int64_t row_bytes, int64_t vector_bytes) {
    int64_t v = row_bytes / vector_bytes;
    if (((uintptr_t)b & 63) != 0 || row_bytes > sr_prefetch_bytes) return 0;
    if (row_bytes < 64)  /* rows of 16 or 32 bytes: with B on a line, each inside one line */
        return (row_bytes == 16 || row_bytes == 32) && row_bytes == v * vector_bytes ? (int)v : 0;
    if (row_bytes % 64 != 0) return 0;
    return row_bytes == v * vector_bytes && (v == 1 || v == 2 || v == 4 || v == 8) ? (int)v : 0;
}
#define SR_FIXED(ROW, NACC, T, L)                                                            \
    for (i = lo; i < hi; i++)                                                                \
        ROW##_##NACC(col, val, crow[i], crow[i + 1], nnz, b, NACC * L, 0, 0, NACC * L, 1,   \
                     out + i * (NACC * L), stream, (NACC * L * (int64_t)sizeof(T) + 63) / 64)
#define SR_ROWS(NAME, ROW, T, L, TARGET)                                                     \
    TARGET static void NAME(const int64_t* crow, const int64_t* col, const T* val,           \
                            int64_t nnz, const T* b, int64_t n, int64_t j0, int64_t j1,      \
                            T* out, int64_t lo, int64_t hi, int stream) {                    \
        int64_t i;                                                                           \
        int vectors = j0 == 0 && j1 == n ? sr_fixed_vectors(b, n * (int64_t)sizeof(T), L * (int64_t)sizeof(T)) : 0; \
        if (vectors == 1) SR_FIXED(ROW, 1, T, L);                                            \
        else if (vectors == 2) SR_FIXED(ROW, 2, T, L);                                       \
        else if (vectors == 4) SR_FIXED(ROW, 4, T, L);                                       \
        else if (vectors == 8) SR_FIXED(ROW, 8, T, L);                                       \
        else                                                                                 \
            for (i = lo; i < hi; i++)                                                        \
                ROW(col, val, crow[i], crow[i + 1], nnz, b, n, j0, j1, out + i * n, stream, 1); \
    }

/* Single columns, one after another: the last of every row's tails. */
#define SR_COLUMNS(NAME, T)                                                                  \
    static void NAME(const int64_t* col, const T* val, int64_t start, int64_t end,           \
                     int64_t nnz, const T* b, int64_t n, int64_t j0, int64_t j1, T* out,     \
                     int stream, int first) {                                                \
        int64_t j, q;                                                                        \
        (void)nnz; (void)stream; (void)first;                                                \
        for (j = j0; j < j1; j++) {                                                          \
            T s = 0;                                                                         \
            for (q = start; q < end; q++) s = s + val[q] * b[col[q] * n + j];                \
            out[j] = s;                                                                      \
        }                                                                                    \
    }
SR_COLUMNS(sr_columns_f64, double)
SR_COLUMNS(sr_columns_f32, float)

#if defined(__GNUC__) || defined(__clang__)
typedef double sr_d2 __attribute__((vector_size(16)));
typedef float sr_f4 __attribute__((vector_size(16)));
#ifdef SR_X86
#include <immintrin.h>
#define SR_STREAM_D2(p, v) _mm_stream_pd((p), (__m128d)(v))
#define SR_STREAM_F4(p, v) _mm_stream_ps((p), (__m128)(v))
#else
#define SR_STREAM_D2(p, v) memcpy((p), &(v), sizeof(v))
#define SR_STREAM_F4(p, v) memcpy((p), &(v), sizeof(v))
#endif
SR_ROW(sr_row_f64_base, double, sr_d2, 2, , SR_STREAM_D2, sr_columns_f64, (void)0)
SR_ROW(sr_row_f32_base, float, sr_f4, 4, , SR_STREAM_F4, sr_columns_f32, (void)0)
SR_ROWS(sr_rows_f64_base, sr_row_f64_base, double, 2, )
SR_ROWS(sr_rows_f32_base, sr_row_f32_base, float, 4, )
#else /* no vector extensions: one column at a time, the same order */
#define sr_row_f64_base sr_columns_f64
#define sr_row_f32_base sr_columns_f32
#define SR_ROWS_COLUMNS(NAME, COLUMNS, T)                                                    \
    static void NAME(const int64_t* crow, const int64_t* col, const T* val, int64_t nnz,     \
                     const T* b, int64_t n, int64_t j0, int64_t j1, T* out, int64_t lo,      \
                     int64_t hi, int stream) {                                               \
        int64_t i;                                                                           \
        for (i = lo; i < hi; i++)                                                            \
            COLUMNS(col, val, crow[i], crow[i + 1], nnz, b, n, j0, j1, out + i * n, stream, 1); \
    }
SR_ROWS_COLUMNS(sr_rows_f64_base, sr_columns_f64, double)
SR_ROWS_COLUMNS(sr_rows_f32_base, sr_columns_f32, float)
#endif

#ifdef SR_X86
typedef double sr_d4 __attribute__((vector_size(32)));
typedef float sr_f8 __attribute__((vector_size(32)));
typedef double sr_d8 __attribute__((vector_size(64)));
typedef float sr_f16 __attribute__((vector_size(64)));
#define SR_STREAM_D4(p, v) _mm256_stream_pd((p), (__m256d)(v))
#define SR_STREAM_F8(p, v) _mm256_stream_ps((p), (__m256)(v))
#define SR_STREAM_D8(p, v) _mm512_stream_pd((p), (__m512d)(v))
#define SR_STREAM_F16(p, v) _mm512_stream_ps((p), (__m512)(v))
SR_ROW(sr_row_f64_avx2, double, sr_d4, 4, __attribute__((target("avx2"))), SR_STREAM_D4, sr_row_f64_base, _mm256_zeroupper())
SR_ROW(sr_row_f32_avx2, float, sr_f8, 8, __attribute__((target("avx2"))), SR_STREAM_F8, sr_row_f32_base, _mm256_zeroupper())
#define SR_MASK_D8(m) ((__mmask8)((1u << (m)) - 1u))
#define SR_MASK_F16(m) ((__mmask16)((1u << (m)) - 1u))
#define SR_MLOAD_D8(p, k) ((sr_d8)_mm512_maskz_loadu_pd((k), (p)))
#define SR_MLOAD_F16(p, k) ((sr_f16)_mm512_maskz_loadu_ps((k), (p)))
#define SR_MSTORE_D8(p, k, v) _mm512_mask_storeu_pd((p), (k), (__m512d)(v))
#define SR_MSTORE_F16(p, k, v) _mm512_mask_storeu_ps((p), (k), (__m512)(v))
SR_ROW_MASKED(sr_row_f64_avx512, double, sr_d8, 8, __attribute__((target("avx512f"))), SR_STREAM_D8, __mmask8,
              SR_MASK_D8, SR_MLOAD_D8, SR_MSTORE_D8)
SR_ROW_MASKED(sr_row_f32_avx512, float, sr_f16, 16, __attribute__((target("avx512f"))), SR_STREAM_F16, __mmask16,
              SR_MASK_F16, SR_MLOAD_F16, SR_MSTORE_F16)
SR_ROWS(sr_rows_f64_avx2, sr_row_f64_avx2, double, 4, __attribute__((target("avx2"))))
SR_ROWS(sr_rows_f32_avx2, sr_row_f32_avx2, float, 8, __attribute__((target("avx2"))))
SR_ROWS(sr_rows_f64_avx512, sr_row_f64_avx512, double, 8, __attribute__((target("avx512f"))))
SR_ROWS(sr_rows_f32_avx512, sr_row_f32_avx512, float, 16, __attribute__((target("avx512f"))))
static inline void sr_store_fence(void) { _mm_sfence(); }
/* One value of 8 or 4 bytes written straight to memory (SpGEMM's output: spgemm.pyx). */
#define SR_CAN_STREAM 1
static inline void sr_stream_8(void* p, const void* v) { long long x; memcpy(&x, v, 8); _mm_stream_si64((long long*)p, x); }
static inline void sr_stream_4(void* p, const void* v) { int x; memcpy(&x, v, 4); _mm_stream_si32((int*)p, x); }
/* memcpy of n bytes whose target goes straight to memory: the bytes before the target's
 * first 16-byte boundary and after its last one by memcpy, the lines between in 16-byte
 * streaming stores (SSE2, every x86-64), so the target's lines are not read first (the
 * one pass of SpGEMM copying a chunk from its thread's buffer: spgemm.pyx). */
static inline void sr_stream_copy(void* dst, const void* src, size_t n) {
    char* d = (char*)dst;
    const char* s = (const char*)src;
    size_t head = (16 - (uintptr_t)d % 16) % 16, i;
    if (n < head + 64) { memcpy(d, s, n); return; }
    memcpy(d, s, head);
    d += head; s += head; n -= head;
    for (i = 0; i + 16 <= n; i += 16) _mm_stream_si128((__m128i*)(d + i), _mm_loadu_si128((const __m128i*)(s + i)));
    memcpy(d + i, s + i, n - i);
}
#else
static inline void sr_store_fence(void) { }
#define SR_CAN_STREAM 0
static inline void sr_stream_8(void* p, const void* v) { memcpy(p, v, 8); }
static inline void sr_stream_4(void* p, const void* v) { memcpy(p, v, 4); }
static inline void sr_stream_copy(void* dst, const void* src, size_t n) { memcpy(dst, src, n); }
#endif

/* The widest level this CPU (and compiler) has. */
static int sr_simd_best(void) {
#ifdef SR_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return SR_SIMD_AVX512;
    if (__builtin_cpu_supports("avx2")) return SR_SIMD_AVX2;
#endif
    return SR_SIMD_BASELINE;
}

static int sr_simd_level = -1; /* chosen on first use; a tuning hook may lower it */

static inline int sr_simd(void) {
    if (sr_simd_level < 0) sr_simd_level = sr_simd_best();
    return sr_simd_level;
}

static void sr_simd_set(int level) { sr_simd_level = level; }

static void sr_spmm_row_f64(const int64_t* col, const double* val, int64_t start, int64_t end,
                            int64_t nnz, const double* b, int64_t n, int64_t j0, int64_t j1,
                            double* out, int stream) {
#ifdef SR_X86
    int level = sr_simd();
    if (level == SR_SIMD_AVX512) { sr_row_f64_avx512(col, val, start, end, nnz, b, n, j0, j1, out, stream, 1); return; }
    if (level == SR_SIMD_AVX2) { sr_row_f64_avx2(col, val, start, end, nnz, b, n, j0, j1, out, stream, 1); return; }
#endif
    sr_row_f64_base(col, val, start, end, nnz, b, n, j0, j1, out, stream, 1);
}

static void sr_spmm_row_f32(const int64_t* col, const float* val, int64_t start, int64_t end,
                            int64_t nnz, const float* b, int64_t n, int64_t j0, int64_t j1,
                            float* out, int stream) {
#ifdef SR_X86
    int level = sr_simd();
    if (level == SR_SIMD_AVX512) { sr_row_f32_avx512(col, val, start, end, nnz, b, n, j0, j1, out, stream, 1); return; }
    if (level == SR_SIMD_AVX2) { sr_row_f32_avx2(col, val, start, end, nnz, b, n, j0, j1, out, stream, 1); return; }
#endif
    sr_row_f32_base(col, val, start, end, nnz, b, n, j0, j1, out, stream, 1);
}

/* The level whole rows of row_bytes run at: a row of 16 or 32 bytes at the level whose
 * vectors it fills (8 floats under AVX-512 run as one AVX2 vector, in the loop compiled for
 * it when B starts on a line); under AVX2 a row narrower than its vector at SSE2, where
 * it can overlap (SR_BLOCK_OVERLAP); other rows, any width under AVX-512 (masked), stay. */
static int sr_rows_level(int64_t row_bytes, int whole) {
    int level = sr_simd();
    if (whole && level == SR_SIMD_AVX512 && (row_bytes == 16 || row_bytes == 32)) level = SR_SIMD_AVX2;
    if (whole && level == SR_SIMD_AVX2 && row_bytes < 32) level = SR_SIMD_BASELINE;
    return level;
}

/* Rows lo <= i < hi at the level sr_rows_level gives (SR_ROWS). */
#ifdef SR_X86
#define SR_DISPATCH_ROWS(NAME, T, SUFFIX)                                                    \
    static void NAME(const int64_t* crow, const int64_t* col, const T* val, int64_t nnz,     \
                     const T* b, int64_t n, int64_t j0, int64_t j1, T* out, int64_t lo,      \
                     int64_t hi, int stream) {                                               \
        int level = sr_rows_level(n * (int64_t)sizeof(T), j0 == 0 && j1 == n);               \
        if (level == SR_SIMD_AVX512)                                                         \
            sr_rows_##SUFFIX##_avx512(crow, col, val, nnz, b, n, j0, j1, out, lo, hi, stream); \
        else if (level == SR_SIMD_AVX2)                                                      \
            sr_rows_##SUFFIX##_avx2(crow, col, val, nnz, b, n, j0, j1, out, lo, hi, stream); \
        else                                                                                 \
            sr_rows_##SUFFIX##_base(crow, col, val, nnz, b, n, j0, j1, out, lo, hi, stream); \
    }
#else
#define SR_DISPATCH_ROWS(NAME, T, SUFFIX)                                                    \
    static void NAME(const int64_t* crow, const int64_t* col, const T* val, int64_t nnz,     \
                     const T* b, int64_t n, int64_t j0, int64_t j1, T* out, int64_t lo,      \
                     int64_t hi, int stream) {                                               \
        sr_rows_##SUFFIX##_base(crow, col, val, nnz, b, n, j0, j1, out, lo, hi, stream);    \
    }
#endif
SR_DISPATCH_ROWS(sr_spmm_rows_f64, double, f64)
SR_DISPATCH_ROWS(sr_spmm_rows_f32, float, f32)

/* For tests: how many vectors wide the fixed-width loop for whole rows of b is, at the
 * level such rows run at (sr_rows_level; 0: the general loop). */
static int sr_spmm_fixed_vectors(const void* b, int64_t row_bytes) {
#if defined(__GNUC__) || defined(__clang__)
    int level = sr_rows_level(row_bytes, 1);
    return sr_fixed_vectors(b, row_bytes, level == SR_SIMD_AVX512 ? 64 : level == SR_SIMD_AVX2 ? 32 : 16);
#else  /* single columns only (SR_ROWS_COLUMNS) */
    (void)b; (void)row_bytes;
    return 0;
#endif
}

/* SDDMM's dot product in the contract's order: 8 partial sums s_r over j = r, r + 8, ...,
 * then ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7)). With AVX-512 the 8 partial sums
 * are the 8 lanes of one register (8 doubles; 8 floats fill half of one), so it adds in
 * that same order. Only there is it worth using (sr_dot_wide, sr_sddmm_*): on SSE2 and AVX2 explicit
 * vectors were measured 0.6-0.85x the speed of the kernel's own loop of 8 scalar sums
 * (which the compiler vectorises well), so sddmm keeps that loop there
 * (benchmarks/bench_levers.py). Same bits either way. */
#ifdef SR_X86
#define SR_DOT(NAME, T, V8)                                                                  \
    __attribute__((target("avx512f"))) static inline T NAME(const T* x, const T* y, int64_t n) { \
        V8 s = (V8){0}, a, b;                                                                \
        int64_t j = 0, r;                                                                    \
        T lane[8];                                                                           \
        for (; j + 8 <= n; j += 8) {                                                         \
            memcpy(&a, x + j, sizeof(V8));                                                   \
            memcpy(&b, y + j, sizeof(V8));                                                   \
            s = s + a * b;                                                                   \
        }                                                                                    \
        memcpy(lane, &s, sizeof(V8));                                                        \
        for (r = 0; j + r < n; r++) lane[r] = lane[r] + x[j + r] * y[j + r];                 \
        return ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7])); \
    }
typedef double sr_d8v __attribute__((vector_size(64)));
typedef float sr_f8v __attribute__((vector_size(32)));
SR_DOT(sr_dot_f64, double, sr_d8v)
SR_DOT(sr_dot_f32, float, sr_f8v)

/* SDDMM's positions p0..p1 (of nnz in all): out[p] = the dot product above of row row[p] of
 * x and row col[p] of y, asking for the row of y `ahead` positions on first. The whole loop
 * is compiled for AVX-512, so the dot is inlined in it. Called once per position from
 * Cython's loop, the dot was a function call (a target function is not inlined into
 * generic code) with the prefetch outside it. Kernel alone, uniform pattern, line-aligned
 * factors, 1 and 2 threads, two runs (bench_levers.py "sddmm loop"), Intel Xeon model 167,
 * 2026-12-03: this loop 1.06-1.14x as fast at 16 columns, 1.02-1.07x at 64 (float64) and
 * 0.97-1.03x (float32, 64). Not yet measured on AMD (its Zen 4 takes this path too). Same
 * bits. */
#define SR_SDDMM(NAME, T, DOT)                                                               \
    __attribute__((target("avx512f"))) static void NAME(                                     \
            const int64_t* row, const int64_t* col, const T* x, const T* y, int64_t p0,      \
            int64_t p1, int64_t nnz, int64_t n, int64_t ahead, T* out) {                    \
        int64_t p, line, row_bytes = n * (int64_t)sizeof(T);                                \
        for (p = p0; p < p1; p++) {                                                          \
            if (p + ahead < nnz) {                                                           \
                const char* next = (const char*)(y + col[p + ahead] * n);                    \
                for (line = 0; line < row_bytes; line += 64) __builtin_prefetch(next + line); \
            }                                                                                \
            out[p] = DOT(x + row[p] * n, y + col[p] * n, n);                                 \
        }                                                                                    \
    }
SR_SDDMM(sr_sddmm_f64, double, sr_dot_f64)
SR_SDDMM(sr_sddmm_f32, float, sr_dot_f32)

static inline int sr_dot_wide(void) { return sr_simd() == SR_SIMD_AVX512; }
#else /* never called (sr_dot_wide is 0): only so that sddmm compiles everywhere */
static void sr_sddmm_f64(const int64_t* row, const int64_t* col, const double* x, const double* y, int64_t p0,
                         int64_t p1, int64_t nnz, int64_t n, int64_t ahead, double* out) {
    (void)row; (void)col; (void)x; (void)y; (void)p0; (void)p1; (void)nnz; (void)n; (void)ahead; (void)out;
}
static void sr_sddmm_f32(const int64_t* row, const int64_t* col, const float* x, const float* y, int64_t p0,
                         int64_t p1, int64_t nnz, int64_t n, int64_t ahead, float* out) {
    (void)row; (void)col; (void)x; (void)y; (void)p0; (void)p1; (void)nnz; (void)n; (void)ahead; (void)out;
}
static inline int sr_dot_wide(void) { return 0; }
#endif

/* spmm_reduce's amax and amin of one row, a vector of columns at a time: out[j] is the
 * largest (smallest) product val[q] * b[col[q], j], arg[j] its position q; the first of
 * equal values wins (a strict comparison), and the first NaN wins over anything (it is
 * kept, and a later product replaces a non-NaN only when greater, or NaN). The products
 * are the scalar loop's (a multiply each, IEEE; where a NaN value meets a NaN in B, which
 * payload the product keeps may differ, as numerics.rst allows), the choice the same
 * comparisons with
 * blends for branches, so the values and positions are those of spmm.pyx's scalar loop,
 * which runs for SSE2 and for the columns AVX2 leaves (AVX-512 masks its last vector).
 * Returns the first column it did not do. Before (a branch per element on which entry
 * wins): 116 ms at uniform k = 16 float32 against torch's 14-18. */
#ifdef SR_X86
#define SR_REDUCE_FIRST(q)                                                                   \
    if (q + 16 < nnz) {                                                                      \
        const char* ahead = (const char*)(b + col[q + 16] * n);                              \
        int64_t line;                                                                        \
        for (line = 0; line < reach; line += 64) SR_PREFETCH(ahead + line);                  \
    }
__attribute__((target("avx512f"))) static int64_t sr_reduce_pick_f32_avx512(
        const int64_t* col, const float* val, int64_t start, int64_t end, int64_t nnz,
        const float* b, int64_t n, int amin, float* out, int64_t* arg) {
    int64_t j, q, reach = n * 4 < 512 ? n * 4 : 512;
    for (j = 0; j < n; j += 16) {
        __mmask16 lanes = n - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - j)) - 1u);
        __m512 cur = _mm512_mul_ps(_mm512_set1_ps(val[start]),
                                   _mm512_maskz_loadu_ps(lanes, b + col[start] * n + j));
        __m512i lo = _mm512_set1_epi64(start), hi = lo;
        for (q = start + 1; q < end; q++) {
            __m512 v;
            __mmask16 m;
            __m512i qv = _mm512_set1_epi64(q);
            if (j == 0) SR_REDUCE_FIRST(q)
            v = _mm512_mul_ps(_mm512_set1_ps(val[q]), _mm512_maskz_loadu_ps(lanes, b + col[q] * n + j));
            m = amin ? _mm512_cmp_ps_mask(v, cur, _CMP_LT_OQ) : _mm512_cmp_ps_mask(v, cur, _CMP_GT_OQ);
            m |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q) & _mm512_cmp_ps_mask(cur, cur, _CMP_ORD_Q);
            cur = _mm512_mask_blend_ps(m, cur, v);
            lo = _mm512_mask_blend_epi64((__mmask8)m, lo, qv);
            hi = _mm512_mask_blend_epi64((__mmask8)(m >> 8), hi, qv);
        }
        _mm512_mask_storeu_ps(out + j, lanes, cur);
        _mm512_mask_storeu_epi64(arg + j, (__mmask8)lanes, lo);
        _mm512_mask_storeu_epi64(arg + j + 8, (__mmask8)(lanes >> 8), hi);
    }
    return n;
}
__attribute__((target("avx512f"))) static int64_t sr_reduce_pick_f64_avx512(
        const int64_t* col, const double* val, int64_t start, int64_t end, int64_t nnz,
        const double* b, int64_t n, int amin, double* out, int64_t* arg) {
    int64_t j, q, reach = n * 8 < 512 ? n * 8 : 512;
    for (j = 0; j < n; j += 8) {
        __mmask8 lanes = n - j >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << (n - j)) - 1u);
        __m512d cur = _mm512_mul_pd(_mm512_set1_pd(val[start]),
                                    _mm512_maskz_loadu_pd(lanes, b + col[start] * n + j));
        __m512i at = _mm512_set1_epi64(start);
        for (q = start + 1; q < end; q++) {
            __m512d v;
            __mmask8 m;
            if (j == 0) SR_REDUCE_FIRST(q)
            v = _mm512_mul_pd(_mm512_set1_pd(val[q]), _mm512_maskz_loadu_pd(lanes, b + col[q] * n + j));
            m = amin ? _mm512_cmp_pd_mask(v, cur, _CMP_LT_OQ) : _mm512_cmp_pd_mask(v, cur, _CMP_GT_OQ);
            m |= _mm512_cmp_pd_mask(v, v, _CMP_UNORD_Q) & _mm512_cmp_pd_mask(cur, cur, _CMP_ORD_Q);
            cur = _mm512_mask_blend_pd(m, cur, v);
            at = _mm512_mask_blend_epi64(m, at, _mm512_set1_epi64(q));
        }
        _mm512_mask_storeu_pd(out + j, lanes, cur);
        _mm512_mask_storeu_epi64(arg + j, lanes, at);
    }
    return n;
}
__attribute__((target("avx2"))) static int64_t sr_reduce_pick_f32_avx2(
        const int64_t* col, const float* val, int64_t start, int64_t end, int64_t nnz,
        const float* b, int64_t n, int amin, float* out, int64_t* arg) {
    int64_t j, q, reach = n * 4 < 512 ? n * 4 : 512;
    for (j = 0; j + 8 <= n; j += 8) {
        __m256 cur = _mm256_mul_ps(_mm256_set1_ps(val[start]), _mm256_loadu_ps(b + col[start] * n + j));
        __m256i lo = _mm256_set1_epi64x(start), hi = lo;
        for (q = start + 1; q < end; q++) {
            __m256 v, m;
            __m256i qv = _mm256_set1_epi64x(q);
            if (j == 0) SR_REDUCE_FIRST(q)
            v = _mm256_mul_ps(_mm256_set1_ps(val[q]), _mm256_loadu_ps(b + col[q] * n + j));
            m = amin ? _mm256_cmp_ps(v, cur, _CMP_LT_OQ) : _mm256_cmp_ps(v, cur, _CMP_GT_OQ);
            m = _mm256_or_ps(m, _mm256_and_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q), _mm256_cmp_ps(cur, cur, _CMP_ORD_Q)));
            cur = _mm256_blendv_ps(cur, v, m);
            lo = _mm256_blendv_epi8(lo, qv, _mm256_cvtepi32_epi64(_mm256_castsi256_si128(_mm256_castps_si256(m))));
            hi = _mm256_blendv_epi8(hi, qv, _mm256_cvtepi32_epi64(_mm256_extracti128_si256(_mm256_castps_si256(m), 1)));
        }
        _mm256_storeu_ps(out + j, cur);
        _mm256_storeu_si256((__m256i*)(arg + j), lo);
        _mm256_storeu_si256((__m256i*)(arg + j + 4), hi);
    }
    return j;
}
__attribute__((target("avx2"))) static int64_t sr_reduce_pick_f64_avx2(
        const int64_t* col, const double* val, int64_t start, int64_t end, int64_t nnz,
        const double* b, int64_t n, int amin, double* out, int64_t* arg) {
    int64_t j, q, reach = n * 8 < 512 ? n * 8 : 512;
    for (j = 0; j + 4 <= n; j += 4) {
        __m256d cur = _mm256_mul_pd(_mm256_set1_pd(val[start]), _mm256_loadu_pd(b + col[start] * n + j));
        __m256i at = _mm256_set1_epi64x(start);
        for (q = start + 1; q < end; q++) {
            __m256d v, m;
            if (j == 0) SR_REDUCE_FIRST(q)
            v = _mm256_mul_pd(_mm256_set1_pd(val[q]), _mm256_loadu_pd(b + col[q] * n + j));
            m = amin ? _mm256_cmp_pd(v, cur, _CMP_LT_OQ) : _mm256_cmp_pd(v, cur, _CMP_GT_OQ);
            m = _mm256_or_pd(m, _mm256_and_pd(_mm256_cmp_pd(v, v, _CMP_UNORD_Q), _mm256_cmp_pd(cur, cur, _CMP_ORD_Q)));
            cur = _mm256_blendv_pd(cur, v, m);
            at = _mm256_blendv_epi8(at, _mm256_set1_epi64x(q), _mm256_castpd_si256(m));
        }
        _mm256_storeu_pd(out + j, cur);
        _mm256_storeu_si256((__m256i*)(arg + j), at);
    }
    return j;
}
#endif
/* At the widest level this CPU has; 0 (every column left to the scalar loop) for SSE2. */
#ifdef SR_X86
#define SR_REDUCE_DISPATCH(SUFFIX, T)                                                        \
    static int64_t sr_reduce_pick_##SUFFIX(const int64_t* col, const T* val, int64_t start,  \
                                            int64_t end, int64_t nnz, const T* b, int64_t n, \
                                            int amin, T* out, int64_t* arg) {                \
        int level = sr_simd();                                                               \
        if (level == SR_SIMD_AVX512)                                                         \
            return sr_reduce_pick_##SUFFIX##_avx512(col, val, start, end, nnz, b, n, amin, out, arg); \
        if (level == SR_SIMD_AVX2)                                                           \
            return sr_reduce_pick_##SUFFIX##_avx2(col, val, start, end, nnz, b, n, amin, out, arg); \
        return 0;                                                                            \
    }
#else
#define SR_REDUCE_DISPATCH(SUFFIX, T)                                                        \
    static int64_t sr_reduce_pick_##SUFFIX(const int64_t* col, const T* val, int64_t start,  \
                                            int64_t end, int64_t nnz, const T* b, int64_t n, \
                                            int amin, T* out, int64_t* arg) {                \
        (void)col; (void)val; (void)start; (void)end; (void)nnz; (void)b; (void)n;           \
        (void)amin; (void)out; (void)arg;                                                    \
        return 0;                                                                            \
    }
#endif
SR_REDUCE_DISPATCH(f32, float)
SR_REDUCE_DISPATCH(f64, double)

/* Putting a short row in order without a sort (SpGEMM's output rows in spgemm.pyx, the
 * rows coalesce sorts in coalesce.pyx): the rank of each of n distinct keys, how many of
 * the n keys are smaller, is where that key goes in the sorted row. The row's keys sit in
 * vectors; every key in turn is broadcast and compared with them all, and each lane counts
 * the keys below its own. n * n comparisons, but a vector's worth at once and without a
 * branch on the data, where a sort of a short row (insertion, or networks and merges)
 * mispredicts. Unsigned 64-bit comparisons (AVX2 has only signed ones: both sides get
 * their top bit flipped first). Reads k[0..n) and writes rank[0..n), nothing past them: a
 * last group shorter than the vectors goes through a local copy. Returns 1, or 0 when
 * there is no vector level (SSE2 has no 64-bit comparison): the caller sorts. */
#ifdef SR_X86
#define SR_RANK_ADD512(r, a, x) r = _mm512_mask_add_epi64(r, _mm512_cmpgt_epu64_mask(a, x), r, one)
__attribute__((target("avx512f"))) static void sr_key_ranks_avx512(const uint64_t* k, int64_t n,
                                                                     int64_t* rank) {
    const __m512i one = _mm512_set1_epi64(1);
    int64_t g, s;
    for (g = 0; g < n; g += 32) {  /* 32 keys at a time: 4 vectors of keys and of counts */
        int64_t left = n - g;
        __mmask8 m0 = (__mmask8)(left >= 8 ? 0xFF : (1u << left) - 1);
        __mmask8 m1 = (__mmask8)(left >= 16 ? 0xFF : left > 8 ? (1u << (left - 8)) - 1 : 0);
        __mmask8 m2 = (__mmask8)(left >= 24 ? 0xFF : left > 16 ? (1u << (left - 16)) - 1 : 0);
        __mmask8 m3 = (__mmask8)(left >= 32 ? 0xFF : left > 24 ? (1u << (left - 24)) - 1 : 0);
        __m512i a0 = _mm512_maskz_loadu_epi64(m0, k + g), a1 = _mm512_maskz_loadu_epi64(m1, k + g + 8);
        __m512i a2 = _mm512_maskz_loadu_epi64(m2, k + g + 16), a3 = _mm512_maskz_loadu_epi64(m3, k + g + 24);
        __m512i r0 = _mm512_setzero_si512(), r1 = r0, r2 = r0, r3 = r0;
        if (left <= 8) {
            for (s = 0; s < n; s++) {
                __m512i x = _mm512_set1_epi64((long long)k[s]);
                SR_RANK_ADD512(r0, a0, x);
            }
        } else if (left <= 16) {
            for (s = 0; s < n; s++) {
                __m512i x = _mm512_set1_epi64((long long)k[s]);
                SR_RANK_ADD512(r0, a0, x); SR_RANK_ADD512(r1, a1, x);
            }
        } else {
            for (s = 0; s < n; s++) {
                __m512i x = _mm512_set1_epi64((long long)k[s]);
                SR_RANK_ADD512(r0, a0, x); SR_RANK_ADD512(r1, a1, x);
                SR_RANK_ADD512(r2, a2, x); SR_RANK_ADD512(r3, a3, x);
            }
        }
        _mm512_mask_storeu_epi64(rank + g, m0, r0);
        _mm512_mask_storeu_epi64(rank + g + 8, m1, r1);
        _mm512_mask_storeu_epi64(rank + g + 16, m2, r2);
        _mm512_mask_storeu_epi64(rank + g + 24, m3, r3);
    }
}
#define SR_RANK_SUB256(r, a, x) r = _mm256_sub_epi64(r, _mm256_cmpgt_epi64(a, x))
__attribute__((target("avx2"))) static void sr_key_ranks_avx2(const uint64_t* k, int64_t n,
                                                                int64_t* rank) {
    const __m256i top = _mm256_set1_epi64x((long long)0x8000000000000000ULL);
    int64_t g, s;
    for (g = 0; g < n; g += 16) {  /* 16 keys at a time: 4 vectors */
        int64_t left = n - g;
        uint64_t keys[16] = {0};
        int64_t counts[16];
        const uint64_t* from = k + g;
        int whole = left >= 16;
        if (!whole) {  /* the last keys, fewer than 16: copied, so nothing past n is read */
            memcpy(keys, from, (size_t)left * sizeof(uint64_t));
            from = keys;
        }
        __m256i a0 = _mm256_xor_si256(_mm256_loadu_si256((const __m256i*)from), top);
        __m256i a1 = _mm256_xor_si256(_mm256_loadu_si256((const __m256i*)(from + 4)), top);
        __m256i a2 = _mm256_xor_si256(_mm256_loadu_si256((const __m256i*)(from + 8)), top);
        __m256i a3 = _mm256_xor_si256(_mm256_loadu_si256((const __m256i*)(from + 12)), top);
        __m256i r0 = _mm256_setzero_si256(), r1 = r0, r2 = r0, r3 = r0;
        if (left <= 8) {
            for (s = 0; s < n; s++) {
                __m256i x = _mm256_xor_si256(_mm256_set1_epi64x((long long)k[s]), top);
                SR_RANK_SUB256(r0, a0, x); SR_RANK_SUB256(r1, a1, x);
            }
        } else {
            for (s = 0; s < n; s++) {
                __m256i x = _mm256_xor_si256(_mm256_set1_epi64x((long long)k[s]), top);
                SR_RANK_SUB256(r0, a0, x); SR_RANK_SUB256(r1, a1, x);
                SR_RANK_SUB256(r2, a2, x); SR_RANK_SUB256(r3, a3, x);
            }
        }
        int64_t* to = whole ? rank + g : counts;
        _mm256_storeu_si256((__m256i*)to, r0);
        _mm256_storeu_si256((__m256i*)(to + 4), r1);
        _mm256_storeu_si256((__m256i*)(to + 8), r2);
        _mm256_storeu_si256((__m256i*)(to + 12), r3);
        if (!whole) memcpy(rank + g, counts, (size_t)left * sizeof(int64_t));
    }
}
#endif
static inline int sr_key_ranks(const uint64_t* k, int64_t n, int64_t* rank) {
#ifdef SR_X86
    int level = sr_simd();
    if (level == SR_SIMD_AVX512) { sr_key_ranks_avx512(k, n, rank); return 1; }
    if (level == SR_SIMD_AVX2) { sr_key_ranks_avx2(k, n, rank); return 1; }
#endif
    (void)k; (void)n; (void)rank;
    return 0;
}

#endif /* SPARSE_REF_SIMD_H */

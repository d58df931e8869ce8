/* relu_predict.c - layers that compute only part of y = x @ w + b (paper 1, ReLU prediction).
 *
 * Two ways to skip work, alone or together:
 *   acti mask   - an output neuron whose mask byte is 0 is not computed and is written 0 (the
 *                 paper's `if (acti[n])`); the mask is per neuron (shared) or per sample;
 *   zero skip   - an input that is 0 (common after a ReLU, and MNIST borders) contributes
 *                 nothing, so its weight row w[k, :] is never read. Exact.
 * The NumPy references are pyann.kernels.relu_layer_reference / mlp_per_sample_reference
 * (and the executed-MAC count macs_reference); tests/test_kernels_relu.py compares them.
 *
 * Versions, each a step on the one before:
 *   1. input list          - a sample's input as (index, value) pairs of its nonzeros, built
 *                            branchless; without zero skip the list is implicit (k = 0..in-1)
 *   2. row kernel          - up to 8 output vectors (any columns, from an offset list) held in
 *                            registers while the input list runs: one broadcast feeds 8 FMAs
 *                            (8 independent chains hide the FMA latency); masked-out vectors are
 *                            never visited, so their weights are never loaded
 *   3. one sample, 2 cores - output vectors dealt round-robin to the threads (a mask that keeps a
 *                            prefix of the neurons still splits evenly), one barrier per layer
 *   4. batched             - threads take chunks of 16 samples; within a chunk, groups of 8
 *                            output vectors outer, then blocks of 32 inputs, then samples: the
 *                            32 x 128 weight block stays in L1 while every sample's nonzeros in
 *                            that block stream past it (y accumulates in place, L1-resident);
 *                            sparser inputs take blocks of 64 inputs (fewer accumulator loads and
 *                            stores per nonzero; 128 and more spill L1 and measured slower).
 *                            w is first packed group-major (each group's 128 columns contiguous)
 *                            so that a block is 16 KB in a row, not 32 rows 2 KB apart that fall
 *                            in the same L1 sets when out is a power of two
 *   5. whole MLP per sample - every layer of one sample before the next sample, in one parallel
 *                            region; the low-rank sign predictor runs in the same loop, so its
 *                            cost is in the time and its multiply-adds are counted apart.
 *                            Optionally (split_images) each thread runs whole samples instead, no
 *                            barrier: a throughput setting that a busy machine hurts far less
 *   6. batched, no mask     - zero skipping without a mask gets two faster schemes of its own
 *                            (see 6 below): "list" and "union"; 4 remains for masked layers
 */
#include <stdlib.h>
#include <string.h>
#include "pyann_kernels.h"
#include "runtime.h"
#include "simd.h"
#ifdef _OPENMP
#include <omp.h>
#endif

#define GROUP_NV 8      /* output vectors per register group */
#define RP_CHUNK 16     /* samples per batched task */
#define RP_KC 32        /* inputs per weight block, batched (32 x 128 floats = 16 KB) */

static int rp_tid(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

static int rp_nthreads(void)
{
#ifdef _OPENMP
    return omp_get_num_threads();
#else
    return 1;
#endif
}

/* Any nonzero byte among m[0 .. len). */
static inline int any_set(const uint8_t *m, int64_t len)
{
    for (int64_t i = 0; i < len; i++)
        if (m[i]) return 1;
    return 0;
}

/* Calls KERNEL(args..., nv) with nv as a compile-time constant (1..4 or 1..8): each always_inline
   kernel is specialised for every width, its loops over nv vectors unrolled and its accumulators
   kept in registers. */
#define WITH_CONST_NV4(nv, KERNEL, ...)                   \
    switch (nv) {                                         \
    case 4: KERNEL(__VA_ARGS__, 4); break;                \
    case 3: KERNEL(__VA_ARGS__, 3); break;                \
    case 2: KERNEL(__VA_ARGS__, 2); break;                \
    case 1: KERNEL(__VA_ARGS__, 1); break;                \
    default: break;                                       \
    }
#define WITH_CONST_NV8(nv, KERNEL, ...)                   \
    switch (nv) {                                         \
    case 8: KERNEL(__VA_ARGS__, 8); break;                \
    case 7: KERNEL(__VA_ARGS__, 7); break;                \
    case 6: KERNEL(__VA_ARGS__, 6); break;                \
    case 5: KERNEL(__VA_ARGS__, 5); break;                \
    default: WITH_CONST_NV4(nv, KERNEL, __VA_ARGS__)      \
    }

/* 1. The nonzeros of x (in) as (idx, val); returns their count. A vector at a time (compress),
   then the tail branchless. idx and val need in + VW entries (vcompress_nonzero writes whole
   vectors). */
static int64_t nonzeros(const float *x, int64_t in, int32_t *idx, float *val)
{
    int64_t nz = 0, k = 0;
    for (; k + VW <= in; k += VW)
        nz += vcompress_nonzero(x + k, (int32_t)k, idx + nz, val + nz);
    for (; k < in; k++) {
        const float v = x[k];
        idx[nz] = (int32_t)k;
        val[nz] = v;
        nz += (v != 0.0f);
    }
    return nz;
}

/* 2. Row kernel: y[off[i] .. off[i] + VW) += sum over list entries p in [p0, p1) of
   val[p] * w[k_p, off[i] ..], for i < nv (nv is a constant at every call site). k_p = idx[p], or
   p itself when idx is NULL (dense input). */
static inline __attribute__((always_inline)) void
row_kernel(const int32_t *idx, const float *val, int64_t p0, int64_t p1,
           const float *w, int64_t out, const int64_t *off, float *yr, const int nv)
{
    vec_t acc[GROUP_NV];
    for (int i = 0; i < nv; i++) acc[i] = vload(yr + off[i]);
    if (idx) {
        for (int64_t p = p0; p < p1; p++) {
            const vec_t xv = vset1(val[p]);
            const float *wk = w + (int64_t)idx[p] * out;
            for (int i = 0; i < nv; i++) acc[i] = vfma(xv, vload(wk + off[i]), acc[i]);
        }
    } else {
        for (int64_t p = p0; p < p1; p++) {
            const vec_t xv = vset1(val[p]);
            const float *wk = w + p * out;
            for (int i = 0; i < nv; i++) acc[i] = vfma(xv, vload(wk + off[i]), acc[i]);
        }
    }
    for (int i = 0; i < nv; i++) vstore(yr + off[i], acc[i]);
}

/* 2b. Row kernel for a run of nv adjacent vectors (no mask gaps), the common batched case: the
   offsets are constants, so each weight load is one instruction with an immediate offset instead
   of a load of off[i] and an add. */
static inline __attribute__((always_inline)) void
row_kernel_run(const int32_t *idx, const float *val, int64_t p0, int64_t p1,
               const float *w, int64_t ld, float *acc, const int nv)
{
    vec_t a[GROUP_NV];
    for (int i = 0; i < nv; i++) a[i] = vload(acc + i * VW);
    for (int64_t p = p0; p < p1; p++) {
        const vec_t xv = vset1(val[p]);
        const float *wk = w + (idx ? (int64_t)idx[p] : p) * ld;
        for (int i = 0; i < nv; i++) a[i] = vfma(xv, vload(wk + i * VW), a[i]);
    }
    for (int i = 0; i < nv; i++) vstore(acc + i * VW, a[i]);
}

static void row_kernel_run_n(const int32_t *idx, const float *val, int64_t p0, int64_t p1,
                             const float *w, int64_t ld, float *acc, int nv)
{
    WITH_CONST_NV8(nv, row_kernel_run, idx, val, p0, p1, w, ld, acc);
}

static void row_kernel_n(const int32_t *idx, const float *val, int64_t p0, int64_t p1,
                         const float *w, int64_t out, const int64_t *off, float *yr, int nv)
{
    WITH_CONST_NV8(nv, row_kernel, idx, val, p0, p1, w, out, off, yr);
}

/* Start a computed vector: y = b (or 0). */
static inline void vec_init(float *yr, const float *b, int64_t c)
{
    vstore(yr + c, b ? vload(b + c) : vzero());
}

/* Finish a computed vector: ReLU, then 0 in the lanes whose mask byte is 0. */
static inline void vec_finish(float *yr, int64_t c, int relu, const uint8_t *mrow)
{
    if (relu) vstore(yr + c, vrelu(vload(yr + c)));
    if (mrow)
        for (int j = 0; j < VW; j++)
            if (!mrow[c + j]) yr[c + j] = 0.0f;
}

/* The columns [c0, out) that do not fill a vector, for one sample: scalar. */
static int64_t tail_columns(const int32_t *idx, const float *val, int64_t nz, const float *w,
                            const float *b, float *yr, int64_t c0, int64_t out, int relu,
                            const uint8_t *mrow)
{
    if (c0 >= out) return 0;
    if (mrow && !any_set(mrow + c0, out - c0)) {
        for (int64_t c = c0; c < out; c++) yr[c] = 0.0f;
        return 0;
    }
    for (int64_t c = c0; c < out; c++) {
        float acc = b ? b[c] : 0.0f;
        for (int64_t p = 0; p < nz; p++) acc += val[p] * w[(idx ? (int64_t)idx[p] : p) * out + c];
        if (relu && acc < 0.0f) acc = 0.0f;
        if (mrow && !mrow[c]) acc = 0.0f;
        yr[c] = acc;
    }
    return nz * (out - c0);
}

/* 3. One sample, the share of thread tid of nt: output vectors v = tid, tid + nt, ...; the
   tail columns go to the thread that would own the next vector. Returns the MACs executed. */
static int64_t sample_share(const int32_t *idx, const float *val, int64_t nz, const float *w,
                            const float *b, float *yr, int64_t out, int relu,
                            const uint8_t *mrow, int tid, int nt)
{
    const int64_t nfull = out / VW;
    int64_t off[GROUP_NV];
    int nv = 0;
    int64_t macs = 0;
    for (int64_t v = tid; v < nfull; v += nt) {
        const int64_t c = v * VW;
        if (mrow && !any_set(mrow + c, VW)) {
            vstore(yr + c, vzero());
            continue;
        }
        vec_init(yr, b, c);
        off[nv++] = c;
        if (nv == GROUP_NV || v + nt >= nfull) {
            row_kernel_n(idx, val, 0, nz, w, out, off, yr, nv);
            for (int i = 0; i < nv; i++) vec_finish(yr, off[i], relu, mrow);
            macs += (int64_t)nv * VW * nz;
            nv = 0;
        }
    }
    if (nv) {   /* the last vectors when the loop ended on a masked one */
        row_kernel_n(idx, val, 0, nz, w, out, off, yr, nv);
        for (int i = 0; i < nv; i++) vec_finish(yr, off[i], relu, mrow);
        macs += (int64_t)nv * VW * nz;
    }
    if (nfull % nt == tid)
        macs += tail_columns(idx, val, nz, w, b, yr, nfull * VW, out, relu, mrow);
    return macs;
}

int64_t pyann_dense_zeroskip_sample(const float *x, int64_t in, const float *w, const float *b,
                                    float *y, int64_t out, int relu, int tid, int nt,
                                    int32_t *idx, float *val)
{
    return sample_share(idx, val, nonzeros(x, in, idx, val), w, b, y, out, relu, NULL, tid, nt);
}

static const uint8_t *mask_row(const uint8_t *mask, int mask_mode, int64_t r, int64_t out)
{
    if (mask_mode == 1) return mask;
    if (mask_mode == 2) return mask + r * out;
    return NULL;
}

static int relu_layer_bad(const float *x, const float *w, const float *y, int64_t n, int64_t in,
                          int64_t out, const uint8_t *mask, int mask_mode)
{
    if (n < 0 || in < 0 || out < 0 || in > INT32_MAX) return 1;
    if (n > 0 && out > 0 && y == NULL) return 1;
    if (n > 0 && in > 0 && x == NULL) return 1;
    if (in > 0 && out > 0 && w == NULL) return 1;
    if (mask_mode < 0 || mask_mode > 2) return 1;
    if (mask_mode != 0 && n > 0 && out > 0 && mask == NULL) return 1;
    return 0;
}

/* 3b. One sample at a time over n samples: both threads on sample r, barrier, then r + 1. */
static int relu_layer_one(const float *x, const float *w, const float *b, float *y, int64_t n,
                          int64_t in, int64_t out, const uint8_t *mask, int mask_mode,
                          int zero_skip, int relu, int64_t *macs)
{
    int64_t total = 0, fail = 0;
    #pragma omp parallel reduction(+ : total, fail) num_threads(pyann_team())
    {
        const int tid = rp_tid(), nt = rp_nthreads();
        int32_t *idx = zero_skip ? malloc(sizeof(int32_t) * (size_t)(in + VW)) : NULL;
        float *val = zero_skip ? malloc(sizeof(float) * (size_t)(in + VW)) : NULL;
        const int ok = !zero_skip || (idx && val);
        if (!ok) fail = 1;
        for (int64_t r = 0; r < n; r++) {
            if (ok) {
                const float *xr = x + r * in;
                int64_t nz = in;
                if (zero_skip) nz = nonzeros(xr, in, idx, val);
                total += sample_share(zero_skip ? idx : NULL, zero_skip ? val : xr, nz, w, b,
                                      y + r * out, out, relu, mask_row(mask, mask_mode, r, out),
                                      tid, nt);
            }
            #pragma omp barrier
        }
        free(idx);
        free(val);
    }
    if (fail) return PYANN_ENOMEM;
    if (macs) *macs += total;
    return PYANN_OK;
}

/* 4. Batched: one task = RP_CHUNK samples [r0, r1). */
static int64_t relu_layer_chunk(const float *x, const float *w, const float *wp, const float *b, float *y,
                                int64_t r0, int64_t r1, int64_t in, int64_t out,
                                const uint8_t *mask, int mask_mode, int zero_skip, int relu,
                                int32_t *idx, float *val, int64_t *ptr, int64_t *cur, float *acc)
{
    const int64_t rows = r1 - r0, nfull = out / VW;
    int64_t macs = 0;
    /* the input lists of the chunk's samples, one after the other (CSR) */
    ptr[0] = 0;
    for (int64_t i = 0; i < rows; i++) {
        int64_t nz = in;
        if (zero_skip) nz = nonzeros(x + (r0 + i) * in, in, idx + ptr[i], val + ptr[i]);
        ptr[i + 1] = ptr[i] + nz;
    }
    /* inputs per weight block: RP_KC, or more when the chunk is sparse, so that a sample has
       about RP_KC / 2 nonzeros per block to pay for loading and storing its accumulators */
    int64_t kc = RP_KC;
    if (zero_skip && ptr[rows] > 0) {
        const int64_t want = (RP_KC / 2) * rows * in / ptr[rows];
        kc = want > RP_KC ? ((want + RP_KC - 1) / RP_KC) * RP_KC : RP_KC;
        if (kc > 2 * RP_KC) kc = 2 * RP_KC;   /* longer blocks leave L1: measured slower */
    }
    for (int64_t g0 = 0; g0 < nfull; g0 += GROUP_NV) {
        const int64_t g1 = g0 + GROUP_NV < nfull ? g0 + GROUP_NV : nfull;
        /* start each sample's computed vectors of the group at b (in acc, the chunk's
           accumulators: contiguous, so they do not collide in L1 as rows of y 2 KB apart do);
           write 0 to the masked ones */
        int any = 0;
        for (int64_t i = 0; i < rows; i++) {
            float *yr = y + (r0 + i) * out;
            float *ar = acc + i * GROUP_NV * VW - g0 * VW;
            const uint8_t *mrow = mask_row(mask, mask_mode, r0 + i, out);
            int nv = 0;
            for (int64_t v = g0; v < g1; v++) {
                if (mrow && !any_set(mrow + v * VW, VW)) { vstore(yr + v * VW, vzero()); continue; }
                vstore(ar + v * VW, b ? vload(b + v * VW) : vzero());
                nv++;
            }
            macs += (int64_t)nv * VW * (ptr[i + 1] - ptr[i]);
            any |= nv;
            cur[i] = ptr[i];
        }
        if (!any) continue;
        for (int64_t k0 = 0; k0 < in; k0 += kc) {
            const int64_t k1 = k0 + kc;
            for (int64_t i = 0; i < rows; i++) {
                int64_t p0, p1;
                if (zero_skip) {   /* this sample's nonzeros with k in [k0, k1) */
                    p0 = p1 = cur[i];
                    while (p1 < ptr[i + 1] && idx[p1] < k1) p1++;
                    cur[i] = p1;
                } else {
                    p0 = k0;
                    p1 = k1 < in ? k1 : in;
                }
                if (p1 == p0) continue;
                const uint8_t *mrow = mask_row(mask, mask_mode, r0 + i, out);
                int64_t off[GROUP_NV];
                int nv = 0;
                for (int64_t v = g0; v < g1; v++)
                    if (!mrow || any_set(mrow + v * VW, VW)) off[nv++] = v * VW;
                if (!nv) continue;
                /* the group's packed weights: row k at wg + k * gw, column v * VW at (v - g0) * VW */
                const int64_t gw = (g1 - g0) * VW;
                const float *wg = wp + in * g0 * VW;
                int64_t poff[GROUP_NV];
                for (int j = 0; j < nv; j++) poff[j] = off[j] - g0 * VW;
                const float *vals = zero_skip ? val : x + (r0 + i) * in;
                float *ai = acc + i * GROUP_NV * VW;
                if (nv == g1 - g0)   /* every vector of the group: a run */
                    row_kernel_run_n(zero_skip ? idx : NULL, vals, p0, p1, wg, gw, ai, nv);
                else
                    row_kernel_n(zero_skip ? idx : NULL, vals, p0, p1, wg, gw, poff, ai, nv);
            }
        }
        for (int64_t i = 0; i < rows; i++) {
            const uint8_t *mrow = mask_row(mask, mask_mode, r0 + i, out);
            float *yr = y + (r0 + i) * out;
            const float *ar = acc + i * GROUP_NV * VW - g0 * VW;
            for (int64_t v = g0; v < g1; v++)
                if (!mrow || any_set(mrow + v * VW, VW)) {
                    vstore(yr + v * VW, vload(ar + v * VW));
                    vec_finish(yr, v * VW, relu, mrow);
                }
        }
    }
    if (nfull * VW < out)
        for (int64_t i = 0; i < rows; i++) {
            const float *xr = x + (r0 + i) * in;
            macs += tail_columns(zero_skip ? idx + ptr[i] : NULL, zero_skip ? val + ptr[i] : xr,
                                 ptr[i + 1] - ptr[i], w, b, y + (r0 + i) * out, nfull * VW, out,
                                 relu, mask_row(mask, mask_mode, r0 + i, out));
        }
    return macs;
}

/* 6. Batched zero skipping without a mask (the zeroskip plan, and combined once compile() has
 *    compacted the shared masks away). Two schemes; `scheme` picks one, or 0 picks by density.
 *    6a. list  - each sample's nonzero list runs against a panel of 8 output vectors with the
 *                accumulators in registers from start to end (no K blocking, so no accumulator
 *                loads and stores); the weight rows stream from L2, the row 4 nonzeros ahead
 *                prefetched. Executes exactly the useful multiply-adds; best when samples share
 *                few nonzeros (sparse hidden layers).
 *    6b. union - tiles of 4 samples run the union of their nonzeros against K-blocked panels of
 *                4 vectors (64 inputs x 64 outputs = 16 KB, in L1): each weight vector loaded
 *                feeds 4 FMAs, at the price of multiplying the zeros one sample has where a
 *                tile-mate has a value (those are executed and counted). Best when nonzeros
 *                overlap (MNIST pixels, denser layers).
 *    Version 4 stays for masked layers. Single-thread A/B against 4 on real mlp5 activations (a
 *    partly loaded machine): ~1.5x faster on layer 1 (19 % of the pixels nonzero, union: 79-94 ->
 *    55-59 ms), ~1.7x on a 6 %-dense hidden layer (list: 30-36 -> 18-19 ms).
 */
#define LIST_NV 8          /* vectors per panel, 6a */
#define UNION_T 4          /* samples per tile, 6b */
#define UNION_NV 4         /* vectors per panel, 6b */
#define UNION_KC 64        /* inputs per block, 6b */
#define ZS_CHUNK 64        /* samples per task */
#define PREFETCH_AHEAD 4   /* nonzeros, 6a */

/* w (in, out) -> panels of nv vectors: panel v0 / nv holds columns [v0 VW, (v0 + nv) VW) of every
   row, row k at k * (panel width), the panel at in * v0 * VW. Columns after the last whole vector
   are not packed (tail_columns reads them from w). Called inside a parallel region. */
static void pack_panels(const float *w, int64_t in, int64_t out, int nv, float *wp)
{
    const int64_t nfull = out / VW;
    #pragma omp for schedule(static)
    for (int64_t k = 0; k < in; k++)
        for (int64_t v0 = 0; v0 < nfull; v0 += nv) {
            const int64_t pw = ((v0 + nv < nfull ? v0 + nv : nfull) - v0) * VW;
            memcpy(wp + in * v0 * VW + k * pw, w + k * out + v0 * VW, sizeof(float) * (size_t)pw);
        }
}

/* 6a kernel: y[0 .. nv VW) = b + sum_p val[p] * wq[idx[p], :], ReLU optional. */
static inline __attribute__((always_inline)) void
list_panel(const int32_t *idx, const float *val, int64_t nz, const float *wq, const float *bq,
           float *yq, int relu, const int nv)
{
    const int64_t pw = (int64_t)nv * VW;
    vec_t a[LIST_NV];
    for (int j = 0; j < nv; j++) a[j] = bq ? vload(bq + j * VW) : vzero();
    for (int64_t p = 0; p < nz; p++) {
        if (p + PREFETCH_AHEAD < nz) {   /* the row 4 ahead: an L2 hit by the time it is used */
            const float *wn = wq + (int64_t)idx[p + PREFETCH_AHEAD] * pw;
            for (int64_t c = 0; c < pw; c += 16) __builtin_prefetch(wn + c, 0, 3);
        }
        const vec_t xv = vset1(val[p]);
        const float *wk = wq + (int64_t)idx[p] * pw;
        for (int j = 0; j < nv; j++) a[j] = vfma(xv, vload(wk + j * VW), a[j]);
    }
    for (int j = 0; j < nv; j++) vstore(yq + j * VW, relu ? vrelu(a[j]) : a[j]);
}

static void list_panel_n(const int32_t *idx, const float *val, int64_t nz, const float *wq,
                         const float *bq, float *yq, int relu, int nv)
{
    WITH_CONST_NV8(nv, list_panel, idx, val, nz, wq, bq, yq, relu);
}

/* 6a: samples [r0, r0 + rows). idx, val: rows * in + VW entries; ptr: rows + 1. */
static int64_t zs_list_chunk(const float *x, const float *w, const float *wp, const float *b,
                             float *y, int64_t r0, int64_t rows, int64_t in, int64_t out, int relu,
                             int32_t *idx, float *val, int64_t *ptr)
{
    const int64_t nfull = out / VW;
    ptr[0] = 0;
    for (int64_t i = 0; i < rows; i++)
        ptr[i + 1] = ptr[i] + nonzeros(x + (r0 + i) * in, in, idx + ptr[i], val + ptr[i]);
    for (int64_t v0 = 0; v0 < nfull; v0 += LIST_NV) {
        const int nv = (int)((v0 + LIST_NV < nfull ? v0 + LIST_NV : nfull) - v0);
        for (int64_t i = 0; i < rows; i++)
            list_panel_n(idx + ptr[i], val + ptr[i], ptr[i + 1] - ptr[i], wp + in * v0 * VW,
                         b ? b + v0 * VW : NULL, y + (r0 + i) * out + v0 * VW, relu, nv);
    }
    int64_t macs = ptr[rows] * nfull * VW;
    if (nfull * VW < out)
        for (int64_t i = 0; i < rows; i++)
            macs += tail_columns(idx + ptr[i], val + ptr[i], ptr[i + 1] - ptr[i], w, b,
                                 y + (r0 + i) * out, nfull * VW, out, relu, NULL);
    return macs;
}

/* 6b kernel: acc (UNION_T rows of UNION_NV vectors) += sum over union entries p in [p0, p1) of
   uv[t][p] * wq[uidx[p], 0 .. nv VW) for each row t. */
static inline __attribute__((always_inline)) void
union_block(const int32_t *uidx, const float *const *uv, int64_t p0, int64_t p1, const float *wq,
            float *acc, const int nv)
{
    const int64_t pw = (int64_t)nv * VW;
    vec_t a[UNION_T][UNION_NV];
    for (int t = 0; t < UNION_T; t++)
        for (int j = 0; j < nv; j++) a[t][j] = vload(acc + (t * UNION_NV + j) * VW);
    for (int64_t p = p0; p < p1; p++) {
        const float *wk = wq + (int64_t)uidx[p] * pw;
        vec_t wv[UNION_NV];
        for (int j = 0; j < nv; j++) wv[j] = vload(wk + j * VW);
        for (int t = 0; t < UNION_T; t++) {
            const vec_t xv = vset1(uv[t][p]);
            for (int j = 0; j < nv; j++) a[t][j] = vfma(xv, wv[j], a[t][j]);
        }
    }
    for (int t = 0; t < UNION_T; t++)
        for (int j = 0; j < nv; j++) vstore(acc + (t * UNION_NV + j) * VW, a[t][j]);
}

static void union_block_n(const int32_t *uidx, const float *const *uv, int64_t p0, int64_t p1,
                          const float *wq, float *acc, int nv)
{
    WITH_CONST_NV4(nv, union_block, uidx, uv, p0, p1, wq, acc);
}

/* The union list of one tile: rows xr[0 .. UNION_T) (missing samples point at a zero row). */
static int64_t union_list(const float *const *xr, int64_t in, int32_t *uidx, float *const *uv)
{
    int64_t nu = 0, k = 0;
    for (; k + VW <= in; k += VW) {
        const float *xk[UNION_T];
        float *vk[UNION_T];
        for (int t = 0; t < UNION_T; t++) { xk[t] = xr[t] + k; vk[t] = uv[t] + nu; }
        nu += vcompress_union(xk, UNION_T, (int32_t)k, uidx + nu, vk);
    }
    for (; k < in; k++) {
        int any = 0;
        for (int t = 0; t < UNION_T; t++) { uv[t][nu] = xr[t][k]; any |= (xr[t][k] != 0.0f); }
        uidx[nu] = (int32_t)k;
        nu += any;
    }
    return nu;
}

/* 6b: samples [r0, r0 + rows), rows <= ZS_CHUNK. uidx: tiles * (in + VW); uval: tiles * UNION_T
   * (in + VW); acc: tiles * UNION_T * UNION_NV * VW; zeros: in floats of 0. */
static int64_t zs_union_chunk(const float *x, const float *w, const float *wp, const float *b,
                              float *y, int64_t r0, int64_t rows, int64_t in, int64_t out,
                              int relu, const float *zeros, int32_t *uidx, float *uval,
                              int64_t *ulen, int64_t *cur, float *acc)
{
    const int64_t nfull = out / VW, tiles = (rows + UNION_T - 1) / UNION_T, cap = in + VW;
    const int64_t tw = UNION_T * UNION_NV * VW;   /* floats of acc per tile */
    int64_t macs = 0;
    for (int64_t ti = 0; ti < tiles; ti++) {
        const float *xr[UNION_T];
        float *uv[UNION_T];
        for (int t = 0; t < UNION_T; t++) {
            const int64_t r = ti * UNION_T + t;
            xr[t] = r < rows ? x + (r0 + r) * in : zeros;
            uv[t] = uval + (ti * UNION_T + t) * cap;
        }
        ulen[ti] = union_list(xr, in, uidx + ti * cap, uv);
        macs += ulen[ti] * UNION_T * nfull * VW;   /* every lane of the tile is multiplied */
    }
    for (int64_t v0 = 0; v0 < nfull; v0 += UNION_NV) {
        const int nv = (int)((v0 + UNION_NV < nfull ? v0 + UNION_NV : nfull) - v0);
        const float *wq = wp + in * v0 * VW;
        for (int64_t ti = 0; ti < tiles; ti++) {
            cur[ti] = 0;
            for (int t = 0; t < UNION_T; t++)
                for (int j = 0; j < nv; j++)
                    vstore(acc + ti * tw + (t * UNION_NV + j) * VW, b ? vload(b + (v0 + j) * VW) : vzero());
        }
        for (int64_t k1 = UNION_KC; k1 < in + UNION_KC; k1 += UNION_KC)
            for (int64_t ti = 0; ti < tiles; ti++) {
                const int32_t *ui = uidx + ti * cap;
                const int64_t p0 = cur[ti];
                int64_t p1 = p0;
                while (p1 < ulen[ti] && ui[p1] < k1) p1++;
                cur[ti] = p1;
                if (p1 == p0) continue;
                const float *uv[UNION_T];
                for (int t = 0; t < UNION_T; t++) uv[t] = uval + (ti * UNION_T + t) * cap;
                union_block_n(ui, uv, p0, p1, wq, acc + ti * tw, nv);
            }
        for (int64_t r = 0; r < rows; r++) {
            const float *ar = acc + (r / UNION_T) * tw + (r % UNION_T) * UNION_NV * VW;
            float *yr = y + (r0 + r) * out + v0 * VW;
            for (int j = 0; j < nv; j++) {
                const vec_t v = vload(ar + j * VW);
                vstore(yr + j * VW, relu ? vrelu(v) : v);
            }
        }
    }
    if (nfull * VW < out)
        for (int64_t r = 0; r < rows; r++) {
            const int64_t ti = r / UNION_T;
            macs += tail_columns(uidx + ti * cap, uval + r * cap, ulen[ti], w, b, y + (r0 + r) * out,
                                 nfull * VW, out, relu, NULL);
        }
    return macs;
}

int pyann_zeroskip_scheme(const float *x, int64_t n, int64_t in)
{
    /* On the first (up to) 256 rows: nz nonzeros in all, and lanes = the multiply lanes of their
       tiles' unions (union entries x 4). Measured cost per lane, relative to a list nonzero: about
       1/2.1, so union wins when lanes < 2.1 nz. */
    if (!x || n <= 0 || in <= 0) return 1;
    const int64_t m = n < 256 ? n : 256;
    int64_t nz = 0, lanes = 0;
    for (int64_t r0 = 0; r0 < m; r0 += UNION_T)
        for (int64_t k = 0; k < in; k++) {
            int any = 0;
            for (int64_t r = r0; r < r0 + UNION_T && r < m; r++) {
                const int on = x[r * in + k] != 0.0f;
                nz += on;
                any |= on;
            }
            lanes += any * UNION_T;
        }
    return 10 * lanes < 21 * nz ? 2 : 1;
}

/* 6: the whole layer, scheme 1 (list) or 2 (union). */
static int zeroskip_batched(const float *x, const float *w, const float *b, float *y, int64_t n,
                            int64_t in, int64_t out, int relu, int scheme, int64_t *macs)
{
    const int64_t nfull = out / VW, chunks = (n + ZS_CHUNK - 1) / ZS_CHUNK;
    const int64_t tiles = ZS_CHUNK / UNION_T, cap = in + VW;
    float *wp = malloc(sizeof(float) * (size_t)(in * nfull * VW + 1));
    if (!wp) return PYANN_ENOMEM;
    int64_t total = 0, fail = 0;
    #pragma omp parallel reduction(+ : total, fail) num_threads(pyann_team())
    {
        pack_panels(w, in, out, scheme == 2 ? UNION_NV : LIST_NV, wp);   /* ends in a barrier */
        int32_t *idx = NULL;
        float *val = NULL, *zeros = NULL, *acc = NULL;
        int64_t ptr[ZS_CHUNK + 1], cur[ZS_CHUNK];
        if (scheme == 2) {
            idx = malloc(sizeof(int32_t) * (size_t)(tiles * cap));
            val = malloc(sizeof(float) * (size_t)(tiles * UNION_T * cap));
            zeros = calloc((size_t)in + 1, sizeof(float));
            acc = malloc(sizeof(float) * (size_t)(tiles * UNION_T * UNION_NV * VW));
        } else {
            idx = malloc(sizeof(int32_t) * (size_t)(ZS_CHUNK * in + VW));
            val = malloc(sizeof(float) * (size_t)(ZS_CHUNK * in + VW));
        }
        const int ok = idx && val && (scheme != 2 || (zeros && acc));
        if (!ok) fail = 1;
        #pragma omp for schedule(dynamic, 1)
        for (int64_t ch = 0; ch < chunks; ch++) {
            if (!ok) continue;
            const int64_t r0 = ch * ZS_CHUNK, rows = n - r0 < ZS_CHUNK ? n - r0 : ZS_CHUNK;
            total += scheme == 2
                ? zs_union_chunk(x, w, wp, b, y, r0, rows, in, out, relu, zeros, idx, val, ptr, cur, acc)
                : zs_list_chunk(x, w, wp, b, y, r0, rows, in, out, relu, idx, val, ptr);
        }
        free(idx);
        free(val);
        free(zeros);
        free(acc);
    }
    free(wp);
    if (fail) return PYANN_ENOMEM;
    if (macs) *macs += total;
    return PYANN_OK;
}

int pyann_relu_layer(const float *x, const float *w, const float *b, float *y,
                     int64_t n, int64_t in, int64_t out,
                     const uint8_t *mask, int mask_mode, int zero_skip, int relu,
                     int one_at_a_time, int scheme, int64_t *macs)
{
    if (relu_layer_bad(x, w, y, n, in, out, mask, mask_mode) || scheme < 0 || scheme > 2)
        return PYANN_EINVAL;
    if (n == 0 || out == 0) return PYANN_OK;
    if (one_at_a_time)
        return relu_layer_one(x, w, b, y, n, in, out, mask, mask_mode, zero_skip, relu, macs);
    if (zero_skip && mask_mode == 0 && in > 0)
        return zeroskip_batched(x, w, b, y, n, in, out, relu,
                                scheme ? scheme : pyann_zeroskip_scheme(x, n, in), macs);
    const int64_t chunks = (n + RP_CHUNK - 1) / RP_CHUNK;
    const int64_t nfull = out / VW;
    float *wp = malloc(sizeof(float) * (size_t)(in * nfull * VW + 1));
    if (!wp) return PYANN_ENOMEM;
    int64_t total = 0, fail = 0;
    #pragma omp parallel reduction(+ : total, fail) num_threads(pyann_team())
    {
        pack_panels(w, in, out, GROUP_NV, wp);   /* ends in a barrier */
        int32_t *idx = malloc(sizeof(int32_t) * (size_t)(RP_CHUNK * in + VW));
        float *val = malloc(sizeof(float) * (size_t)(RP_CHUNK * in + VW));
        int64_t ptr[RP_CHUNK + 1], cur[RP_CHUNK];
        float acc[RP_CHUNK * GROUP_NV * VW];
        if (!idx || !val) fail = 1;
        #pragma omp for schedule(dynamic, 1)
        for (int64_t ch = 0; ch < chunks; ch++) {
            if (!idx || !val) continue;
            const int64_t r0 = ch * RP_CHUNK, r1 = r0 + RP_CHUNK < n ? r0 + RP_CHUNK : n;
            total += relu_layer_chunk(x, w, wp, b, y, r0, r1, in, out, mask, mask_mode, zero_skip,
                                      relu, idx, val, ptr, cur, acc);
        }
        free(idx);
        free(val);
    }
    free(wp);
    if (fail) return PYANN_ENOMEM;
    if (macs) *macs += total;
    return PYANN_OK;
}

/* 5. Whole MLP, one sample at a time. */
int pyann_mlp_per_sample(const float *x, float *y, int64_t n, int n_layers, const int64_t *sizes,
                         const float *const *ws, const float *const *bs,
                         const uint8_t *const *masks,
                         const float *const *pu, const float *const *pv,
                         const int64_t *ranks, const float *margins,
                         const uint8_t *relus, int zero_skip, int split_images, int64_t *macs,
                         int64_t *pred_macs)
{
    if (n < 0 || n_layers < 1 || !sizes || !ws || !relus || (n > 0 && (!x || !y))) return PYANN_EINVAL;
    int64_t width = 1, rank = 1;
    for (int l = 0; l <= n_layers; l++) {
        if (sizes[l] <= 0 || sizes[l] > INT32_MAX) return PYANN_EINVAL;
        if (sizes[l] > width) width = sizes[l];
    }
    for (int l = 0; l < n_layers; l++) {
        if (!ws[l]) return PYANN_EINVAL;
        if (pu && pu[l]) {
            if (!pv || !pv[l] || !ranks || ranks[l] <= 0 || !margins) return PYANN_EINVAL;
            if (ranks[l] > rank) rank = ranks[l];
        }
    }
    if (n == 0) return PYANN_OK;
    float *h[2] = {malloc(sizeof(float) * (size_t)width), malloc(sizeof(float) * (size_t)width)};
    int64_t total = 0, ptotal = 0, fail = (!h[0] || !h[1]);
    if (!fail) {
        #pragma omp parallel reduction(+ : total, ptotal, fail) num_threads(pyann_team())
        {
            const int tid = split_images ? 0 : rp_tid(), nt = split_images ? 1 : rp_nthreads();
            float *own[2] = {NULL, NULL};
            float *const *hb = h;
            if (split_images) {   /* private layer buffers: each thread runs whole samples */
                own[0] = malloc(sizeof(float) * (size_t)width);
                own[1] = malloc(sizeof(float) * (size_t)width);
                hb = own;
                if (!own[0] || !own[1]) fail = 1;
            }
            int32_t *idx = malloc(sizeof(int32_t) * (size_t)(width + VW));
            float *val = malloc(sizeof(float) * (size_t)(width + VW));
            float *z = malloc(sizeof(float) * (size_t)(rank + VW));
            uint8_t *pm = malloc((size_t)width);
            const int ok = idx && val && z && pm && (!split_images || (own[0] && own[1]));
            if (!ok) fail = 1;
            /* split_images: samples dealt to the threads in runs of 16; else every thread
               visits every sample */
            const int64_t step = split_images ? 16 * (int64_t)rp_nthreads() : 1;
            const int64_t first = split_images ? 16 * (int64_t)rp_tid() : 0;
            for (int64_t s0 = first; s0 < n; s0 += step)
            for (int64_t i = s0; i < (split_images ? (s0 + 16 < n ? s0 + 16 : n) : s0 + 1); i++) {
                for (int l = 0; l < n_layers; l++) {
                    const int64_t in = sizes[l], out = sizes[l + 1];
                    const float *xin = l == 0 ? x + i * in : hb[(l - 1) & 1];
                    float *yout = l == n_layers - 1 ? y + i * out : hb[l & 1];
                    if (ok) {
                        const float *b = bs ? bs[l] : NULL;
                        int64_t nz = in;
                        if (zero_skip) nz = nonzeros(xin, in, idx, val);
                        const int32_t *li = zero_skip ? idx : NULL;
                        const float *lv = zero_skip ? val : xin;
                        const uint8_t *mrow = masks ? masks[l] : NULL;
                        if (pu && pu[l]) {
                            /* the low-rank sign predictor: z = h @ pu (rank), then for this
                               thread's vectors s = z @ pv + b; compute where s > -margin */
                            const int64_t r = ranks[l];
                            const float *u = pu[l], *pvl = pv[l];
                            for (int64_t q = 0; q < r; q++) z[q] = 0.0f;
                            for (int64_t p = 0; p < nz; p++) {
                                const float xv = lv[p];
                                const float *ur = u + (li ? (int64_t)li[p] : p) * r;
                                for (int64_t q = 0; q < r; q++) z[q] += xv * ur[q];
                            }
                            if (tid == 0) ptotal += nz * r;
                            const float thr = -margins[l];
                            const int64_t nfull = out / VW;
                            for (int64_t v = tid; v < nfull; v += nt) {
                                const int64_t c = v * VW;
                                if (mrow && !any_set(mrow + c, VW)) { memset(pm + c, 0, VW); continue; }
                                vec_t s = b ? vload(b + c) : vzero();
                                for (int64_t q = 0; q < r; q++) s = vfma(vset1(z[q]), vload(pvl + q * out + c), s);
                                float sv[VW];
                                vstore(sv, s);
                                for (int j = 0; j < VW; j++) pm[c + j] = (sv[j] > thr) && (!mrow || mrow[c + j]);
                                ptotal += r * VW;
                            }
                            if (nfull % nt == tid)
                                for (int64_t c = nfull * VW; c < out; c++) {
                                    float s = b ? b[c] : 0.0f;
                                    for (int64_t q = 0; q < r; q++) s += z[q] * pvl[q * out + c];
                                    pm[c] = (s > thr) && (!mrow || mrow[c]);
                                    ptotal += r;
                                }
                            mrow = pm;
                        }
                        total += sample_share(li, lv, nz, ws[l], b, yout, out, relus[l], mrow,
                                              tid, nt);
                    }
                    if (!split_images) {
                        #pragma omp barrier
                    }
                }
            }
            free(own[0]);
            free(own[1]);
            free(idx);
            free(val);
            free(z);
            free(pm);
        }
    }
    free(h[0]);
    free(h[1]);
    if (fail) return PYANN_ENOMEM;
    if (macs) *macs += total;
    if (pred_macs) *pred_macs += ptotal;
    return PYANN_OK;
}

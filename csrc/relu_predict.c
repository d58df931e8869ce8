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
 */
#include <stdlib.h>
#include <string.h>
#include "pyann_kernels.h"
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

/* 1. The nonzeros of x (in) as (idx, val); returns their count. Branchless. */
static int64_t nonzeros(const float *x, int64_t in, int32_t *idx, float *val)
{
    int64_t nz = 0;
    for (int64_t k = 0; k < in; k++) {
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
   of a load of off[i] and an add (measured ~2x faster than 2 on the batched layer). */
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
    switch (nv) {
    case 8: row_kernel_run(idx, val, p0, p1, w, ld, acc, 8); break;
    case 7: row_kernel_run(idx, val, p0, p1, w, ld, acc, 7); break;
    case 6: row_kernel_run(idx, val, p0, p1, w, ld, acc, 6); break;
    case 5: row_kernel_run(idx, val, p0, p1, w, ld, acc, 5); break;
    case 4: row_kernel_run(idx, val, p0, p1, w, ld, acc, 4); break;
    case 3: row_kernel_run(idx, val, p0, p1, w, ld, acc, 3); break;
    case 2: row_kernel_run(idx, val, p0, p1, w, ld, acc, 2); break;
    case 1: row_kernel_run(idx, val, p0, p1, w, ld, acc, 1); break;
    default: break;
    }
}

static void row_kernel_n(const int32_t *idx, const float *val, int64_t p0, int64_t p1,
                         const float *w, int64_t out, const int64_t *off, float *yr, int nv)
{
    switch (nv) {
    case 8: row_kernel(idx, val, p0, p1, w, out, off, yr, 8); break;
    case 7: row_kernel(idx, val, p0, p1, w, out, off, yr, 7); break;
    case 6: row_kernel(idx, val, p0, p1, w, out, off, yr, 6); break;
    case 5: row_kernel(idx, val, p0, p1, w, out, off, yr, 5); break;
    case 4: row_kernel(idx, val, p0, p1, w, out, off, yr, 4); break;
    case 3: row_kernel(idx, val, p0, p1, w, out, off, yr, 3); break;
    case 2: row_kernel(idx, val, p0, p1, w, out, off, yr, 2); break;
    case 1: row_kernel(idx, val, p0, p1, w, out, off, yr, 1); break;
    default: break;
    }
}

/* Start a computed vector: y = b (or 0). */
static inline void vec_init(float *yr, const float *b, int64_t c)
{
    vstore(yr + c, b ? vload(b + c) : vzero());
}

/* Finish a computed vector: ReLU, then 0 in the lanes whose mask byte is 0. */
static inline void vec_finish(float *yr, int64_t c, int relu, const uint8_t *mrow)
{
    if (relu) vstore(yr + c, vmax(vload(yr + c), vzero()));
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
    #pragma omp parallel reduction(+ : total, fail)
    {
        const int tid = rp_tid(), nt = rp_nthreads();
        int32_t *idx = zero_skip ? malloc(sizeof(int32_t) * (size_t)(in + 1)) : NULL;
        float *val = zero_skip ? malloc(sizeof(float) * (size_t)(in + 1)) : NULL;
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
    if (fail) return PYANN_EINVAL;
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

int pyann_relu_layer(const float *x, const float *w, const float *b, float *y,
                     int64_t n, int64_t in, int64_t out,
                     const uint8_t *mask, int mask_mode, int zero_skip, int relu,
                     int one_at_a_time, int64_t *macs)
{
    if (relu_layer_bad(x, w, y, n, in, out, mask, mask_mode)) return PYANN_EINVAL;
    if (n == 0 || out == 0) return PYANN_OK;
    if (one_at_a_time)
        return relu_layer_one(x, w, b, y, n, in, out, mask, mask_mode, zero_skip, relu, macs);
    const int64_t chunks = (n + RP_CHUNK - 1) / RP_CHUNK;
    const int64_t nfull = out / VW;
    float *wp = malloc(sizeof(float) * (size_t)(in * nfull * VW + 1));
    if (!wp) return PYANN_EINVAL;
    int64_t total = 0, fail = 0;
    #pragma omp parallel reduction(+ : total, fail)
    {
        #pragma omp for schedule(static)
        for (int64_t k = 0; k < in; k++)
            for (int64_t g0 = 0; g0 < nfull; g0 += GROUP_NV) {
                const int64_t gw = ((g0 + GROUP_NV < nfull ? g0 + GROUP_NV : nfull) - g0) * VW;
                memcpy(wp + in * g0 * VW + k * gw, w + k * out + g0 * VW, sizeof(float) * (size_t)gw);
            }
        int32_t *idx = malloc(sizeof(int32_t) * (size_t)(RP_CHUNK * in + 1));
        float *val = malloc(sizeof(float) * (size_t)(RP_CHUNK * in + 1));
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
    if (fail) return PYANN_EINVAL;
    if (macs) *macs += total;
    return PYANN_OK;
}

/* 5. Whole MLP, one sample at a time. */
int pyann_mlp_per_sample(const float *x, float *y, int64_t n, int n_layers, const int64_t *sizes,
                         const float *const *ws, const float *const *bs,
                         const uint8_t *const *masks,
                         const float *const *pu, const float *const *pv,
                         const int64_t *ranks, const float *margins,
                         int zero_skip, int split_images, int64_t *macs, int64_t *pred_macs)
{
    if (n < 0 || n_layers < 1 || !sizes || !ws || (n > 0 && (!x || !y))) return PYANN_EINVAL;
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
        #pragma omp parallel reduction(+ : total, ptotal, fail)
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
            int32_t *idx = malloc(sizeof(int32_t) * (size_t)width);
            float *val = malloc(sizeof(float) * (size_t)width);
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
                        total += sample_share(li, lv, nz, ws[l], b, yout, out,
                                              l < n_layers - 1, mrow, tid, nt);
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
    if (fail) return PYANN_EINVAL;
    if (macs) *macs += total;
    if (pred_macs) *pred_macs += ptotal;
    return PYANN_OK;
}

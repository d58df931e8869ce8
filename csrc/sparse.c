/* sparse.c - pruned linear layers: y = x @ w + b (+ ReLU) with most of w zero (paper 2).
 *
 * Layout, stated where the data is packed (pyann/kernels.py pack_sparse):
 *   w is kept by output neuron (CSR of w^T): row j holds the inputs k with w[k, j] != 0,
 *   idx[ptr[j] .. ptr[j + 1]) (int32, ascending) and their weights val[...].
 * The NumPy reference is pyann.kernels.dense_reference on the dense w; tests/test_kernels_sparse.py
 * and the property tests compare them.
 *
 * Versions, each a step on the one before:
 *   1. row dot              - one output of one sample: sum over the row's nonzeros (AVX-512:
 *                             16 at a time, x gathered)
 *   2. batch-contiguous     - activations in tiles of SP_TILE = 64 samples, transposed: a nonzero
 *                             w[k, j] multiplies the tile's 64 values of input k, contiguous, so
 *                             one broadcast of the weight feeds 64 / VW vector FMAs (XNNPACK's
 *                             f32-spmm with samples as pixels)
 *   3. tiled layout         - (tiles, in, 64): a tile's inputs are one contiguous block, in L2
 *                             while every output row runs past; tiles dealt to the threads. (A
 *                             plain transposed (in, n) layout, rows n floats apart, measured
 *                             2.2x / 1.5x / 1.2x slower at 2 / 5 / 10 % density: 784 x 512, 10,000
 *                             samples, one run each on a loaded 2-core Xeon)
 *   4. one sample at a time - x row-major, loop over samples inside C; each sample's outputs
 *                             split over the threads (latency setting, as relu_predict.c's 3)
 *   6. r x 1 blocks         - for block-pruned w: rows of SP_R = 4 outputs share their inputs, each
 *                             kept block stores 4 weights; one load of a tile's input row feeds
 *                             4 x 64 / VW FMAs instead of 64 / VW (Intel's 4x1 sparse idea)
 *   5. whole MLP per sample - every layer of one sample before the next, each layer sparse (4's
 *                             row sums), sparse x sparse (7), dense (a GEMV of vector FMAs over
 *                             w's rows) or dense with the zero inputs skipped (relu_predict.c
 *                             3); threads split each layer's outputs with a barrier per layer,
 *                             or take whole samples (split_images), as relu_predict.c's 5
 *   7. sparse x sparse      - w kept by INPUT (CSR of w: input k's kept outputs, uint16 indices
 *                             when out <= 65536): per sample, the nonzero inputs listed branchless
 *                             (the previous ReLU's zeros), each one's row scattered, y[j] +=
 *                             x[k] w[k, j]: work nnz(x) x kept per row, both sparsities multiply;
 *                             AVX-512: 16 kept outputs at a time gathered, FMA, scattered (a row's
 *                             indices are distinct, so no conflicts), the last 1-15 masked
 *   8. sparse x sparse, batched - threads take runs of 16 samples; a sample scatters into its own
 *                             output row (L1-resident for 512 outputs)
 *   9. sparse x sparse, one sample at a time - both threads on each sample, each on its whole
 *                             vectors of the outputs (a row cut to them by binary search); no
 *                             barrier between samples (a thread writes only its own outputs)
 *  10. pooled convolution   - 6'' with a 2x2 max-pool fused: positions enumerated window by window,
 *                             each window's maximum written, never the unpooled map
 */
#include <stdlib.h>
#include "pyann_kernels.h"
#include "runtime.h"
#include "simd.h"
#ifdef _OPENMP
#include <omp.h>
#endif

#define SP_TILE PYANN_SPARSE_TILE
#define SP_R PYANN_SPARSE_BLOCK


static int sparse_bad(const float *x, const int64_t *ptr, const int32_t *idx, const float *val,
                      const float *y, int64_t n, int64_t in, int64_t out)
{
    if (n < 0 || in < 0 || out < 0 || !ptr) return 1;
    if (n > 0 && out > 0 && !y) return 1;
    if (n > 0 && in > 0 && !x) return 1;
    if (ptr[0] != 0 || ptr[out] < 0) return 1;
    if (ptr[out] > 0 && (!idx || !val)) return 1;
    return 0;
}

/* 1. One output row of one sample: y = b + sum val[p] * x[idx[p]] over the row; relu as the
   reference (NaN kept). With AVX-512, 16 nonzeros a step, their x gathered (SP_GATHER): fcn2 at
   10 % one image at a time, 10,000 MNIST images, 2 threads, median of 5 on a quiet 2-core Xeon:
   0.047 s, the scalar loop 0.085 s (four scalar accumulators instead of one: no faster, the loads
   bound it, not the chain of adds). */
#ifndef SP_GATHER
#define SP_GATHER 1
#endif
static inline float row_dot(const int32_t *idx, const float *val, int64_t p0, int64_t p1,
                            const float *x, float b, int relu)
{
    float acc = b;
#if SP_GATHER && defined(__AVX512F__)
    __m512 a = _mm512_setzero_ps();
    int64_t p = p0;
    for (; p + 16 <= p1; p += 16)
        a = _mm512_fmadd_ps(_mm512_loadu_ps(val + p), _mm512_i32gather_ps(_mm512_loadu_si512(idx + p), x, 4), a);
    if (p < p1) {   /* the last 1-15: masked */
        const __mmask16 m = (__mmask16)((1u << (p1 - p)) - 1u);
        a = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, val + p),
                            _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, _mm512_maskz_loadu_epi32(m, idx + p), x, 4),
                            a);
    }
    acc += _mm512_reduce_add_ps(a);
#else
    for (int64_t p = p0; p < p1; p++) acc += val[p] * x[idx[p]];
#endif
    return (relu && acc < 0.0f) ? 0.0f : acc;
}

/* 2-3. One output row j of one tile: SP_TILE samples held in SP_TILE / VW vector registers
   while the row's nonzeros run; each weight is broadcast once for all of them. */
static inline __attribute__((always_inline)) void
row_of_tile(const int32_t *idx, const float *val, int64_t p0, int64_t p1, const float *xt,
            float b, float *yr, int relu)
{
    enum { NV = SP_TILE / VW };
    vec_t acc[NV];
    for (int v = 0; v < NV; v++) acc[v] = vset1(b);
    for (int64_t p = p0; p < p1; p++) {
        const vec_t wv = vset1(val[p]);
        const float *xk = xt + (int64_t)idx[p] * SP_TILE;
        for (int v = 0; v < NV; v++) acc[v] = vfma(wv, vload(xk + v * VW), acc[v]);
    }
    for (int v = 0; v < NV; v++) vstore(yr + v * VW, relu ? vrelu(acc[v]) : acc[v]);
}

/* One tile through the layer: x (in, SP_TILE) -> y (out, SP_TILE). */
static inline void linear_tile(const int64_t *ptr, const int32_t *idx, const float *val, const float *b,
                               const float *x, float *y, int64_t out, int relu)
{
    for (int64_t j = 0; j < out; j++)
        row_of_tile(idx, val, ptr[j], ptr[j + 1], x, b ? b[j] : 0.0f, y + j * SP_TILE, relu);
}

/* 3. xt (tiles, in, SP_TILE), yt (tiles, out, SP_TILE): one tile's inputs are one contiguous
   in x 256-byte block (L2-resident, few pages), so every output row reads it without TLB misses. */
int pyann_sparse_linear_tiled(const float *xt, const int64_t *ptr, const int32_t *idx,
                              const float *val, const float *b, float *yt, int64_t tiles,
                              int64_t in, int64_t out, int relu)
{
    if (sparse_bad(xt, ptr, idx, val, yt, tiles, in, out)) return PYANN_EINVAL;
    #pragma omp parallel for schedule(static) num_threads(pyann_team())
    for (int64_t t = 0; t < tiles; t++)
        linear_tile(ptr, idx, val, b, xt + t * in * SP_TILE, yt + t * out * SP_TILE, out, relu);
    return PYANN_OK;
}

/* 4. x (n, in) row-major, y (n, out): each sample through the layer in turn, its output rows
   split over the threads (static, so a thread keeps the same rows and their weights in cache). */
int pyann_sparse_linear_per_sample(const float *x, const int64_t *ptr, const int32_t *idx,
                                   const float *val, const float *b, float *y, int64_t n,
                                   int64_t in, int64_t out, int relu)
{
    if (sparse_bad(x, ptr, idx, val, y, n, in, out)) return PYANN_EINVAL;
    #pragma omp parallel num_threads(pyann_team()) if (ptr[out] >= 16384)
    for (int64_t i = 0; i < n; i++) {
        const float *xi = x + i * in;
        float *yi = y + i * out;
        #pragma omp for schedule(static)
        for (int64_t j = 0; j < out; j++)
            yi[j] = row_dot(idx, val, ptr[j], ptr[j + 1], xi, b ? b[j] : 0.0f, relu);
    }
    return PYANN_OK;
}

/* Tiles <-> rows: x (n, d) row-major <-> xt (tiles, d, SP_TILE), the last tile's missing samples 0.
   Blocks of 16 features x 16 samples, so both sides are read and written in whole cache lines. */
#if defined(__AVX__)
/* d[c * dl + r] = s[r * sl + c] for an 8 x 8 block, in registers (unpack, shuffle, swap halves). */
static inline void transpose8(const float *s, int64_t sl, float *d, int64_t dl)
{
    const __m256 r0 = _mm256_loadu_ps(s), r1 = _mm256_loadu_ps(s + sl), r2 = _mm256_loadu_ps(s + 2 * sl),
                 r3 = _mm256_loadu_ps(s + 3 * sl), r4 = _mm256_loadu_ps(s + 4 * sl), r5 = _mm256_loadu_ps(s + 5 * sl),
                 r6 = _mm256_loadu_ps(s + 6 * sl), r7 = _mm256_loadu_ps(s + 7 * sl);
    const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1),
                 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3),
                 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5),
                 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    const __m256 u0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0)), u1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2)),
                 u2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0)), u3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2)),
                 u4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0)), u5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2)),
                 u6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0)), u7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
    _mm256_storeu_ps(d, _mm256_permute2f128_ps(u0, u4, 0x20));
    _mm256_storeu_ps(d + dl, _mm256_permute2f128_ps(u1, u5, 0x20));
    _mm256_storeu_ps(d + 2 * dl, _mm256_permute2f128_ps(u2, u6, 0x20));
    _mm256_storeu_ps(d + 3 * dl, _mm256_permute2f128_ps(u3, u7, 0x20));
    _mm256_storeu_ps(d + 4 * dl, _mm256_permute2f128_ps(u0, u4, 0x31));
    _mm256_storeu_ps(d + 5 * dl, _mm256_permute2f128_ps(u1, u5, 0x31));
    _mm256_storeu_ps(d + 6 * dl, _mm256_permute2f128_ps(u2, u6, 0x31));
    _mm256_storeu_ps(d + 7 * dl, _mm256_permute2f128_ps(u3, u7, 0x31));
}
#endif

static void tile_block(const float *src, int64_t src_ld, float *dst, int64_t dst_ld, int64_t rows, int64_t cols)
{
#if defined(__AVX__)
    if (rows == 16 && cols == 16) {   /* a whole block: four 8 x 8 transposes in registers */
        for (int64_t a = 0; a < 16; a += 8)
            for (int64_t c = 0; c < 16; c += 8)
                transpose8(src + a * src_ld + c, src_ld, dst + c * dst_ld + a, dst_ld);
        return;
    }
#endif
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) dst[c * dst_ld + r] = src[r * src_ld + c];
}

int pyann_to_tiles(const float *x, float *xt, int64_t n, int64_t d)
{
    if (n < 0 || d < 0 || (n > 0 && d > 0 && (!x || !xt))) return PYANN_EINVAL;
    const int64_t tiles = (n + SP_TILE - 1) / SP_TILE;
    #pragma omp parallel for schedule(static) num_threads(pyann_team())
    for (int64_t t = 0; t < tiles; t++) {
        float *dst = xt + t * d * SP_TILE;
        const int64_t m1 = n - t * SP_TILE < SP_TILE ? n - t * SP_TILE : SP_TILE;
        for (int64_t m0 = 0; m0 < SP_TILE; m0 += 16)
            for (int64_t k0 = 0; k0 < d; k0 += 16) {
                const int64_t rows = m1 - m0 < 16 ? (m1 > m0 ? m1 - m0 : 0) : 16;
                const int64_t cols = d - k0 < 16 ? d - k0 : 16;
                tile_block(x + (t * SP_TILE + m0) * d + k0, d, dst + k0 * SP_TILE + m0, SP_TILE, rows, cols);
                for (int64_t r = rows; r < 16; r++)          /* padding samples */
                    for (int64_t c = 0; c < cols; c++) dst[(k0 + c) * SP_TILE + m0 + r] = 0.0f;
            }
    }
    return PYANN_OK;
}

int pyann_from_tiles(const float *xt, float *x, int64_t n, int64_t d)
{
    if (n < 0 || d < 0 || (n > 0 && d > 0 && (!x || !xt))) return PYANN_EINVAL;
    const int64_t tiles = (n + SP_TILE - 1) / SP_TILE;
    #pragma omp parallel for schedule(static) num_threads(pyann_team())
    for (int64_t t = 0; t < tiles; t++) {
        const float *src = xt + t * d * SP_TILE;
        const int64_t m1 = n - t * SP_TILE < SP_TILE ? n - t * SP_TILE : SP_TILE;
        for (int64_t k0 = 0; k0 < d; k0 += 16)
            for (int64_t m0 = 0; m0 < m1; m0 += 16) {
                const int64_t rows = d - k0 < 16 ? d - k0 : 16;
                const int64_t cols = m1 - m0 < 16 ? m1 - m0 : 16;
                tile_block(src + k0 * SP_TILE + m0, SP_TILE, x + (t * SP_TILE + m0) * d + k0, d, rows, cols);
            }
    }
    return PYANN_OK;
}

/* 5a. Dense layer, outputs [c0, c1) of one sample: whole vectors of VW outputs, then scalars. */
static void dense_outputs(const float *x, const float *w, const float *b, float *y, int64_t in,
                          int64_t out, int64_t c0, int64_t c1, int relu)
{
    int64_t c = c0;
    for (; c + VW <= c1; c += VW) {
        vec_t acc = b ? vload(b + c) : vzero();
        for (int64_t k = 0; k < in; k++) acc = vfma(vset1(x[k]), vload(w + k * out + c), acc);
        vstore(y + c, relu ? vrelu(acc) : acc);
    }
    for (; c < c1; c++) {
        float acc = b ? b[c] : 0.0f;
        for (int64_t k = 0; k < in; k++) acc += x[k] * w[k * out + c];
        y[c] = (relu && acc < 0.0f) ? 0.0f : acc;
    }
}

/* The outputs [c0, c1) of thread tid of nt, in whole vectors so that threads never share one. */
static void share(int64_t out, int tid, int nt, int64_t *c0, int64_t *c1)
{
    const int64_t vecs = (out + VW - 1) / VW;
    *c0 = vecs * tid / nt * VW;
    *c1 = vecs * (tid + 1) / nt * VW;
    if (*c1 > out) *c1 = out;
    if (*c0 > out) *c0 = out;
}

/* 5b. */
static int64_t zs_sample_any(const float *x, const int64_t *ptr, const uint16_t *i16,
                             const int32_t *i32, const float *val, const float *b, float *y,
                             int64_t in, int64_t out, int64_t c0, int64_t c1, int relu,
                             int32_t *nzk, float *nzv);
static int zs_bad(const float *x, const int64_t *ptr, const uint16_t *i16, const int32_t *i32,
                  const float *val, const float *y, int64_t n, int64_t in, int64_t out);

int pyann_sparse_mlp_per_sample(const float *x, float *y, int64_t n, int n_layers, const int64_t *sizes,
                                const float *const *ws, const int64_t *const *ptrs,
                                const int32_t *const *idxs, const float *const *vals,
                                const int64_t *const *iptrs, const uint16_t *const *iidx16,
                                const int32_t *const *iidx32, const float *const *ivals,
                                const float *const *bs, const uint8_t *relus, const uint8_t *zskips,
                                int split_images, int64_t *macs)
{
    if (n < 0 || n_layers < 1 || !sizes || !ws || !ptrs || !idxs || !vals || !relus || (n > 0 && (!x || !y)))
        return PYANN_EINVAL;
    int64_t width = 1;
    for (int l = 0; l <= n_layers; l++) {
        if (sizes[l] <= 0 || sizes[l] > INT32_MAX) return PYANN_EINVAL;
        if (sizes[l] > width) width = sizes[l];
    }
    for (int l = 0; l < n_layers; l++) {
        const int by_input = iptrs && iptrs[l];
        if (!ws[l] && !ptrs[l] && !by_input) return PYANN_EINVAL;
        if (zskips && zskips[l] && (!ws[l] || ptrs[l] || by_input)) return PYANN_EINVAL;
        if (by_input && (!iidx16 || !iidx32 || !ivals ||
                         zs_bad(x, iptrs[l], iidx16[l], iidx32[l], ivals[l], y, 0, sizes[l], sizes[l + 1])))
            return PYANN_EINVAL;
        if (!by_input && ptrs[l] && (ptrs[l][0] != 0 || (ptrs[l][sizes[l + 1]] > 0 && (!idxs[l] || !vals[l]))))
            return PYANN_EINVAL;
    }
    if (n == 0) return PYANN_OK;
    int64_t per_sample = 0;   /* multiply-adds of one sample through the layers of fixed work */
    for (int l = 0; l < n_layers; l++)
        if (!(iptrs && iptrs[l]) && !(zskips && zskips[l]))
            per_sample += ptrs[l] ? ptrs[l][sizes[l + 1]] : sizes[l] * sizes[l + 1];
    int64_t varying = 0;      /* the zero-skipping layers' executed multiply-adds */
    float *shared[2] = {malloc(sizeof(float) * (size_t)width), malloc(sizeof(float) * (size_t)width)};
    int fail = !shared[0] || !shared[1];
    if (!fail) {
        #pragma omp parallel num_threads(pyann_team()) reduction(+ : fail, varying)
        {
#ifdef _OPENMP
            const int me = omp_get_thread_num(), team = omp_get_num_threads();
#else
            const int me = 0, team = 1;
#endif
            const int tid = split_images ? 0 : me, nt = split_images ? 1 : team;
            float *own[2] = {NULL, NULL};
            float *const *h = shared;
            if (split_images) {
                own[0] = malloc(sizeof(float) * (size_t)width);
                own[1] = malloc(sizeof(float) * (size_t)width);
                h = own;
            }
            int32_t *nzk = malloc(sizeof(int32_t) * (size_t)(width + VW));
            float *nzv = malloc(sizeof(float) * (size_t)(width + VW));
            const int ok = (!split_images || (own[0] && own[1])) && nzk && nzv;
            if (!ok) fail = 1;
            const int64_t first = split_images ? me : 0, step = split_images ? team : 1;
            for (int64_t i = first; i < n; i += step)
                for (int l = 0; l < n_layers; l++) {
                    const int64_t in = sizes[l], out = sizes[l + 1];
                    const float *xin = l == 0 ? x + i * in : h[(l - 1) & 1];
                    float *yout = l == n_layers - 1 ? y + i * out : h[l & 1];
                    int64_t c0, c1;
                    share(out, tid, nt, &c0, &c1);
                    if (ok && iptrs && iptrs[l]) {
                        varying += zs_sample_any(xin, iptrs[l], iidx16[l], iidx32[l], ivals[l],
                                                 bs[l], yout, in, out, c0, c1, relus[l], nzk, nzv);
                    } else if (ok && zskips && zskips[l]) {
                        varying += pyann_dense_zeroskip_sample(xin, in, ws[l], bs[l], yout, out, relus[l],
                                                               tid, nt, nzk, nzv);
                    } else if (ok && ptrs[l]) {
                        for (int64_t j = c0; j < c1; j++)
                            yout[j] = row_dot(idxs[l], vals[l], ptrs[l][j], ptrs[l][j + 1], xin,
                                              bs[l] ? bs[l][j] : 0.0f, relus[l]);
                    } else if (ok) {
                        dense_outputs(xin, ws[l], bs[l], yout, in, out, c0, c1, relus[l]);
                    }
                    if (!split_images) {
                        #pragma omp barrier
                    }
                }
            free(own[0]);
            free(own[1]);
            free(nzk);
            free(nzv);
        }
    }
    free(shared[0]);
    free(shared[1]);
    if (fail) return PYANN_ENOMEM;
    if (macs) *macs += per_sample * n + varying;
    return PYANN_OK;
}

/* One tile through the blocked layer: x (in, SP_TILE) -> y (SP_R rows x SP_TILE per block row). */
static inline void blocked_tile(const int64_t *ptr, const int32_t *idx, const float *val, const float *b,
                                const float *x, float *y, int64_t rows, int relu)
{
    enum { NV = SP_TILE / VW };
    for (int64_t r = 0; r < rows; r++) {
        vec_t acc[SP_R][NV];
        for (int i = 0; i < SP_R; i++) {
            const vec_t bi = vset1(b ? b[r * SP_R + i] : 0.0f);
            for (int v = 0; v < NV; v++) acc[i][v] = bi;
        }
        for (int64_t p = ptr[r]; p < ptr[r + 1]; p++) {
            const float *xk = x + (int64_t)idx[p] * SP_TILE;
            vec_t xv[NV];
            for (int v = 0; v < NV; v++) xv[v] = vload(xk + v * VW);
            for (int i = 0; i < SP_R; i++) {
                const vec_t wv = vset1(val[p * SP_R + i]);
                for (int v = 0; v < NV; v++) acc[i][v] = vfma(wv, xv[v], acc[i][v]);
            }
        }
        for (int i = 0; i < SP_R; i++)
            for (int v = 0; v < NV; v++)
                vstore(y + (r * SP_R + i) * SP_TILE + v * VW, relu ? vrelu(acc[i][v]) : acc[i][v]);
    }
}

/* 6. Blocked: block row r (outputs SP_R r .. SP_R r + SP_R) keeps inputs idx[p], p in
   [ptr[r], ptr[r + 1]), with weights val[SP_R p + i] for output SP_R r + i. */
int pyann_sparse_blocked_tiled(const float *xt, const int64_t *ptr, const int32_t *idx,
                               const float *val, const float *b, float *yt, int64_t tiles,
                               int64_t in, int64_t out, int relu)
{
    const int64_t rows = out / SP_R;
    if (out % SP_R || sparse_bad(xt, ptr, idx, val, yt, tiles, in, rows)) return PYANN_EINVAL;
    #pragma omp parallel for schedule(static) num_threads(pyann_team())
    for (int64_t t = 0; t < tiles; t++)
        blocked_tile(ptr, idx, val, b, xt + t * in * SP_TILE, yt + t * out * SP_TILE, rows, relu);
    return PYANN_OK;
}

/* A thread's buffer of `rows` tile rows (rows x SP_TILE floats, 1 row at least), on a cache line:
   SP_TILE floats are 256 bytes, so the size is a multiple of the alignment, as C11 asks. */
static float *tile_buffer(int64_t rows)
{
    return aligned_alloc(64, (size_t)(rows > 0 ? rows : 1) * SP_TILE * sizeof(float));
}

/* 6'. Either kernel on activations gathered tile by tile from rows or columns (see the header). */
static void gather_tile(const float *x, int64_t ss, int64_t fs, int64_t n, int64_t in, int64_t t, float *dst)
{
    const int64_t s0 = t * SP_TILE, m1 = n - s0 < SP_TILE ? n - s0 : SP_TILE;
    if (ss == 1) {                                 /* columns: each input's samples contiguous */
        for (int64_t k = 0; k < in; k++) {
            const float *src = x + k * fs + s0;
            float *d = dst + k * SP_TILE;
            for (int64_t m = 0; m < m1; m++) d[m] = src[m];
            for (int64_t m = m1; m < SP_TILE; m++) d[m] = 0.0f;
        }
        return;
    }
    for (int64_t m0 = 0; m0 < SP_TILE; m0 += 16)   /* rows: 16 x 16 blocks, as pyann_to_tiles */
        for (int64_t k0 = 0; k0 < in; k0 += 16) {
            const int64_t rows = m1 - m0 < 16 ? (m1 > m0 ? m1 - m0 : 0) : 16;
            const int64_t cols = in - k0 < 16 ? in - k0 : 16;
            tile_block(x + (s0 + m0) * ss + k0, ss, dst + k0 * SP_TILE + m0, SP_TILE, rows, cols);
            for (int64_t r = rows; r < 16; r++)
                for (int64_t c = 0; c < cols; c++) dst[(k0 + c) * SP_TILE + m0 + r] = 0.0f;
        }
}

int pyann_sparse_tiled_strided(const float *x, int64_t ss, int64_t fs, const int64_t *ptr,
                               const int32_t *idx, const float *val, const float *b, float *yt,
                               int64_t n, int64_t in, int64_t out, int relu, int blocked)
{
    const int64_t rows = blocked ? out / SP_R : out;
    if ((blocked && out % SP_R) || sparse_bad(x, ptr, idx, val, yt, n, in, rows)) return PYANN_EINVAL;
    if (ss < 0 || fs < 0 || (ss != 1 && fs != 1)) return PYANN_EINVAL;
    const int64_t tiles = (n + SP_TILE - 1) / SP_TILE;
    if (tiles == 0 || out == 0) return PYANN_OK;
    int err = 0;
    #pragma omp parallel num_threads(pyann_team())
    {
        float *buf = tile_buffer(in);
        if (!buf) {
            #pragma omp atomic write
            err = 1;
        }
        #pragma omp for schedule(static)
        for (int64_t t = 0; t < tiles; t++) {
            if (!buf) continue;
            gather_tile(x, ss, fs, n, in, t, buf);
            if (blocked) blocked_tile(ptr, idx, val, b, buf, yt + t * out * SP_TILE, rows, relu);
            else linear_tile(ptr, idx, val, b, buf, yt + t * out * SP_TILE, out, relu);
        }
        free(buf);
    }
    return err ? PYANN_ENOMEM : PYANN_OK;
}

/* max(a, b) as NumPy's maximum: NaN if either is NaN. */
static inline float max_nan(float a, float b)
{
    if (a != a) return a;
    if (b != b) return b;
    return a > b ? a : b;
}

/* 6''. The same, gathering each tile from the padded images as im2col would lay it out.
   10. pool = 2 (with nchw): a 2x2 max-pool, stride 2 (floor), fused: positions are enumerated as
   (image, py, px, tap) with output position (2 py + tap / 2, 2 px + tap % 2), so each window's
   four positions sit side by side in the tile and its maximum is written, never the unpooled
   map (cnn3's first convolution: 1 GB of output for 10,000 images, then read back by the pool). */
int pyann_sparse_conv_tiled(const float *x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t k,
                            int64_t stride, int64_t dil, const int64_t *ptr, const int32_t *idx,
                            const float *val, const float *b, float *yt, int64_t out, int relu, int blocked,
                            int nchw, int pool)
{
    if (n < 0 || c < 0 || h < 0 || w < 0 || k < 1 || stride < 1 || dil < 1) return PYANN_EINVAL;
    if ((pool != 1 && pool != 2) || (pool == 2 && !nchw)) return PYANN_EINVAL;
    const int64_t span = dil * (k - 1) + 1;
    const int64_t ho = h >= span ? (h - span) / stride + 1 : 0, wo = w >= span ? (w - span) / stride + 1 : 0;
    if (n > 0 && (ho < pool || wo < pool)) return PYANN_EINVAL;
    const int64_t pho = ho / pool, pwo = wo / pool;        /* the map written: pooled, or as is */
    const int64_t in = c * k * k, npos = n * pho * pwo * pool * pool, rows = blocked ? out / SP_R : out;
    if ((blocked && out % SP_R) || sparse_bad(x, ptr, idx, val, yt, npos, in, rows)) return PYANN_EINVAL;
    const int64_t tiles = (npos + SP_TILE - 1) / SP_TILE;
    if (tiles == 0 || out == 0) return PYANN_OK;
    const int64_t taps = pool * pool, plane = pho * pwo;
    int err = 0;
    #pragma omp parallel num_threads(pyann_team())
    {
        float *buf = tile_buffer(in);
        float *ybuf = nchw ? tile_buffer(out) : NULL;
        if (!buf || (nchw && !ybuf)) {
            #pragma omp atomic write
            err = 1;
        }
        #pragma omp for schedule(static)
        for (int64_t t = 0; t < tiles; t++) {
            if (!buf || (nchw && !ybuf)) continue;
            int64_t base[SP_TILE];               /* each position's offset of its (ci, ky, kx) = 0 tap */
            const int64_t s0 = t * SP_TILE, m1 = npos - s0 < SP_TILE ? npos - s0 : SP_TILE;
            for (int64_t m = 0; m < m1; m++) {
                const int64_t q = (s0 + m) / taps, tap = (s0 + m) % taps, img = q / plane;
                const int64_t oy = q / pwo % pho * pool + tap / pool, ox = q % pwo * pool + tap % pool;
                base[m] = (img * c * h + oy * stride) * w + ox * stride;
            }
            for (int64_t ci = 0; ci < c; ci++)
                for (int64_t ky = 0; ky < k; ky++)
                    for (int64_t kx = 0; kx < k; kx++) {
                        const float *src = x + (ci * h + ky * dil) * w + kx * dil;
                        float *d = buf + ((ci * k + ky) * k + kx) * SP_TILE;
                        for (int64_t m = 0; m < m1; m++) d[m] = src[base[m]];
                        for (int64_t m = m1; m < SP_TILE; m++) d[m] = 0.0f;
                    }
            float *yo = nchw ? ybuf : yt + t * out * SP_TILE;
            if (blocked) blocked_tile(ptr, idx, val, b, buf, yo, rows, relu);
            else linear_tile(ptr, idx, val, b, buf, yo, out, relu);
            if (nchw)                            /* the tile's windows: runs within one image each */
                for (int64_t m = 0; m < m1;) {
                    const int64_t q = (s0 + m) / taps, img = q / plane, p = q % plane;
                    const int64_t run = plane - p < (m1 - m) / taps ? plane - p : (m1 - m) / taps;
                    for (int64_t f = 0; f < out; f++) {
                        float *dst = yt + (img * out + f) * plane + p;
                        const float *src = ybuf + f * SP_TILE + m;
                        if (pool == 1)
                            for (int64_t r = 0; r < run; r++) dst[r] = src[r];
                        else
                            for (int64_t r = 0; r < run; r++)
                                dst[r] = max_nan(max_nan(src[4 * r], src[4 * r + 1]),
                                                 max_nan(src[4 * r + 2], src[4 * r + 3]));
                    }
                    m += run * taps;
                }
        }
        free(buf);
        free(ybuf);
    }
    return err ? PYANN_ENOMEM : PYANN_OK;
}

/* ---- 7-9. Sparse x sparse: pruned w and the zero inputs of a ReLU skipped, both exactly ------
 * Layout (pyann/kernels.py pack_sparse_by_input): w kept by INPUT (CSR of w, i.e. CSC of w^T):
 * input k's kept outputs idx[ptr[k] .. ptr[k + 1]) strictly ascending, weights val[...]; idx is
 * uint16 (idx16) when out <= 65536, else int32 (idx32): exactly one of the two is given.
 * Per sample: y = b, then for each nonzero x[k] (NaN and Inf count as nonzero) y[idx[p]] +=
 * x[k] * val[p] over input k's row; ReLU last. Work: nnz(x) x (kept per input row). */

/* A row's entries p in [p0, p1) with idx[p] >= c (the rows are ascending): binary search. */
static inline int64_t zs_lower(const uint16_t *i16, const int32_t *i32, int64_t p0, int64_t p1, int64_t c)
{
    while (p0 < p1) {
        const int64_t mid = p0 + (p1 - p0) / 2;
        if ((i16 ? (int64_t)i16[mid] : (int64_t)i32[mid]) < c) p0 = mid + 1;
        else p1 = mid;
    }
    return p0;
}

/* y[idx[p]] += xk * val[p] for p in [p0, p1). The indices of one row are distinct, so a vector
   of them can be gathered, multiplied-added and scattered back (SPZ_GATHER) without conflicts.
   Measured (512 x 512 at 10 % weights, 15 % nonzero inputs, 1,000 samples, one thread, min of
   25 on the loaded 2-core Xeon): AVX-512 gather/scatter 2.83 ms, the scalar loop 3.55 ms. */
#ifndef SPZ_GATHER
#define SPZ_GATHER 1
#endif
static inline __attribute__((always_inline)) void
zs_scatter(const uint16_t *i16, const int32_t *i32, const float *val, int64_t p0, int64_t p1,
           float xk, float *y)
{
#if SPZ_GATHER && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
    const __m512 xv = _mm512_set1_ps(xk);
    int64_t p = p0;
    for (; p + 16 <= p1; p += 16) {
        const __m512i iv = i16 ? _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(i16 + p)))
                               : _mm512_loadu_si512(i32 + p);
        const __m512 yv = _mm512_fmadd_ps(xv, _mm512_loadu_ps(val + p), _mm512_i32gather_ps(iv, y, 4));
        _mm512_i32scatter_ps(y, iv, yv, 4);
    }
    if (p < p1) {   /* the last 1-15 entries: masked (a scalar tail measured slower) */
        const __mmask16 m = (__mmask16)((1u << (p1 - p)) - 1u);
        const __m512i iv = i16 ? _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, i16 + p))
                               : _mm512_maskz_loadu_epi32(m, i32 + p);
        const __m512 yv = _mm512_fmadd_ps(xv, _mm512_maskz_loadu_ps(m, val + p),
                                          _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, iv, y, 4));
        _mm512_mask_i32scatter_ps(y, m, iv, yv, 4);
    }
#else
    if (i16)
        for (int64_t p = p0; p < p1; p++) y[i16[p]] += xk * val[p];
    else
        for (int64_t p = p0; p < p1; p++) y[i32[p]] += xk * val[p];
#endif
}

/* 7. One sample, outputs [c0, c1) of it (all of them: c0 = 0, c1 = out): y = b, the scatter of
   each nonzero input's row (cut to [c0, c1) by binary search when that is not the whole row),
   ReLU. nzk / nzv: in + VW entries (the sample's nonzero list). Returns the multiply-adds. */
static inline __attribute__((always_inline)) int64_t
zs_sample(const float *x, const int64_t *ptr, const uint16_t *i16, const int32_t *i32,
          const float *val, const float *b, float *y, int64_t in, int64_t out, int64_t c0,
          int64_t c1, int relu, int32_t *nzk, float *nzv)
{
    for (int64_t c = c0; c < c1; c++) y[c] = b ? b[c] : 0.0f;
    if (c0 >= c1) return 0;
    int64_t nz = 0, k = 0;
    for (; k + VW <= in; k += VW) nz += vcompress_nonzero(x + k, (int32_t)k, nzk + nz, nzv + nz);
    for (; k < in; k++) {
        nzk[nz] = (int32_t)k;
        nzv[nz] = x[k];
        nz += (x[k] != 0.0f);
    }
    const int whole = c0 == 0 && c1 == out;
    int64_t macs = 0;
    for (int64_t q = 0; q < nz; q++) {
        const int64_t r = nzk[q];
        int64_t p0 = ptr[r], p1 = ptr[r + 1];
        if (!whole) {
            p0 = zs_lower(i16, i32, p0, p1, c0);
            p1 = zs_lower(i16, i32, p0, p1, c1);
        }
        zs_scatter(i16, i32, val, p0, p1, nzv[q], y);
        macs += p1 - p0;
    }
    if (relu)
        for (int64_t c = c0; c < c1; c++) y[c] = y[c] < 0.0f ? 0.0f : y[c];   /* NaN kept */
    return macs;
}

/* zs_sample specialised for each index width (the branch on i16 leaves the inner loops). */
static int64_t zs_sample_any(const float *x, const int64_t *ptr, const uint16_t *i16,
                             const int32_t *i32, const float *val, const float *b, float *y,
                             int64_t in, int64_t out, int64_t c0, int64_t c1, int relu,
                             int32_t *nzk, float *nzv)
{
    if (i16) return zs_sample(x, ptr, i16, NULL, val, b, y, in, out, c0, c1, relu, nzk, nzv);
    return zs_sample(x, ptr, NULL, i32, val, b, y, in, out, c0, c1, relu, nzk, nzv);
}

static int zs_bad(const float *x, const int64_t *ptr, const uint16_t *i16, const int32_t *i32,
                  const float *val, const float *y, int64_t n, int64_t in, int64_t out)
{
    if (n < 0 || in < 0 || out < 0 || in > INT32_MAX || out > INT32_MAX || !ptr) return 1;
    if (n > 0 && out > 0 && !y) return 1;
    if (n > 0 && in > 0 && !x) return 1;
    if (ptr[0] != 0 || ptr[in] < 0) return 1;
    if (i16 && i32) return 1;
    if (i16 && out > 65536) return 1;
    if (ptr[in] > 0 && (!val || (!i16 && !i32))) return 1;
    return 0;
}

/* 8. Batched: threads take runs of 16 samples (dynamic: nonzeros vary per sample); each sample
   scatters into its own output row, which no other thread touches.
   9. One sample at a time: every thread visits every sample and computes its share of the
   outputs (whole vectors, as 5); no barrier is needed between samples, as a thread reads only x
   and writes only its own outputs. */
int pyann_sparse_zeroskip(const float *x, const int64_t *ptr, const uint16_t *idx16,
                          const int32_t *idx32, const float *val, const float *b, float *y,
                          int64_t n, int64_t in, int64_t out, int relu, int one_at_a_time,
                          int64_t *macs)
{
    if (zs_bad(x, ptr, idx16, idx32, val, y, n, in, out)) return PYANN_EINVAL;
    if (n == 0 || out == 0) return PYANN_OK;
    int64_t total = 0, fail = 0;
    #pragma omp parallel num_threads(pyann_team()) reduction(+ : total, fail) if (n > 1 || ptr[in] >= 16384)
    {
#ifdef _OPENMP
        const int me = omp_get_thread_num(), team = omp_get_num_threads();
#else
        const int me = 0, team = 1;
#endif
        int32_t *nzk = malloc(sizeof(int32_t) * (size_t)(in + VW));
        float *nzv = malloc(sizeof(float) * (size_t)(in + VW));
        const int ok = nzk && nzv;
        if (!ok) fail = 1;
        if (one_at_a_time) {
            int64_t c0, c1;
            share(out, me, team, &c0, &c1);
            for (int64_t i = 0; ok && i < n; i++)
                total += zs_sample_any(x + i * in, ptr, idx16, idx32, val, b, y + i * out, in, out,
                                       c0, c1, relu, nzk, nzv);
        } else {
            #pragma omp for schedule(dynamic, 16)
            for (int64_t i = 0; i < n; i++)
                if (ok)
                    total += zs_sample_any(x + i * in, ptr, idx16, idx32, val, b, y + i * out, in,
                                           out, 0, out, relu, nzk, nzv);
        }
        free(nzk);
        free(nzv);
    }
    if (fail) return PYANN_ENOMEM;
    if (macs) *macs += total;
    return PYANN_OK;
}

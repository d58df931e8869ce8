/* pyann_kernels.h - the whole C API of pyann._kernels.
 *
 * cffi reads the declarations between the BEGIN/END markers (csrc/build_kernels.py), so they
 * must stay plain C declarations: no macros, no includes.
 *
 * Conventions for every kernel:
 *   - arrays are C-contiguous float32 (or int32/uint8 where said), batch-first;
 *   - a dense layer is y = x @ w + b with w stored (in_features, out_features), as in NumPy;
 *   - `relu` != 0 fuses max(y, 0) into the store;
 *   - the return value is PYANN_OK (0) or a negative PYANN_E* code; the Python wrapper
 *     (pyann/kernels.py) validates first, the C checks are a second line of defence so that a
 *     bad call is an error code and never a crash; PYANN_ENOMEM is a failed allocation;
 *   - NaN and Inf propagate as in the NumPy references (pyann/kernels.py `*_reference`), in every
 *     vector lane and in the scalar tails alike; zero skipping assumes finite weights (a skipped
 *     0 x Inf would be NaN), which the wrapper checks with pyann_all_finite;
 *   - parallel regions run pyann_num_threads() threads (see runtime.c).
 */
#ifndef PYANN_KERNELS_H
#define PYANN_KERNELS_H
#include <stdint.h>

/* BEGIN CFFI API */
#define PYANN_OK 0
#define PYANN_EINVAL -1
#define PYANN_ENOMEM -2

/* ---- runtime.c ---------------------------------------------------------------------------- */
/* Name of the vector ISA the kernels were compiled for: "avx512", "avx2" or "scalar". */
const char *pyann_isa(void);
/* Threads a parallel kernel will use: OpenMP's max threads, at most the processors this process
   may use and the cap below; 1 without OpenMP and in a child forked after OpenMP ran. */
int pyann_num_threads(void);
/* Cap the threads of every parallel kernel at n (0: no cap of the caller's). */
int pyann_set_max_threads(int n);
/* Called in a child process right after fork(): the kernels run on one thread there. */
void pyann_after_fork_in_child(void);
/* 1 when all n floats of a are finite, 0 when one is NaN or +-Inf. */
int pyann_all_finite(const float *a, int64_t n);

/* ---- dense.c: dense fp32 layer ------------------------------------------------------------ */
/* Batched: x (n, in), w (in, out), b (out) or NULL, y (n, out). Register-blocked, OpenMP over rows. */
int pyann_dense_batched(const float *x, const float *w, const float *b, float *y,
                        int64_t n, int64_t in, int64_t out, int relu);
/* One sample (GEMV): x (in), w (in, out), b (out) or NULL, y (out). OpenMP over output blocks. */
int pyann_dense_gemv(const float *x, const float *w, const float *b, float *y,
                     int64_t in, int64_t out, int relu);
/* One sample at a time over n rows, the loop inside C: the GEMV above applied to each row of
   x (n, in) in turn, both cores working on the same sample. */
int pyann_dense_per_sample(const float *x, const float *w, const float *b, float *y,
                           int64_t n, int64_t in, int64_t out, int relu);
/* Packed weights (GotoBLAS style): w (in, out) copied once into panels of
   pyann_dense_panel_width() columns (the last zero-padded), pyann_dense_packed_size(in, out)
   floats; then the batched layer from the packed copy: x (n, in), b (out) or NULL, y (n, out),
   the same result as pyann_dense_batched. The panel width depends on the ISA compiled for. */
int pyann_dense_panel_width(void);
int64_t pyann_dense_packed_size(int64_t in, int64_t out);
int pyann_dense_pack(const float *w, float *wp, int64_t in, int64_t out);
int pyann_dense_packed(const float *x, const float *wp, const float *b, float *y,
                       int64_t n, int64_t in, int64_t out, int relu);
/* ---- relu_predict.c: acti-masked and zero-skipping layers (paper 1, ReLU prediction) ------ */
/* One layer y = x @ w + b (+ ReLU), x (n, in), w (in, out), y (n, out), computing only part of it:
     mask, mask_mode: uint8, nonzero = compute the neuron. mask_mode 0: no mask (mask ignored);
       1: one per-neuron mask (out) shared by the batch; 2: one mask per sample (n, out).
       Masked outputs are written 0 (the "acti" decision of the paper).
     zero_skip != 0: skip input k of a sample when x[r, k] == 0 (exact; no prediction).
     one_at_a_time != 0: the samples are processed one after the other, the loop inside C, both
       threads splitting each sample's outputs; else batched (threads split the samples).
     scheme: batched zero skipping without a mask only (else ignored): 1 "list" (each sample's
       nonzeros alone: exactly the useful multiply-adds), 2 "union" (tiles of 4 samples share
       their union of nonzeros: more multiply-adds, each weight load feeding 4), 0 = choose by
       pyann_zeroskip_scheme.
     macs: NULL, or an int64 that the kernel increments by the multiply-adds it executed
       (whole vectors: a vector of 16 outputs is computed, or not, as a unit; union: every lane
       of a tile, the padding of a last partial tile included).
   mask_mode 0 with zero_skip 0 is a plain dense layer. */
int pyann_relu_layer(const float *x, const float *w, const float *b, float *y,
                     int64_t n, int64_t in, int64_t out,
                     const uint8_t *mask, int mask_mode, int zero_skip, int relu,
                     int one_at_a_time, int scheme, int64_t *macs);
/* The scheme (1 list, 2 union) that scheme 0 picks for x (n, in): by the share of nonzeros and of
   union lanes in the first 256 rows (union when its lanes are fewer than 2.1x the nonzeros). */
int pyann_zeroskip_scheme(const float *x, int64_t n, int64_t in);
/* A whole MLP, one sample at a time, the loop over samples and layers inside C (the paper's
   setting): layer l maps sizes[l] -> sizes[l + 1] with ws[l] (sizes[l], sizes[l + 1]) and bs[l]
   (or NULL), then ReLU where relus[l] != 0 (n_layers flags). x (n, sizes[0]), y (n, sizes[n_layers]).
   Per layer, optionally (NULL = none):
     masks[l]  a shared per-neuron mask (sizes[l + 1]) - the history predictor;
     pu[l], pv[l], ranks[l], margins[l]: a low-rank sign predictor - neuron j of sample i is
       computed when (h_i @ pu[l] @ pv[l])[j] + bs[l][j] > -margins[l], pu (sizes[l], rank),
       pv (rank, sizes[l + 1]); its multiply-adds are added to *pred_macs.
   zero_skip != 0 skips zero inputs in every layer. split_images == 0: both threads split each
   layer's outputs of the one sample and meet at a barrier after each layer (latency: one image
   at a time on the whole machine); != 0: each thread takes whole samples, no barrier
   (throughput). macs / pred_macs: NULL or counters (see above). */
int pyann_mlp_per_sample(const float *x, float *y, int64_t n, int n_layers, const int64_t *sizes,
                         const float *const *ws, const float *const *bs,
                         const uint8_t *const *masks,
                         const float *const *pu, const float *const *pv,
                         const int64_t *ranks, const float *margins, const uint8_t *relus,
                         int zero_skip, int split_images, int64_t *macs, int64_t *pred_macs);
/* ---- sparse.c: pruned linear layers (paper 2, connection pruning) ------------------------ */
/* w (in, out) packed by output neuron: row j's nonzeros w[idx[p], j] = val[p] for p in
   [ptr[j], ptr[j + 1]), ptr (out + 1) with ptr[0] = 0, idx int32 in [0, in).
   Batched, activations in tiles of PYANN_SPARSE_TILE samples: xt (tiles, in, 64) holds sample
   64 t + m, input k at xt[t][k][m]; yt (tiles, out, 64) likewise; threads split the tiles. */
#define PYANN_SPARSE_TILE 64
int pyann_sparse_linear_tiled(const float *xt, const int64_t *ptr, const int32_t *idx,
                              const float *val, const float *b, float *yt, int64_t tiles,
                              int64_t in, int64_t out, int relu);
/* Block-pruned w in blocks of PYANN_SPARSE_BLOCK outputs x 1 input: block row r (outputs 4r .. 4r + 3)
   keeps inputs idx[p], p in [ptr[r], ptr[r + 1]) (ptr has out / 4 + 1 entries), weights
   val[4 p + i] for output 4r + i (zeros inside a kept block stored as zeros); out % 4 == 0.
   Activations tiled as pyann_sparse_linear_tiled. */
#define PYANN_SPARSE_BLOCK 4
int pyann_sparse_blocked_tiled(const float *xt, const int64_t *ptr, const int32_t *idx,
                               const float *val, const float *b, float *yt, int64_t tiles,
                               int64_t in, int64_t out, int relu);
/* Either kernel (blocked = 0: pyann_sparse_linear_tiled's w, 1: pyann_sparse_blocked_tiled's) on
   activations NOT tiled: sample i, input k at x[i * ss + k * fs], with ss == 1 (columns, e.g.
   im2col's (in, n): fs = n) or fs == 1 (rows (n, in): ss = in); yt tiled (ceil(n / 64), out, 64).
   Each tile is gathered into a thread's own (in, 64) buffer and used at once, so the tiled copy
   of x is never written to memory (the same sums as to_tiles + the tiled kernel, bit for bit). */
int pyann_sparse_tiled_strided(const float *x, int64_t ss, int64_t fs, const int64_t *ptr,
                               const int32_t *idx, const float *val, const float *b, float *yt,
                               int64_t n, int64_t in, int64_t out, int relu, int blocked);
/* Either kernel as a convolution, its im2col columns never built: x (n, c, h, w) already padded,
   a square kernel k with stride and dilation; output positions (image, oy, ox) in that order,
   ho = (h - dil (k - 1) - 1) / stride + 1 and wo likewise (both >= 1, or n = 0); input row
   (ci, ky, kx) = ci k k + ky k + kx, as a Conv2d weight (F, C, K, K) reshaped to (F, C K K) and
   transposed; yt (ceil(n ho wo / 64), out, 64). Each tile's (c k k, 64) block is gathered into a
   thread's buffer from x directly: the same sums as im2col + pyann_sparse_tiled_strided.
   nchw = 1: y is written as images instead, (n, out, ho, wo), each tile's outputs scattered there.
   pool = 2 (nchw only; else 1): the images max-pooled 2x2 with stride 2 as they are written,
   y (n, out, ho / 2, wo / 2) (floor; NaN propagates, as NumPy's maximum). */
int pyann_sparse_conv_tiled(const float *x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t k,
                            int64_t stride, int64_t dil, const int64_t *ptr, const int32_t *idx,
                            const float *val, const float *b, float *yt, int64_t out, int relu, int blocked,
                            int nchw, int pool);
/* x (n, d) row-major -> xt (ceil(n / 64), d, 64), padding samples 0; and back (n rows of it). */
int pyann_to_tiles(const float *x, float *xt, int64_t n, int64_t d);
int pyann_from_tiles(const float *xt, float *x, int64_t n, int64_t d);
/* One sample at a time, the loop inside C: x (n, in), y (n, out); threads split each sample's outputs. */
int pyann_sparse_linear_per_sample(const float *x, const int64_t *ptr, const int32_t *idx,
                                   const float *val, const float *b, float *y, int64_t n,
                                   int64_t in, int64_t out, int relu);
/* Sparse x sparse: w (in, out) packed by INPUT: input k's kept outputs idx[p] for p in
   [ptr[k], ptr[k + 1]), strictly ascending, weights val[p]; ptr (in + 1), ptr[0] = 0; the
   indices are idx16 (uint16, out <= 65536) or idx32 (int32), exactly one of them non-NULL.
   y (n, out) = x (n, in) @ w + b (+ ReLU) where only the nonzero inputs of each sample are used
   (an input equal to 0 contributes nothing, even against an infinite weight; NaN and Inf inputs
   are nonzero and propagate through their kept weights). one_at_a_time != 0: the samples one
   after the other, the threads splitting each sample's outputs; else threads split the samples.
   macs: NULL or += the multiply-adds executed (per sample: the kept entries of its nonzero
   inputs' rows). */
int pyann_sparse_zeroskip(const float *x, const int64_t *ptr, const uint16_t *idx16,
                          const int32_t *idx32, const float *val, const float *b, float *y,
                          int64_t n, int64_t in, int64_t out, int relu, int one_at_a_time,
                          int64_t *macs);
/* A whole MLP one sample at a time, each layer sparse (ptrs[l] != NULL: ptrs/idxs/vals[l] as
   above), sparse x sparse (iptrs != NULL and iptrs[l] != NULL: iptrs/iidx16/iidx32/ivals[l] as
   pyann_sparse_zeroskip's ptr/idx16/idx32/val; iptrs may be NULL for none) or dense (ws[l]
   (sizes[l], sizes[l + 1]); where zskips != NULL and zskips[l] != 0, its zero inputs skipped as
   pyann_mlp_per_sample's zero_skip), bs[l] or NULL, ReLU where relus[l] != 0. split_images as in
   pyann_mlp_per_sample. macs: NULL or += the multiply-adds executed. */
int pyann_sparse_mlp_per_sample(const float *x, float *y, int64_t n, int n_layers, const int64_t *sizes,
                                const float *const *ws, const int64_t *const *ptrs,
                                const int32_t *const *idxs, const float *const *vals,
                                const int64_t *const *iptrs, const uint16_t *const *iidx16,
                                const int32_t *const *iidx32, const float *const *ivals,
                                const float *const *bs, const uint8_t *relus, const uint8_t *zskips,
                                int split_images, int64_t *macs);
/* END CFFI API */

#endif /* PYANN_KERNELS_H */

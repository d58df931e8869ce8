/* dense.c - dense fp32 layer y = x @ w + b (optionally ReLU), w stored (in, out).
 *
 * The NumPy reference is pyann.kernels.dense_reference; tests/test_kernels.py compares the two.
 *
 * Versions, each a step on the one before:
 *   1. scalar edge loop        - any rows/columns; used only for the ragged right edge (< VW columns)
 *   2. register tile           - rows x (nv * VW) outputs held in vector registers while k runs,
 *                                so each loaded w vector feeds `rows` FMAs (batched: 4 x 4 vectors)
 *   3. batched, OpenMP         - 64-row chunks per thread; within a chunk, column panels outer so
 *                                the w panel (in x 64 floats) stays in L2 across the chunk's rows
 *   4. GEMV / per-sample       - one row, 8 vectors per tile (8 independent FMA chains hide the
 *                                FMA latency); output blocks split over the threads, and in the
 *                                per-sample loop the parallel region is hoisted out of the loop
 *   5. packed (GotoBLAS/BLIS)  - w packed once, when a plan is built, into panels of PK_NR columns
 *                                so the micro-kernel reads it contiguously; x copied per thread
 *                                into PK_MR-row slivers; PK_MR x PK_NR outputs in registers
 *                                (AVX-512: 14 x 32 = 28 of 32 zmm) so each w load feeds 14 FMAs
 *                                and each x broadcast 2; k blocked by PK_KC so a w panel stays in
 *                                L1; tasks of PK_MC rows handed out dynamically (a busy core
 *                                takes fewer). ~1.0x OpenBLAS at 1 thread (version 3: ~0.5x)
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include "pyann_kernels.h"
#include "runtime.h"
#include "simd.h"

#define ROW_TILE 4      /* rows of x per register tile in the batched kernel */
#define BATCH_NV 4      /* vectors of outputs per tile, batched */
#define GEMV_NV 8       /* vectors of outputs per tile, one sample */
#define ROW_CHUNK 64    /* rows handed to a thread at a time, batched */
#define GEMV_PARALLEL_MIN 32768  /* in*out below this: threads cost more than they save */

/* 1. Plain loop over a rectangle of outputs; the right edge where fewer than VW columns remain. */
static void dense_edge(const float *x, const float *w, const float *b, float *y,
                       int64_t r0, int64_t r1, int64_t c0, int64_t c1,
                       int64_t in, int64_t out, int relu)
{
    for (int64_t r = r0; r < r1; r++)
        for (int64_t c = c0; c < c1; c++) {
            float acc = b ? b[c] : 0.0f;
            for (int64_t k = 0; k < in; k++) acc += x[r * in + k] * w[k * out + c];
            y[r * out + c] = (relu && acc < 0.0f) ? 0.0f : acc;
        }
}

/* 2. Register tile: outputs y[r0 .. r0+rows, c0 .. c0+nv*VW]. `rows` and `nv` are compile-time
   constants at every call site, so after inlining the loops unroll and acc lives in registers. */
static inline __attribute__((always_inline)) void
dense_tile(const float *x, const float *w, const float *b, float *y,
           int64_t r0, int64_t c0, int64_t in, int64_t out, int relu,
           const int rows, const int nv)
{
    vec_t acc[ROW_TILE][GEMV_NV];
    for (int v = 0; v < nv; v++) {
        vec_t init = b ? vload(b + c0 + v * VW) : vzero();
        for (int r = 0; r < rows; r++) acc[r][v] = init;
    }
    const float *xr = x + r0 * in;
    const float *wk = w + c0;
    for (int64_t k = 0; k < in; k++, wk += out) {
        vec_t wv[GEMV_NV];
        for (int v = 0; v < nv; v++) wv[v] = vload(wk + v * VW);
        for (int r = 0; r < rows; r++) {
            vec_t xb = vset1(xr[r * in + k]);
            for (int v = 0; v < nv; v++) acc[r][v] = vfma(xb, wv[v], acc[r][v]);
        }
    }
    for (int r = 0; r < rows; r++)
        for (int v = 0; v < nv; v++) {
            vec_t o = relu ? vrelu(acc[r][v]) : acc[r][v];
            vstore(y + (r0 + r) * out + c0 + v * VW, o);
        }
}

/* 3a. All outputs of rows [r0, r1): column panels outer, register tiles inner. */
static void dense_rows(const float *x, const float *w, const float *b, float *y,
                       int64_t r0, int64_t r1, int64_t in, int64_t out, int relu)
{
    const int64_t panel = BATCH_NV * VW;
    int64_t c = 0;
    for (; c + panel <= out; c += panel) {
        int64_t r = r0;
        for (; r + ROW_TILE <= r1; r += ROW_TILE)
            dense_tile(x, w, b, y, r, c, in, out, relu, ROW_TILE, BATCH_NV);
        for (; r < r1; r++) dense_tile(x, w, b, y, r, c, in, out, relu, 1, BATCH_NV);
    }
    for (; c + VW <= out; c += VW) {
        int64_t r = r0;
        for (; r + ROW_TILE <= r1; r += ROW_TILE)
            dense_tile(x, w, b, y, r, c, in, out, relu, ROW_TILE, 1);
        for (; r < r1; r++) dense_tile(x, w, b, y, r, c, in, out, relu, 1, 1);
    }
    if (c < out) dense_edge(x, w, b, y, r0, r1, c, out, in, out, relu);
}

static int bad_args(const void *x, const void *w, const void *y, int64_t n, int64_t in, int64_t out)
{
    if (n < 0 || in < 0 || out < 0) return 1;
    if (n > 0 && out > 0 && y == NULL) return 1;
    if (n > 0 && in > 0 && x == NULL) return 1;
    if (in > 0 && out > 0 && w == NULL) return 1;
    return 0;
}

/* 3b. Batched. */
int pyann_dense_batched(const float *x, const float *w, const float *b, float *y,
                        int64_t n, int64_t in, int64_t out, int relu)
{
    if (bad_args(x, w, y, n, in, out)) return PYANN_EINVAL;
    const int64_t chunks = (n + ROW_CHUNK - 1) / ROW_CHUNK;
    #pragma omp parallel for schedule(static) num_threads(pyann_team())
    for (int64_t ch = 0; ch < chunks; ch++) {
        const int64_t r0 = ch * ROW_CHUNK;
        const int64_t r1 = r0 + ROW_CHUNK < n ? r0 + ROW_CHUNK : n;
        dense_rows(x, w, b, y, r0, r1, in, out, relu);
    }
    return PYANN_OK;
}

/* 4a. One GEMV task: output block `task` (GEMV_NV vectors wide); the last task takes the
   remainder that does not fill a block. */
static void gemv_task(const float *x, const float *w, const float *b, float *y,
                      int64_t in, int64_t out, int relu, int64_t task)
{
    const int64_t block = GEMV_NV * VW;
    int64_t c = task * block;
    if (c + block <= out) {
        dense_tile(x, w, b, y, 0, c, in, out, relu, 1, GEMV_NV);
        return;
    }
    for (; c + VW <= out; c += VW) dense_tile(x, w, b, y, 0, c, in, out, relu, 1, 1);
    if (c < out) dense_edge(x, w, b, y, 0, 1, c, out, in, out, relu);
}

static int64_t gemv_tasks(int64_t out)
{
    const int64_t block = GEMV_NV * VW;
    return out / block + (out % block != 0);
}

int pyann_dense_gemv(const float *x, const float *w, const float *b, float *y,
                     int64_t in, int64_t out, int relu)
{
    if (bad_args(x, w, y, 1, in, out)) return PYANN_EINVAL;
    const int64_t tasks = gemv_tasks(out);
    #pragma omp parallel for schedule(static) if (in * out >= GEMV_PARALLEL_MIN) num_threads(pyann_team())
    for (int64_t t = 0; t < tasks; t++) gemv_task(x, w, b, y, in, out, relu, t);
    return PYANN_OK;
}

/* 4b. Per sample: both threads work on sample i, meet at the barrier, then go on to i + 1. */
int pyann_dense_per_sample(const float *x, const float *w, const float *b, float *y,
                           int64_t n, int64_t in, int64_t out, int relu)
{
    if (bad_args(x, w, y, n, in, out)) return PYANN_EINVAL;
    const int64_t tasks = gemv_tasks(out);
    #pragma omp parallel if (in * out >= GEMV_PARALLEL_MIN) num_threads(pyann_team())
    for (int64_t i = 0; i < n; i++) {
        #pragma omp for schedule(static)
        for (int64_t t = 0; t < tasks; t++)
            gemv_task(x + i * in, w, b, y + i * out, in, out, relu, t);
    }
    return PYANN_OK;
}

/* ---- 5. packed weights ---------------------------------------------------------------------- */

/* Register block: PK_MR rows x PK_NV vectors, as many accumulators as the ISA has registers for
   while leaving PK_NV for the w vectors and one for the broadcast x (AVX-512: 32 zmm, AVX2: 16 ymm). */
#if VW == 16
#define PK_MR 14
#define PK_NV 2
#elif VW == 8
#define PK_MR 6
#define PK_NV 2
#else
#define PK_MR 4
#define PK_NV 4
#endif
#define PK_NR (PK_NV * VW)
/* Cache blocking (AVX-512 sizes; -DPK_KC=.. -DPK_MB=.. to tune): a kc x nr block of a w panel
   (256 x 32 floats, 32 KB) stays in L1 (48 KB here) while the task's slivers pass over it, and
   the task's packed x (mc x kc, 56 x 256 floats, 57 KB) stays in L2 while the panels pass over
   it. Measured at 1 thread on 784x512 and 512x512, batch 10,000: kc 192..400 and mc 28..112
   rows are within ~3 % of each other; mc 56 was the fastest on 512x512. */
#ifndef PK_KC
#define PK_KC 256
#endif
#ifndef PK_MB
#define PK_MB 4         /* slivers per task */
#endif
#define PK_MC (PK_MR * PK_MB)

int pyann_dense_panel_width(void) { return PK_NR; }

int64_t pyann_dense_packed_size(int64_t in, int64_t out)
{
    if (in < 0 || out < 0) return PYANN_EINVAL;
    return (out + PK_NR - 1) / PK_NR * in * PK_NR;
}

/* Packed layout: panel j (columns j*NR .. j*NR + NR) is wp[j*in*NR ..], row k of it at
   wp[(j*in + k)*NR + c] = w[k, j*NR + c], the columns past `out` in the last panel zero. A kc
   block of any panel is then contiguous, whatever kc the kernel picks. */
int pyann_dense_pack(const float *w, float *wp, int64_t in, int64_t out)
{
    if (in < 0 || out < 0 || (in > 0 && out > 0 && (!w || !wp))) return PYANN_EINVAL;
    const int64_t panels = (out + PK_NR - 1) / PK_NR;
    for (int64_t j = 0; j < panels; j++) {
        const int64_t c0 = j * PK_NR, cols = out - c0 < PK_NR ? out - c0 : PK_NR;
        for (int64_t k = 0; k < in; k++) {
            float *dst = wp + (j * in + k) * PK_NR;
            memcpy(dst, w + k * out + c0, sizeof(float) * (size_t)cols);
            for (int64_t c = cols; c < PK_NR; c++) dst[c] = 0.0f;
        }
    }
    return PYANN_OK;
}

/* x rows [r0, r0 + rows) x columns [k0, k0 + kc) -> slivers of PK_MR rows, sliver s at
   xs[s*MR*KC ..], row r of it at [r*KC ..]: each row one memcpy (a transposed layout would let
   the broadcasts walk one stream, but its scalar stores cost ~10 % of the layer), and with the
   compile-time row stride KC the micro-kernel addresses all MR rows from one pointer. */
static void pk_pack_x(const float *x, float *xs, int64_t r0, int64_t rows, int64_t k0, int64_t kc, int64_t in)
{
    for (int64_t r = 0; r < rows; r++) memcpy(xs + r * PK_KC, x + (r0 + r) * in + k0, sizeof(float) * (size_t)kc);
}

/* The micro-kernel: y tile (`rows` x PK_NR, row stride ldy) = bias (first) or itself, plus
   xs @ wp over kc, ReLU on the last k block. `rows` is PK_MR, or 8, 4, 2, 1 for the last sliver
   (see pk_rows), a constant at every call site so that acc lives in registers. */
static inline __attribute__((always_inline)) void
pk_micro(int64_t kc, const float *restrict xs, const float *restrict wp, const float *b,
         float *y, int64_t ldy, int first, int last, int relu, const int rows)
{
    vec_t acc[PK_MR][PK_NV];
    if (first) {
        for (int v = 0; v < PK_NV; v++) {
            const vec_t init = b ? vload(b + v * VW) : vzero();
            for (int r = 0; r < rows; r++) acc[r][v] = init;
        }
    } else {
        for (int r = 0; r < rows; r++)
            for (int v = 0; v < PK_NV; v++) acc[r][v] = vload(y + r * ldy + v * VW);
    }
    for (int64_t k = 0; k < kc; k++) {
        vec_t wv[PK_NV];
        for (int v = 0; v < PK_NV; v++) wv[v] = vload(wp + k * PK_NR + v * VW);
        for (int r = 0; r < rows; r++) {
            const vec_t xb = vset1(xs[r * PK_KC + k]);
            for (int v = 0; v < PK_NV; v++) acc[r][v] = vfma(xb, wv[v], acc[r][v]);
        }
    }
    for (int r = 0; r < rows; r++)
        for (int v = 0; v < PK_NV; v++)
            vstore(y + r * ldy + v * VW, (last && relu) ? vrelu(acc[r][v]) : acc[r][v]);
}

/* A last sliver of rs < PK_MR rows as 8 + 4 + 2 + 1-row blocks (each at most once): a 14-row
   block for one row would do 14x the work, and a batch of 1 is the common small case. */
static void pk_rows(int64_t kc, const float *xs, const float *wp, const float *b, float *y, int64_t ldy,
                    int64_t rs, int first, int last, int relu)
{
    int64_t r = 0;
#if PK_MR > 8
    if (rs - r >= 8) { pk_micro(kc, xs + r * PK_KC, wp, b, y + r * ldy, ldy, first, last, relu, 8); r += 8; }
#endif
#if PK_MR > 4
    if (rs - r >= 4) { pk_micro(kc, xs + r * PK_KC, wp, b, y + r * ldy, ldy, first, last, relu, 4); r += 4; }
#endif
    if (rs - r >= 2) { pk_micro(kc, xs + r * PK_KC, wp, b, y + r * ldy, ldy, first, last, relu, 2); r += 2; }
    if (rs - r >= 1) pk_micro(kc, xs + r * PK_KC, wp, b, y + r * ldy, ldy, first, last, relu, 1);
}

/* A tile cut by the bottom (rows < MR) or right (cols < NR) edge; the right edge through a
   full-width buffer, as the panel's padding columns are computed too. */
static void pk_edge(int64_t kc, const float *xs, const float *wp, const float *b, float *y,
                    int64_t ldy, int64_t rows, int64_t cols, int first, int last, int relu)
{
    if (cols == PK_NR) {
        pk_rows(kc, xs, wp, b, y, ldy, rows, first, last, relu);
        return;
    }
    float tile[PK_MR * PK_NR], bias[PK_NR];
    if (first && b) {
        memset(bias, 0, sizeof bias);
        memcpy(bias, b, sizeof(float) * (size_t)cols);
    }
    if (!first)
        for (int64_t r = 0; r < rows; r++) {
            memcpy(tile + r * PK_NR, y + r * ldy, sizeof(float) * (size_t)cols);
            memset(tile + r * PK_NR + cols, 0, sizeof(float) * (size_t)(PK_NR - cols));
        }
    const float *tb = first && b ? bias : NULL;
    if (rows == PK_MR)
        pk_micro(kc, xs, wp, tb, tile, PK_NR, first, last, relu, PK_MR);
    else
        pk_rows(kc, xs, wp, tb, tile, PK_NR, rows, first, last, relu);
    for (int64_t r = 0; r < rows; r++) memcpy(y + r * ldy, tile + r * PK_NR, sizeof(float) * (size_t)cols);
}

int pyann_dense_packed(const float *x, const float *wp, const float *b, float *y,
                       int64_t n, int64_t in, int64_t out, int relu)
{
    if (bad_args(x, wp, y, n, in, out)) return PYANN_EINVAL;
    if (n == 0 || out == 0) return PYANN_OK;
    const int64_t panels = (out + PK_NR - 1) / PK_NR;
    const int64_t kblocks = in > 0 ? (in + PK_KC - 1) / PK_KC : 1;   /* in 0: one pass, bias only */
    const int64_t kc_max = (in + kblocks - 1) / kblocks;               /* even blocks, no thin tail */
    const int64_t tasks = (n + PK_MC - 1) / PK_MC;
    int fail = 0;
    #pragma omp parallel reduction(| : fail) num_threads(pyann_team())
    {
        /* the size a multiple of the alignment, as C11's aligned_alloc asks */
        float *xs = aligned_alloc(64, (sizeof(float) * PK_MC * PK_KC + 63) / 64 * 64);
        if (!xs) fail = 1;
        #pragma omp for schedule(dynamic, 1)
        for (int64_t t = 0; t < tasks; t++) {
            if (!xs) continue;
            const int64_t r0 = t * PK_MC, rows = n - r0 < PK_MC ? n - r0 : PK_MC;
            for (int64_t kb = 0; kb < kblocks; kb++) {
                const int64_t k0 = kb * kc_max, kc = in - k0 < kc_max ? in - k0 : kc_max;
                if (kc > 0) pk_pack_x(x, xs, r0, rows, k0, kc, in);
                const int first = kb == 0, last = kb == kblocks - 1;
                for (int64_t j = 0; j < panels; j++) {
                    const int64_t c0 = j * PK_NR, cols = out - c0 < PK_NR ? out - c0 : PK_NR;
                    const float *wpj = wp + (j * in + k0) * PK_NR;
                    const float *bj = b ? b + c0 : NULL;
                    for (int64_t s = 0; s * PK_MR < rows; s++) {
                        const int64_t rs = rows - s * PK_MR < PK_MR ? rows - s * PK_MR : PK_MR;
                        float *yt = y + (r0 + s * PK_MR) * out + c0;
                        const float *xss = xs + s * PK_MR * PK_KC;
                        if (rs == PK_MR && cols == PK_NR)
                            pk_micro(kc, xss, wpj, bj, yt, out, first, last, relu, PK_MR);
                        else
                            pk_edge(kc, xss, wpj, bj, yt, out, rs, cols, first, last, relu);
                    }
                }
            }
        }
        free(xs);
    }
    return fail ? PYANN_ENOMEM : PYANN_OK;
}

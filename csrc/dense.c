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
 */
#include <stddef.h>
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

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
 *     bad call is an error code and never a crash.
 */
#ifndef PYANN_KERNELS_H
#define PYANN_KERNELS_H
#include <stdint.h>

/* BEGIN CFFI API */
#define PYANN_OK 0
#define PYANN_EINVAL -1

/* Name of the vector ISA the kernels were compiled for: "avx512", "avx2" or "scalar". */
const char *pyann_isa(void);
/* Number of OpenMP threads a parallel kernel will use (1 when built without OpenMP). */
int pyann_num_threads(void);

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
/* END CFFI API */

#endif /* PYANN_KERNELS_H */

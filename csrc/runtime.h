/* runtime.h - what the kernel files share that is not part of the C API (see runtime.c). */
#ifndef PYANN_RUNTIME_H
#define PYANN_RUNTIME_H

/* Threads every parallel region of a kernel asks for: `#pragma omp parallel num_threads(pyann_team())`. */
int pyann_team(void);

/* relu_predict.c 3, for sparse.c's whole-MLP loop: one sample through a dense layer w (in, out)
   with its zero inputs skipped, the output vectors v = tid, tid + nt, ... of thread tid (nt = 1:
   all). idx, val: scratch of in + VW entries. Returns the multiply-adds executed. */
#include <stdint.h>
int64_t pyann_dense_zeroskip_sample(const float *x, int64_t in, const float *w, const float *b,
                                    float *y, int64_t out, int relu, int tid, int nt,
                                    int32_t *idx, float *val);

#endif /* PYANN_RUNTIME_H */

/* runtime.c - what every kernel family shares: the ISA name, the size of a parallel team, and
 * the value checks the Python wrapper runs before a kernel whose result depends on them.
 *
 * The team size is OpenMP's max threads, capped twice:
 *   - at the processors this process may run on: libgomp starts every thread OMP_NUM_THREADS asks
 *     for, and ~70000 of them crash it; more threads than cores never helps these kernels;
 *   - at one thread in a child made by fork() after the parent ran a parallel region: libgomp's
 *     thread pool does not survive fork, and a child that enters a region of more than one thread
 *     waits forever for pool threads that are not there (pyann/kernels.py calls
 *     pyann_after_fork_in_child from os.register_at_fork).
 */
#include "pyann_kernels.h"
#include "runtime.h"
#include "simd.h"
#ifdef _OPENMP
#include <omp.h>
#endif

static int team_cap = 0;        /* 0: no cap set by the caller */
static int forked_child = 0;

const char *pyann_isa(void) { return PYANN_ISA; }

int pyann_team(void)
{
#ifdef _OPENMP
    if (forked_child) return 1;
    int n = omp_get_max_threads();
    const int procs = omp_get_num_procs();
    if (n > procs) n = procs;
    if (team_cap > 0 && n > team_cap) n = team_cap;
    return n < 1 ? 1 : n;
#else
    return 1;
#endif
}

int pyann_num_threads(void) { return pyann_team(); }

int pyann_set_max_threads(int n)
{
    if (n < 0) return PYANN_EINVAL;
    team_cap = n;
    return PYANN_OK;
}

void pyann_after_fork_in_child(void) { forked_child = 1; }

/* x * 0 is 0 for every finite x and NaN for Inf and NaN: one FMA a vector, no branch. */
int pyann_all_finite(const float *a, int64_t n)
{
    if (n < 0 || (n > 0 && !a)) return PYANN_EINVAL;
    vec_t acc = vzero();
    const vec_t zero = vzero();
    int64_t i = 0;
    for (; i + VW <= n; i += VW) acc = vfma(vload(a + i), zero, acc);
    float s = vsum(acc);
    for (; i < n; i++) s += a[i] * 0.0f;
    return s == 0.0f;
}

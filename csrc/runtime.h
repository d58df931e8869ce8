/* runtime.h - what the kernel files share that is not part of the C API (see runtime.c). */
#ifndef PYANN_RUNTIME_H
#define PYANN_RUNTIME_H

/* Threads every parallel region of a kernel asks for: `#pragma omp parallel num_threads(pyann_team())`. */
int pyann_team(void);

#endif /* PYANN_RUNTIME_H */

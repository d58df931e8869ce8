/* simd.h - the one place that knows the vector ISA.
 *
 * Kernels are written once against this small vocabulary (vec_t, VW lanes, load/store/fma/...)
 * and compile to AVX-512, AVX2+FMA or plain scalar C, whichever the compiler is allowed to
 * target (-march=native by default, PYANN_PORTABLE=1 for a build that runs on any x86-64).
 * Loads and stores are unaligned: NumPy gives no alignment promise beyond the element size.
 */
#ifndef PYANN_SIMD_H
#define PYANN_SIMD_H

#if defined(__AVX512F__)
#include <immintrin.h>
#include <stdint.h>
#define PYANN_ISA "avx512"
#define VW 16
typedef __m512 vec_t;
static inline vec_t vzero(void) { return _mm512_setzero_ps(); }
static inline vec_t vset1(float a) { return _mm512_set1_ps(a); }
static inline vec_t vload(const float *p) { return _mm512_loadu_ps(p); }
static inline void vstore(float *p, vec_t v) { _mm512_storeu_ps(p, v); }
static inline vec_t vfma(vec_t a, vec_t b, vec_t c) { return _mm512_fmadd_ps(a, b, c); }
static inline vec_t vadd(vec_t a, vec_t b) { return _mm512_add_ps(a, b); }
/* max(0, v), NaN kept as NumPy's maximum keeps it: MAXPS returns its second operand when either
   is NaN, so v must be the second. */
static inline vec_t vrelu(vec_t v) { return _mm512_max_ps(_mm512_setzero_ps(), v); }
static inline float vsum(vec_t a) { return _mm512_reduce_add_ps(a); }
/* The nonzero lanes of x[0 .. VW) packed to the front of val, their indices k + lane to the front
   of idx; returns how many. Writes all VW lanes of both (the caller leaves VW of slack): a
   compress into a register and a full store is several times faster than a masked compress-store. */
static inline int vcompress_nonzero(const float *x, int32_t k, int32_t *idx, float *val)
{
    const __m512 v = _mm512_loadu_ps(x);
    const __mmask16 m = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_NEQ_UQ);   /* NaN counts */
    const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    _mm512_storeu_ps(val, _mm512_maskz_compress_ps(m, v));
    _mm512_storeu_si512(idx, _mm512_maskz_compress_epi32(m, _mm512_add_epi32(lanes, _mm512_set1_epi32(k))));
    return __builtin_popcount((unsigned)m);
}
/* The union of t rows' nonzeros (t <= 4) over lanes x_r[0 .. VW): the lanes where any row is
   nonzero, each row's values there packed to the front of vals[r], the indices k + lane to the
   front of idx; returns how many. Whole vectors are written, as above. */
static inline int vcompress_union(const float *const *x, int t, int32_t k, int32_t *idx, float *const *vals)
{
    __m512 v[4];
    __mmask16 m = 0;
    for (int r = 0; r < t; r++) {
        v[r] = _mm512_loadu_ps(x[r]);
        m |= _mm512_cmp_ps_mask(v[r], _mm512_setzero_ps(), _CMP_NEQ_UQ);
    }
    const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (int r = 0; r < t; r++) _mm512_storeu_ps(vals[r], _mm512_maskz_compress_ps(m, v[r]));
    _mm512_storeu_si512(idx, _mm512_maskz_compress_epi32(m, _mm512_add_epi32(lanes, _mm512_set1_epi32(k))));
    return __builtin_popcount((unsigned)m);
}

#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define PYANN_ISA "avx2"
#define VW 8
typedef __m256 vec_t;
static inline vec_t vzero(void) { return _mm256_setzero_ps(); }
static inline vec_t vset1(float a) { return _mm256_set1_ps(a); }
static inline vec_t vload(const float *p) { return _mm256_loadu_ps(p); }
static inline void vstore(float *p, vec_t v) { _mm256_storeu_ps(p, v); }
static inline vec_t vfma(vec_t a, vec_t b, vec_t c) { return _mm256_fmadd_ps(a, b, c); }
static inline vec_t vadd(vec_t a, vec_t b) { return _mm256_add_ps(a, b); }
static inline vec_t vrelu(vec_t v) { return _mm256_max_ps(_mm256_setzero_ps(), v); }   /* NaN kept, as above */
static inline float vsum(vec_t a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

#else
/* Scalar fallback: one lane. The kernels' vector loops then become plain loops. */
#define PYANN_ISA "scalar"
#define VW 1
typedef float vec_t;
static inline vec_t vzero(void) { return 0.0f; }
static inline vec_t vset1(float a) { return a; }
static inline vec_t vload(const float *p) { return *p; }
static inline void vstore(float *p, vec_t v) { *p = v; }
static inline vec_t vfma(vec_t a, vec_t b, vec_t c) { return a * b + c; }
static inline vec_t vadd(vec_t a, vec_t b) { return a + b; }
static inline vec_t vrelu(vec_t v) { return 0.0f > v ? 0.0f : v; }   /* NaN kept: the test is false */
static inline float vsum(vec_t a) { return a; }
#endif

#ifndef __AVX512F__
/* vcompress_nonzero without a compress instruction: branchless, one lane at a time. */
static inline int vcompress_nonzero(const float *x, int32_t k, int32_t *idx, float *val)
{
    int nz = 0;
    for (int j = 0; j < VW; j++) {
        idx[nz] = k + j;
        val[nz] = x[j];
        nz += (x[j] != 0.0f);
    }
    return nz;
}
static inline int vcompress_union(const float *const *x, int t, int32_t k, int32_t *idx, float *const *vals)
{
    int nz = 0;
    for (int j = 0; j < VW; j++) {
        int any = 0;
        for (int r = 0; r < t; r++) {
            vals[r][nz] = x[r][j];
            any |= (x[r][j] != 0.0f);
        }
        idx[nz] = k + j;
        nz += any;
    }
    return nz;
}
#endif

#endif /* PYANN_SIMD_H */

// Distance kernels with runtime dispatch: AVX-512F, AVX2+FMA, or plain C.
#include "cvq_support.h"
#include <math.h>

static float dot_generic(const float *a, const float *b, size_t n) {
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += a[i] * b[i];
        s1 += a[i + 1] * b[i + 1];
        s2 += a[i + 2] * b[i + 2];
        s3 += a[i + 3] * b[i + 3];
    }
    for (; i < n; i++) s0 += a[i] * b[i];
    return (s0 + s1) + (s2 + s3);
}

static float l2sq_generic(const float *a, const float *b, size_t n) {
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        float d0 = a[i] - b[i], d1 = a[i + 1] - b[i + 1], d2 = a[i + 2] - b[i + 2], d3 = a[i + 3] - b[i + 3];
        s0 += d0 * d0;
        s1 += d1 * d1;
        s2 += d2 * d2;
        s3 += d3 * d3;
    }
    for (; i < n; i++) {
        float d = a[i] - b[i];
        s0 += d * d;
    }
    return (s0 + s1) + (s2 + s3);
}

static float l1_generic(const float *a, const float *b, size_t n) {
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += __builtin_fabsf(a[i] - b[i]);
        s1 += __builtin_fabsf(a[i + 1] - b[i + 1]);
        s2 += __builtin_fabsf(a[i + 2] - b[i + 2]);
        s3 += __builtin_fabsf(a[i + 3] - b[i + 3]);
    }
    for (; i < n; i++) s0 += __builtin_fabsf(a[i] - b[i]);
    return (s0 + s1) + (s2 + s3);
}

static uint32_t u8_dot_generic(const uint8_t *a, const uint8_t *b, size_t n) {
    uint32_t s = 0;
    for (size_t i = 0; i < n; i++) s += (uint32_t)a[i] * b[i];
    return s;
}

static uint32_t u8_l2sq_generic(const uint8_t *a, const uint8_t *b, size_t n) {
    uint32_t s = 0;
    for (size_t i = 0; i < n; i++) {
        int d = (int)a[i] - (int)b[i];
        s += (uint32_t)(d * d);
    }
    return s;
}

static int32_t u8i8_dot_generic(const uint8_t *a, const int8_t *b, size_t n) {
    int32_t s = 0;
    for (size_t i = 0; i < n; i++) s += (int32_t)a[i] * b[i];
    return s;
}

static int32_t nibble_dot_generic(const uint8_t *codes, const int8_t *q, const int8_t *lut, size_t blocks, int32_t qsum) {
    (void)qsum;
    int32_t s = 0;
    for (size_t b = 0; b < blocks; b++) {
        const uint8_t *c = codes + 64 * b;
        const int8_t *x = q + 128 * b;
        for (size_t j = 0; j < 64; j++) s += (int32_t)lut[c[j] & 15] * x[j] + (int32_t)lut[c[j] >> 4] * x[64 + j];
    }
    return s;
}

static void fwht(float *v, size_t n) {
    for (size_t h = 1; h < n; h *= 2) {
        for (size_t i = 0; i < n; i += 2 * h) {
            for (size_t j = i; j < i + h; j++) {
                float a = v[j], b = v[j + h];
                v[j] = a + b;
                v[j + h] = a - b;
            }
        }
    }
}

void cvq_rotate(const float *x, const float *mean, size_t dim, size_t padded, size_t block, const float *signs,
                const int32_t *order, int rounds, float *out, float *scratch) {
    if (mean) {
        for (size_t i = 0; i < dim; i++) out[i] = x[i] - mean[i];
    } else {
        for (size_t i = 0; i < dim; i++) out[i] = x[i];
    }
    for (size_t i = dim; i < padded; i++) out[i] = 0;
    const float norm = 1.0f / sqrtf((float)block);
    for (int r = 0; r < rounds; r++) {
        const float *s = signs + (size_t)r * padded;
        const int32_t *o = order + (size_t)r * padded;
        for (size_t i = 0; i < padded; i++) scratch[i] = out[o[i]] * s[i];
        for (size_t start = 0; start < padded; start += block) fwht(scratch + start, block);
        for (size_t i = 0; i < padded; i++) out[i] = scratch[i] * norm;
    }
}

void cvq_encode_nibbles(const float *z, size_t padded, float scale, const float *bounds, const int8_t *lut,
                        uint8_t *out, float *fit) {
    float numerator = 0, denominator = 0;
    for (size_t b = 0; b < padded / 128; b++) {
        for (size_t j = 0; j < 64; j++) {
            const float x = z[128 * b + j], y = z[128 * b + 64 + j];
            const float tx = x * scale, ty = y * scale;
            // Branchless: the code is how many bounds the value is above.
            int cx = 0, cy = 0;
            for (int k = 0; k < 15; k++) {
                cx += tx > bounds[k];
                cy += ty > bounds[k];
            }
            const float lx = lut[cx], ly = lut[cy];
            numerator += x * lx + y * ly;
            denominator += lx * lx + ly * ly;
            out[64 * b + j] = (uint8_t)(cx | (cy << 4));
        }
    }
    *fit = denominator > 0 ? numerator / denominator : 0;
}

int32_t cvq_quantize_i8(const float *z, size_t n, float scale, int8_t *out) {
    int32_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        float v = z[i] * scale;
        v = v < -127.0f ? -127.0f : (v > 127.0f ? 127.0f : v);
        // Adding and taking away 1.5 * 2^23 rounds to the nearest integer, ties to even.
        v = (v + 12582912.0f) - 12582912.0f;
        int32_t c = (int32_t)v;
        out[i] = (int8_t)c;
        sum += c;
    }
    return sum;
}

static uint32_t u8_l1_generic(const uint8_t *a, const uint8_t *b, size_t n) {
    uint32_t s = 0;
    for (size_t i = 0; i < n; i++) s += (uint32_t)(a[i] > b[i] ? a[i] - b[i] : b[i] - a[i]);
    return s;
}

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>

__attribute__((target("avx2,fma")))
static inline float hsum256(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    __m128 sh = _mm_movehdup_ps(lo);
    lo = _mm_add_ps(lo, sh);
    sh = _mm_movehl_ps(sh, lo);
    lo = _mm_add_ss(lo, sh);
    return _mm_cvtss_f32(lo);
}

__attribute__((target("avx2,fma")))
static float dot_avx2(const float *a, const float *b, size_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float s = hsum256(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

__attribute__((target("avx2,fma")))
static float l2sq_avx2(const float *a, const float *b, size_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
        __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8));
        __m256 d2 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16));
        __m256 d3 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24));
        s0 = _mm256_fmadd_ps(d0, d0, s0);
        s1 = _mm256_fmadd_ps(d1, d1, s1);
        s2 = _mm256_fmadd_ps(d2, d2, s2);
        s3 = _mm256_fmadd_ps(d3, d3, s3);
    }
    for (; i + 8 <= n; i += 8) {
        __m256 d = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
        s0 = _mm256_fmadd_ps(d, d, s0);
    }
    float s = hsum256(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < n; i++) {
        float d = a[i] - b[i];
        s += d * d;
    }
    return s;
}

__attribute__((target("avx2,fma")))
static float l1_avx2(const float *a, const float *b, size_t n) {
    const __m256 mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_add_ps(s0, _mm256_and_ps(mask, _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i))));
        s1 = _mm256_add_ps(s1, _mm256_and_ps(mask, _mm256_sub_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8))));
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_add_ps(s0, _mm256_and_ps(mask, _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i))));
    float s = hsum256(_mm256_add_ps(s0, s1));
    for (; i < n; i++) s += __builtin_fabsf(a[i] - b[i]);
    return s;
}

__attribute__((target("avx512f")))
static float dot_avx512(const float *a, const float *b, size_t n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps(), s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
        s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32), s2);
        s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48), s3);
    }
    for (; i + 16 <= n; i += 16) s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

__attribute__((target("avx512f")))
static float l2sq_avx512(const float *a, const float *b, size_t n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps(), s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
        __m512 d1 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16));
        __m512 d2 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32));
        __m512 d3 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48));
        s0 = _mm512_fmadd_ps(d0, d0, s0);
        s1 = _mm512_fmadd_ps(d1, d1, s1);
        s2 = _mm512_fmadd_ps(d2, d2, s2);
        s3 = _mm512_fmadd_ps(d3, d3, s3);
    }
    for (; i + 16 <= n; i += 16) {
        __m512 d = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
        s0 = _mm512_fmadd_ps(d, d, s0);
    }
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        __m512 d = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i));
        s1 = _mm512_fmadd_ps(d, d, s1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

__attribute__((target("avx512f")))
static float l1_avx512(const float *a, const float *b, size_t n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm512_add_ps(s0, _mm512_abs_ps(_mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i))));
        s1 = _mm512_add_ps(s1, _mm512_abs_ps(_mm512_sub_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16))));
    }
    for (; i + 16 <= n; i += 16) s0 = _mm512_add_ps(s0, _mm512_abs_ps(_mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i))));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        s1 = _mm512_add_ps(s1, _mm512_abs_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i))));
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

__attribute__((target("avx2")))
static inline uint32_t hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return (uint32_t)_mm_cvtsi128_si32(s);
}

__attribute__((target("avx2")))
static uint32_t u8_dot_avx2(const uint8_t *a, const uint8_t *b, size_t n) {
    __m256i acc = _mm256_setzero_si256();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i x = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(a + i)));
        __m256i y = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(b + i)));
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(x, y));
    }
    uint32_t s = hsum_epi32(acc);
    for (; i < n; i++) s += (uint32_t)a[i] * b[i];
    return s;
}

__attribute__((target("avx2")))
static uint32_t u8_l2sq_avx2(const uint8_t *a, const uint8_t *b, size_t n) {
    __m256i acc = _mm256_setzero_si256();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i x = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(a + i)));
        __m256i y = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(b + i)));
        __m256i d = _mm256_sub_epi16(x, y);
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(d, d));
    }
    uint32_t s = hsum_epi32(acc);
    for (; i < n; i++) {
        int d = (int)a[i] - (int)b[i];
        s += (uint32_t)(d * d);
    }
    return s;
}

__attribute__((target("avx2")))
static uint32_t u8_l1_avx2(const uint8_t *a, const uint8_t *b, size_t n) {
    __m256i acc = _mm256_setzero_si256();
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        acc = _mm256_add_epi64(acc, _mm256_sad_epu8(_mm256_loadu_si256((const __m256i *)(a + i)), _mm256_loadu_si256((const __m256i *)(b + i))));
    }
    __m128i s2 = _mm_add_epi64(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
    uint32_t s = (uint32_t)(_mm_cvtsi128_si64(s2) + _mm_extract_epi64(s2, 1));
    for (; i < n; i++) s += (uint32_t)(a[i] > b[i] ? a[i] - b[i] : b[i] - a[i]);
    return s;
}

__attribute__((target("avx2")))
static int32_t u8i8_dot_avx2(const uint8_t *a, const int8_t *b, size_t n) {
    __m256i acc = _mm256_setzero_si256();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i x = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(a + i)));
        __m256i y = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(b + i)));
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(x, y));
    }
    int32_t s = (int32_t)hsum_epi32(acc);
    for (; i < n; i++) s += (int32_t)a[i] * b[i];
    return s;
}

/// 64 products per instruction (vpdpbusd: unsigned bytes times signed bytes, summed in fours).
__attribute__((target("avx512f,avx512bw,avx512vnni")))
static int32_t u8i8_dot_vnni(const uint8_t *a, const int8_t *b, size_t n) {
    __m512i acc0 = _mm512_setzero_si512(), acc1 = _mm512_setzero_si512();
    size_t i = 0;
    for (; i + 128 <= n; i += 128) {
        acc0 = _mm512_dpbusd_epi32(acc0, _mm512_loadu_si512(a + i), _mm512_loadu_si512(b + i));
        acc1 = _mm512_dpbusd_epi32(acc1, _mm512_loadu_si512(a + i + 64), _mm512_loadu_si512(b + i + 64));
    }
    for (; i + 64 <= n; i += 64) acc0 = _mm512_dpbusd_epi32(acc0, _mm512_loadu_si512(a + i), _mm512_loadu_si512(b + i));
    if (i < n) {
        __mmask64 m = (__mmask64)((n - i) >= 64 ? ~0ULL : ((1ULL << (n - i)) - 1));
        acc1 = _mm512_dpbusd_epi32(acc1, _mm512_maskz_loadu_epi8(m, a + i), _mm512_maskz_loadu_epi8(m, b + i));
    }
    return _mm512_reduce_add_epi32(_mm512_add_epi32(acc0, acc1));
}

/// 4-bit codes: levels by byte shuffles (vpshufb looks a nibble up in a 16-byte table), then
/// |level| times the query's value with the level's sign (vpmaddubsw; |level|, |q| <= 127 so
/// no pair saturates: at most 32258). Each half widens to 32 bits on its own: two pairs added
/// in 16 bits could reach 64516, which a near-duplicate of the query does.
__attribute__((target("avx2")))
static int32_t nibble_dot_avx2(const uint8_t *codes, const int8_t *q, const int8_t *lut, size_t blocks, int32_t qsum) {
    (void)qsum;
    const __m256i table = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)lut));
    const __m256i low = _mm256_set1_epi8(15), ones = _mm256_set1_epi16(1);
    __m256i acc = _mm256_setzero_si256();
    for (size_t b = 0; b < blocks; b++) {
        for (size_t h = 0; h < 2; h++) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(codes + 64 * b + 32 * h));
            __m256i lo = _mm256_shuffle_epi8(table, _mm256_and_si256(v, low));
            __m256i hi = _mm256_shuffle_epi8(table, _mm256_and_si256(_mm256_srli_epi16(v, 4), low));
            __m256i qlo = _mm256_loadu_si256((const __m256i *)(q + 128 * b + 32 * h));
            __m256i qhi = _mm256_loadu_si256((const __m256i *)(q + 128 * b + 64 + 32 * h));
            __m256i plo = _mm256_maddubs_epi16(_mm256_abs_epi8(lo), _mm256_sign_epi8(qlo, lo));
            __m256i phi = _mm256_maddubs_epi16(_mm256_abs_epi8(hi), _mm256_sign_epi8(qhi, hi));
            acc = _mm256_add_epi32(acc, _mm256_add_epi32(_mm256_madd_epi16(plo, ones), _mm256_madd_epi16(phi, ones)));
        }
    }
    return (int32_t)hsum_epi32(acc);
}

/// 4-bit codes on AVX-512 VNNI: 128 values per block in two vpdpbusd, the levels shifted to
/// unsigned (level + 128) and 128 qsum taken back at the end.
__attribute__((target("avx512f,avx512bw,avx512vnni")))
static int32_t nibble_dot_vnni(const uint8_t *codes, const int8_t *q, const int8_t *lut, size_t blocks, int32_t qsum) {
    const __m512i table = _mm512_broadcast_i32x4(_mm_xor_si128(_mm_loadu_si128((const __m128i *)lut), _mm_set1_epi8((char)0x80)));
    const __m512i low = _mm512_set1_epi8(15);
    __m512i acc0 = _mm512_setzero_si512(), acc1 = _mm512_setzero_si512();
    for (size_t b = 0; b < blocks; b++) {
        __m512i v = _mm512_loadu_si512(codes + 64 * b);
        __m512i lo = _mm512_shuffle_epi8(table, _mm512_and_si512(v, low));
        __m512i hi = _mm512_shuffle_epi8(table, _mm512_and_si512(_mm512_srli_epi16(v, 4), low));
        acc0 = _mm512_dpbusd_epi32(acc0, lo, _mm512_loadu_si512(q + 128 * b));
        acc1 = _mm512_dpbusd_epi32(acc1, hi, _mm512_loadu_si512(q + 128 * b + 64));
    }
    return _mm512_reduce_add_epi32(_mm512_add_epi32(acc0, acc1)) - 128 * qsum;
}

cvq_u8_kernels cvq_select_u8_kernels(int level_limit) {
    cvq_u8_kernels k = {u8_dot_generic, u8_l2sq_generic, u8_l1_generic, u8i8_dot_generic, nibble_dot_generic, "generic"};
    if (level_limit >= 2) return k;
    __builtin_cpu_init();
    if (level_limit == 0 && __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw")) {
        cvq_u8_kernels x = {u8_dot_avx2, u8_l2sq_avx2, u8_l1_avx2, u8i8_dot_vnni, nibble_dot_vnni, "avx512vnni"};
        return x;
    }
    if (__builtin_cpu_supports("avx2")) {
        cvq_u8_kernels x = {u8_dot_avx2, u8_l2sq_avx2, u8_l1_avx2, u8i8_dot_avx2, nibble_dot_avx2, "avx2"};
        return x;
    }
    return k;
}

cvq_kernels cvq_select_kernels(int level_limit) {
    cvq_kernels k = {dot_generic, l2sq_generic, l1_generic, "generic"};
    if (level_limit >= 2) return k;
    __builtin_cpu_init();
    if (level_limit == 0 && __builtin_cpu_supports("avx512f")) {
        cvq_kernels x = {dot_avx512, l2sq_avx512, l1_avx512, "avx512"};
        return x;
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        cvq_kernels x = {dot_avx2, l2sq_avx2, l1_avx2, "avx2"};
        return x;
    }
    return k;
}
#else
cvq_kernels cvq_select_kernels(int level_limit) {
    (void)level_limit;
    cvq_kernels k = {dot_generic, l2sq_generic, l1_generic, "generic"};
    return k;
}

cvq_u8_kernels cvq_select_u8_kernels(int level_limit) {
    (void)level_limit;
    cvq_u8_kernels k = {u8_dot_generic, u8_l2sq_generic, u8_l1_generic, u8i8_dot_generic, nibble_dot_generic, "generic"};
    return k;
}
#endif

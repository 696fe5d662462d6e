// Small C helpers for what Swift cannot express: CPU-feature dispatch to
// hardware instructions (CRC32, AVX2/FMA, AVX-512) and prefetch. Each has a
// portable fallback, and VQEngine keeps Swift versions as the tests' oracle.
#ifndef CVQ_SUPPORT_H
#define CVQ_SUPPORT_H

#include <stddef.h>
#include <stdint.h>

/// 1 when the CPU has the SSE4.2 CRC32 instruction (x86-64), else 0.
int cvq_has_hw_crc32c(void);

/// CRC-32C of `len` bytes extending `crc` (0 to start), with the CRC32 instruction.
/// Call only when cvq_has_hw_crc32c() returns 1.
uint32_t cvq_crc32c_hw(uint32_t crc, const void *data, size_t len);

/* libc's memmem (a GNU extension glibc's Swift module does not export): the first `needle` in
   `hay`, or NULL; linear whatever the bytes. */
const void *cvq_memmem(const void *hay, size_t hay_len, const void *needle, size_t needle_len);

/// A distance kernel: inner product, squared L2 or L1 of two float vectors of length n.
typedef float (*cvq_kernel)(const float *a, const float *b, size_t n);

/// The kernels the CPU supports best, and a name for the level ("avx512", "avx2", "generic").
typedef struct {
    cvq_kernel dot;
    cvq_kernel l2sq;
    cvq_kernel l1;
    const char *level;
} cvq_kernels;

/// Picks the kernels once (cpuid); `level_limit` 0 = best available, 1 = at most AVX2, 2 = generic C.
cvq_kernels cvq_select_kernels(int level_limit);

/// A kernel over 8-bit codes of length n: the sum of products, of squared differences, or of
/// absolute differences (exact integers).
typedef uint32_t (*cvq_u8_kernel)(const uint8_t *a, const uint8_t *b, size_t n);

/// Sum over i of a[i] * b[i], unsigned codes against signed ones (a query's codes minus 128).
typedef int32_t (*cvq_u8i8_kernel)(const uint8_t *a, const int8_t *b, size_t n);

/// Sum over i of lut[code_i] * q[i] for 4-bit codes in blocks of 128 values: 64 bytes a block,
/// byte j holding value j in its low nibble and value 64 + j in its high one; `q` holds the
/// block's 128 signed values in order (each in -127...127), `lut` 16 signed levels, `qsum` the
/// sum of all of q (AVX-512 VNNI shifts the levels to unsigned and takes 128 qsum back).
typedef int32_t (*cvq_nibble_kernel)(const uint8_t *codes, const int8_t *q, const int8_t *lut, size_t blocks, int32_t qsum);

typedef struct {
    cvq_u8_kernel dot;
    cvq_u8_kernel l2sq;
    cvq_u8_kernel l1;
    cvq_u8i8_kernel dot_u8i8;
    cvq_nibble_kernel nibble_dot;
    const char *level;
} cvq_u8_kernels;

/// The 8-bit kernels the CPU supports best (AVX-512 VNNI, AVX2 or plain C); `level_limit` as above.
cvq_u8_kernels cvq_select_u8_kernels(int level_limit);

/// out = R(x - mean) for TurboQuant's rotation (mean may be NULL): `rounds` rounds of a gather
/// by `order` times `signs` (each `padded` long per round), then orthonormal Walsh-Hadamard
/// transforms over blocks of `block` (a power of two dividing `padded`). `scratch` holds
/// `padded` floats.
void cvq_rotate(const float *x, const float *mean, size_t dim, size_t padded, size_t block, const float *signs,
                const int32_t *order, int rounds, float *out, float *scratch);

/// Codes z[i] * scale to the nearest integer (ties to even) clamped to -127...127; returns
/// the sum of the codes.
int32_t cvq_quantize_i8(const float *z, size_t n, float scale, int8_t *out);

/// Codes one rotated row `z` (`padded` values, a multiple of 128) to 4-bit levels: each value
/// times `scale` is placed among the 15 ascending `bounds`, its nibble packed as
/// cvq_nibble_kernel reads it into `out` (padded / 2 bytes); returns in `fit` the least-squares
/// factor alpha with z ~ alpha * lut[code].
void cvq_encode_nibbles(const float *z, size_t padded, float scale, const float *bounds, const int8_t *lut,
                        uint8_t *out, float *fit);

/// Relaxed atomic add and load on a plain 64-bit counter (Swift's Atomic cannot live in a buffer).
static inline void cvq_atomic_add(int64_t *p, int64_t v) { __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
static inline int64_t cvq_atomic_load(const int64_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }

/// Hints the CPU to fetch `p` into cache for reading.
static inline void cvq_prefetch(const void *p) {
#if defined(__GNUC__) || defined(__clang__)
    __builtin_prefetch(p, 0, 3);
#else
    (void)p;
/// epoll, wrapped so Swift needs neither <sys/epoll.h> nor its packed struct.
/// Event bits: 1 = readable, 2 = writable, 4 = hang-up or error. Linux only; elsewhere they fail with -1.
int cvq_epoll_create(void);
int cvq_epoll_ctl(int epfd, int op, int fd, int readable, int writable); // op: 0 add, 1 modify, 2 delete
int cvq_epoll_wait(int epfd, int *fds, uint32_t *events, int max, int timeout_ms);

#endif
}

/// epoll, wrapped so Swift needs neither <sys/epoll.h> nor its packed struct.
/// Event bits: 1 = readable, 2 = writable, 4 = hang-up or error. Linux only; elsewhere they fail with -1.
int cvq_epoll_create(void);
int cvq_epoll_ctl(int epfd, int op, int fd, int readable, int writable); // op: 0 add, 1 modify, 2 delete
int cvq_epoll_wait(int epfd, int *fds, uint32_t *events, int max, int timeout_ms);

#endif

// Small C helpers for what Swift cannot express: CPU-feature dispatch to
// hardware instructions. Each function has a portable Swift fallback in
// VQEngine, used when the CPU lacks the feature.
#ifndef CVQ_SUPPORT_H
#define CVQ_SUPPORT_H

#include <stddef.h>
#include <stdint.h>

/// 1 when the CPU has the SSE4.2 CRC32 instruction (x86-64), else 0.
int cvq_has_hw_crc32c(void);

/// CRC-32C of `len` bytes extending `crc` (0 to start), with the CRC32 instruction.
/// Call only when cvq_has_hw_crc32c() returns 1.
uint32_t cvq_crc32c_hw(uint32_t crc, const void *data, size_t len);

#endif

#define _GNU_SOURCE  /* memmem */
#include <string.h>
#include "cvq_support.h"

#if defined(__x86_64__)
#include <cpuid.h>

int cvq_has_hw_crc32c(void) {
    unsigned int eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return 0;
    return (ecx & bit_SSE4_2) != 0;
}

__attribute__((target("sse4.2")))
uint32_t cvq_crc32c_hw(uint32_t crc, const void *data, size_t len) {
    const unsigned char *p = (const unsigned char *)data;
    uint64_t c = ~crc;
    while (len >= 8) {
        uint64_t word;
        __builtin_memcpy(&word, p, 8);
        c = __builtin_ia32_crc32di(c, word);
        p += 8;
        len -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (len > 0) {
        c32 = __builtin_ia32_crc32qi(c32, *p);
        p++;
        len--;
    }
    return ~c32;
}
#else
int cvq_has_hw_crc32c(void) { return 0; }
uint32_t cvq_crc32c_hw(uint32_t crc, const void *data, size_t len) { (void)data; (void)len; return crc; }
#endif


const void *cvq_memmem(const void *hay, size_t hay_len, const void *needle, size_t needle_len) {
    return memmem(hay, hay_len, needle, needle_len);
}

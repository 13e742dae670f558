// WebSocket masking (RFC 6455 §5.3): XOR with a 4-byte key, applied in
// 64-bit words. Byte-by-byte masking costs ~30% of relay throughput.
// Pure functions, no syscalls; callable from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define TWS_MASK_AVX2 1
#endif

namespace tws {

#if defined(TWS_MASK_AVX2)
// 32 bytes a step where the CPU has AVX2 (checked once at run time: the
// build targets baseline x86-64). Masking was 16-18% of both processes'
// CPU in a bulk client -> server transfer with SSE2 alone (perf).
// `p` is 32-byte aligned, `kk` the key rotated for p[0]; returns the bytes done.
__attribute__((target("avx2"), noinline)) inline size_t mask_avx2(uint8_t* p, size_t n, const uint8_t kk[32]) {
  const __m256i vkey = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kk));
  size_t i = 0;
  for (; n - i >= 128; i += 128) {
    for (size_t j = 0; j < 128; j += 32) {
      __m256i* q = reinterpret_cast<__m256i*>(p + i + j);
      _mm256_store_si256(q, _mm256_xor_si256(_mm256_load_si256(q), vkey));
    }
  }
  return i;
}

inline bool cpu_has_avx2() {
  static const bool yes = __builtin_cpu_supports("avx2");
  return yes;
}
#endif

// Masks (or unmasks: the operation is its own inverse) `n` bytes at `p` in
// place. `offset` is how many bytes of this frame's payload came before `p`,
// so a payload split across reads continues with the key rotated correctly.
// Never inlined: inlined into the session's DATA path (a smaller unit since
// the engine was split) GCC rolled the SSE2 loop up and masking took ~35%
// more of the I/O thread (perf); as a function of its own it keeps the
// unrolled loop it had before.
__attribute__((noinline)) inline void apply_mask(uint8_t* p, size_t n, const uint8_t key[4], uint64_t offset) {
  uint8_t k[4];
  for (int i = 0; i < 4; i++) k[i] = key[(offset + i) & 3];
  size_t i = 0;
  // Head: byte by byte until p + i is 16-byte aligned (32 with AVX2, for
  // aligned vector loads; the word loop uses memcpy, so it is well-defined
  // at any alignment).
#if defined(TWS_MASK_AVX2)
  const bool wide = n >= 256 && cpu_has_avx2();
  const uintptr_t align = wide ? 31 : 15;
#else
  const uintptr_t align = 15;
#endif
  while (i < n && (reinterpret_cast<uintptr_t>(p + i) & align) != 0) {
    p[i] ^= k[i & 3];
    i++;
  }
#if defined(TWS_MASK_AVX2)
  if (wide) {
    uint8_t kk32[32];
    for (int j = 0; j < 32; j++) kk32[j] = k[(i + j) & 3];
    i += mask_avx2(p + i, n - i, kk32);
  }
#endif
  if (n - i >= 8) {
    uint8_t kk[16];
    for (int j = 0; j < 16; j++) kk[j] = k[(i + j) & 3];
#if defined(__SSE2__)
    // 16 bytes a step: (i + 16) % 4 == i % 4, so the rotated key stays valid.
    const __m128i vkey = _mm_loadu_si128(reinterpret_cast<const __m128i*>(kk));
    for (; n - i >= 64; i += 64) {
      for (int j = 0; j < 64; j += 16) {
        __m128i v = _mm_load_si128(reinterpret_cast<const __m128i*>(p + i + j));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(p + i + j), _mm_xor_si128(v, vkey));
      }
    }
#endif
    uint64_t word_key;
    std::memcpy(&word_key, kk, 8);
    for (; n - i >= 8; i += 8) {
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      w ^= word_key;
      std::memcpy(p + i, &w, 8);
    }
  }
  for (; i < n; i++) p[i] ^= k[i & 3];
}

}  // namespace tws

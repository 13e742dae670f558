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

namespace tws {

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
  // Head: byte by byte until p + i is 16-byte aligned (aligned SSE2 loads;
  // the word loop uses memcpy, so it is well-defined at any alignment).
  while (i < n && (reinterpret_cast<uintptr_t>(p + i) & 15) != 0) {
    p[i] ^= k[i & 3];
    i++;
  }
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

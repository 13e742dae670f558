// The checks of the native test programs (core_test.cc, engine_test.cc):
// CHECK counts, prints one line per failure, and report() ends the run
// with "N passed, N failed" and the exit code. [test programs only]
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace tws::test {

inline int passed = 0;
inline int failed = 0;

using Bytes = std::vector<uint8_t>;

inline int report() {
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}

}  // namespace tws::test

#define CHECK(cond, what)                                                                       \
  do {                                                                                          \
    if (cond) {                                                                                 \
      ::tws::test::passed++;                                                                    \
    } else {                                                                                    \
      ::tws::test::failed++;                                                                    \
      std::printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, std::string(what).c_str());           \
    }                                                                                           \
  } while (0)

// A stand-in for libFuzzer where clang is missing (built with
// -DTWS_FUZZ_DRIVER by test/native/fuzz.test.ts): runs the corpus files given
// as arguments, then seeded random mutations of them, through
// LLVMFuzzerTestOneInput. Not coverage-guided; the sanitizers still apply.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  std::vector<std::vector<uint8_t>> corpus;
  int runs = 20000;
  for (int i = 1; i < argc; i++) {
    if (std::strncmp(argv[i], "-runs=", 6) == 0) { runs = std::atoi(argv[i] + 6); continue; }
    std::ifstream f(argv[i], std::ios::binary);
    corpus.emplace_back(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  }
  for (const auto& c : corpus) LLVMFuzzerTestOneInput(c.data(), c.size());
  std::mt19937 rng(1234);
  for (int r = 0; r < runs; r++) {
    std::vector<uint8_t> in = corpus.empty() ? std::vector<uint8_t>(64) : corpus[rng() % corpus.size()];
    int edits = 1 + rng() % 8;
    for (int e = 0; e < edits && !in.empty(); e++) {
      switch (rng() % 3) {
        case 0: in[rng() % in.size()] = static_cast<uint8_t>(rng()); break;
        case 1: in.insert(in.begin() + rng() % in.size(), static_cast<uint8_t>(rng())); break;
        default: in.erase(in.begin() + rng() % in.size()); break;
      }
    }
    LLVMFuzzerTestOneInput(in.data(), in.size());
  }
  std::printf("driver: %zu corpus files, %d mutated inputs, no failure\n", corpus.size(), runs);
  return 0;
}

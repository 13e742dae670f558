// libFuzzer harness over the native frame parser and TWS2 reader.
//
// Input layout: byte 0 picks the role (bit 0) and a chunking seed; the rest
// is the byte stream from the peer. The stream is parsed twice, once whole
// and once in chunks whose sizes come from the seed; both runs must produce
// the same events and the same error. Sanitizers catch memory errors.
//
// Built by test/native/fuzz.test.ts: with clang as a coverage-guided fuzzer
// (-fsanitize=fuzzer), otherwise with a small random-input driver (below).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "../core/ahead_target.h"
#include "../core/tws2.h"
#include "../core/ws_frame.h"

namespace {

// One delivered event. DATA bodies may arrive in any number of pieces; the
// log merges adjacent pieces of the same frame so chunkings compare equal.
struct Event {
  char kind;  // 'D' data, 'E' data end, 'F' frame, 'C' control
  uint32_t a;  // stream id, or control opcode
  uint8_t type;
  std::string bytes;
  bool operator==(const Event& o) const { return kind == o.kind && a == o.a && type == o.type && bytes == o.bytes; }
};

struct Log {
  std::vector<Event> events;
  bool wants_stop() const { return false; }
  void on_data(uint32_t stream, uint8_t* p, size_t n) {
    if (!events.empty() && events.back().kind == 'D' && events.back().a == stream) {
      events.back().bytes.append(reinterpret_cast<char*>(p), n);
      return;
    }
    events.push_back({'D', stream, 0, std::string(reinterpret_cast<char*>(p), n)});
  }
  void on_data_end(uint32_t stream) { events.push_back({'E', stream, 0, {}}); }
  void on_frame(uint8_t t, uint32_t stream, uint8_t* b, size_t n) {
    events.push_back({'F', stream, t, std::string(reinterpret_cast<char*>(b), n)});
  }
  void on_control(uint8_t op, uint8_t* p, size_t n) { events.push_back({'C', op, 0, std::string(reinterpret_cast<char*>(p), n)}); }
};

struct Outcome {
  std::vector<Event> events;
  uint16_t code = 0;
};

Outcome parse(const uint8_t* data, size_t size, bool server, const std::vector<size_t>& chunks) {
  std::vector<uint8_t> buf(data, data + size);
  tws::ws::Parser parser(server ? tws::ws::Role::kServer : tws::ws::Role::kClient, tws::tws2::kMaxMessage);
  Log log;
  auto reader = std::make_unique<tws::tws2::MessageReader<Log>>(log);
  size_t pos = 0;
  size_t ci = 0;
  Outcome out;
  while (pos < buf.size()) {
    size_t n = chunks.empty() ? buf.size() - pos : chunks[ci++ % chunks.size()];
    if (n > buf.size() - pos) n = buf.size() - pos;
    tws::ws::ParseError err;
    parser.feed(buf.data() + pos, n, *reader, &err);
    if (err) { out.code = err.close_code; break; }
    if (reader->error()) { out.code = reader->error().close_code; break; }
    pos += n;
  }
  out.events = std::move(log.events);
  return out;
}

// Every OPEN's target through the server's answer-ahead check
// (core/ahead_target.h): what it takes must be its own canonical spelling,
// an address the kernel reads back the same, and a port in range.
void check_ahead_targets(const std::vector<Event>& events) {
  for (const Event& e : events) {
    if (e.kind != 'F' || e.type != tws::tws2::kOpen || e.bytes.size() < 5) continue;
    const std::string target = e.bytes.substr(5);
    tws::AheadTarget t;
    if (!tws::parse_ahead_target(target, &t)) continue;
    const bool v6 = t.host.find(':') != std::string::npos;
    const std::string again = (v6 ? "[" + t.host + "]" : t.host) + ":" + std::to_string(t.port);
    uint8_t addr[16];
    if (again != target || t.port == 0 || ::inet_pton(v6 ? AF_INET6 : AF_INET, t.host.c_str(), addr) != 1) {
      std::fprintf(stderr, "answer ahead took a target it must not: %s\n", target.c_str());
      std::abort();
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const bool server = data[0] & 1;
  uint32_t seed = data[0] >> 1;
  std::vector<size_t> chunks;
  for (int i = 0; i < 8; i++) {
    seed = seed * 1103515245u + 12345u;
    chunks.push_back(1 + (seed >> 16) % 23);
  }
  const Outcome whole = parse(data + 1, size - 1, server, {});
  const Outcome split = parse(data + 1, size - 1, server, chunks);
  // An error found at a different point can leave different partial events
  // behind, but whether there is an error, and which close code, must agree.
  if ((whole.code == 0) != (split.code == 0) || whole.code != split.code) {
    std::fprintf(stderr, "chunking changed the outcome: whole %u, split %u\n", whole.code, split.code);
    std::abort();
  }
  if (whole.code == 0 && !(whole.events == split.events)) {
    std::fprintf(stderr, "chunking changed the events\n");
    std::abort();
  }
  check_ahead_targets(whole.events);
  return 0;
}

#ifdef TWS_FUZZ_DRIVER
#include "driver.h"
#endif

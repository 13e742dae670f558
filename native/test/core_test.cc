// Unit tests of the native core (mask, ws_frame, tws2), built and run by
// test/native/core.test.ts under ASan and UBSan. Every frame sequence is fed
// split at every byte position, and the events must match an unsplit run.
// Prints one line per failure and a closing "N passed, N failed".
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "../core/ahead_target.h"
#include "../core/client_upgrade.h"
#include "../core/intrusive_list.h"
#include "../core/liveness.h"
#include "../core/out_queue.h"
#include "check.h"
#include "../core/mask.h"
#include "../core/tws2.h"
#include "../core/ws_frame.h"

namespace {

using tws::test::Bytes;

// Builds one WebSocket frame, masked when `key` is given (client → server).
Bytes frame(uint8_t opcode, bool fin, const Bytes& payload, const uint8_t* key) {
  Bytes out(tws::ws::kMaxHeader + payload.size());
  size_t h = tws::ws::write_header(out.data(), opcode, fin, payload.size(), key);
  std::copy(payload.begin(), payload.end(), out.begin() + h);
  if (key) tws::apply_mask(out.data() + h, payload.size(), key, 0);
  out.resize(h + payload.size());
  return out;
}

Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

Bytes tws2(uint8_t type, uint32_t stream, const Bytes& body) {
  Bytes out(5);
  tws::tws2::write_tws2_header(out.data(), type, stream);
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

Bytes text(const std::string& s) { return Bytes(s.begin(), s.end()); }

// Records everything a parser (or the TWS2 reader on top) delivers as a
// readable log, so split and unsplit runs can be compared exactly.
struct WsLog {
  std::string log;
  bool wants_stop() const { return false; }
  void on_message_start(uint8_t op) { log += "start(" + std::to_string(op) + ")"; }
  void on_message_data(uint8_t* p, size_t n) { log += "data(" + std::string(p, p + n) + ")"; }
  void on_message_end() { log += "end;"; }
  void on_control(uint8_t op, uint8_t* p, size_t n) { log += "ctl(" + std::to_string(op) + ":" + std::string(p, p + n) + ");"; }
};

struct Tws2Log {
  std::string log;
  bool wants_stop() const { return false; }
  void on_data(uint32_t s, uint8_t* p, size_t n) { log += "D" + std::to_string(s) + ":" + std::string(p, p + n); }
  void on_data_end(uint32_t s) { log += "|end" + std::to_string(s) + ";"; }
  void on_frame(uint8_t t, uint32_t s, uint8_t* b, size_t n) {
    log += "F" + std::to_string(t) + "/" + std::to_string(s) + ":" + std::to_string(n) + ";";
    (void)b;
  }
  void on_control(uint8_t op, uint8_t*, size_t) { log += "C" + std::to_string(op) + ";"; }
};

// Runs bytes through a parser in the given chunks; returns the log, or
// "ERR <code>" on the first error.
template <class Log>
std::string run_ws(const Bytes& input, const std::vector<size_t>& cuts, tws::ws::Role role, uint64_t max = 1 << 20) {
  Bytes buf = input;  // the parser unmasks in place
  tws::ws::Parser parser(role, max);
  Log log;
  size_t prev = 0;
  std::vector<size_t> bounds = cuts;
  bounds.push_back(buf.size());
  for (size_t b : bounds) {
    tws::ws::ParseError err;
    parser.feed(buf.data() + prev, b - prev, log, &err);
    if (err) return "ERR " + std::to_string(err.close_code);
    prev = b;
  }
  return log.log;
}

std::string run_tws2(const Bytes& input, const std::vector<size_t>& cuts) {
  Bytes buf = input;
  tws::ws::Parser parser(tws::ws::Role::kServer, tws::tws2::kMaxMessage);
  Tws2Log log;
  auto reader = std::make_unique<tws::tws2::MessageReader<Tws2Log>>(log);
  size_t prev = 0;
  std::vector<size_t> bounds = cuts;
  bounds.push_back(buf.size());
  for (size_t b : bounds) {
    tws::ws::ParseError err;
    parser.feed(buf.data() + prev, b - prev, *reader, &err);
    if (err) return "ERR " + std::to_string(err.close_code);
    if (reader->error()) return std::string("ERR ") + reader->error().reason;
    prev = b;
  }
  return log.log;
}

const uint8_t kKey[4] = {0x37, 0xfa, 0x21, 0x3d};

void test_mask() {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 2000; trial++) {
    // Past the 64-byte SSE2 and 128-byte AVX2 blocks (used from 256 bytes) and the word tail.
    size_t n = trial % 4 == 0 ? rng() % 5000 : rng() % 700;
    size_t align = rng() % 32;  // every misalignment of the 16- and 32-byte heads
    uint64_t offset = rng() % 13;
    Bytes storage(n + 32);
    for (auto& b : storage) b = static_cast<uint8_t>(rng());
    uint8_t* p = storage.data() + align;
    Bytes expect(p, p + n);
    for (size_t i = 0; i < n; i++) expect[i] ^= kKey[(offset + i) & 3];
    tws::apply_mask(p, n, kKey, offset);
    if (!std::equal(expect.begin(), expect.end(), p)) {
      CHECK(false, "mask differs from the byte-wise definition at n=" + std::to_string(n));
      return;
    }
  }
  CHECK(true, "word masking equals byte masking for 2000 random cases");
}

void test_splits() {
  Bytes big(70000);
  for (size_t i = 0; i < big.size(); i++) big[i] = static_cast<uint8_t>('a' + i % 26);
  // A fragmented message with a ping between its fragments, a 16-bit and a
  // 64-bit length, and an empty final fragment.
  Bytes input = cat({
      frame(tws::ws::kBinary, false, text("hello "), kKey),
      frame(tws::ws::kPing, true, text("p!"), kKey),
      frame(tws::ws::kContinuation, true, text("world"), kKey),
      frame(tws::ws::kBinary, true, Bytes(big.begin(), big.begin() + 300), kKey),
      frame(tws::ws::kBinary, false, big, kKey),
      frame(tws::ws::kContinuation, true, {}, kKey),
      frame(tws::ws::kClose, true, {0x03, 0xe8}, kKey),
  });
  const std::string whole = run_ws<WsLog>(input, {}, tws::ws::Role::kServer);
  CHECK(whole.rfind("start(2)data(hello )ctl(9:p!);data(world)end;", 0) == 0, "unsplit parse: " + whole.substr(0, 80));
  // Every single split point, on the short frames at the front.
  int mismatches = 0;
  for (size_t cut = 1; cut < 60; cut++) {
    std::string got = run_ws<WsLog>(input, {cut}, tws::ws::Role::kServer);
    // Split runs deliver data in more pieces: compare after joining pieces.
    auto norm = [](std::string s) {
      std::string out;
      for (size_t i = 0; i < s.size(); i++) {
        if (s.compare(i, 6, ")data(") == 0) { i += 5; continue; }
        out += s[i];
      }
      return out;
    };
    if (norm(got) != norm(whole)) mismatches++;
  }
  CHECK(mismatches == 0, "every split of the short frames parses the same");
  // Byte-at-a-time over everything.
  std::vector<size_t> every;
  for (size_t i = 1; i < input.size(); i++) every.push_back(i);
  Bytes copy = input;
  tws::ws::Parser parser(tws::ws::Role::kServer, 1 << 20);
  WsLog log;
  size_t total_data = 0;
  struct Counter : WsLog {
    size_t* n;
    void on_message_data(uint8_t*, size_t k) { *n += k; }
  } counter;
  counter.n = &total_data;
  for (size_t i = 0; i < copy.size(); i++) {
    tws::ws::ParseError err;
    parser.feed(copy.data() + i, 1, counter, &err);
    if (err) { CHECK(false, std::string("byte-at-a-time error: ") + err.reason); return; }
  }
  CHECK(total_data == 6 + 5 + 300 + big.size(), "byte-at-a-time delivers every payload byte");
  (void)log;
}

void test_client_role() {
  Bytes unmasked = frame(tws::ws::kBinary, true, text("from server"), nullptr);
  CHECK(run_ws<WsLog>(unmasked, {}, tws::ws::Role::kClient) == "start(2)data(from server)end;", "client reads unmasked frames");
  CHECK(run_ws<WsLog>(frame(tws::ws::kBinary, true, text("x"), kKey), {}, tws::ws::Role::kClient) == "ERR 1002",
        "client rejects masked frames");
  CHECK(run_ws<WsLog>(unmasked, {}, tws::ws::Role::kServer) == "ERR 1002", "server rejects unmasked frames");
}

void test_ws_errors() {
  auto with_b0 = [](uint8_t b0) {
    Bytes f = frame(tws::ws::kBinary, true, text("x"), kKey);
    f[0] = b0;
    return f;
  };
  CHECK(run_ws<WsLog>(with_b0(0x80 | 0x40 | 2), {}, tws::ws::Role::kServer) == "ERR 1002", "RSV1 rejected");
  CHECK(run_ws<WsLog>(with_b0(0x80 | 0x10 | 2), {}, tws::ws::Role::kServer) == "ERR 1002", "RSV3 rejected");
  CHECK(run_ws<WsLog>(with_b0(0x80 | 3), {}, tws::ws::Role::kServer) == "ERR 1002", "reserved data opcode rejected");
  CHECK(run_ws<WsLog>(with_b0(0x80 | 0xB), {}, tws::ws::Role::kServer) == "ERR 1002", "reserved control opcode rejected");
  CHECK(run_ws<WsLog>(frame(tws::ws::kPing, false, text("x"), kKey), {}, tws::ws::Role::kServer) == "ERR 1002",
        "fragmented ping rejected");
  CHECK(run_ws<WsLog>(frame(tws::ws::kPing, true, Bytes(126, 1), kKey), {}, tws::ws::Role::kServer) == "ERR 1002",
        "ping over 125 bytes rejected");
  CHECK(run_ws<WsLog>(frame(tws::ws::kContinuation, true, text("x"), kKey), {}, tws::ws::Role::kServer) == "ERR 1002",
        "continuation without a message rejected");
  Bytes two_starts = cat({frame(tws::ws::kBinary, false, text("a"), kKey), frame(tws::ws::kBinary, true, text("b"), kKey)});
  CHECK(run_ws<WsLog>(two_starts, {}, tws::ws::Role::kServer) == "ERR 1002", "new message inside a fragmented one rejected");
  // 16-bit length used for a 5-byte payload: not minimal, accepted as ws accepts it.
  Bytes nonminimal = {0x82, 0x80 | 126, 0x00, 0x05, 0, 0, 0, 0, 'a', 'b', 'c', 'd', 'e'};
  CHECK(run_ws<WsLog>(nonminimal, {}, tws::ws::Role::kServer) == "start(2)data(abcde)end;", "a non-minimal length is accepted, as ws does");
  Bytes huge = {0x82, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  CHECK(run_ws<WsLog>(huge, {}, tws::ws::Role::kServer) == "ERR 1009", "64-bit length with the top bit set is 1009, as in ws");
  Bytes many;
  for (int i = 0; i < 16385; i++) {
    Bytes f = frame(i == 0 ? tws::ws::kBinary : tws::ws::kContinuation, false, {}, kKey);
    many.insert(many.end(), f.begin(), f.end());
  }
  CHECK(run_ws<WsLog>(many, {}, tws::ws::Role::kServer) == "ERR 1008", "a message of more than 16384 fragments is 1008, as in ws");
  Bytes too_big = cat({frame(tws::ws::kBinary, false, Bytes(600, 1), kKey), frame(tws::ws::kContinuation, true, Bytes(600, 1), kKey)});
  CHECK(run_ws<WsLog>(too_big, {}, tws::ws::Role::kServer, 1000) == "ERR 1009", "message over the limit across fragments is 1009");
  Bytes exact = frame(tws::ws::kBinary, true, Bytes(1000, 1), kKey);
  CHECK(run_ws<WsLog>(exact, {}, tws::ws::Role::kServer, 1000).find("ERR") == std::string::npos, "message at the limit accepted");
}

void test_tws2() {
  Bytes payload(3000);
  for (size_t i = 0; i < payload.size(); i++) payload[i] = static_cast<uint8_t>('A' + i % 26);
  Bytes open_body = {0x00, 0x04, 0x00, 0x00, 0x01};
  Bytes target = text("127.0.0.1:22");
  open_body.insert(open_body.end(), target.begin(), target.end());
  Bytes msg = tws2(tws::tws2::kData, 7, payload);
  // The DATA message is sent in three fragments, so the TWS2 header itself is split.
  Bytes input = cat({
      frame(tws::ws::kBinary, true, tws2(tws::tws2::kOpen, 7, open_body), kKey),
      frame(tws::ws::kBinary, false, Bytes(msg.begin(), msg.begin() + 3), kKey),
      frame(tws::ws::kContinuation, false, Bytes(msg.begin() + 3, msg.begin() + 1000), kKey),
      frame(tws::ws::kContinuation, true, Bytes(msg.begin() + 1000, msg.end()), kKey),
      frame(tws::ws::kBinary, true, tws2(0x0f, 0, text("future")), kKey),
      frame(tws::ws::kBinary, true, tws2(tws::tws2::kWindow, 7, {0, 0, 1, 0}), kKey),
      frame(tws::ws::kBinary, true, tws2(tws::tws2::kFin, 7, {}), kKey),
  });
  // A DATA body may arrive in several pieces (fragments, splits): join them.
  auto join = [](const std::string& got) {
    std::string out;
    for (size_t i = 0; i < got.size(); i++) {
      if (i > 0 && got.compare(i, 3, "D7:") == 0 && got[i - 1] != ';') { i += 2; continue; }
      out += got[i];
    }
    return out;
  };
  const std::string whole = join(run_tws2(input, {}));
  const std::string expect = "F1/7:17;D7:" + std::string(payload.begin(), payload.end()) + "|end7;F4/7:4;F5/7:0;";
  CHECK(whole == expect, "TWS2 frames decoded: " + whole.substr(0, 60));
  int bad = 0;
  for (size_t cut = 1; cut < input.size(); cut += (cut < 120 ? 1 : 97)) {
    if (join(run_tws2(input, {cut})) != expect) bad++;
  }
  CHECK(bad == 0, "TWS2 decoding is the same at every split point");

  auto one = [](uint8_t type, uint32_t stream, const Bytes& body) {
    return run_tws2(frame(tws::ws::kBinary, true, tws2(type, stream, body), kKey), {});
  };
  CHECK(one(tws::tws2::kData, 1, {}) == "ERR empty DATA frame", "empty DATA rejected");
  CHECK(one(tws::tws2::kData, 0, {1}) == "ERR DATA on stream 0", "DATA on stream 0 rejected");
  CHECK(one(tws::tws2::kData, 1, Bytes(262145, 1)).rfind("ERR", 0) == 0, "DATA over 262144 rejected");
  CHECK(one(tws::tws2::kData, 1, Bytes(262144, 1)).rfind("D1:", 0) == 0, "DATA of 262144 accepted");
  CHECK(one(tws::tws2::kWindow, 1, {0, 0, 0, 0}) == "ERR WINDOW increment of 0", "WINDOW 0 rejected");
  CHECK(one(tws::tws2::kOpenOk, 1, {0, 0, 0xff, 0xff}) == "ERR OPEN_OK window below 65536", "small OPEN_OK window rejected");
  CHECK(one(tws::tws2::kOpen, 1, {0, 1, 0, 0, 3}) == "ERR OPEN with unknown kind", "OPEN kind 3 rejected");
  CHECK(one(tws::tws2::kOpen, 1, {0, 1, 0, 0, 1, 0xff}) == "ERR OPEN target is not UTF-8", "bad UTF-8 target rejected");
  CHECK(one(tws::tws2::kFin, 1, {0}) == "ERR FIN with a body", "FIN with body rejected");
  CHECK(one(tws::tws2::kGoaway, 3, {0, 1}) == "ERR GOAWAY on a stream other than 0", "GOAWAY on a stream rejected");
  CHECK(one(tws::tws2::kReset, 1, Bytes(2 + 121, 'a')) == "ERR reason longer than 120 bytes", "long reason rejected");
  CHECK(one(tws::tws2::kReset, 1, Bytes(2 + 120, 'a')) == "F6/1:122;", "120-byte reason accepted");
  CHECK(one(0x00, 1, {1, 2, 3}) == "", "type 0 ignored");
  CHECK(one(0x99, 1, Bytes(70000, 1)) == "", "unknown type with a large body ignored");
  CHECK(run_tws2(frame(tws::ws::kBinary, true, {1, 0, 0}, kKey), {}) == "ERR frame shorter than its 5-byte header", "short frame rejected");
  CHECK(run_tws2(frame(tws::ws::kText, true, text("hi"), kKey), {}) == "ERR text message", "text message rejected");
}

void test_utf8() {
  auto ok = [](const std::string& s) { return tws::tws2::valid_utf8(reinterpret_cast<const uint8_t*>(s.data()), s.size()); };
  CHECK(ok("plain ascii") && ok("h\xc3\xa9llo") && ok("\xe2\x82\xac") && ok("\xf0\x9f\x98\x80"), "valid UTF-8 accepted");
  CHECK(!ok("\xc0\xaf"), "overlong rejected");
  CHECK(!ok("\xed\xa0\x80"), "surrogate rejected");
  CHECK(!ok("\xf4\x90\x80\x80"), "above U+10FFFF rejected");
  CHECK(!ok("\xe2\x82"), "truncated sequence rejected");
  CHECK(!ok("\x80"), "lone continuation rejected");
}

// Close frames are checked as ws checks them: what the reply's code must be.
void test_close_frames() {
  auto close_with = [](const Bytes& body) { return run_ws<WsLog>(frame(tws::ws::kClose, true, body, kKey), {}, tws::ws::Role::kServer); };
  auto coded = [](uint16_t code, const std::string& reason) {
    Bytes b{static_cast<uint8_t>(code >> 8), static_cast<uint8_t>(code)};
    b.insert(b.end(), reason.begin(), reason.end());
    return b;
  };
  CHECK(close_with({}) == "ctl(8:);", "an empty close frame is accepted");
  CHECK(close_with(coded(1000, "bye")).rfind("ctl(8:", 0) == 0, "1000 with a reason is accepted");
  CHECK(close_with(coded(4999, "")).rfind("ctl(8:", 0) == 0, "4999 (private use) is accepted");
  CHECK(close_with({0x03}) == "ERR 1002", "a 1-byte close body is 1002");
  for (uint16_t code : {0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535}) {
    CHECK(close_with(coded(code, "")) == "ERR 1002", "close code " + std::to_string(code) + " is 1002");
  }
  CHECK(close_with(coded(1000, "\xc0\xaf")) == "ERR 1007", "a close reason that is not UTF-8 is 1007");
  CHECK(close_with(coded(1000, "h\xc3\xa9")).rfind("ctl(8:", 0) == 0, "a UTF-8 close reason is accepted");
  CHECK(tws::ws::valid_close_code(1000) && tws::ws::valid_close_code(1014) && tws::ws::valid_close_code(3000) &&
            !tws::ws::valid_close_code(1004) && !tws::ws::valid_close_code(1016),
        "valid_close_code follows RFC 6455 7.4");
}

struct Item {
  explicit Item(int v) : value(v) {}
  int value;
  tws::ListHook hook;
};

// The ready list: FIFO order, no duplicates, and an element that goes away
// (unlinked or destroyed) leaves it, wherever it stood.
void test_intrusive_list() {
  tws::IntrusiveList<Item, &Item::hook> list;
  auto a = std::make_unique<Item>(1);
  auto b = std::make_unique<Item>(2);
  auto c = std::make_unique<Item>(3);
  CHECK(list.push_back(a.get()) && list.push_back(b.get()) && list.push_back(c.get()), "pushes");
  CHECK(!list.push_back(b.get()) && list.size() == 3, "an element already on the list is not added twice");
  b.reset();  // destroyed while linked, in the middle
  CHECK(list.size() == 2, "a destroyed element left the list");
  CHECK(list.pop_front() == a.get(), "FIFO: first");
  CHECK(list.push_back(a.get()), "re-added at the back");
  c->hook.unlink();
  CHECK(list.pop_front() == a.get() && list.empty(), "an unlinked element is gone; the rest stays in order");
  CHECK(list.pop_front() == nullptr, "an empty list pops nothing");
  {
    tws::IntrusiveList<Item, &Item::hook> shortlived;
    shortlived.push_back(a.get());
  }
  CHECK(!a->hook.linked(), "a list that goes away unlinks what it held");
}

}  // namespace

// The upgrade response head is found whatever the reads' sizes, and the
// bytes after it are kept whole for the WebSocket.
void test_client_upgrade() {
  const std::string head = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";
  const std::string rest = std::string("\x82\x05", 2) + "hello";
  const std::string all = head + rest;
  int wrong = 0;
  for (size_t cut = 0; cut <= all.size(); cut++) {
    tws::ClientUpgrade u;
    u.begin(100);
    const auto* p = reinterpret_cast<const uint8_t*>(all.data());
    tws::ClientUpgrade::Read r = u.take(p, cut);
    size_t given = cut;  // once the head is complete the session reads no more until accept()
    if (r != tws::ClientUpgrade::Read::kHead) {
      r = u.take(p + cut, all.size() - cut);
      given = all.size();
    }
    std::string got;
    const std::string want = all.substr(head.size(), given - head.size());
    if (r != tws::ClientUpgrade::Read::kHead || u.head() != head || !u.held() || !u.accept(&got) || got != want || u.pending()) wrong++;
  }
  CHECK(wrong == 0, "the head and what follows it come out the same at every split point");
  tws::ClientUpgrade big;
  big.begin(100);
  const std::string junk(tws::ClientUpgrade::kMaxHead + 1, 'x');
  CHECK(big.take(reinterpret_cast<const uint8_t*>(junk.data()), junk.size()) == tws::ClientUpgrade::Read::kTooLarge,
        "a head over 16 KiB is refused");
  CHECK(!big.expired(99.9) && big.expired(100), "the answer is due by its deadline");
  std::string none;
  CHECK(!big.accept(&none), "nothing to accept before a head");
}

// The preamble leaves first and whole; a pong goes ahead of queued messages
// but never into a partly written one; only the latest pong owed is kept.
void test_out_queue() {
  tws::OutQueue q;
  const uint8_t a[] = {'a', 'a', 'a', 'a'};
  q.push(tws::make_ws_frame(tws::ws::kBinary, a, 4, nullptr));
  q.push_preamble(tws::copy_buf(reinterpret_cast<const uint8_t*>("HTTP/1.1 101\r\n\r\n"), 17));
  q.push_control(tws::make_ws_frame(tws::ws::kPong, a, 1, nullptr));
  q.push_control(tws::make_ws_frame(tws::ws::kPong, a, 2, nullptr));
  iovec iov[8];
  int n = q.next(iov, 8);
  CHECK(n == 1 && iov[0].iov_len == 17, "the preamble goes first, alone");
  q.advance(5);
  n = q.next(iov, 8);
  CHECK(n == 1 && iov[0].iov_len == 12, "the rest of a partly written preamble goes next");
  q.advance(12);
  n = q.next(iov, 8);
  CHECK(n == 1 && iov[0].iov_len == 4 && (static_cast<uint8_t*>(iov[0].iov_base)[0] & 0x0F) == tws::ws::kPong,
        "then one pong, the latest owed (2-byte payload), ahead of the message");
  q.advance(4);
  n = q.next(iov, 8);
  CHECK(n == 1 && iov[0].iov_len == 6, "then the message");
  q.advance(3);
  q.push_control(tws::make_ws_frame(tws::ws::kPing, a, 0, nullptr));
  n = q.next(iov, 8);
  CHECK(n == 1 && iov[0].iov_len == 3, "a ping waits for the partly written message to finish");
  q.advance(3);
  n = q.next(iov, 8);
  CHECK(n == 1 && iov[0].iov_len == 2, "and then goes");
  q.advance(2);
  CHECK(q.empty() && q.bytes() == 0, "nothing is left");
  q.push(tws::make_ws_frame(tws::ws::kBinary, a, 4, nullptr));
  q.push(tws::make_ws_frame(tws::ws::kBinary, a, 4, nullptr));
  q.next(iov, 8);
  q.advance(1);
  q.drop_unsent();
  CHECK(q.message_bytes() == 5, "after a protocol error only the partly written message is kept");
}

// Pings come at half the timeout of silence, or on an idle link to sample
// the round trip, a few times after DATA stopped; the base RTT is the least
// of at least three samples.
void test_liveness() {
  tws::Liveness l(5000, 0);
  CHECK(!l.ping_due(100, true, 0), "no probe in the first 200 ms");
  CHECK(l.ping_due(200, true, 0), "the first idle-link probe comes after 200 ms");
  CHECK(!l.ping_due(2499, false, 0), "a busy link is not pinged before half the timeout");
  CHECK(l.ping_due(2500, false, 0), "half the timeout without a word: ping");
  uint64_t token = 42;
  double base = -1;
  for (int i = 0; i < 3; i++) {
    l.pinged(1000.0 * i, token, true, 0);
    base = l.ponged(1000.0 * i + 10 - i, reinterpret_cast<const uint8_t*>(&token), 8);
  }
  CHECK(base == 8 && l.base_rtt() == 8, "the base RTT is the least sample once there are three");
  l.pinged(5000, token, false, 0);
  CHECK(l.ponged(5001, reinterpret_cast<const uint8_t*>(&token), 8) < 0, "a ping on a busy link is not a sample");
  l.pinged(6000, token, true, 0);
  const uint64_t other = 7;
  CHECK(l.ponged(6001, reinterpret_cast<const uint8_t*>(&other), 8) < 0, "a pong with another token is not a sample");
}

// A quiet session is probed a few times, then pinged only at half the
// timeout of silence, until DATA moves again.
void test_idle_pings() {
  tws::Liveness l(5000, 0);
  int probes = 0;
  int pings = 0;
  double data = 0;  // DATA last moved
  for (double now = 0; now < 10000; now += 10) {
    if (!l.ping_due(now, true, data)) continue;
    pings++;
    if (now < 2500) probes++;  // before any liveness ping is due
    l.pinged(now, 1, true, data);
  }
  CHECK(pings <= tws::Liveness::kQuietProbes + 10000 / 2500, "an idle session pings only a few times, then at half the timeout");
  CHECK(probes == tws::Liveness::kQuietProbes, "it takes its RTT samples right away");
  // The peer answers and pings too: it is never silent, so we only probe.
  tws::Liveness heard(5000, 0);
  pings = 0;
  for (double now = 0; now < 10000; now += 10) {
    heard.heard(now);
    if (now == 5000) data = now;  // a DATA burst
    const bool idle = now - data >= tws::Liveness::kQuietMs;
    if (!heard.ping_due(now, idle, data)) continue;
    pings++;
    heard.pinged(now, 1, idle, data);
  }
  CHECK(pings == 2 * tws::Liveness::kQuietProbes, "DATA moving again renews the probes, and only that");
}

// Answer ahead dials only targets spelled exactly as JavaScript would
// connect to them (src/util/ip.ts); every other spelling goes to JavaScript.
void test_ahead_target() {
  struct Case {
    const char* target;
    const char* host;  // null: not taken ahead
    uint16_t port;
  };
  const Case cases[] = {
      {"127.0.0.1:80", "127.0.0.1", 80},
      {"10.1.2.3:65535", "10.1.2.3", 65535},
      {"255.255.255.255:1", "255.255.255.255", 1},
      {"0.0.0.1:7", "0.0.0.1", 7},
      {"[::1]:22", "::1", 22},
      {"[2001:db8::1]:443", "2001:db8::1", 443},
      {"[fe80::1]:9", "fe80::1", 9},
      {"[2001:db8:0:1:1:1:1:1]:5", "2001:db8:0:1:1:1:1:1", 5},
      // Other spellings JavaScript reads (or refuses) itself.
      {"127.000.000.001:80", nullptr, 0},
      {"127.0.0.01:80", nullptr, 0},
      {"127.1:80", nullptr, 0},
      {"0x7f.0.0.1:80", nullptr, 0},
      {"2130706433:80", nullptr, 0},
      {"127.0.0.1.:80", nullptr, 0},
      {"256.0.0.1:80", nullptr, 0},
      {"1.2.3.4.5:80", nullptr, 0},
      {"1..2.3:80", nullptr, 0},
      {"1234.0.0.1:80", nullptr, 0},
      {"0.0.0.0:80", nullptr, 0},
      {"127.0.0.1:0", nullptr, 0},
      {"127.0.0.1:080", nullptr, 0},
      {"127.0.0.1:65536", nullptr, 0},
      {"127.0.0.1:99999", nullptr, 0},
      {"127.0.0.1:+80", nullptr, 0},
      {"127.0.0.1:", nullptr, 0},
      {"127.0.0.1", nullptr, 0},
      {":80", nullptr, 0},
      {"", nullptr, 0},
      {"localhost:80", nullptr, 0},
      {"::1:80", nullptr, 0},
      {"[::FFFF:127.0.0.1]:80", nullptr, 0},
      {"[::ffff:127.0.0.1]:80", nullptr, 0},
      {"[::ffff:7f00:1]:80", nullptr, 0},
      {"[::1.2.3.4]:80", nullptr, 0},
      {"[::]:80", nullptr, 0},
      {"[0:0::1]:80", nullptr, 0},
      {"[0::1]:80", nullptr, 0},
      {"[2001:DB8::1]:80", nullptr, 0},
      {"[2001:0db8::1]:80", nullptr, 0},
      {"[2001:db8:0:0:1:0:0:1]:80", nullptr, 0},
      {"[fe80::1%lo]:80", nullptr, 0},
      {"[::1]80", nullptr, 0},
      {"[::1]:", nullptr, 0},
      {"[::1:80", nullptr, 0},
      {"[]:80", nullptr, 0},
  };
  for (const Case& c : cases) {
    tws::AheadTarget t;
    const bool took = tws::parse_ahead_target(c.target, &t);
    CHECK(took == (c.host != nullptr), std::string("taken ahead or not: ") + c.target);
    if (took && c.host) CHECK(t.host == c.host && t.port == c.port, std::string("host and port of ") + c.target);
  }
}

int main() {
  test_mask();
  test_splits();
  test_client_role();
  test_ws_errors();
  test_tws2();
  test_utf8();
  test_close_frames();
  test_intrusive_list();
  test_client_upgrade();
  test_out_queue();
  test_liveness();
  test_idle_pings();
  test_ahead_target();
  return tws::test::report();
}

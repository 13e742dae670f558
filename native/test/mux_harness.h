// A host for the sans-I/O mux (core/mux.h) with no I/O at all: local sockets
// are byte strings with a write budget, the peer is an outbox of TWS2 frames
// that the test reads at whatever pace it likes, and finished streams are
// freed at the end of each turn, as the event loop frees them — so ASan sees
// any pointer the mux keeps to a stream after it ended. Shared by the unit
// tests (mux_test.cc) and the fuzzer (../fuzz/mux_fuzz.cc). [test programs only]
#pragma once

#include <errno.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "../core/mux.h"
#include "../core/out_queue.h"
#include "../core/tws2.h"

namespace tws::test {

// What a local application sees of its socket; outlives the stream.
struct Local {
  std::string received;            // bytes written to it by the mux
  size_t write_room = SIZE_MAX;    // bytes it takes before it would block
  std::string to_send;             // bytes it sent, not yet read by the mux
  bool eof = false;                // it shut its side after to_send
  bool fail = false;               // its next read or write fails
  bool drains = false;             // a read that takes all of to_send says so (a socket read short)
  int reads = 0;                   // reads the mux made of it
  bool shut = false;               // the mux shut our side (FIN passed on)
  bool closed = false;
  bool abortive = false;
};

struct FakePort final : mux::Port {
  explicit FakePort(std::shared_ptr<Local> l) : mux::Port([](mux::Port* p) { delete static_cast<FakePort*>(p); }), local(std::move(l)) {}
  std::shared_ptr<Local> local;
};

struct OutFrame {
  uint8_t type;
  uint32_t stream;
  std::string body;
  size_t wire;  // bytes it takes on the WebSocket
};

class MuxHarness final : public mux::MuxHost, public mux::LocalIo {
 public:
  explicit MuxHarness(const SessionOptions& o) : mux(*this, *this, 7, o, credit) {}

  std::atomic<int64_t> credit{0};
  mux::Mux mux;
  std::deque<OutFrame> outbox;
  size_t backlog = 0;
  bool closing = false;
  bool pump_wanted = false;
  int drained_calls = 0;
  int dropped = 0;
  std::vector<Event> events;
  std::vector<std::unique_ptr<mux::Stream>> graveyard;

  static mux::PortPtr port(const std::shared_ptr<Local>& l) { return mux::PortPtr(new FakePort(l)); }

  // ---- the peer ----
  void frame(uint8_t type, uint32_t sid, const std::string& body) {
    std::string copy = body;
    if (type == tws2::kData) return mux.on_data(sid, reinterpret_cast<uint8_t*>(copy.data()), copy.size());
    if (tws2::validate(type, sid, reinterpret_cast<const uint8_t*>(copy.data()), copy.size())) return;  // the reader would close
    mux.on_frame(type, sid, reinterpret_cast<uint8_t*>(copy.data()), copy.size());
  }
  static std::string u32(uint32_t v) {
    std::string s(4, '\0');
    tws2::write_u32(reinterpret_cast<uint8_t*>(&s[0]), v);
    return s;
  }
  static std::string coded(uint16_t code, const std::string& why) {
    return std::string{static_cast<char>(code >> 8), static_cast<char>(code & 0xFF)} + why;
  }
  void open(uint32_t sid, uint32_t window, bool udp, const std::string& target) {
    frame(tws2::kOpen, sid, u32(window) + std::string(1, udp ? 2 : 1) + target);
  }
  // The peer reads frames worth up to `budget` bytes; returns what it read.
  std::vector<OutFrame> read(size_t budget = SIZE_MAX) {
    std::vector<OutFrame> got;
    while (!outbox.empty() && outbox.front().wire <= budget) {
      budget -= outbox.front().wire;
      backlog -= outbox.front().wire;
      got.push_back(std::move(outbox.front()));
      outbox.pop_front();
    }
    return got;
  }

  // One loop turn: pump while asked to, or while streams wait and there is
  // room (as the session does after each write), then free what finished.
  void turn() {
    for (int i = 0; i < 64 && (pump_wanted || (mux.has_ready() && backlog < mux::Mux::kSendHighWater)); i++) {
      pump_wanted = false;
      mux.pump();
    }
    graveyard.clear();
  }

  size_t count(Event::Kind k, uint32_t sid = 0) const {
    return static_cast<size_t>(std::count_if(events.begin(), events.end(), [&](const Event& e) {
      return e.kind == k && (sid == 0 || e.stream == sid);
    }));
  }
  const Event* last(Event::Kind k, uint32_t sid) const {
    for (auto it = events.rbegin(); it != events.rend(); ++it) {
      if (it->kind == k && it->stream == sid) return &*it;
    }
    return nullptr;
  }

  // ---- mux::LocalIo ----
  ssize_t local_write(mux::Stream& s, const uint8_t* p, size_t n) override {
    Local& l = *static_cast<FakePort&>(*s.port).local;
    if (l.fail) return -ECONNRESET;
    const size_t take = std::min(n, l.write_room);
    l.received.append(reinterpret_cast<const char*>(p), take);
    if (l.write_room != SIZE_MAX) l.write_room -= take;
    return static_cast<ssize_t>(take);
  }
  mux::LocalRead local_read(mux::Stream& s, uint8_t* into, size_t n) override {
    Local& l = *static_cast<FakePort&>(*s.port).local;
    l.reads++;
    if (l.fail) return {mux::LocalRead::kError, 0, ECONNRESET};
    if (l.to_send.empty()) return {l.eof ? mux::LocalRead::kEof : mux::LocalRead::kWouldBlock};
    const size_t take = std::min(n, l.to_send.size());
    std::memcpy(into, l.to_send.data(), take);
    l.to_send.erase(0, take);
    return {mux::LocalRead::kBytes, take, 0, l.drains && take < n};
  }
  void local_shutdown(mux::Stream& s) override { static_cast<FakePort&>(*s.port).local->shut = true; }
  void local_close(mux::Stream& s, bool abortive) override {
    if (!s.port) return;
    Local& l = *static_cast<FakePort&>(*s.port).local;
    l.closed = true;
    l.abortive = abortive;
  }
  // ---- mux::MuxHost ----
  void send_frame(uint8_t type, uint32_t stream, const uint8_t* body, size_t n) override {
    if (closing) return;
    push({type, stream, std::string(reinterpret_cast<const char*>(body), n), 2 + tws2::kHeaderLen + n});
  }
  void send_data(uint32_t stream, Buf b, size_t n) override {
    const std::string payload(reinterpret_cast<const char*>(b.data.get() + kHeadroom), n);
    seal_data_frame(b, stream, n, nullptr);
    push({tws2::kData, stream, payload, b.size()});
  }
  size_t send_backlog() const override { return backlog; }
  bool can_send() const override { return !closing; }
  void emit(Event e) override { events.push_back(std::move(e)); }
  void emit_datagram(uint32_t stream, const uint8_t* p, size_t n) override {
    Event e(Event::kDatagram);
    e.stream = stream;
    e.text.assign(reinterpret_cast<const char*>(p), n);
    events.push_back(std::move(e));
  }
  void datagram_dropped() override { dropped++; }
  void retire(std::unique_ptr<mux::Stream> s) override { graveyard.push_back(std::move(s)); }
  bool drained() override {
    drained_calls++;
    return !closing;
  }
  void want_pump() override { pump_wanted = true; }

 private:
  void push(OutFrame f) {
    backlog += f.wire;
    outbox.push_back(std::move(f));
  }
};

}  // namespace tws::test

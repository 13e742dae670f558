// libFuzzer harness over the sans-I/O TWS2 mux (core/mux.h), through
// MuxHarness: the input plays the peer (frames in any order, reading what
// the mux sends with random budgets or not at all), the local applications
// (reading slowly, sending, ending, failing) and the control plane
// (accepting, rejecting, opening, GOAWAY), with the clock moving in jumps so
// idle timeouts fire. Streams end in every way while the peer is stalled.
//
// Input: byte 0 sets the role (bit 0: server), an idle timeout (bit 1) and
// small budgets (bit 2); then operations of three bytes [op][a][b].
//
// Checked after every input, beyond what ASan and UBSan catch: every stream
// the mux reported (asked to be opened, or opened by us) is reported closed
// exactly once, none is left, and all the credit it granted has left the
// process total.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "../test/mux_harness.h"

namespace {

using tws::Event;
using tws::test::Local;
using tws::test::MuxHarness;
namespace tws2 = tws::tws2;

void fail(const char* why, uint32_t sid) {
  std::fprintf(stderr, "mux_fuzz: %s (stream %u)\n", why, sid);
  std::abort();
}

struct Run {
  MuxHarness& h;
  bool server;
  std::map<uint32_t, std::shared_ptr<Local>> locals;
  std::set<uint32_t> ours;  // streams we opened
  uint32_t next_own;
  double now = 0;

  Run(MuxHarness& harness, bool srv) : h(harness), server(srv), next_own(srv ? 2 : 1) {}

  // A stream id the peer may use (its parity), or one of ours.
  uint32_t peer_sid(uint8_t a) const { return (a % 16) * 2 + (server ? 1 : 2); }
  uint32_t any_sid(uint8_t a) const { return (a % 32) + 1; }

  tws::mux::Stream* with_socket(uint8_t a) {
    tws::mux::Stream* s = h.mux.find(any_sid(a));
    return s && s->port ? s : nullptr;
  }

  std::shared_ptr<Local> local(uint8_t b) {
    auto l = std::make_shared<Local>();
    l->write_room = b % 4 == 0 ? SIZE_MAX : static_cast<size_t>(b) * 37;
    l->to_send = std::string(static_cast<size_t>(b) * 211, 'L');
    return l;
  }

  void step(uint8_t op, uint8_t a, uint8_t b) {
    switch (op % 21) {
      case 0: return h.open(peer_sid(a), 65536 + b * 4096u, b % 5 == 0, "t:" + std::to_string(a));
      case 1: return h.frame(tws2::kData, any_sid(a), std::string(1 + static_cast<size_t>(b) * 97, 'D'));
      case 2: return h.frame(tws2::kWindow, any_sid(a), MuxHarness::u32(1 + b * 1024u));
      case 3: return h.frame(tws2::kFin, any_sid(a), "");
      case 4: return h.frame(tws2::kReset, any_sid(a), MuxHarness::coded(b % 12, "r"));
      case 5: return h.frame(tws2::kOpenOk, any_sid(a), MuxHarness::u32(65536 + b * 8192u));
      case 6: return h.frame(tws2::kDatagram, any_sid(a), std::string(b, 'G'));
      case 7:
        // Now and then a reverse-tunnel frame instead (a protocol error the wrong way round).
        if (b % 4 == 1) return h.frame(server ? tws2::kListen : tws2::kListenOk, 0, MuxHarness::u32(b) + std::string(16, 'k') + "1:1");
        if (b % 4 == 2) return h.frame(tws2::kListenOk, 0, MuxHarness::u32(b) + std::string{'\0', '\x50'});
        return h.frame(tws2::kGoaway, 0, MuxHarness::coded(1001, "bye"));
      case 8: {
        tws::mux::Stream* s = h.mux.find_accepting(any_sid(a));
        if (s && !s->udp) {
          auto l = local(b);
          locals[s->id] = l;
          h.mux.accept(*s, MuxHarness::port(l), b % 3 == 0 ? "initial" : "");
          h.mux.start(*s);
        } else if (s) {
          h.mux.accept_datagrams(*s);
        }
        return;
      }
      case 9: return h.mux.reject(any_sid(a), 1 + b % 9, "policy");
      case 10: {
        const bool udp = b % 7 == 0;
        if (next_own > 64 || h.mux.cannot_open(next_own, udp)) return;
        const uint32_t sid = next_own;
        next_own += 2;
        ours.insert(sid);
        if (udp) {
          h.mux.open(sid, "u:53", true, nullptr, "");
          return;
        }
        auto l = local(b);
        locals[sid] = l;
        std::unique_ptr<tws::mux::Reply> reply;
        if (b % 3 == 0) {  // some streams answer their local socket themselves (a proxy listener's)
          reply = std::make_unique<tws::mux::Reply>();
          reply->ok = "ok";
          reply->refused.push_back({static_cast<uint16_t>(b % 4), b % 2 ? "E" : "", "no"});
          reply->otherwise = "otherwise";
        }
        h.mux.open(sid, "t:1", false, MuxHarness::port(l), b % 2 ? "hello" : "", std::move(reply));
        return;
      }
      case 11:
        if (tws::mux::Stream* s = with_socket(a)) {
          locals[s->id]->write_room = b % 2 ? SIZE_MAX : static_cast<size_t>(b) * 301;
          h.mux.local_writable(*s);
        }
        return;
      case 12:
        if (tws::mux::Stream* s = with_socket(a)) {
          Local& l = *locals[s->id];
          if (b % 3 == 0) l.eof = true;
          else l.to_send.append(static_cast<size_t>(b) * 53, 'S');
          h.mux.local_readable(*s);
        }
        return;
      case 13:
        if (tws::mux::Stream* s = with_socket(a)) {
          if (b % 2) {
            h.mux.local_error(*s, ECONNRESET);
          } else {
            locals[s->id]->fail = true;  // found by the next read or write
            h.mux.local_readable(*s);
          }
        }
        return;
      case 14:
        now += static_cast<double>(b) * 40;
        h.mux.set_time(now);
        return h.mux.tick();
      case 15:
        h.read(b == 255 ? SIZE_MAX : static_cast<size_t>(b) * 4096);  // 0: the peer reads nothing
        return;
      case 16: return h.turn();
      case 17: h.mux.goaway(1001, "restart"); return;
      case 18: return h.mux.send_datagram(any_sid(a), reinterpret_cast<const uint8_t*>("dgram"), 5);
      case 19: return h.mux.close_stream(any_sid(a), 1 + b % 9);
      default: return h.mux.pump();
    }
  }

  void check_end() {
    std::map<uint32_t, int> closed;
    std::set<uint32_t> requested(ours);
    for (const Event& e : h.events) {
      if (e.kind == Event::kOpenRequest) requested.insert(e.stream);
      if (e.kind == Event::kStreamClosed) closed[e.stream]++;
    }
    for (uint32_t sid : requested) {
      if (closed[sid] != 1) fail("a stream was not reported closed exactly once", sid);
    }
    for (auto& kv : closed) {
      if (!requested.count(kv.first)) fail("a stream nobody opened was reported closed", kv.first);
    }
    if (h.mux.stream_count() != 0) fail("streams left after the session's end", 0);
    if (h.credit.load() != 0) fail("credit left in the process total", 0);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  tws::SessionOptions o;
  o.server = data[0] & 1;
  o.idle_timeout_ms = (data[0] & 2) ? 500 : 0;
  o.udp_timeout_ms = 2000;
  o.max_streams = 12;
  if (data[0] & 4) {
    o.session_budget = 128 * 1024;
    o.process_budget = 512 * 1024;
  }
  MuxHarness h(o);
  Run run(h, o.server);
  for (size_t i = 1; i + 3 <= size && !h.mux.error(); i += 3) run.step(data[i], data[i + 1], data[i + 2]);
  // The session ends: after a protocol error, or when the input does.
  h.closing = true;
  h.mux.reset_all(h.mux.error() ? "protocol error" : "session closed");
  h.turn();
  run.check_end();
  return 0;
}

#ifdef TWS_FUZZ_DRIVER
#include "driver.h"
#endif

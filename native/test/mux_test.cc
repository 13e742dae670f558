// Unit tests of the sans-I/O TWS2 mux (core/mux.h), driven through
// MuxHarness: no sockets, no threads, no clock but the one the test sets.
// Built under ASan and UBSan by test/native/mux.test.ts. Prints one line per
// failure and a closing "N passed, N failed".
#include <cstdio>
#include <memory>
#include <string>

#include "check.h"
#include "mux_harness.h"

namespace {

using tws::Event;
using tws::SessionOptions;
using tws::test::Local;
using tws::test::MuxHarness;
using tws::test::OutFrame;
namespace tws2 = tws::tws2;

constexpr uint32_t kMiB = 1024 * 1024;

// A server with 1 MiB initial windows: the figures below are worked out for it.
SessionOptions server_options() {
  SessionOptions o;
  o.server = true;
  o.initial_window = kMiB;
  return o;
}

size_t count_type(const std::vector<OutFrame>& frames, uint8_t type, uint32_t sid = 0) {
  size_t n = 0;
  for (const OutFrame& f : frames) n += f.type == type && (sid == 0 || f.stream == sid);
  return n;
}

// The server side: the peer opens stream `sid`, JavaScript accepts it onto `l`.
tws::mux::Stream* accept(MuxHarness& h, uint32_t sid, const std::shared_ptr<Local>& l, const std::string& early = "") {
  h.open(sid, 65536, false, "target:1");
  if (!early.empty()) h.frame(tws2::kData, sid, early);
  tws::mux::Stream* s = h.mux.find_accepting(sid);
  if (s) {
    h.mux.accept(*s, MuxHarness::port(l), "");
    h.mux.start(*s);
  }
  return s;
}

void test_accept_with_early_data() {
  MuxHarness h(server_options());
  auto l = std::make_shared<Local>();
  h.open(1, 65536, false, "example.org:22");
  CHECK(h.count(Event::kOpenRequest, 1) == 1, "an OPEN asks JavaScript");
  CHECK(h.events.back().text == "example.org:22", "with its target");
  h.frame(tws2::kData, 1, "early bytes");
  tws::mux::Stream* s = h.mux.find_accepting(1);
  CHECK(s != nullptr, "the stream waits for JavaScript");
  h.mux.accept(*s, MuxHarness::port(l), "");
  CHECK(l->received.empty(), "nothing is written before the host says the socket is ready");
  h.mux.start(*s);
  CHECK(l->received == "early bytes", "early data reaches the local socket at start");
  auto out = h.read();
  CHECK(count_type(out, tws2::kOpenOk, 1) == 1, "OPEN_OK goes out");
  CHECK(!out.empty() && out[0].body == MuxHarness::u32(kMiB), "granting the initial window");
  h.turn();
}

void test_window_exceeded_is_a_protocol_error() {
  MuxHarness h(server_options());
  h.open(1, 65536, false, "t:1");
  h.frame(tws2::kData, 1, std::string(65536, 'x'));
  CHECK(h.mux.error() == nullptr, "early data up to 64 KiB is allowed");
  h.frame(tws2::kData, 1, "y");
  CHECK(h.mux.error() != nullptr && std::string(h.mux.error()).find("window") != std::string::npos,
        "one byte past the window is a protocol error");
}

void test_credit_returned_at_a_quarter() {
  MuxHarness h(server_options());
  auto l = std::make_shared<Local>();
  accept(h, 1, l);
  h.read();
  h.frame(tws2::kData, 1, std::string(kMiB / 4 - 1, 'a'));
  CHECK(count_type(h.read(), tws2::kWindow) == 0, "no WINDOW before a quarter of the window is written");
  h.frame(tws2::kData, 1, "b");
  auto out = h.read();
  CHECK(count_type(out, tws2::kWindow, 1) == 1 && out.back().body == MuxHarness::u32(kMiB / 4),
        "a quarter written locally goes back in one WINDOW");
  h.turn();
}

void test_slow_local_reader() {
  MuxHarness h(server_options());
  auto l = std::make_shared<Local>();
  l->write_room = 1000;
  tws::mux::Stream* s = accept(h, 1, l);
  h.frame(tws2::kData, 1, std::string(5000, 'q'));
  CHECK(l->received.size() == 1000, "a slow reader takes what it can");
  h.frame(tws2::kData, 1, std::string(3000, 'r'));
  CHECK(l->received.size() == 1000, "later bytes queue behind the held ones, in order");
  l->write_room = SIZE_MAX;
  h.mux.local_writable(*s);
  CHECK(l->received == std::string(5000, 'q') + std::string(3000, 'r'), "everything arrives, in order, once it reads");
  h.turn();
}

// A read that says it emptied the socket is the last until the socket is
// readable again; one that does not is followed by another (edge-triggered).
void test_a_drained_read_waits_for_readiness() {
  MuxHarness h(server_options());
  auto l = std::make_shared<Local>();
  tws::mux::Stream* s = accept(h, 1, l);
  h.read();
  l->drains = true;
  l->to_send = "first";
  h.mux.local_readable(*s);
  h.turn();
  auto out = h.read();
  CHECK(count_type(out, tws2::kData, 1) == 1 && out.back().body == "first", "a drained read's bytes go out");
  CHECK(l->reads == 1, "no second read after a drained one (" + std::to_string(l->reads) + " reads)");
  l->to_send = "second";
  h.turn();
  CHECK(count_type(h.read(), tws2::kData, 1) == 0 && l->reads == 1, "nothing is read before the socket says it is readable");
  h.mux.local_readable(*s);
  h.turn();
  out = h.read();
  CHECK(count_type(out, tws2::kData, 1) == 1 && out.back().body == "second", "readiness brings the next read");
  l->drains = false;
  l->to_send = "third";
  const int before = l->reads;
  h.mux.local_readable(*s);
  h.turn();
  CHECK(l->reads == before + 2, "without the hint it reads until it would block (" + std::to_string(l->reads - before) + " reads)");
  h.mux.reset_all("done");
  h.turn();
}

void test_half_close_both_ways() {
  MuxHarness h(server_options());
  auto l = std::make_shared<Local>();
  tws::mux::Stream* s = accept(h, 1, l);
  h.frame(tws2::kData, 1, "request");
  h.frame(tws2::kFin, 1, "");
  CHECK(l->shut, "the peer's FIN shuts our side of the local socket once its bytes are written");
  CHECK(h.count(Event::kStreamClosed, 1) == 0, "the stream stays open for the answer");
  l->to_send = "answer";
  l->eof = true;
  h.mux.local_readable(*s);
  h.turn();
  auto out = h.read();
  CHECK(count_type(out, tws2::kData, 1) == 1 && count_type(out, tws2::kFin, 1) == 1, "the answer and our FIN go out");
  const Event* closed = h.last(Event::kStreamClosed, 1);
  CHECK(closed && closed->text == "fin" && closed->bytes_in == 7 && closed->bytes_out == 6, "it ends cleanly, with its bytes");
  CHECK(l->closed && !l->abortive, "the local socket gets a FIN, not a RST");
  CHECK(h.credit.load() == 0, "its credit leaves the process total");
}

// A peer that stops reading while streams end every way: nothing the mux
// keeps may point at a freed stream (ASan), each ends once, credit returns.
void test_stalled_peer_while_streams_end() {
  SessionOptions o;  // the client: it opens the streams
  o.idle_timeout_ms = 1000;
  MuxHarness h(o);
  h.mux.set_time(0);
  std::shared_ptr<Local> locals[6];
  for (uint32_t i = 0; i < 6; i++) {
    locals[i] = std::make_shared<Local>();
    locals[i]->to_send = std::string(kMiB, static_cast<char>('a' + i));
    h.mux.open(1 + 2 * i, "t:1", false, MuxHarness::port(locals[i]), "");
  }
  for (uint32_t i = 0; i < 6; i++) h.frame(tws2::kOpenOk, 1 + 2 * i, MuxHarness::u32(16 * kMiB));
  h.turn();
  CHECK(h.backlog >= tws::mux::Mux::kSendHighWater, "DATA is queued up to the high-water mark");
  CHECK(h.backlog < tws::mux::Mux::kSendHighWater + tws2::kMaxData + 64, "and not much past it: the peer is not reading");
  // Stream 1: the peer resets it. Stream 3: its local socket fails.
  h.frame(tws2::kReset, 1, MuxHarness::coded(6, "bye"));
  h.mux.local_error(*h.mux.find(3), EPIPE);
  h.turn();
  // Streams 7 and 9 hear from the peer at t=500; stream 5 stays idle.
  h.mux.set_time(500);
  h.frame(tws2::kData, 7, "x");
  h.frame(tws2::kData, 9, "y");
  h.frame(tws2::kFin, 7, "");  // and stream 7 is half-closed by the peer
  h.mux.set_time(1200);
  h.mux.tick();
  h.turn();
  CHECK(h.last(Event::kStreamClosed, 1) && h.last(Event::kStreamClosed, 1)->text.find("peer reset") == 0, "a RESET ends stream 1");
  CHECK(h.last(Event::kStreamClosed, 3) && h.last(Event::kStreamClosed, 3)->text == "local error: EPIPE", "a local error ends stream 3, and says which");
  CHECK(h.last(Event::kStreamClosed, 5) && h.last(Event::kStreamClosed, 5)->text == "idle", "idleness ends stream 5");
  CHECK(h.last(Event::kStreamClosed, 11) && h.last(Event::kStreamClosed, 11)->text == "idle", "and stream 11");
  CHECK(locals[0]->abortive && locals[1]->abortive && locals[2]->abortive, "aborted streams' sockets get a RST");
  CHECK(locals[3]->shut, "stream 7's local socket saw the peer's FIN");
  // The peer reads a little at a time; the rest ends with stream 7's FIN and a session reset.
  for (int i = 0; i < 200 && !h.outbox.empty(); i++) {
    h.read(64 * 1024);
    h.mux.pump();
    h.turn();
  }
  locals[3]->eof = true;
  locals[3]->to_send.clear();
  h.mux.local_readable(*h.mux.find(7));
  h.turn();
  h.read();
  h.turn();
  CHECK(h.last(Event::kStreamClosed, 7) && h.last(Event::kStreamClosed, 7)->text == "fin",
        "stream 7 ends with both FINs: " + (h.last(Event::kStreamClosed, 7) ? h.last(Event::kStreamClosed, 7)->text : std::string("open")));
  h.mux.reset_all("session closed");
  h.turn();
  CHECK(h.last(Event::kStreamClosed, 9) && h.last(Event::kStreamClosed, 9)->text == "session closed", "the session's end ends stream 9");
  for (uint32_t sid = 1; sid <= 11; sid += 2) CHECK(h.count(Event::kStreamClosed, sid) == 1, "stream " + std::to_string(sid) + " ends exactly once");
  CHECK(h.mux.stream_count() == 0, "no stream is left");
  CHECK(h.credit.load() == 0, "every byte of credit left the process total");
}

void test_goaway() {
  MuxHarness h(server_options());
  auto l = std::make_shared<Local>();
  tws::mux::Stream* s = accept(h, 1, l);
  CHECK(!h.mux.goaway(1001, "restart"), "GOAWAY with a stream open does not close at once");
  h.open(3, 65536, false, "t:1");
  auto out = h.read();
  CHECK(count_type(out, tws2::kGoaway) == 1, "GOAWAY goes out");
  CHECK(count_type(out, tws2::kReset, 3) == 1 && out.back().body.substr(0, 2) == MuxHarness::coded(9, ""), "a new OPEN gets RESET 9");
  CHECK(h.count(Event::kRefused, 3) == 1, "and JavaScript hears of the refusal");
  h.mux.local_error(*s, ECONNRESET);
  CHECK(h.drained_calls == 1, "the last stream's end says the session is drained");
  h.turn();
  // Both sides drain, and the session is already closing when the last
  // stream ends: nobody closes for the drain, so the peer's GOAWAY is answered idle.
  MuxHarness g(server_options());
  auto m = std::make_shared<Local>();
  tws::mux::Stream* t = accept(g, 1, m);
  g.frame(tws2::kGoaway, 0, MuxHarness::coded(1001, "peer restarts"));
  g.mux.goaway(1001, "we restart");
  g.closing = true;
  g.mux.local_error(*t, ECONNRESET);
  CHECK(g.count(Event::kIdle) == 1, "a closing session still reports idle after the peer's GOAWAY");
  g.turn();
}

// Datagrams have no end a drain could wait for: GOAWAY ends the udp streams
// at once (RESET 9, after the GOAWAY), open or still being decided, and the
// tcp streams go on. Ending them is not the drain's end: the caller closes.
void test_goaway_ends_udp_streams() {
  MuxHarness h(server_options());
  auto l = std::make_shared<Local>();
  accept(h, 1, l);
  h.open(3, 65536, true, "dns:53");
  h.mux.accept_datagrams(*h.mux.find_accepting(3));
  h.open(5, 65536, true, "dns:53");  // JavaScript has not answered yet
  h.read();
  CHECK(!h.mux.goaway(1001, "restart"), "with a tcp stream open the session does not close at once");
  auto out = h.read();
  CHECK(!out.empty() && out.front().type == tws2::kGoaway, "GOAWAY goes out first");
  for (uint32_t sid : {3u, 5u}) {
    const std::string n = std::to_string(sid);
    CHECK(count_type(out, tws2::kReset, sid) == 1, "udp stream " + n + " is reset");
    CHECK(h.last(Event::kStreamClosed, sid) && h.last(Event::kStreamClosed, sid)->text == "going away",
          "udp stream " + n + " ends as going away");
  }
  for (const OutFrame& f : out) {
    if (f.type == tws2::kReset) CHECK(f.body == MuxHarness::coded(9, "restart"), "RESET 9 with the GOAWAY's reason");
  }
  CHECK(h.mux.find(1) != nullptr && !l->closed, "the tcp stream goes on");
  CHECK(h.drained_calls == 0, "the udp streams' end is not the drain's");
  h.turn();
  MuxHarness g(server_options());
  g.open(1, 65536, true, "dns:53");
  g.mux.accept_datagrams(*g.mux.find_accepting(1));
  CHECK(g.mux.goaway(1001, "restart"), "with only udp streams the session is drained at once");
  CHECK(g.mux.stream_count() == 0 && g.drained_calls == 0, "and the caller closes it, once");
  g.turn();
}

// The control plane ends a stream it gave up on (a SOCKS association that
// ended): RESET 6 out, the stream finished and reported once; an unknown or
// finished id is nothing.
void test_close_stream() {
  MuxHarness h(server_options());
  auto l = std::make_shared<Local>();
  accept(h, 1, l);
  h.open(3, 65536, true, "dns:53");
  h.mux.accept_datagrams(*h.mux.find_accepting(3));
  h.read();
  h.mux.close_stream(3, 6);
  auto out = h.read();
  CHECK(count_type(out, tws2::kReset, 3) == 1, "the udp stream is reset");
  for (const OutFrame& f : out) {
    if (f.type == tws2::kReset) CHECK(f.body == MuxHarness::coded(6, "cancelled"), "RESET 6 cancelled");
  }
  CHECK(h.mux.find(3) == nullptr && h.mux.stream_count() == 1, "its state is freed");
  CHECK(h.last(Event::kStreamClosed, 3) && h.last(Event::kStreamClosed, 3)->text == "closed locally", "it ends as closed locally");
  h.mux.close_stream(3, 6);
  h.mux.close_stream(99, 6);
  CHECK(h.read().empty(), "closing it again, or an unknown id, sends nothing");
  h.mux.close_stream(1, 6);
  CHECK(l->closed && h.mux.stream_count() == 0, "a tcp stream closes its local socket");
  int closed = 0;
  for (const Event& e : h.events) closed += e.kind == Event::kStreamClosed ? 1 : 0;
  CHECK(closed == 2, "each stream is reported closed once");
  h.turn();
}

void test_stream_ids() {
  MuxHarness h(server_options());
  h.open(2, 65536, false, "t:1");
  CHECK(h.mux.error() != nullptr, "a client-parity check: an even id from the client is a protocol error");
  MuxHarness g(server_options());
  g.open(1, 65536, false, "t:1");
  g.mux.reject(1, 1, "denied");
  g.open(1, 65536, false, "t:1");
  CHECK(g.mux.error() != nullptr, "an OPEN reusing a closed stream's id is a protocol error");
  g.turn();
}

void test_round_robin() {
  SessionOptions o;
  MuxHarness h(o);
  auto a = std::make_shared<Local>();
  auto b = std::make_shared<Local>();
  a->to_send = std::string(1200 * 1024, 'a');
  b->to_send = std::string(1200 * 1024, 'b');
  h.mux.open(1, "t:1", false, MuxHarness::port(a), "");
  h.mux.open(3, "t:1", false, MuxHarness::port(b), "");
  h.frame(tws2::kOpenOk, 1, MuxHarness::u32(16 * kMiB));
  h.frame(tws2::kOpenOk, 3, MuxHarness::u32(16 * kMiB));
  h.read();
  // The peer reads as it goes: each turn fills the send queue to its mark.
  std::vector<OutFrame> out;
  for (int i = 0; i < 16; i++) {
    h.turn();
    for (OutFrame& f : h.read()) out.push_back(std::move(f));
  }
  size_t switches = 0;
  uint32_t prev = 0;
  size_t biggest = 0;
  for (const OutFrame& f : out) {
    if (f.type != tws2::kData) continue;
    if (prev && f.stream != prev) switches++;
    prev = f.stream;
    biggest = std::max(biggest, f.body.size());
  }
  CHECK(switches >= 4, "two busy streams take turns (" + std::to_string(switches) + " switches)");
  CHECK(biggest <= tws::mux::Mux::kTurnBytes, "a turn is at most a whole frame while another stream waits");
  h.mux.reset_all("done");
  h.turn();
}

void test_udp_held_datagrams() {
  SessionOptions o;
  MuxHarness h(o);
  h.mux.open(1, "dns:53", true, nullptr, "");
  for (int i = 0; i < 20; i++) h.mux.send_datagram(1, reinterpret_cast<const uint8_t*>("ping"), 4);
  CHECK(h.dropped == 4, "16 datagrams are held while the stream opens, the rest dropped");
  h.read();
  h.frame(tws2::kOpenOk, 1, MuxHarness::u32(65536));
  CHECK(count_type(h.read(), tws2::kDatagram, 1) == 16, "the held datagrams go out on OPEN_OK");
  h.frame(tws2::kDatagram, 1, "pong");
  CHECK(h.count(Event::kDatagram, 1) == 1, "the answer goes to JavaScript");
  h.frame(tws2::kFin, 1, "");
  CHECK(h.last(Event::kStreamClosed, 1) != nullptr, "FIN ends a udp stream");
  CHECK(h.credit.load() == 0, "a udp stream never held flow-control credit");
  h.turn();
}

void test_window_grows_for_a_starved_peer() {
  MuxHarness h(server_options());
  h.mux.set_time(0);
  auto l = std::make_shared<Local>();
  l->write_room = 0;
  tws::mux::Stream* s = accept(h, 1, l);
  h.frame(tws2::kData, 1, std::string(kMiB - 64 * 1024, 'a'));  // the peer is down to 64 KiB of credit
  h.mux.set_time(30);
  l->write_room = SIZE_MAX;
  h.mux.local_writable(*s);
  h.frame(tws2::kData, 1, std::string(128 * 1024, 'b'));
  const Event* w = h.last(Event::kWindow, 1);
  CHECK(w != nullptr && w->text.find("window → 2097152") == 0, "a window that starved the peer doubles");
  CHECK(s->recv_window == 2 * kMiB, "to 2 MiB");
  h.mux.reset_all("done");
  h.turn();
  CHECK(h.credit.load() == 0, "and its credit is returned when the stream ends");
}

void test_budget_refuses_new_streams() {
  SessionOptions o = server_options();
  o.session_budget = 65536;
  o.process_budget = 4 * 65536;  // a server session's share: one minimum window
  MuxHarness h(o);
  h.open(1, 65536, false, "t:1");
  h.open(3, 65536, false, "t:1");
  CHECK(h.count(Event::kOpenRequest) == 1 && h.count(Event::kRefused, 3) == 1, "past its share a session's new streams are refused");
  h.turn();
}

void test_overlong_target_refused() {
  MuxHarness h(server_options());
  const std::string longest = std::string(253, 'a') + ":65535";
  h.open(1, 65536, false, longest);
  CHECK(h.count(Event::kOpenRequest, 1) == 1, "a 259-byte target is asked about");
  // One byte more, ending in a 3-byte UTF-8 sequence that the clipped copy must not split.
  h.open(3, 65536, false, std::string(258, 'a') + "\xE2\x82\xAC" + std::string(60000, 'b'));
  const Event* e = h.last(Event::kRefused, 3);
  CHECK(e && e->code == 2 && e->note == "bad target: longer than 259 bytes", "a longer one is refused with RESET 2 by the mux");
  CHECK(e && e->text == std::string(258, 'a'), "and JavaScript hears of it with the target clipped at a UTF-8 boundary");
  CHECK(h.count(Event::kOpenRequest, 3) == 0 && !h.mux.find(3), "nothing of it is kept");
  h.turn();
}

// A proxy listener's answers (mux::Reply), as the client opens streams with one.
std::unique_ptr<const tws::mux::Reply> proxy_reply() {
  auto r = std::make_unique<tws::mux::Reply>();
  r->ok = "OK\n";
  r->refused.push_back({2, "ECONNREFUSED", "REFUSED\n"});
  r->refused.push_back({2, "", "CONNECT FAILED\n"});
  r->refused.push_back({1, "", "DENIED\n"});
  r->otherwise = "OTHERWISE\n";
  return r;
}

void test_reply_ok_before_payload() {
  SessionOptions o;  // the client
  MuxHarness h(o);
  auto l = std::make_shared<Local>();
  l->to_send = "early";
  h.mux.open(1, "t:1", false, MuxHarness::port(l), "", proxy_reply());
  h.turn();
  CHECK(l->received.empty(), "nothing is answered before the peer decides");
  h.frame(tws2::kOpenOk, 1, MuxHarness::u32(65536));
  h.frame(tws2::kData, 1, "payload");
  h.turn();
  CHECK(l->received == "OK\npayload", "the ok bytes come first, then the peer's: " + l->received);
  CHECK(h.mux.find(1) && h.mux.find(1)->bytes_in == 7, "only the peer's bytes count as received");
  h.frame(tws2::kFin, 1, "");
  l->eof = true;
  h.mux.local_readable(*h.mux.find(1));
  h.turn();
  CHECK(h.last(Event::kStreamClosed, 1) && h.last(Event::kStreamClosed, 1)->text == "fin", "the stream ends as any other");
  CHECK(h.credit.load() == 0, "the ok bytes took no credit");
}

void test_reply_ok_waits_for_a_slow_local_socket() {
  SessionOptions o;
  MuxHarness h(o);
  auto l = std::make_shared<Local>();
  l->write_room = 2;
  h.mux.open(1, "t:1", false, MuxHarness::port(l), "", proxy_reply());
  h.frame(tws2::kOpenOk, 1, MuxHarness::u32(65536));
  h.frame(tws2::kData, 1, "data");
  CHECK(l->received == "OK", "a short write takes what fits: " + l->received);
  l->write_room = SIZE_MAX;
  h.mux.local_writable(*h.mux.find(1));
  CHECK(l->received == "OK\ndata", "the rest of the ok bytes, then the payload: " + l->received);
}

void test_reply_refusal_rules() {
  struct Case {
    uint16_t code;
    const char* reason;
    const char* answer;
  } cases[] = {
      {2, "connect failed: ECONNREFUSED", "REFUSED\n"},
      {2, "connect failed: EHOSTUNREACH", "CONNECT FAILED\n"},
      {1, "target not allowed", "DENIED\n"},
      {3, "connect timed out after 10 ms", "OTHERWISE\n"},
  };
  for (const Case& c : cases) {
    SessionOptions o;
    MuxHarness h(o);
    auto l = std::make_shared<Local>();
    l->to_send = std::string(200000, 'x');  // more than early data may carry: unread when the RESET comes
    h.mux.open(1, "t:1", false, MuxHarness::port(l), "", proxy_reply());
    h.turn();
    h.frame(tws2::kReset, 1, MuxHarness::coded(c.code, c.reason));
    h.turn();
    CHECK(l->received == c.answer, std::string("RESET ") + c.reason + " is answered " + c.answer + ", got " + l->received);
    CHECK(l->shut && l->closed && !l->abortive, "then a FIN, not a RST");
    CHECK(l->to_send.empty(), "what the local side sent is read away, so the close stays a FIN");
    CHECK(h.count(Event::kStreamClosed, 1) == 1, "the stream ends once");
  }
}

void test_reply_when_the_session_ends() {
  SessionOptions o;
  MuxHarness h(o);
  auto opening = std::make_shared<Local>();
  auto open = std::make_shared<Local>();
  auto plain = std::make_shared<Local>();
  h.mux.open(1, "t:1", false, MuxHarness::port(opening), "", proxy_reply());
  h.mux.open(3, "t:1", false, MuxHarness::port(open), "", proxy_reply());
  h.mux.open(5, "t:1", false, MuxHarness::port(plain), "");
  h.frame(tws2::kOpenOk, 3, MuxHarness::u32(65536));
  h.turn();
  h.mux.reset_all("session lost");
  h.turn();
  CHECK(opening->received == "OTHERWISE\n" && opening->closed && !opening->abortive, "an opening stream gets `otherwise` and a FIN");
  CHECK(open->received == "OK\n" && open->abortive, "an open one was answered already: a RST, as without a reply");
  CHECK(plain->received.empty() && plain->abortive, "a stream without a reply: a RST, as before");
  auto local = std::make_shared<Local>();
  h.mux.open(7, "t:1", false, MuxHarness::port(local), "", proxy_reply());
  h.frame(tws2::kReset, 7, MuxHarness::coded(2, "connect failed: ECONNREFUSED"));
  CHECK(local->received == "REFUSED\n", "a stream opened later is answered by its own RESET");
}

// Reverse tunnels: LISTEN frames reach JavaScript whole, in the right direction only.
void test_listen_frames() {
  const std::string token(16, 'k');
  const std::string listen = MuxHarness::u32(7) + token + "127.0.0.1:8080";
  auto bad = [](uint8_t type, uint32_t sid, const std::string& body) {
    return static_cast<bool>(tws2::validate(type, sid, reinterpret_cast<const uint8_t*>(body.data()), body.size()));
  };
  CHECK(!bad(tws2::kListen, 0, listen), "a LISTEN on stream 0 is well-formed");
  CHECK(bad(tws2::kListen, 1, listen), "on another stream it is malformed");
  CHECK(bad(tws2::kListen, 0, MuxHarness::u32(7) + token), "so is one without an address");
  CHECK(bad(tws2::kListen, 0, MuxHarness::u32(7) + token + std::string(260, 'a')), "or with one over 259 bytes");
  CHECK(bad(tws2::kListenOk, 0, MuxHarness::u32(7) + std::string(2, '\0')), "LISTEN_OK with port 0 is malformed");
  CHECK(bad(tws2::kListenErr, 0, MuxHarness::u32(7) + MuxHarness::coded(2, std::string(121, 'x'))), "a LISTEN_ERR reason over 120 bytes too");

  MuxHarness server(server_options());
  server.frame(tws2::kListen, 0, listen);
  const Event* e = server.events.empty() ? nullptr : &server.events.back();
  CHECK(e && e->kind == Event::kControl && e->code == tws2::kListen && e->text == listen, "a server hands a LISTEN to JavaScript whole");
  CHECK(server.mux.error() == nullptr, "without complaint");
  const std::string ok = MuxHarness::u32(7) + std::string{'\x1f', '\x90'};
  server.mux.send_control(tws2::kListenOk, reinterpret_cast<const uint8_t*>(ok.data()), ok.size());
  auto out = server.read();
  CHECK(out.size() == 1 && out[0].type == tws2::kListenOk && out[0].stream == 0 && out[0].body == ok, "and sends JavaScript's answer on stream 0");
  server.frame(tws2::kListenOk, 0, ok);
  CHECK(server.mux.error() != nullptr, "a LISTEN_OK sent to a server is a protocol error");

  MuxHarness client{SessionOptions{}};
  client.frame(tws2::kListenOk, 0, ok);
  CHECK(client.count(Event::kControl) == 1 && client.mux.error() == nullptr, "a client takes LISTEN_OK");
  client.frame(tws2::kListen, 0, listen);
  CHECK(client.mux.error() != nullptr, "a LISTEN sent to a client is a protocol error");
}

// A client refuses server-opened streams unless it has reverse tunnels.
void test_client_accepts_streams_only_when_asked() {
  MuxHarness plain{SessionOptions{}};
  plain.open(2, 65536, false, "127.0.0.1:8080");
  const Event* e = plain.last(Event::kRefused, 2);
  CHECK(e && e->code == 1 && plain.count(Event::kOpenRequest) == 0, "a client without reverse tunnels answers RESET 1");
  SessionOptions o;
  o.accept_streams = true;
  MuxHarness reverse(o);
  reverse.open(2, 65536, false, "127.0.0.1:8080");
  CHECK(reverse.count(Event::kOpenRequest, 2) == 1, "one with them asks JavaScript");
  reverse.open(3, 65536, false, "127.0.0.1:8080");
  CHECK(reverse.mux.error() != nullptr, "an odd id from the server is still a protocol error");
  plain.turn();
  reverse.turn();
}

}  // namespace

int main() {
  test_accept_with_early_data();
  test_window_exceeded_is_a_protocol_error();
  test_credit_returned_at_a_quarter();
  test_slow_local_reader();
  test_a_drained_read_waits_for_readiness();
  test_half_close_both_ways();
  test_stalled_peer_while_streams_end();
  test_goaway();
  test_goaway_ends_udp_streams();
  test_close_stream();
  test_stream_ids();
  test_round_robin();
  test_udp_held_datagrams();
  test_window_grows_for_a_starved_peer();
  test_budget_refuses_new_streams();
  test_overlong_target_refused();
  test_reply_ok_before_payload();
  test_reply_ok_waits_for_a_slow_local_socket();
  test_reply_refusal_rules();
  test_reply_when_the_session_ends();
  test_listen_frames();
  test_client_accepts_streams_only_when_asked();
  return tws::test::report();
}

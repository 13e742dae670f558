// Tests of the native Engine itself (its I/O thread, epoll, real sockets),
// built with native/io/engine.cc under ASan and UBSan by
// test/native/engine.test.ts. Each test plays the peer on one end of a
// socketpair and the local applications on loopback TCP sockets, and checks
// what a hostile or broken peer must not be able to do: make the engine use
// freed memory, grow a queue without bound, reorder the 101, or get an
// invalid close frame echoed. Prints one line per failure and a closing
// "N passed, N failed".
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <atomic>
#include <thread>
#include <time.h>
#include <vector>

#include "check.h"
#include "../core/mask.h"
#include "../core/tws2.h"
#include "../core/ws_frame.h"
#include "../io/engine.h"
#include "../io/event_queue.h"
#include "../io/loop.h"
#include "watched_engine.h"

namespace {

using tws::test::Bytes;
using Clock = std::chrono::steady_clock;

void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

void nonblock(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

// One end for the engine, one for us (non-blocking).
std::pair<int, int> unix_pair() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) std::abort();
  nonblock(sv[1]);
  return {sv[0], sv[1]};
}

// A connected loopback TCP pair: {engine's end, ours (non-blocking)}.
// A listener on a free loopback port; its address in *a.
int loopback_listener(sockaddr_in* a) {
  int l = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  *a = sockaddr_in{};
  a->sin_family = AF_INET;
  a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof *a;
  if (::bind(l, reinterpret_cast<sockaddr*>(a), len) != 0 || ::listen(l, 64) != 0 ||
      ::getsockname(l, reinterpret_cast<sockaddr*>(a), &len) != 0) {
    std::abort();
  }
  return l;
}

std::pair<int, int> tcp_pair() {
  sockaddr_in a;
  int l = loopback_listener(&a);
  int c = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) std::abort();
  int s = ::accept4(l, nullptr, nullptr, SOCK_CLOEXEC);
  ::close(l);
  nonblock(c);
  return {s, c};
}

void abortive_close(int fd) {
  linger lg{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  ::close(fd);
}

// A frame as a peer sends it (masked: to a server engine).
Bytes ws_frame(uint8_t op, const Bytes& payload, bool masked) {
  Bytes out(tws::ws::kMaxHeader + payload.size());
  const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
  size_t h = tws::ws::write_header(out.data(), op, true, payload.size(), masked ? key : nullptr);
  if (!payload.empty()) std::memcpy(out.data() + h, payload.data(), payload.size());
  if (masked) tws::apply_mask(out.data() + h, payload.size(), key, 0);
  out.resize(h + payload.size());
  return out;
}

Bytes tws2_frame(uint8_t type, uint32_t stream, const Bytes& body) {
  Bytes out(tws::tws2::kHeaderLen);
  tws::tws2::write_tws2_header(out.data(), type, stream);
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

Bytes open_body(uint32_t window, uint8_t kind, const std::string& target) {
  Bytes b(5);
  tws::tws2::write_u32(b.data(), window);
  b[4] = kind;
  b.insert(b.end(), target.begin(), target.end());
  return b;
}

Bytes coded(uint16_t code, const std::string& reason) {
  Bytes b{static_cast<uint8_t>(code >> 8), static_cast<uint8_t>(code)};
  b.insert(b.end(), reason.begin(), reason.end());
  return b;
}

// Writes what fits now; returns how much went.
size_t send_some(int fd, const Bytes& b) {
  ssize_t w = ::send(fd, b.data(), b.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  return w > 0 ? static_cast<size_t>(w) : 0;
}

// Writes all of it, waiting for room up to `ms`; false if it did not fit in time.
bool send_all(int fd, const Bytes& b, int ms = 2000) {
  size_t off = 0;
  const auto deadline = Clock::now() + std::chrono::milliseconds(ms);
  while (off < b.size()) {
    ssize_t w = ::send(fd, b.data() + off, b.size() - off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) {
      off += static_cast<size_t>(w);
      continue;
    }
    if (w < 0 && errno != EAGAIN) return false;
    if (Clock::now() > deadline) return false;
    pollfd p{fd, POLLOUT, 0};
    ::poll(&p, 1, 10);
  }
  return true;
}

// Reads whatever arrives within `ms` (stops early at EOF).
Bytes read_for(int fd, int ms) {
  Bytes out;
  const auto deadline = Clock::now() + std::chrono::milliseconds(ms);
  uint8_t buf[65536];
  while (Clock::now() < deadline) {
    ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) {
      out.insert(out.end(), buf, buf + n);
      continue;
    }
    if (n == 0) break;
    pollfd p{fd, POLLIN, 0};
    ::poll(&p, 1, 10);
  }
  return out;
}

// What a client-side peer decodes from the engine's (server's) bytes.
struct Decoded {
  struct Msg {
    uint8_t op;
    Bytes payload;
  };
  std::vector<Msg> msgs;  // whole data messages and control frames, in order
  bool error = false;
  Bytes current;
  bool wants_stop() const { return false; }
  void on_message_start(uint8_t) { current.clear(); }
  void on_message_data(uint8_t* p, size_t n) { current.insert(current.end(), p, p + n); }
  void on_message_end() { msgs.push_back({tws::ws::kBinary, current}); }
  void on_control(uint8_t op, uint8_t* p, size_t n) { msgs.push_back({op, Bytes(p, p + n)}); }
};

Decoded decode(Bytes bytes, tws::ws::Role role = tws::ws::Role::kClient) {
  Decoded d;
  tws::ws::Parser parser(role, 1 << 20);
  tws::ws::ParseError err;
  parser.feed(bytes.data(), bytes.size(), d, &err);
  d.error = static_cast<bool>(err);
  return d;
}

// An engine and the events it reports, taken whenever the test pumps.
struct Harness {
  tws::test::WatchedEngine watched;
  tws::Engine& engine = watched.engine;
  std::vector<tws::Event> events;

  Harness() {
    std::string err;
    if (!engine.start(&err)) std::abort();
  }

  void pump(int ms) {
    for (auto& e : watched.wait_events(ms)) events.push_back(std::move(e));
  }

  // Pumps until `pred` holds for some event, or `ms` pass.
  const tws::Event* wait_for(const std::function<bool(const tws::Event&)>& pred, int ms = 3000) {
    const auto deadline = Clock::now() + std::chrono::milliseconds(ms);
    for (;;) {
      for (const auto& e : events)
        if (pred(e)) return &e;
      if (Clock::now() > deadline) return nullptr;
      pump(20);
    }
  }

  size_t count(tws::Event::Kind k) const {
    size_t n = 0;
    for (const auto& e : events) n += e.kind == k;
    return n;
  }
};

tws::SessionOptions server_options() {
  tws::SessionOptions o;
  o.server = true;
  o.timeout_ms = 60000;
  return o;
}

// The use-after-free of the send scheduler: streams sit on the ready list
// while the writer to the peer is backed up (the peer does not read), end
// in one of three ways, and the peer then starts reading.
void test_streams_ending_while_the_writer_is_backed_up() {
  const char* const modes[] = {"RESET from the peer", "local socket error", "idle timeout"};
  for (int mode = 0; mode < 3; mode++) {
    Harness h;
    auto peer = unix_pair();
    tws::SessionOptions o = server_options();
    if (mode == 2) o.idle_timeout_ms = 300;
    h.engine.adopt(1, tws::UniqueFd(peer.first), "", "", o);
    const int kStreams = 8;
    for (int i = 0; i < kStreams; i++) {
      send_all(peer.second, ws_frame(tws::ws::kBinary, tws2_frame(tws::tws2::kOpen, 1 + 2 * i, open_body(16 << 20, 1, "local:1")), true));
    }
    std::vector<int> locals;
    for (int i = 0; i < kStreams; i++) {
      const tws::Event* e = h.wait_for([&](const tws::Event& ev) { return ev.kind == tws::Event::kOpenRequest && ev.stream == uint32_t(1 + 2 * i); });
      if (!e) break;
      auto p = tcp_pair();
      h.engine.accept_stream(1, e->stream, tws::UniqueFd(p.first), "");
      locals.push_back(p.second);
    }
    CHECK(locals.size() == size_t(kStreams), std::string(modes[mode]) + ": all streams accepted");
    // Every stream has data to send; the peer reads nothing, so the writer
    // backs up and the streams stay on the ready list.
    const Bytes chunk(256 * 1024, 'x');
    for (int round = 0; round < 20; round++) {
      for (int fd : locals) send_some(fd, chunk);
      h.pump(10);
    }
    if (mode == 0) {
      for (int i = 0; i < kStreams; i += 2) {
        send_all(peer.second, ws_frame(tws::ws::kBinary, tws2_frame(tws::tws2::kReset, 1 + 2 * i, coded(6, "gone")), true));
      }
    } else if (mode == 1) {
      for (int i = 0; i < kStreams; i += 2) {
        abortive_close(locals[i]);
        locals[i] = -1;
      }
    }
    const size_t want = mode == 2 ? kStreams : kStreams / 2;
    const auto ended = [&] {
      size_t n = 0;
      for (const auto& e : h.events) n += e.kind == tws::Event::kStreamClosed;
      return n;
    };
    for (auto until = Clock::now() + std::chrono::seconds(3); ended() < want && Clock::now() < until;) h.pump(20);
    CHECK(ended() >= want, std::string(modes[mode]) + ": the streams ended (" + std::to_string(ended()) + ")");
    h.pump(100);  // a few loop turns: the ended streams are freed
    // Now the peer reads: the scheduler pumps again, and must not touch the freed streams.
    Bytes got = read_for(peer.second, 500);
    CHECK(!got.empty(), std::string(modes[mode]) + ": the backed-up frames flow once the peer reads");
    ::shutdown(peer.second, SHUT_WR);
    for (auto until = Clock::now() + std::chrono::seconds(3); !h.count(tws::Event::kSessionClosed) && Clock::now() < until;) {
      read_for(peer.second, 20);
      h.pump(10);
    }
    CHECK(h.count(tws::Event::kSessionClosed) == 1, std::string(modes[mode]) + ": the session closes");
    ::close(peer.second);
    for (int fd : locals)
      if (fd >= 0) ::close(fd);
  }
}

// The 101 goes out first and whole, before a pong for a pipelined ping and
// before the close a pipelined protocol error causes.
void test_the_101_goes_first() {
  const std::string preamble = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";
  for (int variant = 0; variant < 2; variant++) {
    Harness h;
    auto peer = unix_pair();
    Bytes head = ws_frame(tws::ws::kPing, {'p', 'i', 'n', 'g'}, true);
    if (variant == 1) head.clear();
    const Bytes bad = ws_frame(tws::ws::kText, {'h', 'i'}, true);  // a text message: protocol error
    head.insert(head.end(), bad.begin(), bad.end());
    h.engine.adopt(1, tws::UniqueFd(peer.first), std::string(head.begin(), head.end()), preamble, server_options());
    Bytes out = read_for(peer.second, 400);
    const std::string what = variant == 0 ? "ping + bad frame behind the upgrade" : "bad frame behind the upgrade";
    CHECK(out.size() >= preamble.size() && std::string(out.begin(), out.begin() + preamble.size()) == preamble,
          what + ": the 101 comes first, complete");
    if (out.size() < preamble.size()) continue;
    Decoded d = decode(Bytes(out.begin() + preamble.size(), out.end()));
    const size_t want = variant == 0 ? 2 : 1;
    CHECK(!d.error && d.msgs.size() == want, what + ": then " + std::to_string(want) + " frame(s)");
    if (d.msgs.size() != want) continue;
    if (variant == 0) CHECK(d.msgs[0].op == tws::ws::kPong && d.msgs[0].payload == Bytes({'p', 'i', 'n', 'g'}), what + ": the pong");
    const auto& close = d.msgs.back();
    CHECK(close.op == tws::ws::kClose && close.payload.size() >= 2 && ((close.payload[0] << 8) | close.payload[1]) == 1002,
          what + ": then close 1002");
    ::close(peer.second);
  }
}

// The reply to a peer's close frame: invalid ones are a protocol error
// (1002, or 1007 for a reason that is not UTF-8), as ws answers; a valid
// code is echoed, an empty close answered empty.
void test_close_replies() {
  struct Case {
    const char* what;
    Bytes body;
    int reply;  // -1: an empty close frame
  };
  const Case cases[] = {
      {"empty", {}, -1},
      {"1000 bye", coded(1000, "bye"), 1000},
      {"4000", coded(4000, ""), 4000},
      {"1-byte body", {0x03}, 1002},
      {"999", coded(999, ""), 1002},
      {"1005", coded(1005, ""), 1002},
      {"1006", coded(1006, ""), 1002},
      {"1015", coded(1015, ""), 1002},
      {"2999", coded(2999, ""), 1002},
      {"5000", coded(5000, ""), 1002},
      {"reason not UTF-8", coded(1000, "\xff\xfe"), 1007},
  };
  for (const Case& c : cases) {
    Harness h;
    auto peer = unix_pair();
    h.engine.adopt(1, tws::UniqueFd(peer.first), "", "", server_options());
    send_all(peer.second, ws_frame(tws::ws::kClose, c.body, true));
    Decoded d = decode(read_for(peer.second, 300));
    const Decoded::Msg* reply = nullptr;
    for (const auto& m : d.msgs)
      if (m.op == tws::ws::kClose) reply = &m;
    int got = !reply ? -2 : reply->payload.empty() ? -1 : (reply->payload[0] << 8) | reply->payload[1];
    CHECK(got == c.reply, std::string("close ") + c.what + ": replied " + std::to_string(got) + ", want " + std::to_string(c.reply));
    ::close(peer.second);
  }
}

// A session draining (our GOAWAY, a stream still open) that must close for
// another reason says that reason: a protocol error gets its 1002, and a
// close from JavaScript its own code, not the drain's 1001 "drained" (the
// streams' end used to finish the drain first, and its close took the place).
void test_close_while_draining() {
  for (int how = 0; how < 2; how++) {
    const char* what = how == 0 ? "a protocol error" : "close_session(4001)";
    Harness h;
    auto peer = unix_pair();
    h.engine.adopt(1, tws::UniqueFd(peer.first), "", "", server_options());
    send_all(peer.second, ws_frame(tws::ws::kBinary, tws2_frame(tws::tws2::kOpen, 1, open_body(1 << 20, 1, "local:1")), true));
    const tws::Event* e = h.wait_for([](const tws::Event& ev) { return ev.kind == tws::Event::kOpenRequest; });
    CHECK(e != nullptr, std::string(what) + ": the stream is requested");
    if (!e) continue;
    auto p = tcp_pair();
    h.engine.accept_stream(1, 1, tws::UniqueFd(p.first), "");
    h.engine.goaway(1, 1001, "restart");
    h.pump(50);
    if (how == 0) send_all(peer.second, ws_frame(tws::ws::kText, Bytes{'x'}, true));
    else h.engine.close_session(1, 4001, "bye", "bye");
    Decoded d = decode(read_for(peer.second, 300));
    int got = -2;
    for (const auto& m : d.msgs)
      if (m.op == tws::ws::kClose) got = m.payload.size() >= 2 ? (m.payload[0] << 8) | m.payload[1] : -1;
    const int want = how == 0 ? 1002 : 4001;
    CHECK(got == want, std::string(what) + " while draining: close " + std::to_string(got) + ", want " + std::to_string(want));
    ::close(p.second);
    ::close(peer.second);
  }
}

// JavaScript answers a stream it asked the engine to dial a second time,
// with a socket of its own: the answer is ignored (its fd closed), the
// dialled socket stays the stream's, and nothing is freed while epoll may
// still report it (the second answer used to replace the dialled socket).
void test_a_second_answer_to_a_dialled_stream_is_ignored() {
  sockaddr_in a;
  int l = loopback_listener(&a);
  nonblock(l);  // its backlog is emptied after each round
  int wrong = 0;
  for (int i = 0; i < 20; i++) {
    Harness h;
    auto peer = unix_pair();
    h.engine.adopt(1, tws::UniqueFd(peer.first), "", "", server_options());
    send_all(peer.second, ws_frame(tws::ws::kBinary, tws2_frame(tws::tws2::kOpen, 1, open_body(1 << 20, 1, "local:1")), true));
    if (!h.wait_for([](const tws::Event& ev) { return ev.kind == tws::Event::kOpenRequest; })) {
      wrong++;
      continue;
    }
    h.engine.dial_stream(1, 1, "127.0.0.1", ntohs(a.sin_port), 1000);
    auto p = tcp_pair();
    h.engine.accept_stream(1, 1, tws::UniqueFd(p.first), "");
    Decoded d = decode(read_for(peer.second, 100));
    int open_oks = 0;
    for (const auto& m : d.msgs) open_oks += m.op == tws::ws::kBinary && !m.payload.empty() && m.payload[0] == tws::tws2::kOpenOk;
    if (open_oks != 1) wrong++;
    ::close(p.second);
    ::close(peer.second);
    for (int c; (c = ::accept4(l, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0;) ::close(c);
  }
  ::close(l);
  CHECK(wrong == 0, "a dialled stream is opened once, whatever else JavaScript answers (" + std::to_string(wrong) + " of 20 wrong)");
}

// Opens split stream 2 on session 1 (the peer at `peer`) with `in` and
// `out`, and has the peer answer OPEN_OK, DATA "world" and FIN.
void open_split_and_answer_world(Harness& h, int peer, int in, int out) {
  h.engine.open_stream(1, 2, tws::UniqueFd(in), "x:1", "", nullptr, tws::UniqueFd(out));
  Bytes window(4);
  tws::tws2::write_u32(window.data(), 1 << 20);
  const std::string world = "world";
  send_all(peer, ws_frame(tws::ws::kBinary, tws2_frame(tws::tws2::kOpenOk, 2, window), true));
  send_all(peer, ws_frame(tws::ws::kBinary, tws2_frame(tws::tws2::kData, 2, Bytes(world.begin(), world.end())), true));
  send_all(peer, ws_frame(tws::ws::kBinary, tws2_frame(tws::tws2::kFin, 2, Bytes()), true));
}

// What non-blocking `fd` yields within 3 s; *eof once it read EOF.
std::string read_to_eof(int fd, bool* eof) {
  std::string got;
  *eof = false;
  const auto deadline = Clock::now() + std::chrono::milliseconds(3000);
  while (!*eof && Clock::now() < deadline) {
    char buf[64];
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) got.append(buf, static_cast<size_t>(n));
    else if (n == 0) *eof = true;
    else {
      pollfd p{fd, POLLIN, 0};
      ::poll(&p, 1, 10);
    }
  }
  return got;
}

// A split stream (--stdio) reads one pipe and writes another: what the read
// pipe holds goes out as DATA and its EOF as FIN; the peer's DATA lands in
// the write pipe and the peer's FIN closes it (its reader sees EOF: a pipe
// has no shutdown).
void test_a_split_stream_reads_one_pipe_and_writes_another() {
  Harness h;
  auto peer = unix_pair();
  h.engine.adopt(1, tws::UniqueFd(peer.first), "", "", server_options());
  int in[2], out[2];
  // Non-blocking, as the addon's own descriptions of stdin/stdout pipes are.
  if (::pipe2(in, O_CLOEXEC | O_NONBLOCK) != 0 || ::pipe2(out, O_CLOEXEC | O_NONBLOCK) != 0) std::abort();
  CHECK(::write(in[1], "hello", 5) == 5, "split: the read pipe holds the payload");
  ::close(in[1]);  // and then its EOF
  open_split_and_answer_world(h, peer.second, in[0], out[1]);
  // The write pipe: the peer's bytes, then EOF.
  bool eof = false;
  const std::string got = read_to_eof(out[0], &eof);
  CHECK(got == "world" && eof, "split: the peer's DATA reaches the write pipe, and its FIN closes it (got '" + got + "')");
  // The peer: OPEN, then the read pipe's bytes as DATA, then FIN.
  std::string sent;
  bool fin = false;
  for (const auto& m : decode(read_for(peer.second, 500)).msgs) {
    if (m.op != tws::ws::kBinary || m.payload.size() < tws::tws2::kHeaderLen || tws::tws2::read_u32(m.payload.data() + 1) != 2) continue;
    if (m.payload[0] == tws::tws2::kData) sent.append(m.payload.begin() + tws::tws2::kHeaderLen, m.payload.end());
    if (m.payload[0] == tws::tws2::kFin) fin = true;
  }
  CHECK(sent == "hello" && fin, "split: the read pipe's bytes go out as DATA and its EOF as FIN (sent '" + sent + "')");
  ::close(out[0]);
  ::close(peer.second);
}

// A split stream whose read and write fds are one socket (stdin and stdout
// the same socket: socat EXEC:, inetd), left blocking as the caller's is:
// the peer's FIN must reach the far end as EOF although the read copy stays
// open, and the socket must not be made non-blocking.
void test_a_split_stream_on_one_socket_passes_the_fin() {
  Harness h;
  auto peer = unix_pair();
  h.engine.adopt(1, tws::UniqueFd(peer.first), "", "", server_options());
  auto local = unix_pair();  // .first: the client's stdin and stdout (blocking); .second: the far end
  const int in = ::fcntl(local.first, F_DUPFD_CLOEXEC, 0);
  const int probe = ::fcntl(local.first, F_DUPFD_CLOEXEC, 0);  // ours: its flags are the shared socket's
  open_split_and_answer_world(h, peer.second, in, local.first);
  bool eof = false;
  const std::string got = read_to_eof(local.second, &eof);
  CHECK(got == "world" && eof, "split on one socket: the peer's FIN reaches the far end as EOF (got '" + got + "')");
  CHECK((::fcntl(probe, F_GETFL) & O_NONBLOCK) == 0, "split on one socket: the shared socket stays blocking");
  ::close(probe);
  ::close(local.second);
  ::close(peer.second);
}

// Commands own their fds: one posted after stop() closes its fd at once.
void test_commands_after_stop_close_their_fds() {
  Harness h;
  h.engine.stop();
  auto a = unix_pair();
  h.engine.adopt(1, tws::UniqueFd(a.first), "", "", server_options());
  auto b = tcp_pair();
  h.engine.open_stream(1, 1, tws::UniqueFd(b.first), "x:1", "");
  uint8_t buf[1];
  CHECK(read_for(a.second, 200).empty() && ::recv(a.second, buf, 1, MSG_DONTWAIT) == 0, "adopt after stop: the fd is closed (EOF)");
  CHECK(read_for(b.second, 200).empty() && ::recv(b.second, buf, 1, MSG_DONTWAIT) == 0, "open_stream after stop: the fd is closed (EOF)");
  ::close(a.second);
  ::close(b.second);
}

// A peer that sends and never reads cannot make the engine queue replies
// without bound: the engine stops reading from it, and closes it (1008)
// after the timeout.
void test_a_peer_that_never_reads() {
  Harness h;
  auto peer = unix_pair();
  tws::SessionOptions o = server_options();
  o.no_udp = true;  // every udp OPEN is refused at once: a RESET each
  o.timeout_ms = 1000;
  h.engine.adopt(1, tws::UniqueFd(peer.first), "", "", o);
  Bytes batch;
  uint32_t id = 1;
  size_t sent = 0;
  auto last_progress = Clock::now();
  const auto until = Clock::now() + std::chrono::seconds(4);
  while (Clock::now() < until && Clock::now() - last_progress < std::chrono::milliseconds(500)) {
    if (batch.empty()) {
      for (int i = 0; i < 1000; i++, id += 2) {
        Bytes f = ws_frame(tws::ws::kBinary, tws2_frame(tws::tws2::kOpen, id, open_body(65536, 2, "10.0.0.1:53")), true);
        batch.insert(batch.end(), f.begin(), f.end());
      }
    }
    size_t w = send_some(peer.second, batch);
    if (w > 0) {
      sent += w;
      batch.erase(batch.begin(), batch.begin() + static_cast<long>(w));
      last_progress = Clock::now();
    }
    h.pump(1);  // JavaScript keeps up with the events
    h.events.clear();
  }
  CHECK(sent < (8u << 20), "the engine stopped reading a peer that does not read: " + std::to_string(sent >> 10) + " KiB taken");
  const tws::Event* closed = h.wait_for([](const tws::Event& e) { return e.kind == tws::Event::kSessionClosed; }, 6000);
  CHECK(closed && closed->code == 1008, "then closed it with 1008 (" + (closed ? std::to_string(closed->code) + " " + closed->text : std::string("not closed")) + ")");
  ::close(peer.second);
}

double cpu_seconds() {
  timespec ts{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

// The two reasons not to read stay apart: a session that stopped reading
// because its peer did not read, whose peer then reads everything while
// JavaScript is behind on events, neither spins the I/O thread nor gets
// closed as "not reading".
void test_gate_released_while_javascript_is_behind() {
  Harness h;
  auto a = unix_pair();
  auto b = unix_pair();
  tws::SessionOptions o = server_options();
  o.no_udp = true;
  o.timeout_ms = 1500;
  h.engine.adopt(1, tws::UniqueFd(a.first), "", "", o);
  h.engine.adopt(2, tws::UniqueFd(b.first), "", "", o);
  const auto refused_opens = [](uint32_t first, int n) {
    Bytes out;
    for (int i = 0; i < n; i++) {
      Bytes f = ws_frame(tws::ws::kBinary, tws2_frame(tws::tws2::kOpen, first + 2 * i, open_body(65536, 2, "10.0.0.1:53")), true);
      out.insert(out.end(), f.begin(), f.end());
    }
    return out;
  };
  // A floods and does not read until the engine stops reading it; JavaScript keeps up meanwhile.
  std::atomic<bool> taking{true};
  std::thread taker([&] {
    while (taking) {
      h.engine.take_events();
      sleep_ms(1);
    }
  });
  uint32_t id = 1;
  size_t sent = 0;
  for (auto until = Clock::now() + std::chrono::seconds(4); Clock::now() < until; id += 2000) {
    if (!send_all(a.second, refused_opens(id, 1000), 300)) break;
    sent += 1000;
  }
  taking = false;
  taker.join();
  h.engine.take_events();
  CHECK(sent > 20000, "the peer that does not read got the engine to stop reading it (" + std::to_string(sent) + " OPENs)");
  // JavaScript stops taking events; B's refusals pile up past the backlog.
  send_all(b.second, refused_opens(1, 6000), 2000);
  sleep_ms(200);
  // A now reads everything it was sent.
  for (auto until = Clock::now() + std::chrono::milliseconds(500); Clock::now() < until;) read_for(a.second, 50);
  const double cpu0 = cpu_seconds();
  sleep_ms(2000);  // longer than the timeout
  const double cpu = cpu_seconds() - cpu0;
  read_for(a.second, 50);
  bool a_closed = false;
  for (const auto& e : h.engine.take_events()) a_closed |= e.kind == tws::Event::kSessionClosed && e.session == 1;
  CHECK(cpu < 0.5, "the I/O thread does not spin while JavaScript is behind (" + std::to_string(cpu) + " s CPU in 2 s)");
  CHECK(!a_closed, "a peer that reads again is not closed as not reading");
  ::close(a.second);
  ::close(b.second);
}

// Events are weighed as well as counted: a few large ones stop reading as many small ones do.
void test_event_bytes_are_bounded() {
  tws::EventQueue q([] {});
  tws::Event e(tws::Event::kRefused);
  e.text.assign(64 * 1024, 'x');
  size_t n = 0;
  while (!q.backlogged() && n < tws::EventQueue::kBacklog) {
    q.emit(e);
    n++;
  }
  CHECK(q.backlogged() && n * e.text.size() >= tws::EventQueue::kBacklogBytes && n < 100,
        "past kBacklogBytes of text the queue is backlogged (" + std::to_string(n) + " events of 64 KiB)");
  bool was = false;
  CHECK(q.take(&was).size() == n && was && q.take_caught_up() && !q.backlogged(), "taking them lets the loop read again");
}

// Pings from a peer that does not read: only the latest pong is kept.
void test_pongs_do_not_pile_up() {
  Harness h;
  auto peer = unix_pair();
  h.engine.adopt(1, tws::UniqueFd(peer.first), "", "", server_options());
  const Bytes ping = ws_frame(tws::ws::kPing, Bytes(125, 'p'), true);
  Bytes batch;
  for (int i = 0; i < 512; i++) batch.insert(batch.end(), ping.begin(), ping.end());
  size_t pings = 0;
  for (auto until = Clock::now() + std::chrono::milliseconds(1500); Clock::now() < until;) {
    if (!send_all(peer.second, batch)) break;  // the engine stopped reading pings: also a bound, but not the one meant here
    pings += 512;
  }
  // Read until the engine has nothing more to say: every pong it still owes.
  Bytes out;
  for (auto until = Clock::now() + std::chrono::seconds(5); Clock::now() < until;) {
    Bytes more = read_for(peer.second, 200);
    if (more.empty()) break;
    out.insert(out.end(), more.begin(), more.end());
  }
  Decoded d = decode(out);
  size_t pongs = 0;
  for (const auto& m : d.msgs) pongs += m.op == tws::ws::kPong;
  CHECK(pings > 20000, "sent many pings (" + std::to_string(pings) + ")");
  CHECK(pongs * 10 < pings, "pongs owed were coalesced: " + std::to_string(pongs) + " for " + std::to_string(pings) + " pings");
  ::close(peer.second);
}

// Datagrams from the peer wait for JavaScript up to a bound; the rest are
// dropped and counted. And datagrams from JavaScript are dropped (counted)
// while the link to a peer that does not read is full.
void test_datagrams_are_bounded() {
  Harness h;
  auto peer = unix_pair();
  h.engine.adopt(1, tws::UniqueFd(peer.first), "", "", server_options());
  send_all(peer.second, ws_frame(tws::ws::kBinary, tws2_frame(tws::tws2::kOpen, 1, open_body(65536, 2, "10.0.0.1:53")), true));
  const tws::Event* req = h.wait_for([](const tws::Event& e) { return e.kind == tws::Event::kOpenRequest; });
  CHECK(req != nullptr, "the udp stream is requested");
  if (!req) return;
  // Before the stream is accepted (JavaScript may be resolving a name for
  // seconds), only a few datagrams are held: 16 at most, 16 KiB at most.
  const Bytes early = ws_frame(tws::ws::kBinary, tws2_frame(tws::tws2::kDatagram, 1, Bytes(4000, 'e')), true);
  for (int i = 0; i < 100; i++) send_all(peer.second, early);
  sleep_ms(100);
  h.engine.accept_datagrams(1, 1);
  sleep_ms(100);
  size_t held = 0;
  for (const auto& e : h.engine.take_events()) held += e.kind == tws::Event::kDatagram ? e.text.size() : 0;
  CHECK(held == 4 * 4000, "datagrams held before the accept stop at 16 KiB (" + std::to_string(held) + " bytes delivered)");
  const Bytes dgram = ws_frame(tws::ws::kBinary, tws2_frame(tws::tws2::kDatagram, 1, Bytes(1000, 'd')), true);
  const int kSent = 20000;
  for (int i = 0; i < kSent; i++) send_all(peer.second, dgram);
  sleep_ms(300);  // JavaScript is busy: nothing is taken meanwhile
  std::vector<tws::Event> events = h.engine.take_events();
  size_t delivered = 0;
  for (const auto& e : events) delivered += e.kind == tws::Event::kDatagram;
  const uint64_t dropped = h.engine.stats().datagrams_dropped;
  CHECK(delivered > 0 && delivered <= 1100, "at most ~1 MiB of datagrams waited for JavaScript (" + std::to_string(delivered) + ")");
  CHECK(delivered + dropped == kSent + 100 - held / 4000, "the rest were dropped and counted (" + std::to_string(dropped) + ")");
  // The other way: the peer reads nothing, so the link fills and datagrams are dropped.
  const uint64_t before = h.engine.stats().datagrams_dropped;
  for (int i = 0; i < 2000; i++) h.engine.send_datagram(1, 1, std::string(60000, 'u'));
  sleep_ms(300);
  const uint64_t more = h.engine.stats().datagrams_dropped - before;
  CHECK(more >= 1900, "datagrams for a full link are dropped and counted (" + std::to_string(more) + " of 2000)");
  ::close(peer.second);
}

// The engine takes a short read as the end of what a socket holds (its
// next edge brings more), except where a short read is no such thing. Each
// case: stream 1 with a 1-byte window over `local` (the engine's end, the
// application's end); the application sends `first`, of which the window
// lets the engine read one byte; `more` then queues what stops a read short
// with bytes behind it; the window opens, and `want` must reach the peer.
void check_nothing_left_behind(const std::string& name, std::pair<int, int> local, const std::string& first,
                               const std::function<bool(int)>& more, const std::string& want) {
  Harness h;
  auto peer = unix_pair();
  h.engine.adopt(1, tws::UniqueFd(peer.first), "", "", server_options());
  send_all(peer.second, ws_frame(tws::ws::kBinary, tws2_frame(tws::tws2::kOpen, 1, open_body(1, 1, "local:1")), true));
  const tws::Event* e = h.wait_for([](const tws::Event& ev) { return ev.kind == tws::Event::kOpenRequest && ev.stream == 1; });
  CHECK(e != nullptr, name + ": the peer's OPEN reaches JavaScript");
  if (!e) {
    ::close(local.first);
    ::close(local.second);
    ::close(peer.second);
    return;
  }
  h.engine.accept_stream(1, 1, tws::UniqueFd(local.first), "");
  std::string sent;
  const auto take_data = [&](int ms) {
    for (const auto& m : decode(read_for(peer.second, ms)).msgs) {
      if (m.op == tws::ws::kBinary && m.payload.size() > tws::tws2::kHeaderLen && m.payload[0] == tws::tws2::kData) {
        sent.append(m.payload.begin() + tws::tws2::kHeaderLen, m.payload.end());
      }
    }
  };
  CHECK(::send(local.second, first.data(), first.size(), 0) == static_cast<ssize_t>(first.size()), name + ": the application sends");
  for (auto until = Clock::now() + std::chrono::seconds(3); sent.empty() && Clock::now() < until;) take_data(20);
  CHECK(sent == first.substr(0, 1), name + ": a 1-byte window carries one byte (got '" + sent + "')");
  CHECK(more(local.second), name + ": what stops a read short, and more behind it, follow");
  h.pump(50);  // the engine hears of them while the window is shut
  Bytes window(4);
  tws::tws2::write_u32(window.data(), 1 << 20);
  send_all(peer.second, ws_frame(tws::ws::kBinary, tws2_frame(tws::tws2::kWindow, 1, window), true));
  for (auto until = Clock::now() + std::chrono::seconds(3); sent.size() < want.size() && Clock::now() < until;) take_data(20);
  CHECK(sent == want, name + ": nothing is left behind (got '" + sent + "')");
  ::close(local.second);
  ::close(peer.second);
}

// TCP urgent data stops a read at its mark. The urgent byte itself leaves
// the stream (no SO_OOBINLINE): the tunnel carries none.
void test_urgent_data_does_not_stall_a_stream() {
  check_nothing_left_behind("urgent", tcp_pair(), "ab", [](int fd) {
    return ::send(fd, "c", 1, MSG_OOB) == 1 && ::send(fd, "de", 2, 0) == 2;
  }, "abde");
}

// A unix socket handed over as a stream's local socket (an API caller may):
// its read stops after a message that carried fds.
void test_a_unix_stream_passing_fds_does_not_stall() {
  check_nothing_left_behind("fds", unix_pair(), "x", [](int fd) {
    char buf[CMSG_SPACE(sizeof(int))] = {};
    iovec iov{const_cast<char*>("ab"), 2};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = buf;
    msg.msg_controllen = sizeof buf;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    const int passed = ::dup(fd);
    std::memcpy(CMSG_DATA(c), &passed, sizeof passed);
    const bool ok = ::sendmsg(fd, &msg, 0) == 2 && ::send(fd, "cd", 2, 0) == 2;
    ::close(passed);
    return ok;
  }, "xabcd");
}

// Refusals the engine makes itself reach JavaScript (log, metrics).
void test_refusals_are_reported() {
  Harness h;
  auto peer = unix_pair();
  tws::SessionOptions o = server_options();
  o.max_streams = 1;
  h.engine.adopt(1, tws::UniqueFd(peer.first), "", "", o);
  send_all(peer.second, ws_frame(tws::ws::kBinary, tws2_frame(tws::tws2::kOpen, 1, open_body(65536, 1, "a:1")), true));
  send_all(peer.second, ws_frame(tws::ws::kBinary, tws2_frame(tws::tws2::kOpen, 3, open_body(65536, 1, "b:2")), true));
  const tws::Event* e = h.wait_for([](const tws::Event& ev) { return ev.kind == tws::Event::kRefused; });
  CHECK(e && e->stream == 3 && e->code == 5 && e->text == "b:2" && e->note == "too many streams", "the second stream is refused and reported");
  ::close(peer.second);
}

// The length of the shortest linear recurrence over GF(2) that generates `s` (Berlekamp-Massey).
size_t linear_complexity(const std::vector<uint8_t>& s) {
  const size_t n = s.size();
  std::vector<uint8_t> c(n + 1, 0), b(n + 1, 0), t;
  c[0] = b[0] = 1;
  size_t l = 0;
  long m = -1;
  for (size_t i = 0; i < n; i++) {
    uint8_t d = s[i];
    for (size_t j = 1; j <= l; j++) d ^= c[j] & s[i - j];
    if (!d) continue;
    t = c;
    const size_t shift = static_cast<size_t>(static_cast<long>(i) - m);
    for (size_t j = 0; j + shift <= n; j++) c[j + shift] ^= b[j];
    if (2 * l <= i) {
      l = i + 1 - l;
      m = static_cast<long>(i);
      b = t;
    }
  }
  return l;
}

// Masking keys come from the kernel's CSPRNG: no repeats among many frames.
void test_masking_keys_do_not_repeat() {
  Harness h;
  auto peer = unix_pair();
  tws::SessionOptions o;  // client: its frames are masked
  o.timeout_ms = 60000;
  h.engine.adopt(1, tws::UniqueFd(peer.first), "", "", o);
  for (int i = 0; i < 2000; i++) {
    auto p = tcp_pair();
    h.engine.open_stream(1, 1 + 2 * i, tws::UniqueFd(p.first), "x:1", "");
    ::close(p.second);
  }
  Bytes out = read_for(peer.second, 1000);
  std::set<uint32_t> keys;
  std::vector<uint32_t> ordered;
  size_t frames = 0;
  for (size_t at = 0; at + 6 <= out.size();) {
    const uint8_t len7 = out[at + 1] & 0x7f;
    size_t h2 = 2, len = len7;
    if (len7 == 126) { len = (out[at + 2] << 8) | out[at + 3]; h2 = 4; }
    if (len7 == 127 || at + h2 + 4 > out.size()) break;
    uint32_t k;
    std::memcpy(&k, &out[at + h2], 4);
    keys.insert(k);
    ordered.push_back(k);
    frames++;
    at += h2 + 4 + len;
  }
  CHECK(frames >= 2000, "read the client's frames (" + std::to_string(frames) + ")");
  CHECK(keys.size() == frames, "no masking key repeats (" + std::to_string(frames - keys.size()) + " repeats)");
  // Unpredictable, not just distinct: any bit of the keys of a linear
  // generator (xorshift, LFSR) follows a linear recurrence over GF(2) of
  // small order (at most 64 for a 64-bit state); random bits have a linear
  // complexity of about half their length (Berlekamp-Massey).
  for (int bit : {0, 13, 31}) {
    std::vector<uint8_t> seq;
    for (uint32_t k : ordered) {
      if (seq.size() == 300) break;
      seq.push_back((k >> bit) & 1);
    }
    const size_t lc = linear_complexity(seq);
    CHECK(lc > 100, "bit " + std::to_string(bit) + " of the masking keys has linear complexity " + std::to_string(lc) + " over 300 keys (a linear generator: 64 at most)");
  }
  ::close(peer.second);
}

void test_invalid_options() {
  tws::SessionOptions o;
  CHECK(tws::invalid_options(o) == nullptr, "the defaults are valid");
  o.initial_window = o.max_window + 1;
  CHECK(tws::invalid_options(o) != nullptr, "initial window above the maximum is refused");
  o = tws::SessionOptions();
  o.initial_window = 1000;
  CHECK(tws::invalid_options(o) != nullptr, "initial window below 65536 is refused");
  o = tws::SessionOptions();
  o.process_budget = o.session_budget - 1;
  CHECK(tws::invalid_options(o) != nullptr, "a process budget below the session budget is refused");
}

}  // namespace

// A turn that never ends is a bug, but it must not make the process hang
// at exit: stop() gives up after a while, says where the thread is, and
// leaves it running with its loop (never freed) and without notifications.
void test_a_stuck_thread_does_not_hang_stop() {
  // Static: the thread outlives this function, and the loop is never freed (a global keeps it reachable).
  static std::atomic<int> notified{0};
  static std::atomic<bool> release{false};
  static std::atomic<bool> running{false};
  static tws::Loop* loop = new tws::Loop([] { notified++; });
  std::string err;
  if (!loop->start(&err, "tws-test")) std::abort();
  loop->post([] {
    running = true;
    while (!release) sleep_ms(5);
  });
  while (!running) sleep_ms(1);
  // Catch what stop() says on stderr.
  int pipefd[2];
  if (::pipe(pipefd) != 0) std::abort();
  const int saved = ::dup(2);
  ::dup2(pipefd[1], 2);
  const auto t0 = Clock::now();
  const bool stopped = loop->stop();
  const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  ::dup2(saved, 2);
  ::close(saved);
  ::close(pipefd[1]);
  char buf[512] = {0};
  const ssize_t n = ::read(pipefd[0], buf, sizeof buf - 1);
  ::close(pipefd[0]);
  const std::string said(buf, n > 0 ? static_cast<size_t>(n) : 0);
  CHECK(!stopped, "stop() gave up on a thread stuck in a command");
  CHECK(waited >= tws::Loop::kStopWaitMs && waited < tws::Loop::kStopWaitMs + 2000, "after " + std::to_string(waited) + " ms");
  CHECK(said.find("the tws-test thread did not stop within") != std::string::npos && said.find("stuck in a command") != std::string::npos,
        "and said where it was stuck: " + said);
  // Events it still emits reach no one.
  const int before = notified;
  loop->events().emit(tws::Event(tws::Event::kIdle));
  CHECK(notified == before, "a muted loop notifies no one");
  release = true;  // let the thread end (the process does not wait for it); the loop stays allocated
}

// A thread that cannot be made (a process or thread limit) is an error
// start() returns, which the engine can report or work around (the TLS
// thread falls back to the sessions' thread), not the end of the process.
void test_a_thread_that_cannot_start_is_an_error() {
  const pid_t child = ::fork();
  if (child == 0) {
    // Root is exempt from RLIMIT_NPROC: become nobody first. One task allowed, and this process is it.
    if (::getuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0)) ::_exit(3);
    const rlimit one{1, 1};
    if (::setrlimit(RLIMIT_NPROC, &one) != 0) ::_exit(3);
    tws::Loop loop([] {});
    std::string err;
    const bool started = loop.start(&err);
    ::_exit(!started && err.find("cannot start the I/O thread") == 0 ? 0 : started ? 1 : 2);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  CHECK(code == 0, "start() said it could not start a thread (child exit " + std::to_string(code) + ": 1 started anyway, 2 another error, 3 could not set the limit)");
}

int main() {
  test_streams_ending_while_the_writer_is_backed_up();
  test_the_101_goes_first();
  test_close_replies();
  test_close_while_draining();
  test_a_second_answer_to_a_dialled_stream_is_ignored();
  test_commands_after_stop_close_their_fds();
  test_a_split_stream_reads_one_pipe_and_writes_another();
  test_a_split_stream_on_one_socket_passes_the_fin();
  test_a_peer_that_never_reads();
  test_gate_released_while_javascript_is_behind();
  test_pongs_do_not_pile_up();
  test_datagrams_are_bounded();
  test_refusals_are_reported();
  test_urgent_data_does_not_stall_a_stream();
  test_a_unix_stream_passing_fds_does_not_stall();
  test_masking_keys_do_not_repeat();
  test_invalid_options();
  test_event_bytes_are_bounded();
  test_a_stuck_thread_does_not_hang_stop();
  test_a_thread_that_cannot_start_is_an_error();
  return tws::test::report();
}

// libFuzzer harness over the native mux: a real Engine (I/O thread, epoll)
// adopts one end of a socketpair, and the fuzz input plays the peer on the
// other end and the local applications on the streams' sockets.
//
// Input layout:
//   byte 0: bit 0 role (1 = the engine is the server), bits 1-2 how open
//           requests are answered (accept, reject, alternate, never; of the
//           accepted ones, the 2nd, 6th, ... are dialled by the engine to the
//           harness's loopback listener, the 3rd, 7th, ... to a closed port),
//           bits 3-4 streams the engine opens first (client role),
//           bits 5-6 how the peer reads what the engine sends: everything,
//           nothing until the end, or at most 4 KiB / 64 KiB per record (a
//           slow reader backs up the engine's writer while streams end).
//   then records: [length u8][kind u8][length bytes]
//     kind 0: a WebSocket binary message carrying these bytes (a TWS2 frame)
//     kind 1: a WebSocket ping, 2: a close frame, 3: these raw bytes
//     kind 4: write bytes[1..] to local socket bytes[0] % count
//     kind 5: shut local socket bytes[0] % count for writing, 6: close it
// Records are framed correctly, so mutations explore stream states rather
// than dying at the WebSocket layer (frame_fuzz.cc covers the parser).
//
// Every input must end with the session closed once the peer's end is shut:
// a session that stays up after EOF aborts the run (a hang). Sanitizers catch
// memory errors and undefined behaviour on the I/O thread.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "../core/mask.h"
#include "../core/ws_frame.h"
#include "../io/engine.h"
#include "../test/watched_engine.h"

namespace {

struct Pair {
  int engine_end = -1;
  int our_end = -1;
};

Pair socket_pair() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) std::abort();
  ::fcntl(sv[1], F_SETFL, ::fcntl(sv[1], F_GETFL) | O_NONBLOCK);
  return {sv[0], sv[1]};
}

// A loopback TCP listener for the engine to dial (non-blocking); its port.
int tcp_listener(uint16_t* port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), len) != 0 || ::listen(fd, 64) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    std::abort();
  }
  *port = ntohs(a.sin_port);
  return fd;
}

// Reads and drops whatever the engine wrote to us, up to `budget` bytes.
void drain(int fd, size_t budget = SIZE_MAX) {
  char buf[65536];
  while (budget > 0) {
    ssize_t n = ::recv(fd, buf, budget < sizeof buf ? budget : sizeof buf, MSG_DONTWAIT);
    if (n <= 0) break;
    budget -= static_cast<size_t>(n);
  }
}

// Writes all of it unless the engine stops taking it; `budget` is how much of
// what the engine wrote back we may read meanwhile (a slow or stopped reader).
void send_all(int fd, const uint8_t* p, size_t n, size_t budget = SIZE_MAX) {
  while (n > 0) {
    ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) {
      p += w;
      n -= static_cast<size_t>(w);
      continue;
    }
    if (w < 0 && errno == EAGAIN) {
      drain(fd, budget);
      pollfd pfd{fd, POLLOUT, 0};
      if (::poll(&pfd, 1, budget == 0 ? 2 : 100) > 0) continue;
    }
    return;  // the engine closed its end, or will not read: that is allowed
  }
}

// A frame as the peer sends it: masked when the engine is the server.
std::vector<uint8_t> ws_frame(uint8_t op, const uint8_t* p, size_t n, bool mask) {
  std::vector<uint8_t> out(tws::ws::kMaxHeader + n);
  const uint8_t key[4] = {0x12, 0x9a, 0x5c, 0xe1};
  size_t h = tws::ws::write_header(out.data(), op, true, n, mask ? key : nullptr);
  if (n) std::memcpy(out.data() + h, p, n);
  if (mask) tws::apply_mask(out.data() + h, n, key, 0);
  out.resize(h + n);
  return out;
}

struct Harness {
  tws::test::WatchedEngine watched;
  tws::Engine& engine = watched.engine;
  std::vector<int> locals;  // our ends of the streams' local sockets (-1 once closed)
  bool session_closed = false;
  int answers = 0;
  uint8_t policy = 0;
  uint16_t listen_port = 0;
  int listener = tcp_listener(&listen_port);  // what dialled streams connect to
  uint16_t closed_port = 0;                    // nothing listens there: dialling it is refused

  Harness() {
    int probe = tcp_listener(&closed_port);
    ::close(probe);
  }

  ~Harness() {
    engine.stop();
    ::close(listener);
    for (int fd : locals)
      if (fd >= 0) ::close(fd);
  }

  // Handles the events that are ready; waits up to `ms` for the first one.
  void pump(int ms) {
    for (tws::Event& e : watched.wait_events(ms)) {
      if (e.kind == tws::Event::kSessionClosed) session_closed = true;
      if (e.kind != tws::Event::kOpenRequest) continue;
      const int n = answers++;
      const bool accept = policy == 0 || (policy == 2 && n % 2 == 0);
      if (policy == 3) continue;  // never answered: the session must still close
      if (e.code == 2) {          // udp
        if (accept) engine.accept_datagrams(e.session, e.stream);
        else engine.reject_stream(e.session, e.stream, 2, "fuzz");
        continue;
      }
      if (!accept) {
        engine.reject_stream(e.session, e.stream, 1, "fuzz");
        continue;
      }
      if (n % 4 == 1 || n % 4 == 2) {
        engine.dial_stream(e.session, e.stream, "127.0.0.1", n % 4 == 1 ? listen_port : closed_port, 1000);
        continue;
      }
      Pair p = socket_pair();
      locals.push_back(p.our_end);
      engine.accept_stream(e.session, e.stream, tws::UniqueFd(p.engine_end), n % 3 == 0 ? std::string("hi") : std::string());
    }
    // Connections the engine dialled become local sockets like the others.
    for (int fd; (fd = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0;) locals.push_back(fd);
    for (int fd : locals)
      if (fd >= 0) drain(fd);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const bool server = data[0] & 1;
  Harness h;
  h.policy = (data[0] >> 1) & 3;
  std::string error;
  if (!h.engine.start(&error)) std::abort();
  Pair peer = socket_pair();
  tws::SessionOptions o;
  o.server = server;
  o.timeout_ms = 60000;  // liveness is not what this harness is about
  o.max_streams = 8;
  h.engine.adopt(1, tws::UniqueFd(peer.engine_end), "", "", o);
  static const size_t kReadBudgets[] = {SIZE_MAX, 0, 4096, 65536};
  const size_t read_budget = kReadBudgets[(data[0] >> 5) & 3];
  if (!server) {
    for (uint32_t i = 0; i < ((data[0] >> 3) & 3u); i++) {
      Pair p = socket_pair();
      h.locals.push_back(p.our_end);
      h.engine.open_stream(1, 1 + 2 * i, tws::UniqueFd(p.engine_end), "127.0.0.1:9", i == 0 ? "early" : "");
    }
  }
  size_t at = 1;
  while (at + 2 <= size && !h.session_closed) {
    const size_t n = data[at];
    const uint8_t kind = data[at + 1];
    at += 2;
    const size_t len = n < size - at ? n : size - at;
    const uint8_t* body = data + at;
    at += len;
    switch (kind % 7) {
      case 0: { auto f = ws_frame(tws::ws::kBinary, body, len, server); send_all(peer.our_end, f.data(), f.size(), read_budget); break; }
      case 1: { auto f = ws_frame(tws::ws::kPing, body, len < 125 ? len : 125, server); send_all(peer.our_end, f.data(), f.size(), read_budget); break; }
      case 2: { auto f = ws_frame(tws::ws::kClose, body, len < 125 ? len : 125, server); send_all(peer.our_end, f.data(), f.size(), read_budget); break; }
      case 3: send_all(peer.our_end, body, len, read_budget); break;
      default: {
        if (h.locals.empty() || len == 0) break;
        int& fd = h.locals[body[0] % h.locals.size()];
        if (fd < 0) break;
        if (kind % 7 == 4) send_all(fd, body + 1, len - 1);
        else if (kind % 7 == 5) ::shutdown(fd, SHUT_WR);
        else { ::close(fd); fd = -1; }
      }
    }
    drain(peer.our_end, read_budget);
    h.pump(0);
  }
  // The peer goes away: whatever state the streams are in, the session must close.
  ::shutdown(peer.our_end, SHUT_WR);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!h.session_closed && std::chrono::steady_clock::now() < deadline) {
    drain(peer.our_end);
    h.pump(20);
  }
  ::close(peer.our_end);
  if (!h.session_closed) {
    std::fprintf(stderr, "session still open 5 s after the peer's EOF\n");
    std::abort();
  }
  return 0;
}

#ifdef TWS_FUZZ_DRIVER
#include "driver.h"
#endif

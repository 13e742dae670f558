// The local sockets of one session's streams: the mux's LocalIo (reads,
// writes, FIN, close), the sockets JavaScript hands over, and the targets
// the engine connects itself (the server's dial fast path). [I/O thread only]
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "../core/mux.h"
#include "fd.h"
#include "stream_socket.h"

namespace tws {

class Loop;
class WsSession;

// A local socket whose stream could not be opened (no session, or it is
// closing): with a reply, its `otherwise` bytes and a FIN; without, a RST.
void refuse_unopened(UniqueFd fd, const mux::Reply* reply);

class LocalSockets final : public mux::LocalIo {
 public:
  LocalSockets(Loop& loop, WsSession& session) : loop_(loop), session_(session) {}

  static StreamSocket* of(mux::Stream& s) { return static_cast<StreamSocket*>(s.port.get()); }

  // A connected socket JavaScript handed over, made a stream's port.
  mux::PortPtr adopt(uint32_t sid, UniqueFd fd);
  // A split stream's two fds (`--stdio`): reads from `in`, writes to `out`
  // (each a pipe of its own, non-blocking, or a socket, left as it is).
  mux::PortPtr adopt_split(uint32_t sid, UniqueFd in, UniqueFd out);
  // Registers the stream's socket with epoll; false when it cannot.
  bool watch(mux::Stream& s);

  // Starts connecting `s` to `address` (an IP literal JavaScript approved):
  // true, or false with *why (the stream is then refused).
  bool dial(mux::Stream& s, const std::string& address, uint16_t port, uint32_t timeout_ms, double now, std::string* why);
  // The dialled socket reported `events`: 0 connected, an errno (failed), -1 not yet.
  int dial_event(StreamSocket& sock, uint32_t events);
  // Dials past their deadline, taken off the list: (stream id, its timeout in ms).
  std::vector<std::pair<uint32_t, uint32_t>> expired_dials(mux::Mux& mux, double now);

  // ---- mux::LocalIo ----
  ssize_t local_write(mux::Stream& s, const uint8_t* p, size_t n) override { return of(s)->write(p, n); }
  mux::LocalRead local_read(mux::Stream& s, uint8_t* into, size_t n) override { return of(s)->read(into, n); }
  void local_shutdown(mux::Stream& s) override { of(s)->shutdown_write(); }
  void local_close(mux::Stream& s, bool abortive) override;

 private:
  Loop& loop_;
  WsSession& session_;
  std::vector<uint32_t> dialing_;  // streams being connected, checked against their deadlines each tick
};

}  // namespace tws

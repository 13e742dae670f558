#include "local_sockets.h"

#include <sys/socket.h>

#include "dialer.h"
#include "loop.h"
#include "sockets.h"

namespace tws {

void refuse_unopened(UniqueFd fd, const mux::Reply* reply) {
  if (!reply) return fd.reset_abortive();
  // As Mux::answer_refusal: the few bytes fit the empty send buffer; unread bytes are read away so the close is a FIN.
  (void)::send(fd.get(), reply->otherwise.data(), reply->otherwise.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  ::shutdown(fd.get(), SHUT_WR);
  char sink[4096];
  for (int i = 0; i < 64 && ::recv(fd.get(), sink, sizeof sink, MSG_DONTWAIT) > 0; i++) {
  }
}

mux::PortPtr LocalSockets::adopt(uint32_t sid, UniqueFd fd) {
  set_nodelay_nonblock(fd.get());
  return mux::PortPtr(new StreamSocket(&session_, sid, std::move(fd)));
}

// Flags untouched: a split stream's fds are shared (see StreamSocket).
mux::PortPtr LocalSockets::adopt_split(uint32_t sid, UniqueFd in, UniqueFd out) {
  return mux::PortPtr(new StreamSocket(&session_, sid, std::move(in), std::move(out)));
}

bool LocalSockets::watch(mux::Stream& s) { return of(s)->watch(loop_); }

// The socket leaves the stream for the loop's graveyard: freed after the
// turn, since an epoll event in this turn's batch may still point at it.
void LocalSockets::local_close(mux::Stream& s, bool abortive) {
  StreamSocket* sock = of(s);
  if (!sock) return;
  sock->close(loop_, abortive);
  (void)s.port.release();  // owned by the graveyard from here
  loop_.retire(std::unique_ptr<StreamSocket>(sock));
}

bool LocalSockets::dial(mux::Stream& s, const std::string& address, uint16_t port, uint32_t timeout_ms, double now,
                        std::string* why) {
  UniqueFd fd = start_connect(address, port, why);
  if (!fd) return false;
  auto* sp = new StreamSocket(&session_, s.id, std::move(fd));
  sp->dialing = true;
  sp->dial_deadline = now + timeout_ms;
  sp->dial_timeout_ms = timeout_ms;
  s.port = mux::PortPtr(sp);
  // EPOLLOUT says the connect finished, either way.
  if (!sp->watch(loop_)) {
    *why = "connect failed: cannot watch the socket";
    return false;
  }
  dialing_.push_back(s.id);
  return true;
}

int LocalSockets::dial_event(StreamSocket& sock, uint32_t events) {
  const int result = connect_result(sock.fd(), events);
  if (result >= 0) sock.dialing = false;
  return result;
}

std::vector<std::pair<uint32_t, uint32_t>> LocalSockets::expired_dials(mux::Mux& mux, double now) {
  std::vector<std::pair<uint32_t, uint32_t>> late;
  std::vector<uint32_t> still;
  for (uint32_t sid : dialing_) {
    mux::Stream* s = mux.find(sid);
    StreamSocket* sock = s ? of(*s) : nullptr;
    if (!sock || !sock->dialing) continue;
    if (now < sock->dial_deadline) {
      still.push_back(sid);
      continue;
    }
    sock->dialing = false;
    late.emplace_back(sid, sock->dial_timeout_ms);
  }
  dialing_.swap(still);
  return late;
}

}  // namespace tws

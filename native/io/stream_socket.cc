#include "stream_socket.h"

#include <errno.h>
#include <sys/socket.h>

#include "loop.h"
#include "sockets.h"
#include "ws_session.h"

namespace tws {

void StreamSocket::on_events(uint32_t events) { session_->stream_event(stream_, events); }

bool StreamSocket::watch(Loop& loop) {
  registered_ = loop.watch(fd_.get(), this);
  return registered_;
}

ssize_t StreamSocket::write(const uint8_t* p, size_t n) {
  for (;;) {
    const ssize_t w = ::send(fd_.get(), p, n, MSG_NOSIGNAL);
    if (w >= 0) return w;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    if (errno != EINTR) return -errno;
  }
}

mux::LocalRead StreamSocket::read(uint8_t* into, size_t n) {
  const ssize_t r = ::recv(fd_.get(), into, n, 0);
  if (r > 0) return {mux::LocalRead::kBytes, static_cast<size_t>(r)};
  if (r == 0) return {mux::LocalRead::kEof};
  if (errno == EAGAIN || errno == EWOULDBLOCK) return {mux::LocalRead::kWouldBlock};
  if (errno == EINTR) return {mux::LocalRead::kInterrupted};
  return {mux::LocalRead::kError, 0, errno};
}

int StreamSocket::error() const { return socket_error(fd_.get()); }

void StreamSocket::shutdown_write() { ::shutdown(fd_.get(), SHUT_WR); }

void StreamSocket::close(Loop& loop, bool abortive) {
  if (!fd_) return;
  if (registered_) loop.unwatch(fd_.get());
  registered_ = false;
  if (abortive) fd_.reset_abortive();
  else fd_.reset();
}

}  // namespace tws

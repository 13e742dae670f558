#include "stream_socket.h"

#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "loop.h"
#include "sockets.h"
#include "ws_session.h"

namespace tws {

// A split stream's read fd speaks only for reading (a socket as stdin is writable too: not ours to write).
void StreamSocket::on_events(uint32_t events) {
  short_reads_.saw(events);
  session_->stream_event(stream_, split_ ? events & ~EPOLLOUT : events);
}

void StreamSocket::OutEnd::on_events(uint32_t events) {
  if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) sock->session_->stream_event(sock->stream_, EPOLLOUT);
}

bool StreamSocket::watch(Loop& loop) {
  registered_ = loop.watch(fd_.get(), this);
  if (registered_ && split_) {
    loop_ = &loop;
    out_registered_ = loop.watch(out_fd_.get(), out_end_.get());
    return out_registered_;
  }
  return registered_;
}

ssize_t StreamSocket::write(const uint8_t* p, size_t n) {
  for (;;) {
    // write() to a pipe, no socket (SIGPIPE is ignored in Node, so EPIPE comes back as an error).
    const ssize_t w = !split_       ? ::send(fd_.get(), p, n, MSG_NOSIGNAL)
                      : out_socket_ ? ::send(out_fd_.get(), p, n, MSG_NOSIGNAL | MSG_DONTWAIT)
                                    : ::write(out_fd_.get(), p, n);
    if (w >= 0) return w;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    if (errno != EINTR) return -errno;
  }
}

mux::LocalRead StreamSocket::read(uint8_t* into, size_t n) {
  const ssize_t r = !split_ ? ::recv(fd_.get(), into, n, 0) : in_socket_ ? ::recv(fd_.get(), into, n, MSG_DONTWAIT) : ::read(fd_.get(), into, n);
  if (r > 0) return {mux::LocalRead::kBytes, static_cast<size_t>(r), 0, short_reads_.drained(static_cast<size_t>(r), n)};
  if (r == 0) return {mux::LocalRead::kEof};
  if (errno == EAGAIN || errno == EWOULDBLOCK) return {mux::LocalRead::kWouldBlock};
  if (errno == EINTR) return {mux::LocalRead::kInterrupted};
  return {mux::LocalRead::kError, 0, errno};
}

int StreamSocket::error() const { return socket_error(fd_.get()); }

bool StreamSocket::is_socket(int fd) {
  struct stat st;
  return ::fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

void StreamSocket::shutdown_write() {
  if (!split_) return (void)::shutdown(fd_.get(), SHUT_WR);
  // fds 0 and 1 may be one socket (socat EXEC:, inetd): closing our copy of fd 1 alone would send no FIN.
  if (out_socket_) ::shutdown(out_fd_.get(), SHUT_WR);
  if (loop_) close_out(*loop_);
  else out_fd_.reset();
}

void StreamSocket::close_out(Loop& loop) {
  if (out_registered_) loop.unwatch(out_fd_.get());
  out_registered_ = false;
  out_fd_.reset();
}

void StreamSocket::close(Loop& loop, bool abortive) {
  if (split_) close_out(loop);
  if (!fd_) return;
  if (registered_) loop.unwatch(fd_.get());
  registered_ = false;
  if (abortive) fd_.reset_abortive();
  else fd_.reset();
}

}  // namespace tws

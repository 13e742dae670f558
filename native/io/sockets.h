// Small socket helpers the I/O units share. [I/O thread, or any before a handoff]
#pragma once

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <string>

#include "../core/errno_name.h"

namespace tws {

inline void set_nodelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

inline void set_nonblock(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

// A socket's pending error (SO_ERROR), or why it could not be read.
inline int socket_error(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  return err;
}

// A TCP socket: only there does a read that returned less than asked
// mean the receive queue ran dry. A unix socket's read also stops after a
// message that carried fds, with more queued behind it.
inline bool is_tcp(int fd) {
  int protocol = 0;
  socklen_t len = sizeof protocol;
  return ::getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &protocol, &len) == 0 && protocol == IPPROTO_TCP;
}

inline void set_nodelay_nonblock(int fd) {
  set_nodelay(fd);
  set_nonblock(fd);
}

}  // namespace tws

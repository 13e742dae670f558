#include "dialer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "sockets.h"

namespace tws {

UniqueFd start_connect(const std::string& address, uint16_t port, std::string* why) {
  sockaddr_storage sa{};
  socklen_t len = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&sa);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&sa);
  if (::inet_pton(AF_INET, address.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    len = sizeof *v4;
  } else if (::inet_pton(AF_INET6, address.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    len = sizeof *v6;
  } else {
    *why = "bad target: " + address;
    return UniqueFd();
  }
  UniqueFd fd(::socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) {
    *why = "connect failed: " + errno_name(errno);
    return UniqueFd();
  }
  set_nodelay(fd.get());  // created non-blocking
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), len) != 0 && errno != EINPROGRESS) {
    *why = "connect failed: " + errno_name(errno);
    return UniqueFd();
  }
  return fd;
}

int connect_result(int fd, uint32_t events) {
  int err = socket_error(fd);
  if (err == 0 && (events & (EPOLLERR | EPOLLHUP))) err = ECONNREFUSED;
  if (err != 0) return err;
  return (events & EPOLLOUT) ? 0 : -1;
}

}  // namespace tws

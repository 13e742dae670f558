// When a read that returned less than asked may be taken as the end of what
// a socket holds, so that the reader waits for its next edge-triggered
// epoll event instead of reading again only to be told EAGAIN. Only on a
// TCP socket (is_tcp), and only until the socket announced its FIN, an
// error or urgent data: then an EOF, or the bytes past the urgent mark, can
// wait behind a short read with no edge to come, and reads go on until
// EAGAIN. [I/O thread only]
#pragma once

#include <sys/epoll.h>

#include <cstddef>
#include <cstdint>

namespace tws {

class ShortReads {
 public:
  explicit ShortReads(bool tcp) : tcp_(tcp) {}
  // Every epoll event of the socket.
  void saw(uint32_t events) {
    if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR | EPOLLPRI)) spent_ = true;
  }
  // A read took `got` of the `asked` bytes: the socket holds nothing more.
  bool drained(size_t got, size_t asked) const { return tcp_ && !spent_ && got < asked; }

 private:
  const bool tcp_;
  bool spent_ = false;
};

}  // namespace tws

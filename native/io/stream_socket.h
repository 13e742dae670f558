// The local socket of one stream (a connection JavaScript accepted or
// opened and handed over, or one the engine dialled): what the mux reads
// from and writes to through its host. The mux::Stream owns it; epoll
// events for it go to its session, which looks the stream up by id (it may
// have ended earlier in the same loop turn). [I/O thread only]
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>

#include "../core/mux.h"
#include "fd.h"
#include "pollable.h"
#include "short_reads.h"
#include "sockets.h"

namespace tws {

class Loop;
class WsSession;

// Usually one socket both ways. A split stream (`--stdio`) reads one fd and
// writes another (pipes or sockets): read() of 0 is the EOF, and the FIN
// shuts a socket's write side down (fds 0 and 1 may be one socket) and
// closes the write fd, since a pipe has no shutdown. Its fds are shared
// with other processes: a pipe must come as a description of our own,
// already non-blocking; a socket is left as it is (blocking, most likely)
// and read and written with MSG_DONTWAIT.
class StreamSocket final : public mux::Port, public Pollable {
 public:
  StreamSocket(WsSession* session, uint32_t stream, UniqueFd fd, UniqueFd out = UniqueFd())
      : mux::Port([](mux::Port* p) { delete static_cast<StreamSocket*>(p); }),
        session_(session),
        stream_(stream),
        fd_(std::move(fd)),
        out_fd_(std::move(out)),
        split_(static_cast<bool>(out_fd_)),
        in_socket_(split_ && is_socket(fd_.get())),
        out_socket_(split_ && is_socket(out_fd_.get())),
        short_reads_(!split_ && is_tcp(fd_.get())),
        out_end_(split_ ? new OutEnd(this) : nullptr) {}

  void on_events(uint32_t events) override;

  // Registers with the loop's epoll; false when it cannot (the stream then fails).
  bool watch(Loop& loop);
  // Bytes taken (0: it would block), or minus the errno when the socket failed.
  ssize_t write(const uint8_t* p, size_t n);
  mux::LocalRead read(uint8_t* into, size_t n);
  // Why the socket failed (SO_ERROR), after EPOLLERR.
  int error() const;
  void shutdown_write();
  // Closes the socket: a RST for an aborted stream, else a FIN.
  void close(Loop& loop, bool abortive);
  int fd() const { return fd_.get(); }

  // While the engine connects it (LocalSockets::dial): when to give up.
  bool dialing = false;
  double dial_deadline = 0;
  uint32_t dial_timeout_ms = 0;

 private:
  // The write fd of a split stream: its readiness (or its reader gone) is a
  // chance to write; the write then says which.
  struct OutEnd final : Pollable {
    explicit OutEnd(StreamSocket* s) : sock(s) {}
    void on_events(uint32_t events) override;
    StreamSocket* sock;
  };
  void close_out(Loop& loop);
  static bool is_socket(int fd);

  WsSession* session_;
  uint32_t stream_;
  UniqueFd fd_;
  UniqueFd out_fd_;
  const bool split_;
  const bool in_socket_;   // a split stream's read fd is a socket (else a pipe)
  const bool out_socket_;  // its write fd is
  ShortReads short_reads_;  // an API caller may hand over any socket, so is_tcp() decides
  // Only a split stream has one. Not a member of every stream: its (virtual)
  // destructor's first run is checked by UBSan's vptr check, which opens a
  // pipe, and in a process out of fds a stream ends with the pipe failing and
  // a valid object reported invalid (see mux::Port).
  std::unique_ptr<OutEnd> out_end_;
  bool registered_ = false;
  bool out_registered_ = false;
  Loop* loop_ = nullptr;  // a split stream's loop, for closing its write fd at the FIN
};

}  // namespace tws

// The local socket of one stream (a connection JavaScript accepted or
// opened and handed over, or one the engine dialled): what the mux reads
// from and writes to through its host. The mux::Stream owns it; epoll
// events for it go to its session, which looks the stream up by id (it may
// have ended earlier in the same loop turn). [I/O thread only]
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>

#include "../core/mux.h"
#include "fd.h"
#include "pollable.h"

namespace tws {

class Loop;
class WsSession;

class StreamSocket final : public mux::Port, public Pollable {
 public:
  StreamSocket(WsSession* session, uint32_t stream, UniqueFd fd)
      : mux::Port([](mux::Port* p) { delete static_cast<StreamSocket*>(p); }), session_(session), stream_(stream), fd_(std::move(fd)) {}

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
  WsSession* session_;
  uint32_t stream_;
  UniqueFd fd_;
  bool registered_ = false;
};

}  // namespace tws

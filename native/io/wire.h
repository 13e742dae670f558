// How a Session's WebSocket bytes reach its connection: plain TCP (PlainWire,
// below) or TLS (TlsWire, tls_wire.h). The Session owns the fd and the epoll
// registration; a Wire only moves bytes over it. [I/O thread only]
#pragma once

#include <errno.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "../core/errno_name.h"
#include "short_reads.h"
#include "sockets.h"

namespace tws {

class Wire {
 public:
  virtual ~Wire() = default;
  // > 0: bytes read; 0: the peer ended the stream; -1: errno says why
  // (EAGAIN: wait for readiness).
  virtual ssize_t recv(uint8_t* buf, size_t len) = 0;
  // Bytes taken from the front of iov (possibly fewer than offered), or -1
  // with errno (EAGAIN: nothing taken). cnt may be 0 to push out held bytes.
  virtual ssize_t sendv(const iovec* iov, int cnt) = 0;
  // Bytes taken by sendv that have not reached the kernel yet.
  virtual bool holding() const { return false; }
  // Readiness in one direction can unblock the other (a TLS read may need to
  // write and the reverse), so every event should retry both.
  virtual bool crosswise() const { return false; }
  // Why the last recv/sendv failed, and the WebSocket close code to report.
  virtual std::string error_text(int err) const { return errno_name(err); }
  virtual uint16_t error_code() const { return 1006; }
  // A TLS handshake is under way (a wss:// client's, before the upgrade).
  virtual bool handshaking() const { return false; }
  // recv() stopped reading because what reading made us answer (TLS
  // KeyUpdates, say) waits for a peer that does not read: as long as that
  // lasts, the peer is not reading rather than silent.
  virtual bool reading_held() const { return false; }
  // Whether the socket gave bytes since the last call, though recv() may
  // have given none (TLS records of its own, KeyUpdates say): a peer that
  // sends only those is not silent, whatever it means by them.
  virtual bool heard_below() { return false; }
  // The socket's epoll events, and whether a recv that took `got` of
  // `asked` bytes left nothing to read until its next edge (short_reads.h;
  // never for TLS, which may hold decrypted bytes back).
  virtual void saw(uint32_t) {}
  virtual bool drained(size_t, size_t) const { return false; }
};

class PlainWire final : public Wire {
 public:
  explicit PlainWire(int fd) : fd_(fd), short_reads_(is_tcp(fd)) {}
  ssize_t recv(uint8_t* buf, size_t len) override { return ::recv(fd_, buf, len, 0); }
  void saw(uint32_t events) override { short_reads_.saw(events); }
  bool drained(size_t got, size_t asked) const override { return short_reads_.drained(got, asked); }
  ssize_t sendv(const iovec* iov, int cnt) override {
    if (cnt == 0) return 0;
    msghdr msg{};
    msg.msg_iov = const_cast<iovec*>(iov);
    msg.msg_iovlen = static_cast<size_t>(cnt);
    return ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
  }

 private:
  int fd_;
  ShortReads short_reads_;
};

}  // namespace tws

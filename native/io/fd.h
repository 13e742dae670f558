// RAII for file descriptors: every fd the data plane owns lives in a
// UniqueFd and is closed exactly once. [any thread; one owner]
#pragma once

#include <sys/socket.h>
#include <unistd.h>

#include <utility>

namespace tws {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) reset(std::exchange(o.fd_, -1));
    return *this;
  }
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }

  // Gives the fd up without closing it: the caller owns it now.
  [[nodiscard]] int release() { return std::exchange(fd_, -1); }

  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

  // Closes with a TCP RST instead of a FIN (SO_LINGER with zero timeout):
  // how an aborted stream tells its local peer something went wrong.
  void reset_abortive() {
    if (fd_ < 0) return;
    struct linger lg = {1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    reset();
  }

 private:
  int fd_ = -1;
};

}  // namespace tws

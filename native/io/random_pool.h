// Unpredictable bytes for WebSocket masking keys and ping tokens (RFC 6455
// §5.3 requires masking keys the peer cannot predict): the kernel's CSPRNG,
// read in 4 KiB batches so a key costs a copy, not a syscall. One pool per
// I/O thread. [one thread]
#pragma once

#include <errno.h>
#include <fcntl.h>
#include <sys/random.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>

namespace tws {

class RandomPool {
 public:
  uint32_t u32() {
    uint32_t v;
    take(&v, sizeof v);
    return v;
  }
  uint64_t u64() {
    uint64_t v;
    take(&v, sizeof v);
    return v;
  }
  // How many times the pool was refilled (for tests and curiosity).
  uint64_t refills() const { return refills_; }

 private:
  void take(void* out, size_t n) {
    if (pos_ + n > sizeof buf_) refill();
    std::memcpy(out, buf_ + pos_, n);
    pos_ += n;
  }

  void refill() {
    refills_++;
    size_t got = 0;
    while (got < sizeof buf_) {
      ssize_t r = ::getrandom(buf_ + got, sizeof buf_ - got, 0);
      if (r > 0) {
        got += static_cast<size_t>(r);
      } else if (r < 0 && errno == EINTR) {
        continue;
      } else {
        break;
      }
    }
    if (got < sizeof buf_) got += from_urandom(buf_ + got, sizeof buf_ - got);
    if (got < sizeof buf_) {
      // No getrandom and no /dev/urandom (a very odd sandbox): the C++
      // library's source, which on Linux is the same kernel CSPRNG or RDRAND.
      std::random_device rd;
      for (; got < sizeof buf_; got += sizeof(unsigned)) {
        unsigned v = rd();
        std::memcpy(buf_ + got, &v, sizeof v < sizeof buf_ - got ? sizeof v : sizeof buf_ - got);
      }
    }
    pos_ = 0;
  }

  static size_t from_urandom(uint8_t* p, size_t n) {
    int fd = ::open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    size_t got = 0;
    while (got < n) {
      ssize_t r = ::read(fd, p + got, n - got);
      if (r > 0) got += static_cast<size_t>(r);
      else if (!(r < 0 && errno == EINTR)) break;
    }
    ::close(fd);
    return got;
  }

  uint8_t buf_[4096];
  size_t pos_ = sizeof buf_;
  uint64_t refills_ = 0;
};

}  // namespace tws

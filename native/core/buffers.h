// Owned byte buffers and the queues they wait in: what the mux holds for a
// local socket that is slow, and what a session holds for a peer that is.
// Pure: no syscalls. [I/O thread, or a test's]
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

namespace tws {

// Blocks the size of a whole DATA frame, kept for reuse by the thread that
// frees them. Freshly allocated, such a block is one glibc maps (above its
// mmap threshold) or trims away and gets back as new pages: a page fault
// per 4 KiB moved, 3-9% of a process in a bulk transfer. A thread keeps at
// most kKeep (4 MiB); requests of kPooledMin bytes or less are left to
// malloc, so small frames do not pin a large block each.
namespace pool {
constexpr size_t kBlock = 256 * 1024 + 64;  // a whole DATA frame with its headers (out_queue.h checks)
constexpr size_t kPooledMin = 128 * 1024;
constexpr size_t kKeep = 16;

// Trivially destructible, so it stays usable while the thread's destructors
// run; Closer frees the kept blocks at thread exit and closes the pool.
struct Slots {
  uint8_t* blocks[kKeep];
  size_t n;
  bool registered;
  bool closed;
};
inline thread_local Slots t_slots{};
struct Closer {
  ~Closer() {
    while (t_slots.n > 0) delete[] t_slots.blocks[--t_slots.n];
    t_slots.closed = true;
  }
};
inline thread_local Closer t_closer;

inline uint8_t* take() { return t_slots.n > 0 ? t_slots.blocks[--t_slots.n] : new uint8_t[kBlock]; }

inline void give(uint8_t* p) {
  Slots& s = t_slots;
  if (!s.registered && !s.closed) {
    s.registered = true;
    (void)&t_closer;  // odr-use: registers its destructor for this thread
  }
  if (s.closed || s.n == kKeep) return delete[] p;
  s.blocks[s.n++] = p;
}
}  // namespace pool

// Frees a block the way it was allocated (pooled or from the heap).
struct BlockDelete {
  bool pooled = false;
  void operator()(uint8_t* p) const {
    if (pooled) pool::give(p);
    else delete[] p;
  }
};
using Block = std::unique_ptr<uint8_t[], BlockDelete>;

// A byte range [off, len) of an owned buffer, queued for a write.
struct Buf {
  Block data;
  size_t off = 0;
  size_t len = 0;
  size_t cap = 0;  // bytes allocated; [len, cap) is room to append
  size_t size() const { return len - off; }
};

// An empty Buf with room for at least `cap` bytes (a pooled block, if large).
inline Buf alloc_buf(size_t cap) {
  Buf b;
  if (cap > pool::kPooledMin && cap <= pool::kBlock) {
    b.data = Block(pool::take(), BlockDelete{true});
    b.cap = pool::kBlock;
  } else {
    b.data = Block(new uint8_t[cap], BlockDelete{false});
    b.cap = cap;
  }
  return b;
}

inline Buf copy_buf(const uint8_t* p, size_t n, size_t cap = 0) {
  Buf b = alloc_buf(std::max(n, cap));
  if (n) std::memcpy(b.data.get(), p, n);
  b.len = n;
  return b;
}

// A FIFO of Bufs that allocates nothing until used: std::deque allocates
// ~600 bytes up front, which 10,000 idle streams would pay for nothing.
class BufQueue {
 public:
  bool empty() const { return head_ == items_.size(); }
  size_t size() const { return items_.size() - head_; }
  Buf& front() { return items_[head_]; }
  Buf& back() { return items_.back(); }
  void push_back(Buf b) { items_.push_back(std::move(b)); }
  void pop_back() { items_.pop_back(); }
  void pop_front() {
    items_[head_++] = Buf{};
    if (empty()) {
      clear();
    } else if (head_ >= 32 && head_ * 2 >= items_.size()) {
      // A queue that never quite drains (a steadily slow reader) must not grow by a slot per frame.
      items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(head_));
      head_ = 0;
    }
  }
  void clear() {
    items_.clear();
    head_ = 0;
  }
  std::vector<Buf>::iterator begin() { return items_.begin() + static_cast<std::ptrdiff_t>(head_); }
  std::vector<Buf>::iterator end() { return items_.end(); }

 private:
  std::vector<Buf> items_;
  size_t head_ = 0;
};

// Largest buffer small pieces of DATA are gathered into while they wait for a local socket.
constexpr size_t kGatherMax = 16 * 1024;

// Appends bytes for a local socket to `q`, into the last buffer's spare room
// when they fit, else a new buffer twice the last one's size (256 B to
// 16 KiB): a peer sending 1-byte frames to a socket that does not read must
// cost a byte each, not a heap block each (credit counts bytes).
inline void gather(BufQueue& q, const uint8_t* p, size_t n) {
  if (!q.empty()) {
    Buf& b = q.back();
    const size_t fit = std::min(n, b.cap - b.len);
    if (fit) std::memcpy(b.data.get() + b.len, p, fit);
    b.len += fit;
    p += fit;
    n -= fit;
    if (n == 0) return;
  }
  const size_t grow = q.empty() ? 256 : std::min(kGatherMax, std::max<size_t>(256, 2 * q.back().cap));
  q.push_back(copy_buf(p, n, grow));
}

}  // namespace tws

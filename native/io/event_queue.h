// The events the I/O thread has for JavaScript, taken in batches, and the
// bounds that keep JavaScript pacing the peers rather than the reverse: past
// kBacklog waiting events, or kBacklogBytes of text in them, the loop stops
// reading from peers until JavaScript catches up, and datagram payloads are
// capped each way (the excess is dropped and counted, as UDP would).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

#include "../core/event.h"

namespace tws {

class EventQueue {
 public:
  static constexpr size_t kBacklog = 4096;
  static constexpr size_t kBacklogBytes = 4 * 1024 * 1024;
  static constexpr size_t kMaxDatagramBytes = 1024 * 1024;

  // `notify` is called (on the I/O thread) when events become pending.
  explicit EventQueue(std::function<void()> notify) : notify_(std::move(notify)) {}

  // ---- I/O thread ----
  void emit(Event e);
  // A datagram from a peer, or dropped (and counted) when JavaScript is that far behind.
  void emit_datagram(uint32_t session, uint32_t stream, const uint8_t* p, size_t n);
  void datagram_dropped() { dropped_.fetch_add(1, std::memory_order_relaxed); }
  // JavaScript is behind: sessions read nothing from their peers until it catches up.
  bool backlogged() const { return backlogged_; }
  // True once after JavaScript took a backlog: sessions should read again.
  bool take_caught_up();
  void outgoing_datagram_done(size_t n) { outgoing_bytes_.fetch_sub(n, std::memory_order_relaxed); }

  // ---- JS thread ----
  // The pending events; *was_backlogged says the I/O thread should be woken to read again.
  std::vector<Event> take(bool* was_backlogged);
  // A datagram for a peer: false (and counted as dropped) when too many such bytes wait already.
  bool admit_outgoing_datagram(size_t n);

  // ---- any thread ----
  uint64_t datagrams_dropped() const { return dropped_.load(std::memory_order_relaxed); }
  // No more notifications, for good: a loop left running at exit must not
  // call into a JavaScript environment that is going away.
  void mute() { muted_.store(true, std::memory_order_release); }

 private:
  std::function<void()> notify_;
  std::mutex mu_;
  std::vector<Event> events_;        // under mu_
  size_t pending_datagram_bytes_ = 0;  // under mu_: datagram payloads in events_
  size_t pending_bytes_ = 0;           // under mu_: all text in events_
  bool backlogged_ = false;          // [I/O thread] set when events_ passed kBacklog
  std::atomic<bool> caught_up_{false};
  std::atomic<bool> muted_{false};
  std::atomic<uint64_t> dropped_{0};
  std::atomic<size_t> outgoing_bytes_{0};
};

}  // namespace tws

// The flow-control credit one session has granted its peer and not yet
// written locally — the most that peer can make us buffer — counted against
// the session's budget and, through a counter shared by every session, the
// process's. The rules are flow.h's. Pure. [I/O thread, or a test's]
#pragma once

#include <atomic>
#include <cstdint>

#include "flow.h"
#include "session_options.h"

namespace tws {

class Credit {
 public:
  Credit(const SessionOptions& o, std::atomic<int64_t>& process) : o_(o), process_(process) {}
  // Credit still outstanding when the session goes (the engine stopped) leaves the process total.
  ~Credit() { add(-static_cast<int64_t>(outstanding_)); }
  Credit(const Credit&) = delete;
  Credit& operator=(const Credit&) = delete;

  // Granted (positive) or written locally / given up (negative).
  void add(int64_t delta) {
    outstanding_ = static_cast<uint64_t>(static_cast<int64_t>(outstanding_) + delta);
    process_.fetch_add(delta, std::memory_order_relaxed);
  }
  uint64_t outstanding() const { return outstanding_; }
  // Room for larger windows (initial windows above the minimum, growth).
  uint64_t window_room() const {
    return flow::window_room({outstanding_, o_.session_budget, o_.process_budget, process(), o_.server});
  }
  // The window for a new stream.
  uint32_t fresh_window() const { return flow::fresh_window(o_.initial_window, window_room()); }
  // New tcp streams are refused: the session holds its share, or the process is full.
  bool session_full() const { return flow::session_full(outstanding_, o_.process_budget, o_.server); }
  bool process_full() const { return flow::process_full(process(), o_.process_budget); }

 private:
  int64_t process() const { return process_.load(std::memory_order_relaxed); }

  const SessionOptions& o_;  // the owning Mux's
  std::atomic<int64_t>& process_;
  uint64_t outstanding_ = 0;
};

}  // namespace tws

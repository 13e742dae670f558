// Flow control and window auto-tuning as pure functions: the rules both
// engines follow (src/engine/flow-control.ts is the TypeScript twin), checked
// against one table, test/vectors/flow-control.json. Every division of a
// window or budget rounds down. Units: bytes, milliseconds, bytes per ms.
// Pure: no syscalls, no clock. [any thread]
#pragma once

#include <algorithm>
#include <cstdint>

namespace tws::flow {

// The smallest window a stream is ever given (the early-data limit).
constexpr uint32_t kMinWindow = 65536;
// An auto-tuning epoch lasts at least this long, so its rate is not noise.
constexpr double kTuneEpochMs = 20;

struct TuneInput {
  uint64_t epoch_bytes = 0;   // written locally since the epoch began
  double elapsed_ms = 0;      // since the epoch began
  uint32_t window = 0;        // the stream's receive window now
  uint32_t max_window = 0;
  bool starved = false;       // the peer was short of credit this epoch (see starved())
  uint64_t queued_bytes = 0;  // bytes from the peer waiting for our local socket
  double base_rtt_ms = 0;     // 0 until enough idle-link pings were sampled
  double rate_at_growth = 0;  // the rate when the window last grew
  uint64_t room = 0;          // window_room() now
};

struct TuneResult {
  bool end_epoch = false;  // start a new epoch (epoch_bytes = 0, starved = false)
  uint32_t grow = 0;       // bytes to add to the window (and return to the peer) now
  double rate = 0;         // the epoch's rate; becomes rate_at_growth when grow > 0
};

// An epoch ends after a window of bytes and kTuneEpochMs. The window is the
// limit when the peer ran short of credit while our socket kept up (less
// than half a window queued here), or when rate x 2 x base RTT reaches it (a
// long path). It doubles (up to max_window) only while growth pays off: the
// rate rose by more than a quarter since the last growth, and the budgets
// have room.
inline TuneResult autotune(const TuneInput& in) {
  TuneResult r;
  if (in.epoch_bytes < in.window || in.elapsed_ms < kTuneEpochMs) return r;
  r.end_epoch = true;
  r.rate = static_cast<double>(in.epoch_bytes) / in.elapsed_ms;
  const bool limited = (in.starved && in.queued_bytes < in.window / 2) || r.rate * 2 * in.base_rtt_ms >= in.window;
  const uint32_t grow = std::min(in.window, in.max_window - in.window);
  if (grow > 0 && limited && r.rate > 1.25 * in.rate_at_growth && grow <= in.room) r.grow = grow;
  return r;
}

// Credit to return in a WINDOW frame now: all of it once a quarter of the
// window is unreturned, nothing after the peer's FIN.
inline uint64_t window_update(uint64_t unreturned, uint32_t window, bool fin_recv) {
  return fin_recv || unreturned < window / 4 ? 0 : unreturned;
}

// The peer has less than an eighth of the window left: it may be waiting for credit.
inline bool starved(uint64_t granted, uint64_t recvd, uint32_t window) { return granted - recvd < window / 8; }

struct Budget {
  uint64_t session_outstanding = 0;  // credit this session granted and has not written locally
  uint64_t session_budget = 0;
  uint64_t process_budget = 0;
  int64_t process_outstanding = 0;   // the same, summed over the process
  bool server = false;
};

// A server's sessions are different parties and may hold a quarter of the
// process budget each; a client's all serve its own users.
inline uint64_t session_share(uint64_t process_budget, bool server) { return server ? process_budget / 4 : process_budget; }

// Room for larger windows (initial windows above the minimum, growth): under
// the session's cap (its budget, at most half its share: the other half
// keeps room for new streams' minimum windows) and under 3/4 of the process
// budget (the last quarter is kept for minimum windows too).
inline uint64_t window_room(const Budget& b) {
  const uint64_t cap = std::min(b.session_budget, session_share(b.process_budget, b.server) / 2);
  const uint64_t session = b.session_outstanding >= cap ? 0 : cap - b.session_outstanding;
  const int64_t soft = static_cast<int64_t>(b.process_budget / 4 * 3);
  const uint64_t process = b.process_outstanding >= soft ? 0 : static_cast<uint64_t>(soft - b.process_outstanding);
  return std::min(session, process);
}

// The window a new stream gets: the initial one while there is room, never below the minimum.
inline uint32_t fresh_window(uint32_t initial_window, uint64_t room) {
  return static_cast<uint32_t>(std::max<uint64_t>(kMinWindow, std::min<uint64_t>(initial_window, room)));
}

// The session holds its share already: its new tcp streams are refused.
inline bool session_full(uint64_t session_outstanding, uint64_t process_budget, bool server) {
  return session_outstanding + kMinWindow > session_share(process_budget, server);
}

// Not even one more minimum window fits in the process: new tcp streams are refused.
inline bool process_full(int64_t process_outstanding, uint64_t process_budget) {
  return process_outstanding + static_cast<int64_t>(kMinWindow) > static_cast<int64_t>(process_budget);
}

}  // namespace tws::flow

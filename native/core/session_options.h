// The options of one session (its TWS2 mux and its WebSocket), as the
// control plane passes them in (src/engine/types.ts SessionOptions).
// Pure data. [any thread]
#pragma once

#include <cstdint>

namespace tws {

struct SessionOptions {
  bool server = false;
  uint32_t timeout_ms = 5000;
  uint32_t initial_window = 4 * 1024 * 1024;
  uint32_t max_window = 16 * 1024 * 1024;
  uint32_t max_streams = 16384;
  uint32_t udp_timeout_ms = 60000;
  uint32_t idle_timeout_ms = 0;  // tcp streams with no payload for this long get RESET 7; 0 = never
  uint64_t session_budget = 64ull * 1024 * 1024;  // outstanding credit before new windows shrink to the minimum
  // Outstanding credit of every session in the process (all engines, all
  // threads): past 3/4 of it windows stop growing and new streams start at
  // the minimum; past all of it new streams are refused (RESET 5).
  uint64_t process_budget = 1024ull * 1024 * 1024;
  bool no_udp = false;
  // A client with reverse tunnels takes server-opened streams; otherwise it refuses them (RESET 1).
  bool accept_streams = false;
};

// Checks options a caller built: the reason the first bad one is bad, or
// nullptr. (initial_window > max_window would underflow the auto-tuning.)
inline const char* invalid_options(const SessionOptions& o) {
  if (o.timeout_ms == 0) return "timeoutMs must be above 0";
  if (o.initial_window < 65536) return "initialWindow must be at least 65536";
  if (o.max_window < o.initial_window) return "maxWindow must be at least initialWindow";
  if (o.max_streams == 0) return "maxStreams must be above 0";
  if (o.session_budget < 65536) return "sessionBudget must be at least 65536";
  if (o.process_budget < o.session_budget) return "processBudget must be at least sessionBudget";
  return nullptr;
}

}  // namespace tws

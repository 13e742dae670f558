// A client's local listener whose connections the engine accepts itself:
// each becomes a stream of the session JavaScript granted it, with an id
// from the block JavaScript set aside, so no connection waits for the event
// loop (docs/architecture.md, "Native accept"). JavaScript keeps the
// decisions: it grants (which session, which ids), hears of every stream
// opened (Event::kLocalOpened, for its logs and counts), and is asked for a
// new grant (Event::kListener) as the block runs low or when its session
// goes. A connection accepted with no grant waits, up to the timeout, as one
// accepted by JavaScript would; past it, it is closed (a FIN, as JavaScript closes it) and reported.
// [I/O thread only]
#pragma once

#include <cstdint>
#include <deque>
#include <string>

#include "fd.h"
#include "pollable.h"

namespace tws {

class Loop;
class WsSession;

class Listener final : public Pollable {
 public:
  // Ask for the next block when this many ids are left.
  static constexpr uint32_t kLowIds = 8;
  // Connections held waiting for a session; more stay in the kernel's backlog.
  static constexpr size_t kMaxWaiting = 1024;
  // After ENOBUFS and the like, accepting resumes this much later.
  static constexpr double kRetryMs = 100;

  Listener(Loop& loop, uint32_t id, UniqueFd fd, std::string target, uint32_t timeout_ms);
  ~Listener() override;
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  bool start();
  // Streams of `session` get ids first, first + 2, … (count of them); replaces
  // any earlier grant.
  void grant(uint32_t session, uint32_t first, uint32_t count);
  void tick(double now);
  // Stops listening and closes the socket (and the connections waiting); the
  // loop frees it after this turn (an epoll event for it may still be pending).
  void close();
  bool closed() const { return !fd_; }
  void on_events(uint32_t events) override;

 private:
  struct Waiting {
    UniqueFd fd;
    std::string peer;
    double since;
  };

  void accept_ready();
  // The granted session, if it can take a stream now (ids left, not going away).
  WsSession* session();
  void open(WsSession& s, UniqueFd fd, const std::string& peer);
  // Out of fds: the spare fd makes room to accept one waiting connection and
  // reset it, so connections are turned away instead of hanging in the backlog.
  bool turn_one_away();
  // Asks JavaScript for a grant: `left` ids are left of this one (0: none);
  // `refused`: the granted session takes no new streams (gone, closing, draining).
  void ask(uint32_t left, bool refused = false);
  void report(uint32_t err, const std::string& peer);

  Loop& loop_;
  const uint32_t id_;
  UniqueFd fd_;
  UniqueFd spare_;
  const std::string target_;
  const double timeout_ms_;
  std::deque<Waiting> waiting_;
  uint32_t session_ = 0;
  uint32_t next_ = 0;
  uint32_t left_ = 0;
  bool asked_low_ = false;   // kListener events for the current grant already sent
  bool asked_empty_ = false;
  bool failing_ = false;     // accept is failing: said once, until one succeeds
  double retry_at_ = 0;      // accept failed for want of memory: not before then
};

}  // namespace tws

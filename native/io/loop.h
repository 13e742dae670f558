// One I/O thread: its epoll set, the commands JavaScript posts to it (an
// eventfd wakes it), the sessions and TLS fronts it runs, the events it
// reports, one shared read buffer, and the graveyards that free closed
// streams and sockets, dead sessions and fronts only after the loop turn,
// when no pointer to them can be left.
#pragma once

#include <pthread.h>
#include <sys/epoll.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "../core/mux.h"
#include "event_queue.h"
#include "fd.h"
#include "pollable.h"
#include "random_pool.h"
#include "task.h"

namespace tws {

class WsSession;
class Front;
class StreamSocket;
class Listener;

class Loop {
 public:
  static constexpr size_t kReadBuffer = 256 * 1024;
  static constexpr double kTickMs = 50;

  explicit Loop(std::function<void()> notify);
  ~Loop();
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  bool start(std::string* error, const char* name = "tws-io");  // [JS thread] `name`: the thread's
  // [JS thread] Every session dropped, every fd closed; true. A thread that
  // has not finished its turn within kStopWaitMs is a bug (a turn that never
  // ends): then it says on stderr where it is, and is left running with
  // everything it uses (the caller must not free the loop) and no way to
  // call JavaScript: false. An exit then still exits.
  bool stop();
  static constexpr int kStopWaitMs = 5000;
  // Queues a command for the I/O thread; after stop() it is destroyed at
  // once instead (closing whatever it owns). A command for a `session`
  // (non-zero) that is expected() waits until it has arrived(). [any thread]
  void post(Task command, uint32_t session = 0);
  void set_busy_poll(uint32_t us) { busy_poll_ms_ = us / 1000.0; }  // before start()
  EventQueue& events() { return events_; }
  std::vector<Event> take_events();  // [JS thread]

  // ---- I/O thread only ----
  bool watch(int fd, Pollable* p);
  void unwatch(int fd);
  // The session has work for its next turn (read, pump, write).
  void mark_dirty(WsSession* s);
  // A session, front or listener died this turn: end_turn() frees the dead
  // (it looks through them only then, not on every turn).
  void reap_soon() { reap_ = true; }
  // Frees the stream, or a stream's closed socket, after this loop turn.
  void retire(std::unique_ptr<mux::Stream> s) { graveyard_streams_.push_back(std::move(s)); }
  void retire(std::unique_ptr<StreamSocket> s);
  uint8_t* read_buffer() { return read_buf_.get(); }
  RandomPool& random() { return random_; }
  WsSession* find_session(uint32_t id);
  // Starts a session the loop now owns; one that cannot watch its socket closes at once.
  void install(std::unique_ptr<WsSession> s, const std::string& head, const std::string& preamble, bool await_upgrade);
  // A session whose connection is on its way from another loop (a TLS
  // front's, Engine::adopt_front): JavaScript's commands for it, posted
  // after the handoff, wait for it rather than find no session.
  void expect(uint32_t session) { expected_[session]; }
  // It is installed (or will never be): the commands that waited run, in order.
  void arrived(uint32_t session);
  std::unordered_map<uint32_t, std::unique_ptr<Front>>& fronts() { return fronts_; }
  std::atomic<uint32_t>& fronts_alive() { return fronts_alive_; }
  std::unordered_map<uint32_t, std::unique_ptr<Listener>>& listeners() { return listeners_; }

 private:
  // What the thread is doing, for stop() to say where a turn got stuck.
  enum class Phase : uint8_t { kPolling, kCommands, kEvents, kWork, kTicks, kEndTurn };
  void enter(Phase p, uint32_t session = 0) {
    phase_.store(static_cast<uint8_t>(p), std::memory_order_relaxed);
    phase_session_.store(session, std::memory_order_relaxed);
  }
  void run();
  void run_commands();
  void end_turn();
  void wake();

  EventQueue events_;
  UniqueFd epoll_;
  UniqueFd wake_;
  static void* thread_main(void* self);
  pthread_t thread_{};
  bool has_thread_ = false;  // [JS thread] thread_ is to be joined
  const char* name_ = "tws-io";
  std::atomic<bool> running_{false};
  std::atomic<uint8_t> phase_{0};
  std::atomic<uint32_t> phase_session_{0};
  std::mutex finished_mu_;
  std::condition_variable finished_cv_;
  bool finished_ = false;  // under finished_mu_: run() returned
  std::mutex commands_mu_;
  bool accepting_ = false;  // under commands_mu_: post() queues only while true
  struct Command {
    Task task;
    uint32_t session;
  };
  std::vector<Command> commands_;
  std::unordered_map<uint32_t, std::vector<Task>> expected_;  // sessions on their way, and their commands
  std::atomic<uint32_t> fronts_alive_{0};  // Front objects that exist (they may outlive JavaScript's end of the pair)
  std::unordered_map<uint32_t, std::unique_ptr<WsSession>> sessions_;
  std::unordered_map<uint32_t, std::unique_ptr<Front>> fronts_;
  std::unordered_map<uint32_t, std::unique_ptr<Listener>> listeners_;
  std::vector<WsSession*> dirty_;  // each at most once (WsSession::queued)
  bool reap_ = false;
  std::vector<std::unique_ptr<mux::Stream>> graveyard_streams_;
  std::vector<std::unique_ptr<StreamSocket>> graveyard_sockets_;
  std::unique_ptr<uint8_t[]> read_buf_{new uint8_t[kReadBuffer]};
  RandomPool random_;
  double busy_poll_ms_ = 0;
};

double now_ms();

}  // namespace tws

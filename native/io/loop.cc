#include "loop.h"

#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "listener.h"
#include "stream_socket.h"
#include "tls_front.h"
#include "ws_session.h"

namespace tws {

double now_ms() {
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

Loop::Loop(std::function<void()> notify) : events_(std::move(notify)) {}
Loop::~Loop() { stop(); }

bool Loop::start(std::string* error, const char* name) {
  epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
  wake_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!epoll_ || !wake_) {
    *error = std::string("epoll/eventfd: ") + std::strerror(errno);
    return false;
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, wake_.get(), &ev);
  running_ = true;
  name_ = name;
  // pthread_create, not std::thread: without exceptions, a thread that cannot
  // be made (a process or thread limit) would end the process, not fail here.
  const int rc = ::pthread_create(&thread_, nullptr, &Loop::thread_main, this);
  if (rc != 0) {
    running_ = false;
    *error = std::string("cannot start the I/O thread: ") + std::strerror(rc);
    return false;
  }
  has_thread_ = true;
  {
    std::lock_guard<std::mutex> lock(commands_mu_);
    accepting_ = true;
  }
  // Named here, not inside the thread, so the name is set before start() returns
  // (visible in /proc/PID/task/*/comm and top -H).
  ::pthread_setname_np(thread_, name);
  return true;
}

void* Loop::thread_main(void* self) {
  auto* loop = static_cast<Loop*>(self);
  loop->run();
  std::lock_guard<std::mutex> lock(loop->finished_mu_);
  loop->finished_ = true;
  loop->finished_cv_.notify_all();
  return nullptr;
}

bool Loop::stop() {
  std::vector<Command> left;
  {
    std::lock_guard<std::mutex> lock(commands_mu_);
    accepting_ = false;
    left.swap(commands_);
  }
  left.clear();  // commands that will never run close the fds they own
  if (!running_.exchange(false)) return true;
  wake();
  {
    std::unique_lock<std::mutex> lock(finished_mu_);
    if (!finished_cv_.wait_for(lock, std::chrono::milliseconds(kStopWaitMs), [this] { return finished_; })) {
      events_.mute();
      static const char* const phases[] = {"epoll_wait", "a command", "a socket event", "a session's turn", "the ticks", "freeing what closed"};
      const size_t p = phase_.load(std::memory_order_relaxed);
      std::fprintf(stderr, "tws-native: the %s thread did not stop within %d ms: stuck in %s (session %u); leaving it running\n",
                   name_, kStopWaitMs, p < sizeof phases / sizeof *phases ? phases[p] : "?", phase_session_.load(std::memory_order_relaxed));
      ::pthread_detach(thread_);
      has_thread_ = false;
      return false;
    }
  }
  if (has_thread_) {
    ::pthread_join(thread_, nullptr);
    has_thread_ = false;
  }
  {
    // Posted while the thread was finishing its last turn.
    std::lock_guard<std::mutex> lock(commands_mu_);
    left.swap(commands_);
  }
  left.clear();
  expected_.clear();
  listeners_.clear();
  sessions_.clear();  // closes every fd
  fronts_.clear();
  graveyard_streams_.clear();
  graveyard_sockets_.clear();
  return true;
}

void Loop::wake() {
  uint64_t one = 1;
  (void)!::write(wake_.get(), &one, sizeof one);
}

void Loop::post(Task command, uint32_t session) {
  {
    std::lock_guard<std::mutex> lock(commands_mu_);
    if (!accepting_) return;  // `command` goes out of scope here, closing what it owns
    commands_.push_back(Command{std::move(command), session});
  }
  wake();
}

std::vector<Event> Loop::take_events() {
  bool was_backlogged = false;
  std::vector<Event> out = events_.take(&was_backlogged);
  if (was_backlogged) wake();
  return out;
}

bool Loop::watch(int fd, Pollable* p) {
  epoll_event ev{};
  // EPOLLPRI: TCP urgent data stops a read short of what is queued, so its
  // reader must learn of it (see StreamSocket::read).
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI | EPOLLET;
  ev.data.ptr = p;
  return ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) == 0;
}

void Loop::unwatch(int fd) { ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr); }

void Loop::mark_dirty(WsSession* s) {
  // A flag, not a search of dirty_: with thousands of busy sessions a search per socket event adds up.
  if (s->queued()) return;
  s->set_queued(true);
  dirty_.push_back(s);
}

void Loop::retire(std::unique_ptr<StreamSocket> s) { graveyard_sockets_.push_back(std::move(s)); }

WsSession* Loop::find_session(uint32_t id) {
  auto it = sessions_.find(id);
  return it == sessions_.end() || it->second->dead() ? nullptr : it->second.get();
}

void Loop::install(std::unique_ptr<WsSession> s, const std::string& head, const std::string& preamble, bool await_upgrade) {
  WsSession* sp = s.get();
  // JavaScript never gives an id that is still in use (native.ts); should one
  // come anyway, the live session keeps it and this one, never started, goes
  // (its socket closes): replacing the live one here would free it mid-turn.
  if (sessions_.count(sp->id()) != 0) return;
  sessions_[sp->id()] = std::move(s);
  if (!sp->start(head, preamble, await_upgrade)) sp->close(1011, "cannot watch the socket", "session lost");
}

void Loop::arrived(uint32_t session) {
  auto it = expected_.find(session);
  if (it == expected_.end()) return;
  std::vector<Task> waited = std::move(it->second);
  expected_.erase(it);
  for (auto& t : waited) t();
}

void Loop::run_commands() {
  uint64_t drained;
  (void)!::read(wake_.get(), &drained, sizeof drained);
  std::vector<Command> cmds;
  {
    std::lock_guard<std::mutex> lock(commands_mu_);
    cmds.swap(commands_);
  }
  for (auto& c : cmds) {
    if (c.session != 0 && !expected_.empty()) {
      auto it = expected_.find(c.session);
      if (it != expected_.end()) {
        it->second.push_back(std::move(c.task));
        continue;
      }
    }
    c.task();
  }
  if (events_.take_caught_up()) {
    // Sessions left data unread while JavaScript was behind: edge-triggered
    // epoll will not say so again, so each gets a turn to read it.
    for (auto& kv : sessions_) kv.second->resume_reading();
  }
}

void Loop::run() {
  epoll_event events[256];
  double next_tick = now_ms() + kTickMs;
  double last_busy = 0;
  while (running_) {
    int timeout = 0;
    if (dirty_.empty()) {
      const double now = now_ms();
      const double wait = next_tick - now;
      timeout = wait > 0 ? static_cast<int>(wait) + 1 : 0;
      // --busy-poll: keep polling for a while after activity instead of sleeping,
      // so the next packet does not pay for a thread (and vCPU) wake-up.
      if (now - last_busy < busy_poll_ms_) timeout = 0;
    }
    enter(Phase::kPolling);
    const int n = ::epoll_wait(epoll_.get(), events, 256, timeout);
    if (n > 0 && busy_poll_ms_ > 0) last_busy = now_ms();
    for (int i = 0; i < n; i++) {
      if (events[i].data.ptr == nullptr) {
        enter(Phase::kCommands);
        run_commands();
        continue;
      }
      enter(Phase::kEvents);
      static_cast<Pollable*>(events[i].data.ptr)->on_events(events[i].events);
    }
    // One turn for each session with something to do, then back to epoll
    // (without sleeping while work is left): other sockets' events wait for
    // at most one turn of a busy session. Four turns between polls (4 MiB
    // of a bulk stream) doubled the round trip of pings beside it.
    if (!dirty_.empty()) {
      std::vector<WsSession*> todo;
      todo.swap(dirty_);
      for (WsSession* s : todo) {
        enter(Phase::kWork, s->id());
        s->set_queued(false);  // before work(), which may queue it for the next turn
        s->work();
      }
    }
    const double now = now_ms();
    if (now >= next_tick) {
      for (auto& kv : sessions_) {
        enter(Phase::kTicks, kv.first);
        kv.second->tick(now);
      }
      enter(Phase::kTicks);
      for (auto& kv : fronts_) kv.second->tick(now);
      for (auto& kv : listeners_) kv.second->tick(now);
      next_tick = now + kTickMs;
    }
    enter(Phase::kEndTurn);
    end_turn();
  }
}

// Frees what closed during this turn, after every pointer to it is gone.
void Loop::end_turn() {
  graveyard_streams_.clear();
  graveyard_sockets_.clear();
  if (!reap_) return;
  reap_ = false;
  std::vector<std::unique_ptr<WsSession>> dead_sessions;
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    if (it->second->dead()) {
      dirty_.erase(std::remove(dirty_.begin(), dirty_.end(), it->second.get()), dirty_.end());
      dead_sessions.push_back(std::move(it->second));
      it = sessions_.erase(it);
    } else {
      ++it;
    }
  }
  dead_sessions.clear();  // their streams ended (and were retired) when they died
  for (auto it = fronts_.begin(); it != fronts_.end();) {
    if (it->second->dead()) it = fronts_.erase(it);
    else ++it;
  }
  for (auto it = listeners_.begin(); it != listeners_.end();) {
    if (it->second->closed()) it = listeners_.erase(it);
    else ++it;
  }
}

}  // namespace tws

// A real tws::Engine whose "events are pending" notifications wake a test
// thread waiting for them: what the engine tests (engine_test.cc) and the
// session fuzzer (../fuzz/session_fuzz.cc) drive. [test programs only]
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <vector>

#include "../io/engine.h"

namespace tws::test {

struct WatchedEngine {
  std::mutex mu;
  std::condition_variable cv;
  bool pending = false;
  tws::Engine engine{[this] {
    std::lock_guard<std::mutex> lock(mu);
    pending = true;
    cv.notify_all();
  }};

  // Waits up to `ms` for the engine to say it has events, then takes them (maybe none).
  std::vector<tws::Event> wait_events(int ms) {
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait_for(lock, std::chrono::milliseconds(ms), [this] { return pending; });
      pending = false;
    }
    return engine.take_events();
  }
};

}  // namespace tws::test

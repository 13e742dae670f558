// What the event loop calls when epoll reports an fd: each registered fd's
// epoll data points at one of these. [I/O thread only]
#pragma once

#include <cstdint>

namespace tws {

struct Pollable {
  virtual ~Pollable() = default;
  virtual void on_events(uint32_t events) = 0;
};

}  // namespace tws

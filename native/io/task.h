// A move-only `void()` callable: what a command carries across to the I/O
// thread (fds in UniqueFd, wires in unique_ptr) belongs to the command alone.
// A command that never runs — queued when the engine stops, or posted after
// — is destroyed instead, and closes what it owns. std::function cannot hold
// such a callable (it must be copyable). [any thread; one owner]
#pragma once

#include <memory>
#include <utility>

namespace tws {

class Task {
 public:
  Task() = default;
  template <class F>
  Task(F f) : impl_(new Impl<F>(std::move(f))) {}  // NOLINT: implicit from a lambda, like std::function
  Task(Task&&) noexcept = default;
  Task& operator=(Task&&) noexcept = default;
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;

  void operator()() { impl_->run(); }
  explicit operator bool() const { return impl_ != nullptr; }

 private:
  struct Base {
    virtual ~Base() = default;
    virtual void run() = 0;
  };
  template <class F>
  struct Impl final : Base {
    explicit Impl(F&& f) : fn(std::move(f)) {}
    void run() override { fn(); }
    F fn;
  };
  std::unique_ptr<Base> impl_;
};

}  // namespace tws

// When a session pings, whether its peer is still there, and the round trip
// measured on an idle link (the base RTT auto-tuning uses). A quiet session
// sends only what liveness needs: a few RTT probes each time DATA stops, then
// a ping per half timeout of silence. Pure: the caller passes the time and
// sends the pings. [I/O thread, or a test's]
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>

namespace tws {

class Liveness {
 public:
  // An idle link is probed this often for an RTT sample, kQuietProbes times
  // after DATA last moved (or the session started), then not until DATA
  // moves again; the first probe comes soon after the start.
  static constexpr double kRttProbeMs = 250;
  static constexpr int kQuietProbes = 3;
  static constexpr double kFirstProbeMs = 200;
  // The link counts as idle this long after the last DATA with nothing queued.
  static constexpr double kQuietMs = 50;
  static constexpr size_t kRttSamples = 8;
  static constexpr size_t kMinRttSamples = 3;

  Liveness(uint32_t timeout_ms, double now) : timeout_ms_(timeout_ms) { restart(now); }

  // The WebSocket (re)starts now: heard from now, first probe soon.
  void restart(double now) {
    last_recv_ = now;
    last_ping_ = now - kRttProbeMs + kFirstProbeMs;
    probes_ = 0;
  }
  // Anything arrived from the peer.
  void heard(double now) { last_recv_ = now; }
  double silent_for(double now) const { return now - last_recv_; }

  // A ping is due: half the timeout without hearing from the peer (and
  // without pinging), or an idle link to take an RTT sample on while DATA
  // (last moved at `last_data`) stopped only lately.
  bool ping_due(double now, bool link_idle, double last_data) const {
    const double half = timeout_ms_ / 2.0;
    const double since_ping = now - last_ping_;
    if (silent_for(now) >= half && since_ping >= half) return true;
    return link_idle && since_ping >= kRttProbeMs && probes_since(last_data) < kQuietProbes;
  }
  // A ping carrying `token` went out now; on an idle link its pong is an RTT sample.
  void pinged(double now, uint64_t token, bool link_idle, double last_data) {
    last_ping_ = now;
    sent_at_ = now;
    token_ = token;
    sampling_ = link_idle;
    if (!link_idle) return;
    probes_ = probes_since(last_data) + 1;
    probed_data_ = last_data;
  }
  // A pong arrived: the round trip in ms when it answers the sampling ping, else -1.
  double ponged(double now, const uint8_t* p, size_t n) {
    if (n != 8 || !sampling_ || std::memcmp(p, &token_, 8) != 0) return -1;
    sampling_ = false;
    const double rtt = now - sent_at_;
    rtts_.push_back(rtt);
    if (rtts_.size() > kRttSamples) rtts_.pop_front();
    return rtt;
  }
  // The smallest of the recent samples, or 0 until there are enough.
  double base_rtt() const { return rtts_.size() >= kMinRttSamples ? *std::min_element(rtts_.begin(), rtts_.end()) : 0; }

 private:
  // Idle-link pings sent since DATA last moved at `last_data`.
  int probes_since(double last_data) const { return last_data == probed_data_ ? probes_ : 0; }

  uint32_t timeout_ms_;
  double last_recv_ = 0;
  double last_ping_ = 0;
  double sent_at_ = 0;
  bool sampling_ = false;
  uint64_t token_ = 0;
  int probes_ = 0;
  double probed_data_ = 0;  // the last_data those probes followed
  std::deque<double> rtts_;
};

}  // namespace tws

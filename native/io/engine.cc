// The native data plane (see engine.h). Everything below Engine runs on the
// I/O thread: no JavaScript, no exceptions, no DNS or file work; the only
// crypto is a TLS Wire's record layer (tls_wire.cc).
// The rules mirror src/engine/js/session.ts, the reference implementation.
#include "engine.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "../core/intrusive_list.h"
#include "../core/mask.h"
#include "../core/tws2.h"
#include "../core/ws_frame.h"
#include "fd.h"
#include "random_pool.h"
#include "task.h"
#include "wire.h"

namespace tws {

class Session;
struct Stream;
class Front;

namespace {

constexpr size_t kReadBuffer = 256 * 1024;
// Keep at most this much queued for the WebSocket, so pings never wait long.
constexpr size_t kSendHighWater = 512 * 1024;
// With several streams waiting, each turn sends at most this much.
constexpr size_t kTurnBytes = 64 * 1024;
// Room in front of DATA read from a local socket for the WS and TWS2 headers.
constexpr size_t kHeadroom = ws::kMaxHeader + tws2::kHeaderLen;
constexpr int64_t kCloseGraceMs = 2000;
constexpr int64_t kQuietMs = 50;
constexpr int64_t kRttProbeMs = 250;
constexpr int64_t kFirstProbeMs = 200;
constexpr size_t kRttSamples = 8;
constexpr size_t kMinRttSamples = 3;
constexpr double kTuneEpochMs = 20;
constexpr size_t kRecentClosed = 4096;
// The largest HTTP response head accepted while the engine does the client's upgrade.
constexpr size_t kMaxUpgradeHead = 16 * 1024;
// A session stops reading from its peer while this much waits to be sent to
// it: what the peer makes us answer (pongs, RESETs, WINDOWs) cannot pile up
// when it does not read. DATA alone never gets here (pump() stops at
// kSendHighWater, plus one frame), so a peer that reads is never held back.
constexpr size_t kReadGate = 1024 * 1024;
// Every session of a loop stops reading from its peer while this many events
// wait for JavaScript: the control plane paces the peers, not the reverse.
constexpr size_t kEventBacklog = 4096;
// UDP payloads waiting for JavaScript (each way) beyond this are dropped.
constexpr size_t kMaxPendingDatagramBytes = 1024 * 1024;
// Datagrams held per stream while it is being opened (at most this many and
// this many bytes: a stream may wait seconds for DNS); more are dropped.
constexpr size_t kHeldDatagrams = 16;
constexpr size_t kHeldDatagramBytes = 16 * 1024;

// Flow-control credit granted and not yet written locally, summed over every
// session of every engine in the process (SessionOptions::process_budget).
std::atomic<int64_t> g_process_credit{0};

const char* const kResetNames[] = {"", "denied", "connect failed", "timeout", "protocol error", "too many streams",
                                    "cancelled", "idle", "internal", "going away"};

double now_ms() {
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

// A byte range [off, len) of an owned buffer, queued for a write.
struct Buf {
  std::unique_ptr<uint8_t[]> data;
  size_t off = 0;
  size_t len = 0;
  size_t cap = 0;  // bytes allocated; [len, cap) is room to append
  size_t size() const { return len - off; }
};

// A FIFO of Bufs that allocates nothing until used: std::deque allocates
// ~600 bytes up front, which 10,000 idle streams would pay for nothing.
class BufQueue {
 public:
  bool empty() const { return head_ == items_.size(); }
  size_t size() const { return items_.size() - head_; }
  Buf& front() { return items_[head_]; }
  Buf& back() { return items_.back(); }
  void push_back(Buf b) { items_.push_back(std::move(b)); }
  void pop_front() {
    items_[head_++] = Buf{};
    if (empty()) {
      clear();
    } else if (head_ >= 32 && head_ * 2 >= items_.size()) {
      // A queue that never quite drains (a steadily slow reader) must not grow by a slot per frame.
      items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(head_));
      head_ = 0;
    }
  }
  void clear() {
    items_.clear();
    head_ = 0;
  }
  std::vector<Buf>::iterator begin() { return items_.begin() + static_cast<std::ptrdiff_t>(head_); }
  std::vector<Buf>::iterator end() { return items_.end(); }

 private:
  std::vector<Buf> items_;
  size_t head_ = 0;
};

Buf copy_buf(const uint8_t* p, size_t n, size_t cap = 0) {
  Buf b;
  b.cap = std::max(n, cap);
  b.data.reset(new uint8_t[b.cap]);
  std::memcpy(b.data.get(), p, n);
  b.len = n;
  return b;
}

// Largest buffer small pieces of DATA are gathered into while they wait for a local socket.
constexpr size_t kGatherMax = 16 * 1024;

// Appends bytes for a local socket to `q`, into the last buffer's spare room
// when they fit, else a new buffer twice the last one's size (256 B to
// 16 KiB): a peer sending 1-byte frames to a socket that does not read must
// cost a byte each, not a heap block each (credit counts bytes).
void gather(BufQueue& q, const uint8_t* p, size_t n) {
  if (!q.empty()) {
    // Fill the last buffer's spare room first; only the rest needs a new one.
    Buf& b = q.back();
    const size_t fit = std::min(n, b.cap - b.len);
    std::memcpy(b.data.get() + b.len, p, fit);
    b.len += fit;
    p += fit;
    n -= fit;
    if (n == 0) return;
  }
  const size_t grow = q.empty() ? 256 : std::min(kGatherMax, std::max<size_t>(256, 2 * q.back().cap));
  q.push_back(copy_buf(p, n, grow));
}

// Node's names for connect errors, so a refused stream reads the same on both engines.
std::string errno_code(int err) {
  switch (err) {
    case ECONNREFUSED: return "ECONNREFUSED";
    case EHOSTUNREACH: return "EHOSTUNREACH";
    case ENETUNREACH: return "ENETUNREACH";
    case ETIMEDOUT: return "ETIMEDOUT";
    case ECONNRESET: return "ECONNRESET";
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case EMFILE: return "EMFILE";
    case ENFILE: return "ENFILE";
    default: return "errno " + std::to_string(err);
  }
}

void set_nodelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

void set_nodelay_nonblock(int fd) {
  set_nodelay(fd);
  int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

}  // namespace

struct Pollable {
  virtual ~Pollable() = default;
  virtual void on_events(uint32_t events) = 0;
};

// One TWS2 stream: a local socket and the flow-control state of both directions.
struct Stream final : Pollable {
  enum class State { kOpening, kAccepting, kOpen };

  // On its session's ready list while it may have DATA to send; a stream that
  // ends leaves the list in finish() (and its destructor unlinks it anyway).
  ListHook ready_hook;
  Session* session;
  uint32_t id;
  std::string target;
  State state;
  UniqueFd fd;
  bool registered = false;
  bool readable = false;
  bool writable = false;
  bool local_eof = false;
  bool fin_sent = false;
  bool fin_recv = false;
  bool shut_wr = false;
  bool done = false;
  bool udp = false;
  bool dialing = false;  // the engine is connecting fd to the target (still kAccepting for the peer)
  double dial_deadline = 0;
  uint32_t dial_timeout_ms = 0;
  double last_active = 0;
  int64_t send_credit;
  uint64_t recv_granted;
  uint64_t recvd = 0;
  uint64_t unreturned = 0;
  uint32_t recv_window;
  double epoch_start = 0;
  uint64_t epoch_bytes = 0;
  double rate_at_growth = 0;
  bool starved = false;  // this epoch the peer had less than window/8 of credit left at some point
  // Bytes from the peer not yet written to the local socket (early data, or a slow reader).
  BufQueue pending;
  size_t pending_bytes = 0;
  // Bytes JavaScript read from the local socket before the handoff: sent first.
  std::string initial;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;

  Stream(Session* s, uint32_t id_, std::string target_, State st, int64_t credit, uint32_t window)
      : session(s), id(id_), target(std::move(target_)), state(st), send_credit(credit),
        recv_granted(st == State::kAccepting ? tws2::kEarlyDataLimit : window), recv_window(window) {}

  void on_events(uint32_t events) override;
};

class Loop {
 public:
  explicit Loop(std::function<void()> notify) : notify_(std::move(notify)) {}
  ~Loop() { stop(); }

  bool start(std::string* error);
  void stop();
  // Queues a command for the I/O thread; after stop() it is destroyed at
  // once instead (closing whatever it owns). [any thread]
  void post(Task command);
  void set_busy_poll(uint32_t us) { busy_poll_ms_ = us / 1000.0; }
  std::vector<Event> take_events();
  // A datagram for the peer, from JavaScript: false (and counted as dropped)
  // when the I/O thread already has too many such bytes to send. [JS thread]
  bool admit_outgoing_datagram(size_t n);
  EngineStats stats() const {
    EngineStats st;
    st.datagrams_dropped = datagrams_dropped_.load(std::memory_order_relaxed);
    st.fronts = fronts_alive_.load(std::memory_order_relaxed);
    return st;
  }

  // ---- I/O thread only ----
  void emit(Event e);
  // Passes a datagram from the peer to JavaScript, or drops (and counts) it
  // when JavaScript is that far behind.
  void emit_datagram(uint32_t session, uint32_t stream, const uint8_t* p, size_t n);
  void datagram_dropped() { datagrams_dropped_.fetch_add(1, std::memory_order_relaxed); }
  void outgoing_datagram_done(size_t n) { outgoing_datagram_bytes_.fetch_sub(n, std::memory_order_relaxed); }
  // JavaScript is behind on events: sessions read nothing from their peers until it catches up.
  bool events_backlogged() const { return backlogged_; }
  bool watch(int fd, Pollable* p) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.ptr = p;
    return ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) == 0;
  }
  void unwatch(int fd) { ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr); }
  void mark_dirty(Session* s);
  void bury(std::unique_ptr<Stream> s) { graveyard_streams_.push_back(std::move(s)); }
  uint8_t* read_buffer() { return read_buf_.get(); }
  RandomPool& random() { return random_; }
  std::unordered_map<uint32_t, std::unique_ptr<Session>>& sessions() { return sessions_; }
  std::unordered_map<uint32_t, std::unique_ptr<Front>>& fronts() { return fronts_; }

 private:
  void run();
  void run_commands();
  void bury_dead_fronts();
  void tick_fronts(double now);
  void wake() {
    uint64_t one = 1;
    (void)!::write(wake_.get(), &one, sizeof one);
  }

  std::function<void()> notify_;
  UniqueFd epoll_;
  UniqueFd wake_;
  std::thread thread_;
  std::atomic<bool> running_{false};
  std::mutex commands_mu_;
  bool accepting_ = false;  // under commands_mu_: post() queues only while true
  std::vector<Task> commands_;
  std::mutex events_mu_;
  std::vector<Event> events_;
  size_t pending_datagram_bytes_ = 0;   // under events_mu_: datagram payloads in events_
  bool backlogged_ = false;             // [I/O thread] set when events_ passed kEventBacklog
  std::atomic<bool> caught_up_{false};  // JavaScript took the events after a backlog: resume reading
  std::atomic<uint64_t> datagrams_dropped_{0};
  std::atomic<uint32_t> fronts_alive_{0};  // Front objects that exist (they may outlive JavaScript's end of the pair)
  std::atomic<size_t> outgoing_datagram_bytes_{0};
  std::unordered_map<uint32_t, std::unique_ptr<Session>> sessions_;
  std::unordered_map<uint32_t, std::unique_ptr<Front>> fronts_;
  std::vector<std::unique_ptr<Front>> graveyard_fronts_;
  std::vector<Session*> dirty_;
  std::vector<std::unique_ptr<Stream>> graveyard_streams_;
  std::vector<std::unique_ptr<Session>> graveyard_sessions_;
  std::unique_ptr<uint8_t[]> read_buf_{new uint8_t[kReadBuffer]};
  RandomPool random_;
  double busy_poll_ms_ = 0;  // set before start()

  friend class Session;
  friend class Front;
};

// One WebSocket connection carrying TWS2; also the sink of its MessageReader.
class Session final : public Pollable {
 public:
  Session(Loop* loop, uint32_t id, UniqueFd fd, SessionOptions o, std::unique_ptr<Wire> wire = nullptr)
      : loop_(loop), id_(id), fd_(std::move(fd)), wire_(wire ? std::move(wire) : std::make_unique<PlainWire>(fd_.get())), o_(o),
        parser_(o.server ? ws::Role::kServer : ws::Role::kClient, tws2::kMaxMessage),
        reader_(new tws2::MessageReader<Session>(*this)) {
    const double now = now_ms();
    last_recv_ = now;
    last_ping_ = now - kRttProbeMs + kFirstProbeMs;  // first quiet probe soon after open
  }

  // Credit of streams that never finished (the engine stopped) leaves the process total.
  ~Session() { g_process_credit.fetch_sub(static_cast<int64_t>(outstanding_), std::memory_order_relaxed); }

  // With `await_upgrade` the preamble is the client's upgrade request: the
  // response head goes to JavaScript to judge (Event::kUpgradeHead) and no
  // WebSocket byte is parsed until it says so (cmd_upgraded).
  bool start(const std::string& head, const std::string& preamble, bool await_upgrade = false) {
    set_nodelay_nonblock(fd_.get());
    if (await_upgrade) {
      upgrade_ = Upgrade::kReading;
      upgrade_deadline_ = now_ms() + o_.timeout_ms;
    }
    if (!preamble.empty()) {
      // The 101 (or the client's request) goes out first and whole: no pong
      // may overtake it, and a protocol error must not drop it (drop_unsent).
      normal_.push_back(copy_buf(reinterpret_cast<const uint8_t*>(preamble.data()), preamble.size()));
      normal_bytes_ += preamble.size();
      preamble_pending_ = true;
    }
    if (!loop_->watch(fd_.get(), this)) return false;
    if (!head.empty()) {
      std::string copy = head;  // the parser unmasks in place
      feed(reinterpret_cast<uint8_t*>(copy.data()), copy.size());
    }
    flush();
    return true;
  }

  uint32_t id() const { return id_; }
  bool dead() const { return dead_; }

  // ---- ws::Parser / MessageReader sink ----
  // After a protocol error nothing more is parsed; while we close normally
  // parsing goes on, to see the peer's close frame.
  bool wants_stop() const { return dead_ || error_; }

  void on_data(uint32_t sid, uint8_t* p, size_t n) {
    Stream* s = find(sid);
    if (!s) return;  // late DATA for a stream we closed
    if (s->udp) return protocol_error("DATA on a udp stream");
    if (s->state == Stream::State::kOpening) return protocol_error("DATA before OPEN_OK");
    if (s->fin_recv) return protocol_error("DATA after FIN");
    s->recvd += n;
    if (s->recvd > s->recv_granted) return protocol_error("stream exceeded its flow-control window");
    last_data_ = last_recv_;
    s->last_active = last_recv_;
    if (s->recv_granted - s->recvd < s->recv_window / 8) s->starved = true;
    if (s->state == Stream::State::kAccepting || !s->pending.empty() || !s->writable) {
      gather(s->pending, p, n);
      s->pending_bytes += n;
      if (s->state == Stream::State::kOpen) flush_local(s);
      return;
    }
    ssize_t w = ::send(s->fd.get(), p, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK) return local_error(s);
      w = 0;
      s->writable = false;
    }
    if (static_cast<size_t>(w) < n) {
      s->writable = false;
      gather(s->pending, p + w, n - w);
      s->pending_bytes += n - w;
    }
    if (w > 0) consumed(s, static_cast<size_t>(w));
  }

  void on_data_end(uint32_t) {}

  void on_frame(uint8_t type, uint32_t sid, uint8_t* body, size_t n) {
    switch (type) {
      case tws2::kOpen: return on_open(sid, tws2::read_u32(body), body[4], std::string(reinterpret_cast<char*>(body + 5), n - 5));
      case tws2::kGoaway: return on_goaway(tws2::read_u16(body), std::string(reinterpret_cast<char*>(body + 2), n - 2));
      default: break;
    }
    Stream* s = find(sid);
    if (!s) return;
    switch (type) {
      case tws2::kOpenOk: {
        if (s->state != Stream::State::kOpening) return protocol_error("unexpected OPEN_OK");
        s->state = Stream::State::kOpen;
        s->send_credit = static_cast<int64_t>(tws2::read_u32(body)) - static_cast<int64_t>(s->bytes_out);
        s->epoch_start = now_ms();
        if (s->udp) {
          // Datagrams held while the stream was opening go out now.
          for (Buf& b : s->pending) {
            s->bytes_out += b.size();
            queue_tws2(tws2::kDatagram, s->id, b.data.get() + b.off, b.size());
          }
          s->pending.clear();
          s->pending_bytes = 0;
          return;
        }
        make_ready(s);
        return;
      }
      case tws2::kWindow: {
        s->send_credit += tws2::read_u32(body);
        if (s->send_credit > 0xFFFFFFFFll) return protocol_error("window overflow");
        if (s->state != Stream::State::kAccepting) make_ready(s);
        return;
      }
      case tws2::kFin: {
        if (s->fin_recv) return protocol_error("second FIN");
        if (s->state == Stream::State::kOpening) return protocol_error("FIN before OPEN_OK");
        s->fin_recv = true;
        if (s->udp) {
          if (s->state == Stream::State::kOpen) finish(s, "fin", false);  // udp has no half-close
          return;
        }
        if (s->state == Stream::State::kOpen) maybe_shutdown(s);
        return;
      }
      case tws2::kReset: {
        uint16_t code = tws2::read_u16(body);
        std::string how = "peer reset: ";
        how += code < 10 && code > 0 ? kResetNames[code] : ("code " + std::to_string(code));
        if (n > 2) how += " (" + std::string(reinterpret_cast<char*>(body + 2), n - 2) + ")";
        finish(s, how, true);
        return;
      }
      case tws2::kDatagram: {
        if (!s->udp) return protocol_error("DATAGRAM on a tcp stream");
        if (s->state == Stream::State::kOpening) return protocol_error("DATAGRAM before OPEN_OK");
        s->last_active = now_ms();
        s->bytes_in += n;
        if (s->state == Stream::State::kAccepting) {
          hold_datagram(s, body, n);  // until accepted
          return;
        }
        loop_->emit_datagram(id_, s->id, body, n);
        return;
      }
      default:
        return;
    }
  }

  void on_control(uint8_t op, uint8_t* p, size_t n) {
    last_recv_ = now_ms();
    if (op == ws::kPing) {
      queue_control(ws::kPong, p, n);
    } else if (op == ws::kPong) {
      if (n == 8 && ping_quiet_ && std::memcmp(p, &ping_token_, 8) == 0) {
        ping_quiet_ = false;
        const double rtt = now_ms() - ping_sent_at_;
        rtts_.push_back(rtt);
        if (rtts_.size() > kRttSamples) rtts_.pop_front();
        Event e(Event::kRtt);  // a few per second at most: only idle-link pings are sampled
        e.session = id_;
        e.code = static_cast<uint32_t>(rtt * 1000);
        loop_->emit(std::move(e));
      }
    } else if (op == ws::kClose) {
      close_received_ = true;
      uint16_t code = n >= 2 ? static_cast<uint16_t>((p[0] << 8) | p[1]) : 1005;
      std::string reason = n > 2 ? std::string(reinterpret_cast<char*>(p + 2), n - 2) : "";
      if (!closing_) {
        close_code_ = code;
        close_reason_ = reason;
        send_close(code, reason);  // the parser has checked it; an empty close (1005) is answered empty, as ws does
      }
      reset_all("session closed");
      if (out_empty()) teardown();
    }
  }

  // ---- commands ----
  void cmd_open(uint32_t sid, UniqueFd owned, std::string target, std::string initial) {
    if (closing_ || dead_ || peer_draining_ || streams_.count(sid) || process_full() || session_full()) {
      owned.reset_abortive();
      emit_closed(sid, 0, 0, process_full() || session_full() ? "refused: memory budget reached" : "session unavailable");
      return;
    }
    Stream* sp = add_stream(std::make_unique<Stream>(this, sid, std::move(target), Stream::State::kOpening,
                                                     tws2::kEarlyDataLimit, fresh_window()));
    send_tws2_open(sp);
    attach(sp, std::move(owned), std::move(initial));
    make_ready(sp);
    flush();
  }

  void cmd_open_datagrams(uint32_t sid, std::string target) {
    if (closing_ || dead_ || peer_draining_ || streams_.count(sid)) {
      emit_closed(sid, 0, 0, "session unavailable");
      return;
    }
    auto s = std::make_unique<Stream>(this, sid, std::move(target), Stream::State::kOpening, tws2::kEarlyDataLimit, o_.initial_window);
    s->udp = true;
    s->last_active = now_ms();
    Stream* sp = add_stream(std::move(s));
    send_tws2_open(sp);
    flush();
  }

  void cmd_accept_datagrams(uint32_t sid) {
    Stream* s = find(sid);
    if (!s || !s->udp || s->state != Stream::State::kAccepting) return;
    mark_open(s);
    s->last_active = now_ms();
    while (!s->pending.empty()) {
      loop_->emit_datagram(id_, s->id, s->pending.front().data.get(), s->pending.front().size());
      s->pending.pop_front();
    }
    s->pending_bytes = 0;
    if (s->fin_recv) finish(s, "fin", false);
    flush();
  }

  // Like UDP, a datagram is dropped (and counted) rather than queued when the
  // link is full; up to 16 are held while the stream is opening (as the js engine does).
  void cmd_send_datagram(uint32_t sid, const std::string& payload) {
    Stream* s = find(sid);
    if (!s || !s->udp) return;
    s->last_active = now_ms();
    if (s->state == Stream::State::kOpening) {
      hold_datagram(s, reinterpret_cast<const uint8_t*>(payload.data()), payload.size());
      return;
    }
    if (s->state != Stream::State::kOpen || normal_bytes_ >= kSendHighWater) return loop_->datagram_dropped();
    s->bytes_out += payload.size();
    queue_tws2(tws2::kDatagram, sid, reinterpret_cast<const uint8_t*>(payload.data()), payload.size());
    flush();
  }

  void cmd_accept(uint32_t sid, UniqueFd owned, std::string initial) {
    Stream* s = find(sid);
    if (!s || s->state != Stream::State::kAccepting) return;  // cancelled meanwhile: owned closes
    mark_open(s);
    attach(s, std::move(owned), std::move(initial));
    flush_local(s);
    make_ready(s);
    flush();
  }

  void cmd_reject(uint32_t sid, uint16_t code, const std::string& reason) {
    Stream* s = find(sid);
    if (!s || s->state != Stream::State::kAccepting) return;
    send_reset(sid, code, reason);
    finish(s, "refused: " + reason, false);
    flush();
  }

  // Connects the stream's target itself (address: an IP literal JavaScript
  // has already approved), then opens the stream as cmd_accept does, or
  // RESETs it as JavaScript would: 2 (connect failed) or 3 (timed out).
  void cmd_dial(uint32_t sid, const std::string& address, uint16_t port, uint32_t timeout_ms) {
    Stream* s = find(sid);
    if (!s || s->udp || s->dialing || s->state != Stream::State::kAccepting) return;
    sockaddr_storage sa{};
    socklen_t len = 0;
    auto* v4 = reinterpret_cast<sockaddr_in*>(&sa);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&sa);
    if (::inet_pton(AF_INET, address.c_str(), &v4->sin_addr) == 1) {
      v4->sin_family = AF_INET;
      v4->sin_port = htons(port);
      len = sizeof *v4;
    } else if (::inet_pton(AF_INET6, address.c_str(), &v6->sin6_addr) == 1) {
      v6->sin6_family = AF_INET6;
      v6->sin6_port = htons(port);
      len = sizeof *v6;
    } else {
      return dial_failed(s, 2, "bad target: " + address);
    }
    UniqueFd fd(::socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) return dial_failed(s, 2, "connect failed: " + errno_code(errno));
    set_nodelay(fd.get());  // created non-blocking
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), len) != 0 && errno != EINPROGRESS) {
      return dial_failed(s, 2, "connect failed: " + errno_code(errno));
    }
    s->fd = std::move(fd);
    s->dialing = true;
    s->dial_deadline = now_ms() + timeout_ms;
    s->dial_timeout_ms = timeout_ms;
    s->registered = loop_->watch(s->fd.get(), s);  // EPOLLOUT says the connect finished, either way
    if (!s->registered) dial_failed(s, 2, "connect failed: cannot watch the socket");
  }

  void cmd_goaway(uint16_t code, const std::string& reason) {
    if (draining_ || closing_ || dead_ || upgrade_ != Upgrade::kNone) return;
    draining_ = true;
    uint8_t body[2 + tws2::kMaxReason];
    size_t n = coded_body(body, code, reason);
    queue_tws2(tws2::kGoaway, 0, body, n);
    if (streams_.empty()) send_close(1001, reason);
    flush();
  }

  void cmd_close(uint16_t code, const std::string& reason) {
    if (closing_ || dead_) return;
    close_code_ = code;
    close_reason_ = reason;
    if (upgrade_ != Upgrade::kNone) return teardown();  // no WebSocket yet: nothing to say goodbye on
    reset_all(reason);
    send_close(code, reason);
    flush();
  }

  // ---- I/O events ----
  void on_events(uint32_t events) override {
    if (dead_) return;
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) readable_ = true;
    if (events & EPOLLOUT) writable_ = true;
    if (wire_->crosswise()) readable_ = writable_ = true;
    loop_->mark_dirty(this);
  }

  // JavaScript accepted the upgrade response: the WebSocket starts.
  void cmd_upgraded() {
    if (dead_ || upgrade_ != Upgrade::kHeld) return;
    upgrade_ = Upgrade::kNone;
    const double now = now_ms();
    last_recv_ = now;
    last_ping_ = now - kRttProbeMs + kFirstProbeMs;
    std::string rest;
    rest.swap(upgrade_buf_);  // the first frames, read along with the head
    if (!rest.empty()) feed(reinterpret_cast<uint8_t*>(rest.data()), rest.size());
    readable_ = true;  // a TLS wire may hold more already read: epoll would not say so again
    loop_->mark_dirty(this);
  }

  void stream_event(Stream* s, uint32_t events) {
    if (s->done) return;
    if (s->dialing) return dial_event(s, events);
    if (events & EPOLLERR) {
      local_error(s);
      flush();
      return;
    }
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) {
      s->readable = true;
      make_ready(s);
    }
    if (events & EPOLLOUT) {
      s->writable = true;
      flush_local(s);
    }
    loop_->mark_dirty(this);
  }

  // One turn of work after events: read, pump, write.
  void work() {
    if (dead_) return;
    // Two reasons not to read, kept apart: the peer does not read what we
    // owe it (gated_since_: what it sends makes us answer, and it is closed
    // if that lasts), and JavaScript is behind on events (the loop resumes
    // every session once it caught up: resume_reading()).
    if (out_bytes() < kReadGate) gated_since_ = 0;
    else if (gated_since_ == 0 && readable_) gated_since_ = now_ms();
    if (readable_ && upgrade_ != Upgrade::kHeld && gated_since_ == 0 && !loop_->events_backlogged()) {
      read_some();  // one read (up to kReadBuffer) a turn
      if (readable_ && !dead_) loop_->mark_dirty(this);  // more to read next turn
    }
    if (!dead_) pump();
    if (!dead_) flush();
  }

  // JavaScript caught up with the events: read what was left unread meanwhile.
  void resume_reading() {
    if (!dead_ && readable_) loop_->mark_dirty(this);
  }

  void tick(double now) {
    if (dead_) return;
    if (closing_) {
      if (now >= close_deadline_) teardown();
      return;
    }
    if (upgrade_ != Upgrade::kNone) {
      if (now >= upgrade_deadline_) fail_upgrade(1006, "no answer to the upgrade within " + std::to_string(o_.timeout_ms) + " ms");
      return;
    }
    if (gated_since_ != 0 && now - gated_since_ > o_.timeout_ms) {
      // It sends and never reads: it gets a close frame (which it will not
      // read either) and the connection goes after the close grace.
      return cmd_close(1008, "peer is not reading");
    }
    const double quiet = now - last_recv_;
    // While we hold off reading, its silence is ours, not the peer's.
    if (quiet > o_.timeout_ms && gated_since_ == 0 && !loop_->events_backlogged()) {
      close_code_ = 1006;
      close_reason_ = "peer silent for " + std::to_string(static_cast<int64_t>(quiet)) + " ms";
      reset_all("session timed out");
      teardown();
      return;
    }
    std::vector<Stream*> idle;
    std::vector<Stream*> late;
    for (auto& kv : streams_) {
      Stream* s = kv.second.get();
      if (s->dialing && now >= s->dial_deadline) late.push_back(s);
      if (s->state != Stream::State::kOpen) continue;
      if (s->udp ? now - s->last_active > o_.udp_timeout_ms : o_.idle_timeout_ms > 0 && now - s->last_active > o_.idle_timeout_ms) {
        idle.push_back(s);
      }
    }
    for (Stream* s : idle) {
      send_reset(s->id, 7, s->udp ? "udp idle" : "idle");
      finish(s, "idle", !s->udp);
    }
    for (Stream* s : late) {
      dial_failed(s, 3, "connect timed out after " + std::to_string(s->dial_timeout_ms) + " ms");
    }
    const double since_ping = now - last_ping_;
    if ((quiet >= o_.timeout_ms / 2.0 && since_ping >= o_.timeout_ms / 2.0) || (since_ping >= kRttProbeMs && is_quiet(now))) {
      ping(now);
    }
    flush();
  }

  size_t stream_count() const { return streams_.size(); }

 private:
  // ---- helpers ----
  Stream* find(uint32_t sid) {
    auto it = streams_.find(sid);
    return it == streams_.end() || it->second->done ? nullptr : it->second.get();
  }

  // The dialled socket is writable (connected) or failed.
  void dial_event(Stream* s, uint32_t events) {
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(s->fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err == 0 && (events & (EPOLLERR | EPOLLHUP))) err = ECONNREFUSED;
    if (err != 0) {
      dial_failed(s, err == ETIMEDOUT ? 3 : 2, "connect failed: " + errno_code(err));
    } else if (events & EPOLLOUT) {
      s->dialing = false;
      mark_open(s);
      connected(s);
      flush_local(s);  // early data
      make_ready(s);
    }
    flush();
    loop_->mark_dirty(this);
  }

  void dial_failed(Stream* s, uint16_t code, const std::string& reason) {
    s->dialing = false;
    send_reset(s->id, code, reason);
    finish(s, "refused: " + reason, false);
    flush();
  }

  // A local socket that is connected: both directions are tried at once
  // (edge-triggered: data may already be waiting; EAGAIN says to wait).
  void connected(Stream* s) {
    s->last_active = now_ms();
    s->writable = true;
    s->readable = true;
  }

  void attach(Stream* s, UniqueFd fd, std::string initial) {
    s->fd = std::move(fd);
    set_nodelay_nonblock(s->fd.get());
    s->initial = std::move(initial);
    connected(s);
    s->registered = loop_->watch(s->fd.get(), s);
    if (!s->registered) local_error(s);
  }

  // ---- credit accounting: what the peers may still send us, per session and per process ----
  // outstanding_ is the credit granted on this session's tcp streams and not
  // yet written locally: the most we may have to buffer for them.

  Stream* add_stream(std::unique_ptr<Stream> s) {
    Stream* sp = s.get();
    if (!sp->udp) credit(static_cast<int64_t>(sp->recv_granted - sp->bytes_in));
    streams_[sp->id] = std::move(s);
    return sp;
  }

  // Sets the total the peer may send on `s` (a grant), counted against both budgets.
  void set_granted(Stream* s, uint64_t granted) {
    if (!s->udp) credit(static_cast<int64_t>(granted) - static_cast<int64_t>(s->recv_granted));
    s->recv_granted = granted;
  }

  void credit(int64_t delta) {
    outstanding_ = static_cast<uint64_t>(static_cast<int64_t>(outstanding_) + delta);
    g_process_credit.fetch_add(delta, std::memory_order_relaxed);
  }

  // Room left for larger windows: under this session's budget, and under 3/4
  // of the process's (the last quarter is kept for new streams' minimum windows).
  uint64_t window_room() const {
    // Larger windows may use half the session's share at most: the other
    // half keeps room for new streams' minimum windows.
    const uint64_t cap = std::min(o_.session_budget, session_share() / 2);
    const uint64_t session = outstanding_ >= cap ? 0 : cap - outstanding_;
    const int64_t soft = static_cast<int64_t>(o_.process_budget / 4 * 3);
    const int64_t used = g_process_credit.load(std::memory_order_relaxed);
    const uint64_t process = used >= soft ? 0 : static_cast<uint64_t>(soft - used);
    return std::min(session, process);
  }

  // This session holds its share of the process budget (a quarter: a client
  // has two sessions by default) already: its new streams are refused, so
  // one client cannot take the budget from everyone else. A server's
  // sessions are different parties; a client's all serve its own users, so
  // there the whole budget is theirs.
  uint64_t session_share() const { return o_.server ? o_.process_budget / 4 : o_.process_budget; }
  bool session_full() const { return outstanding_ + tws2::kEarlyDataLimit > session_share(); }

  // Holds a datagram for a stream not open yet, within the per-stream bounds; drops (and counts) the rest.
  void hold_datagram(Stream* s, const uint8_t* p, size_t n) {
    if (s->pending.size() >= kHeldDatagrams || s->pending_bytes + n > kHeldDatagramBytes) return loop_->datagram_dropped();
    s->pending.push_back(copy_buf(p, n));
    s->pending_bytes += n;
  }

  // No room even for one more stream's minimum window: new streams are refused.
  bool process_full() const {
    return g_process_credit.load(std::memory_order_relaxed) + static_cast<int64_t>(tws2::kEarlyDataLimit) >
           static_cast<int64_t>(o_.process_budget);
  }

  // The window for a new stream: the initial one while the budgets have room, else the minimum.
  uint32_t fresh_window() const {
    return static_cast<uint32_t>(std::max<uint64_t>(tws2::kEarlyDataLimit, std::min<uint64_t>(o_.initial_window, window_room())));
  }

  bool is_quiet(double now) const { return now - last_data_ >= kQuietMs && normal_.empty() && urgent_.empty(); }

  void ping(double now) {
    last_ping_ = now;
    ping_quiet_ = is_quiet(now);
    ping_sent_at_ = now;
    ping_token_ = loop_->random().u64();
    queue_control(ws::kPing, reinterpret_cast<uint8_t*>(&ping_token_), 8);
  }

  void read_some() {
    uint8_t* buf = loop_->read_buffer();
    ssize_t n = wire_->recv(buf, kReadBuffer);
    const int err = errno;
    if (n > 0) {
      last_recv_ = now_ms();
      if (upgrade_ == Upgrade::kReading) return read_upgrade_head(buf, static_cast<size_t>(n));
      feed(buf, static_cast<size_t>(n));
      return;
    }
    if (n < 0 && (err == EAGAIN || err == EWOULDBLOCK)) {
      readable_ = false;
      return;
    }
    if (n < 0 && err == EINTR) return;
    // EOF or error without a close frame.
    readable_ = false;
    if (close_code_ == 0) {
      close_code_ = n == 0 ? 1006 : wire_->error_code();
      close_reason_ = n == 0 ? "connection closed" : wire_->error_text(err);
    }
    reset_all("session closed");
    teardown();
  }

  // Collects the upgrade response head; what follows it is kept for cmd_upgraded.
  void read_upgrade_head(const uint8_t* p, size_t n) {
    const size_t before = upgrade_buf_.size();
    upgrade_buf_.append(reinterpret_cast<const char*>(p), n);
    const size_t end = upgrade_buf_.find("\r\n\r\n", before >= 3 ? before - 3 : 0);
    if (end == std::string::npos || end + 4 > kMaxUpgradeHead) {
      if (upgrade_buf_.size() > kMaxUpgradeHead) fail_upgrade(1002, "upgrade response head too large");
      return;
    }
    Event e(Event::kUpgradeHead);
    e.session = id_;
    e.text = upgrade_buf_.substr(0, end + 4);
    upgrade_buf_.erase(0, end + 4);
    upgrade_ = Upgrade::kHeld;
    loop_->emit(std::move(e));
  }

  void fail_upgrade(uint16_t code, const std::string& reason) {
    close_code_ = code;
    close_reason_ = reason;
    teardown();
  }

  void feed(uint8_t* p, size_t n) {
    if (error_ || dead_) return;  // after a protocol error we only wait for the close
    ws::ParseError err;
    parser_.feed(p, n, *reader_, &err);
    if (!err && reader_->error()) err = reader_->error();
    if (!err && error_) err = ws::ParseError{1002, error_reason_};
    if (!err) return;
    error_ = true;
    close_code_ = err.close_code;
    close_reason_ = err.reason;
    reset_all("protocol error");
    drop_unsent();
    send_close(err.close_code, err.reason);
  }

  // Drops queued frames that have not started going out; a partly written
  // one must finish, or the WebSocket framing breaks.
  void drop_unsent() {
    const bool keep_front = !normal_.empty() && (normal_.front().off > 0 || preamble_pending_);
    while (normal_.size() > (keep_front ? 1u : 0u)) {
      normal_bytes_ -= normal_.back().size();
      normal_.pop_back();
    }
  }

  // Called from inside the parser's callbacks: feed() closes the session once the callback returns.
  void protocol_error(const char* why) {
    if (error_) return;
    error_ = true;
    error_reason_ = why;
  }

  void on_open(uint32_t sid, uint32_t window, uint8_t kind, std::string target) {
    const uint32_t peer_parity = o_.server ? 1 : 0;
    if (sid % 2 != peer_parity) return protocol_error("OPEN with an id of the wrong parity");
    if (streams_.count(sid) || recent_closed_set_.count(sid)) return protocol_error("OPEN for a stream id already used");
    // Refused here, without asking JavaScript; it hears of it (for the log and metrics) all the same.
    auto refuse = [&](uint16_t code, const char* why) {
      remember_closed(sid);
      send_reset(sid, code, why);
      Event e{Event::kRefused};
      e.session = id_;
      e.stream = sid;
      e.code = code;
      e.text = std::move(target);
      e.note = why;
      loop_->emit(std::move(e));
    };
    if (draining_) return refuse(9, "going away");
    if (!o_.server) return refuse(1, "client accepts no streams");
    if (kind == 2 && o_.no_udp) return refuse(1, "udp is disabled on this server");
    if (streams_.size() >= o_.max_streams) return refuse(5, "too many streams");
    if (kind != 2 && process_full()) return refuse(5, "memory budget reached");
    if (kind != 2 && session_full()) return refuse(5, "session memory share reached");
    // The receive window is sized when OPEN_OK goes out (mark_open), from the budgets then.
    auto s = std::make_unique<Stream>(this, sid, target, Stream::State::kAccepting, window, o_.initial_window);
    s->udp = kind == 2;
    add_stream(std::move(s));
    Event e{Event::kOpenRequest};
    e.session = id_;
    e.stream = sid;
    e.code = kind;
    e.text = std::move(target);
    loop_->emit(std::move(e));
  }

  void on_goaway(uint16_t, const std::string&) {
    peer_draining_ = true;
    Event e{Event::kGoaway};
    e.session = id_;
    loop_->emit(std::move(e));
    if (streams_.empty()) emit_idle();
  }

  void emit_idle() {
    Event e{Event::kIdle};
    e.session = id_;
    loop_->emit(std::move(e));
  }

  // Bytes written to a local socket: credit goes back, and the window may grow.
  void consumed(Stream* s, size_t n) {
    s->bytes_in += n;
    bytes_in_ += n;
    credit(-static_cast<int64_t>(n));
    s->unreturned += n;
    s->epoch_bytes += n;
    const double now = now_ms();
    const double elapsed = now - s->epoch_start;
    if (s->epoch_bytes >= s->recv_window && elapsed >= kTuneEpochMs) {
      // Same rule as JsSession.consumed(): grow only when the peer was starved
      // of credit or rate × base RTT says the window limits, and only while
      // growth raised the rate.
      const double rate = s->epoch_bytes / elapsed;
      double base_rtt = 0;
      if (rtts_.size() >= kMinRttSamples) base_rtt = *std::min_element(rtts_.begin(), rtts_.end());
      const bool limited = (s->starved && s->pending_bytes < s->recv_window / 2) || rate * 2 * base_rtt >= s->recv_window;
      const uint32_t grow = std::min(s->recv_window, o_.max_window - s->recv_window);
      if (grow > 0 && limited && rate > 1.25 * s->rate_at_growth && grow <= window_room()) {
        s->recv_window += grow;
        s->unreturned += grow;
        s->rate_at_growth = rate;
        char note[128];
        std::snprintf(note, sizeof note, "window → %u (%.1f MB/s, base rtt %.2f ms)", s->recv_window, rate / 1000, base_rtt);
        Event e(Event::kWindow);
        e.session = id_;
        e.stream = s->id;
        e.text = note;
        loop_->emit(std::move(e));
      }
      s->epoch_start = now;
      s->epoch_bytes = 0;
      s->starved = false;
    }
    if (s->fin_recv || s->unreturned < s->recv_window / 4) return;
    set_granted(s, s->recv_granted + s->unreturned);
    uint8_t body[4];
    tws2::write_u32(body, static_cast<uint32_t>(s->unreturned));
    queue_tws2(tws2::kWindow, s->id, body, 4);
    s->unreturned = 0;
  }

  // Writes what peers sent to the local socket until it would block.
  void flush_local(Stream* s) {
    if (s->state != Stream::State::kOpen || s->done) return;
    while (!s->pending.empty() && s->writable) {
      Buf& b = s->pending.front();
      ssize_t w = ::send(s->fd.get(), b.data.get() + b.off, b.size(), MSG_NOSIGNAL);
      if (w < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          s->writable = false;
          break;
        }
        if (errno == EINTR) continue;
        local_error(s);
        return;
      }
      b.off += static_cast<size_t>(w);
      s->pending_bytes -= static_cast<size_t>(w);
      if (b.size() == 0) s->pending.pop_front();
      consumed(s, static_cast<size_t>(w));
    }
    if (s->pending.empty()) maybe_shutdown(s);
  }

  void maybe_shutdown(Stream* s) {
    if (!s->fin_recv || s->shut_wr || !s->pending.empty() || s->state != Stream::State::kOpen) return;
    ::shutdown(s->fd.get(), SHUT_WR);
    s->shut_wr = true;
    check_done(s);
  }

  void check_done(Stream* s) {
    if (s->fin_sent && s->fin_recv && s->shut_wr && s->pending.empty()) finish(s, "fin", false);
  }

  void make_ready(Stream* s) {
    if (s->done) return;
    if (ready_.push_back(s)) loop_->mark_dirty(this);
  }

  // Reads local sockets into DATA frames, round-robin, while there is room.
  void pump() {
    while (normal_bytes_ < kSendHighWater && !ready_.empty() && !closing_ && !dead_) {
      Stream* s = ready_.pop_front();
      if (s->state == Stream::State::kAccepting) continue;
      const size_t turn = ready_.empty() ? tws2::kMaxData : kTurnBytes;
      if (!s->initial.empty()) {
        size_t n = std::min<size_t>({s->initial.size(), turn, static_cast<size_t>(std::max<int64_t>(s->send_credit, 0))});
        if (n == 0) continue;
        Buf b = data_frame(n);
        std::memcpy(b.data.get() + kHeadroom, s->initial.data(), n);
        seal_data_frame(b, s->id, n);
        s->initial.erase(0, n);
        sent_data(s, std::move(b), n);
        make_ready(s);
        continue;
      }
      if (!s->readable || s->local_eof) {
        maybe_fin(s);
        continue;
      }
      const size_t want = std::min<size_t>(turn, static_cast<size_t>(std::max<int64_t>(s->send_credit, 0)));
      if (want == 0) continue;  // WINDOW will make it ready again
      Buf b = data_frame(want);
      ssize_t n = ::recv(s->fd.get(), b.data.get() + kHeadroom, want, 0);
      if (n > 0) {
        seal_data_frame(b, s->id, static_cast<size_t>(n));
        sent_data(s, std::move(b), static_cast<size_t>(n));
        make_ready(s);  // edge-triggered: keep reading until EAGAIN
      } else if (n == 0) {
        s->local_eof = true;
        s->readable = false;
        maybe_fin(s);
      } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        s->readable = false;
      } else if (errno == EINTR) {
        make_ready(s);
      } else {
        local_error(s);
      }
    }
  }

  // A buffer for up to `max_payload` DATA bytes at kHeadroom; seal_data_frame adds the headers.
  Buf data_frame(size_t max_payload) {
    Buf b;
    b.data.reset(new uint8_t[kHeadroom + max_payload]);
    return b;
  }

  // Puts the TWS2 and WS headers right in front of `n` payload bytes at
  // kHeadroom, so header and payload go out in one contiguous write.
  void seal_data_frame(Buf& b, uint32_t sid, size_t n) {
    uint8_t* t = b.data.get() + kHeadroom - tws2::kHeaderLen;
    tws2::write_tws2_header(t, tws2::kData, sid);
    const size_t payload = tws2::kHeaderLen + n;
    uint8_t key[4];
    uint8_t hdr[ws::kMaxHeader];
    const bool mask = !o_.server;
    if (mask) {
      uint32_t k = loop_->random().u32();
      std::memcpy(key, &k, 4);
    }
    size_t h = ws::write_header(hdr, ws::kBinary, true, payload, mask ? key : nullptr);
    std::memcpy(t - h, hdr, h);
    if (mask) apply_mask(t, payload, key, 0);
    b.off = kHeadroom - tws2::kHeaderLen - h;
    b.len = kHeadroom + n;
  }

  void sent_data(Stream* s, Buf b, size_t n) {
    s->send_credit -= static_cast<int64_t>(n);
    s->bytes_out += n;
    bytes_out_ += n;
    last_data_ = now_ms();
    s->last_active = last_data_;
    normal_bytes_ += b.size();
    normal_.push_back(std::move(b));
  }

  void maybe_fin(Stream* s) {
    if (!s->local_eof || s->fin_sent || !s->initial.empty() || s->done || s->state == Stream::State::kAccepting) return;
    s->fin_sent = true;
    queue_tws2(tws2::kFin, s->id, nullptr, 0);
    check_done(s);
  }

  void local_error(Stream* s) {
    if (s->done) return;
    send_reset(s->id, 6, "local socket error");
    finish(s, "local error", true);
  }

  void send_reset(uint32_t sid, uint16_t code, const std::string& reason) {
    uint8_t body[2 + tws2::kMaxReason];
    size_t n = coded_body(body, code, reason);
    queue_tws2(tws2::kReset, sid, body, n);
  }

  static size_t coded_body(uint8_t* body, uint16_t code, const std::string& reason) {
    body[0] = static_cast<uint8_t>(code >> 8);
    body[1] = static_cast<uint8_t>(code);
    size_t r = std::min(reason.size(), tws2::kMaxReason);
    while (r > 0 && r < reason.size() && (static_cast<uint8_t>(reason[r]) & 0xC0) == 0x80) r--;
    std::memcpy(body + 2, reason.data(), r);
    return 2 + r;
  }

  // The acceptor's side: OPEN_OK out, the full window granted (sized by the session budget now, not at OPEN).
  void mark_open(Stream* s) {
    s->state = Stream::State::kOpen;
    s->recv_window = s->udp ? o_.initial_window : fresh_window();
    set_granted(s, s->recv_window);
    s->epoch_start = now_ms();
    uint8_t body[4];
    tws2::write_u32(body, s->recv_window);
    queue_tws2(tws2::kOpenOk, s->id, body, 4);
  }

  void send_tws2_open(Stream* s) {
    std::string body(5, '\0');
    tws2::write_u32(reinterpret_cast<uint8_t*>(&body[0]), s->recv_window);
    body[4] = s->udp ? 2 : 1;
    body += s->target;
    queue_tws2(tws2::kOpen, s->id, reinterpret_cast<const uint8_t*>(body.data()), body.size());
  }

  // Queues one TWS2 frame (not DATA) as a WebSocket binary message, in order with DATA.
  void queue_tws2(uint8_t type, uint32_t sid, const uint8_t* body, size_t n) {
    if (closing_ || dead_) return;
    std::string payload(tws2::kHeaderLen + n, '\0');
    tws2::write_tws2_header(reinterpret_cast<uint8_t*>(&payload[0]), type, sid);
    if (n) std::memcpy(&payload[tws2::kHeaderLen], body, n);
    Buf b = ws_frame(ws::kBinary, reinterpret_cast<const uint8_t*>(payload.data()), payload.size());
    normal_bytes_ += b.size();
    normal_.push_back(std::move(b));
  }

  // Pings, pongs: ahead of queued DATA, between messages. Only the latest
  // pong owed is kept (RFC 6455 §5.5.3 allows it): a peer that pings and
  // never reads cannot make pongs pile up.
  void queue_control(uint8_t op, const uint8_t* p, size_t n) {
    if (closing_ || dead_) return;
    if (op == ws::kPong) {
      for (Buf& b : urgent_) {
        if (b.off == 0 && (b.data[0] & 0x0F) == ws::kPong) {
          urgent_bytes_ -= b.size();
          b = ws_frame(op, p, n);
          urgent_bytes_ += b.size();
          return;
        }
      }
    }
    urgent_.push_back(ws_frame(op, p, n));
    urgent_bytes_ += urgent_.back().size();
  }

  Buf ws_frame(uint8_t op, const uint8_t* p, size_t n) {
    Buf b;
    b.data.reset(new uint8_t[ws::kMaxHeader + n]);
    uint8_t key[4];
    const bool mask = !o_.server;
    if (mask) {
      uint32_t k = loop_->random().u32();
      std::memcpy(key, &k, 4);
    }
    size_t h = ws::write_header(b.data.get(), op, true, n, mask ? key : nullptr);
    if (n) std::memcpy(b.data.get() + h, p, n);
    if (mask) apply_mask(b.data.get() + h, n, key, 0);
    b.len = h + n;
    return b;
  }

  void send_close(uint16_t code, const std::string& reason) {
    if (closing_ || dead_) return;
    if (close_code_ == 0) {
      close_code_ = code;
      close_reason_ = reason;
    }
    uint8_t body[2 + tws2::kMaxReason];
    // 1005 means "no status": it is never sent, the frame goes out empty.
    const size_t n = code == 1005 ? 0 : coded_body(body, code, reason);
    // The close frame follows what is already queued (DATA and all).
    Buf b = ws_frame(ws::kClose, body, n);
    normal_bytes_ += b.size();
    normal_.push_back(std::move(b));
    closing_ = true;
    close_deadline_ = now_ms() + kCloseGraceMs;
    loop_->mark_dirty(this);
  }

  bool out_empty() const { return normal_.empty() && urgent_.empty() && !wire_->holding(); }
  size_t out_bytes() const { return normal_bytes_ + urgent_bytes_; }

  // Writes queued frames: a partly written DATA/close frame first, then
  // pings/pongs, then the rest, many buffers per sendmsg.
  void flush() {
    while (!dead_ && writable_ && !out_empty()) {
      std::deque<Buf>* q;
      if (preamble_pending_ || (!normal_.empty() && normal_.front().off > 0 && normal_partial_)) q = &normal_;
      else if (!urgent_.empty()) q = &urgent_;
      else q = &normal_;
      iovec iov[64];
      int cnt = 0;
      for (auto it = q->begin(); it != q->end() && cnt < 64; ++it) {
        iov[cnt].iov_base = it->data.get() + it->off;
        iov[cnt].iov_len = it->size();
        cnt++;
        // One control frame, or the preamble alone, then re-check priorities.
        if (q == &urgent_ || preamble_pending_) break;
      }
      ssize_t w = wire_->sendv(iov, cnt);  // cnt is 0 when only the wire holds bytes
      if (w < 0) {
        const int err = errno;
        if (err == EAGAIN || err == EWOULDBLOCK) {
          writable_ = false;
          break;
        }
        if (err == EINTR) continue;
        if (close_code_ == 0) {
          close_code_ = wire_->error_code();
          close_reason_ = wire_->error_text(err);
        }
        reset_all("session closed");
        teardown();
        return;
      }
      size_t left = static_cast<size_t>(w);
      while (left > 0) {
        Buf& b = q->front();
        size_t take = std::min(left, b.size());
        b.off += take;
        left -= take;
        if (q == &normal_) normal_bytes_ -= take;
        else urgent_bytes_ -= take;
        if (b.size() == 0) {
          q->pop_front();
          if (q == &normal_) preamble_pending_ = false;  // the preamble is normal_'s first buffer
        }
      }
      normal_partial_ = !normal_.empty() && q == &normal_ && normal_.front().off > 0;
    }
    if (closing_ && out_empty() && close_received_) teardown();
    if (!dead_ && normal_bytes_ < kSendHighWater && !ready_.empty()) loop_->mark_dirty(this);
    if (!dead_ && gated_since_ != 0 && out_bytes() < kReadGate) {
      gated_since_ = 0;
      // Read again; unless JavaScript is behind, when resume_reading() will.
      if (readable_ && !loop_->events_backlogged()) loop_->mark_dirty(this);
    }
  }

  void reset_all(const std::string& why) {
    std::vector<Stream*> all;
    for (auto& kv : streams_) all.push_back(kv.second.get());
    for (Stream* s : all) finish(s, why, true);
  }

  void remember_closed(uint32_t sid) {
    recent_closed_.push_back(sid);
    recent_closed_set_.insert(sid);
    if (recent_closed_.size() > kRecentClosed) {
      recent_closed_set_.erase(recent_closed_.front());
      recent_closed_.pop_front();
    }
  }

  void emit_closed(uint32_t sid, uint64_t in, uint64_t out, const std::string& how) {
    Event e{Event::kStreamClosed};
    e.session = id_;
    e.stream = sid;
    e.bytes_in = in;
    e.bytes_out = out;
    e.text = how;
    loop_->emit(std::move(e));
  }

  // Frees a stream exactly once; the object lives until the end of the loop turn.
  void finish(Stream* s, const std::string& how, bool abortive) {
    if (s->done) return;
    s->done = true;
    s->ready_hook.unlink();  // nothing may point at it once it is buried
    if (!s->udp) credit(-static_cast<int64_t>(s->recv_granted - s->bytes_in));
    if (s->fd) {
      if (s->registered) loop_->unwatch(s->fd.get());
      if (abortive) s->fd.reset_abortive();
      else s->fd.reset();
    }
    emit_closed(s->id, s->bytes_in, s->bytes_out, how);
    remember_closed(s->id);
    auto it = streams_.find(s->id);
    if (it != streams_.end()) {
      loop_->bury(std::move(it->second));
      streams_.erase(it);
    }
    if (streams_.empty()) {
      if (draining_ && !closing_ && !dead_) send_close(1001, "drained");
      else if (peer_draining_) emit_idle();
    }
  }

  // Closes the connection and reports the session closed, once.
  void teardown() {
    if (dead_) return;
    reset_all("session closed");
    dead_ = true;
    loop_->unwatch(fd_.get());
    fd_.reset();
    Event e{Event::kSessionClosed};
    e.session = id_;
    e.code = close_code_ ? close_code_ : 1006;
    e.bytes_in = bytes_in_;
    e.bytes_out = bytes_out_;
    e.text = close_reason_;
    loop_->emit(std::move(e));
  }

  Loop* loop_;
  uint32_t id_;
  UniqueFd fd_;
  std::unique_ptr<Wire> wire_;  // after fd_: it goes first
  SessionOptions o_;
  ws::Parser parser_;
  std::unique_ptr<tws2::MessageReader<Session>> reader_;
  std::unordered_map<uint32_t, std::unique_ptr<Stream>> streams_;
  std::deque<uint32_t> recent_closed_;
  std::unordered_set<uint32_t> recent_closed_set_;
  // Streams that may have DATA to send, in round-robin order. Declared after
  // streams_, so it is cleared (unlinking every hook) before they go.
  IntrusiveList<Stream, &Stream::ready_hook> ready_;
  std::deque<Buf> urgent_;
  size_t urgent_bytes_ = 0;
  bool preamble_pending_ = false;  // normal_'s first buffer is the 101 / upgrade request: it goes first and is never dropped
  double gated_since_ = 0;         // when reading from the peer stopped because it is not reading what we send (0: reading)
  uint64_t outstanding_ = 0;
  std::deque<Buf> normal_;
  size_t normal_bytes_ = 0;
  bool normal_partial_ = false;
  bool readable_ = true;
  bool writable_ = true;
  // The client's upgrade done by the engine (TLS): reading the response head, then held for JavaScript.
  enum class Upgrade { kNone, kReading, kHeld } upgrade_ = Upgrade::kNone;
  double upgrade_deadline_ = 0;
  std::string upgrade_buf_;
  bool closing_ = false;
  bool close_received_ = false;
  bool dead_ = false;
  bool draining_ = false;
  bool peer_draining_ = false;
  bool error_ = false;
  const char* error_reason_ = "";
  uint16_t close_code_ = 0;
  std::string close_reason_;
  double close_deadline_ = 0;
  double last_recv_;
  double last_data_ = 0;
  double last_ping_;
  double ping_sent_at_ = 0;
  bool ping_quiet_ = false;
  uint64_t ping_token_ = 0;
  std::deque<double> rtts_;
  uint64_t bytes_in_ = 0;
  uint64_t bytes_out_ = 0;

  friend struct Stream;
};

void Stream::on_events(uint32_t events) { session->stream_event(this, events); }

void Loop::mark_dirty(Session* s) {
  if (std::find(dirty_.begin(), dirty_.end(), s) == dirty_.end()) dirty_.push_back(s);
}

bool Loop::start(std::string* error) {
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
  {
    std::lock_guard<std::mutex> lock(commands_mu_);
    accepting_ = true;
  }
  running_ = true;
  thread_ = std::thread([this] { run(); });
  // Named here, not inside the thread, so the name is set before start() returns
  // (visible in /proc/PID/task/*/comm and top -H).
  ::pthread_setname_np(thread_.native_handle(), "tws-io");
  return true;
}

void Loop::stop() {
  std::vector<Task> left;
  {
    std::lock_guard<std::mutex> lock(commands_mu_);
    accepting_ = false;
    left.swap(commands_);
  }
  left.clear();  // commands that will never run close the fds they own
  if (!running_.exchange(false)) return;
  wake();
  if (thread_.joinable()) thread_.join();
  {
    // Posted while the thread was finishing its last turn.
    std::lock_guard<std::mutex> lock(commands_mu_);
    left.swap(commands_);
  }
  left.clear();
  sessions_.clear();  // closes every fd
  fronts_.clear();
}

void Loop::post(Task command) {
  {
    std::lock_guard<std::mutex> lock(commands_mu_);
    if (!accepting_) return;  // `command` goes out of scope here, closing what it owns
    commands_.push_back(std::move(command));
  }
  wake();
}

void Loop::run_commands() {
  uint64_t drained;
  (void)!::read(wake_.get(), &drained, sizeof drained);
  std::vector<Task> cmds;
  {
    std::lock_guard<std::mutex> lock(commands_mu_);
    cmds.swap(commands_);
  }
  for (auto& c : cmds) c();
  if (caught_up_.exchange(false)) {
    backlogged_ = false;
    // Sessions left data unread while JavaScript was behind: edge-triggered
    // epoll will not say so again, so each gets a turn to read it.
    for (auto& kv : sessions_) kv.second->resume_reading();
  }
}

std::vector<Event> Loop::take_events() {
  std::vector<Event> out;
  bool was_backlogged;
  {
    std::lock_guard<std::mutex> lock(events_mu_);
    out.swap(events_);
    pending_datagram_bytes_ = 0;
    was_backlogged = out.size() >= kEventBacklog;
  }
  if (was_backlogged) {
    caught_up_ = true;
    wake();
  }
  return out;
}

void Loop::emit(Event e) {
  bool was_empty;
  {
    std::lock_guard<std::mutex> lock(events_mu_);
    was_empty = events_.empty();
    events_.push_back(std::move(e));
    if (events_.size() >= kEventBacklog) backlogged_ = true;
  }
  if (was_empty) notify_();
}

void Loop::emit_datagram(uint32_t session, uint32_t stream, const uint8_t* p, size_t n) {
  {
    std::lock_guard<std::mutex> lock(events_mu_);
    if (pending_datagram_bytes_ + n > kMaxPendingDatagramBytes) {
      datagram_dropped();
      return;
    }
    pending_datagram_bytes_ += n;
  }
  Event e(Event::kDatagram);
  e.session = session;
  e.stream = stream;
  e.text.assign(reinterpret_cast<const char*>(p), n);
  emit(std::move(e));
}

bool Loop::admit_outgoing_datagram(size_t n) {
  if (outgoing_datagram_bytes_.fetch_add(n, std::memory_order_relaxed) + n > kMaxPendingDatagramBytes) {
    outgoing_datagram_bytes_.fetch_sub(n, std::memory_order_relaxed);
    datagram_dropped();
    return false;
  }
  return true;
}

void Loop::run() {
  epoll_event events[256];
  double next_tick = now_ms() + 50;
  double last_busy = 0;
  while (running_) {
    int timeout = 0;
    if (dirty_.empty()) {
      const double now = now_ms();
      double wait = next_tick - now;
      timeout = wait > 0 ? static_cast<int>(wait) + 1 : 0;
      // --busy-poll: keep polling for a while after activity instead of sleeping,
      // so the next packet does not pay for a thread (and vCPU) wake-up.
      if (now - last_busy < busy_poll_ms_) timeout = 0;
    }
    int n = ::epoll_wait(epoll_.get(), events, 256, timeout);
    if (n > 0 && busy_poll_ms_ > 0) last_busy = now_ms();
    for (int i = 0; i < n; i++) {
      if (events[i].data.ptr == nullptr) {
        run_commands();
        continue;
      }
      static_cast<Pollable*>(events[i].data.ptr)->on_events(events[i].events);
    }
    // One turn for each session with something to do, then back to epoll
    // (without sleeping while work is left): other sockets' events wait for
    // at most one turn of a busy session. Four turns between polls (4 MiB
    // of a bulk stream) doubled the round trip of pings beside it.
    if (!dirty_.empty()) {
      std::vector<Session*> todo;
      todo.swap(dirty_);
      for (Session* s : todo) s->work();
    }
    const double now = now_ms();
    if (now >= next_tick) {
      for (auto& kv : sessions_) kv.second->tick(now);
      tick_fronts(now);
      next_tick = now + 50;
    }
    // Free what closed during this turn, after every pointer to it is gone.
    graveyard_streams_.clear();
    for (auto it = sessions_.begin(); it != sessions_.end();) {
      if (it->second->dead()) {
        dirty_.erase(std::remove(dirty_.begin(), dirty_.end(), it->second.get()), dirty_.end());
        graveyard_sessions_.push_back(std::move(it->second));
        it = sessions_.erase(it);
      } else {
        ++it;
      }
    }
    graveyard_sessions_.clear();
    bury_dead_fronts();
  }
}

// A server's TLS connection before its upgrade. The engine runs TLS and
// relays the plaintext through a socketpair to JavaScript's HTTP server,
// which reads the request (and answers probes) as for any connection; on
// upgrade, Engine::adopt_front turns the TLS connection into a Session and
// the socketpair goes away. Only the handshake and the upgrade pass through
// here, so the relay favours simplicity over speed.
class Front {
 public:
  Front(Loop* loop, uint32_t id, UniqueFd tcp, UniqueFd pair, std::unique_ptr<Wire> wire)
      : loop_(loop), id_(id), tcp_(std::move(tcp)), pair_(std::move(pair)), wire_(std::move(wire)) {
    loop_->fronts_alive_.fetch_add(1, std::memory_order_relaxed);
  }
  ~Front() { loop_->fronts_alive_.fetch_sub(1, std::memory_order_relaxed); }
  Front(const Front&) = delete;
  Front& operator=(const Front&) = delete;

  bool start() {
    set_nodelay_nonblock(tcp_.get());
    if (!loop_->watch(tcp_.get(), &tcp_end_) || !loop_->watch(pair_.get(), &pair_end_)) return false;
    relay();
    return true;
  }

  // Moves bytes both ways until neither side can make progress.
  void relay() {
    uint8_t* buf = loop_->read_buffer();
    for (bool progress = true; progress && !dead_;) {
      progress = false;
      if (to_js_.empty() && !tls_done_) {
        ssize_t n = wire_->recv(buf, kReadBuffer);
        if (n > 0) {
          to_js_.assign(reinterpret_cast<char*>(buf), static_cast<size_t>(n));
          progress = true;
        } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
          tls_done_ = true;  // the client left, or TLS failed (a handshake error, say)
          if (n < 0 && wire_->error_code() == 1015) {
            // For the server's debug log: a client that does not trust us, a scanner, an old TLS.
            Event e(Event::kTlsFailed);
            e.session = id_;
            e.text = wire_->error_text(errno);
            loop_->emit(std::move(e));
          }
        }
      }
      if (!to_js_.empty()) {
        ssize_t w = ::send(pair_.get(), to_js_.data(), to_js_.size(), MSG_NOSIGNAL);
        if (w > 0) {
          to_js_.erase(0, static_cast<size_t>(w));
          progress = true;
        } else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
          return close();
        }
      }
      if (to_tls_.empty() && !js_done_) {
        ssize_t n = ::recv(pair_.get(), buf, kReadBuffer, 0);
        if (n > 0) {
          to_tls_.assign(reinterpret_cast<char*>(buf), static_cast<size_t>(n));
          progress = true;
        } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
          js_done_ = true;  // JavaScript answered and closed (a 404, say), or dropped it
        }
      }
      if (!to_tls_.empty() || wire_->holding()) {
        iovec iov{const_cast<char*>(to_tls_.data()), to_tls_.size()};
        ssize_t w = wire_->sendv(&iov, to_tls_.empty() ? 0 : 1);
        if (w > 0) {
          to_tls_.erase(0, static_cast<size_t>(w));
          progress = true;
        } else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
          return close();
        }
      }
    }
    // Either side gone: once what it said has reached the other, close both.
    if (tls_done_ && to_js_.empty()) return close();
    if (js_done_ && to_tls_.empty() && !wire_->holding()) return close();
  }

  // The upgrade: what the Session needs to carry on where JavaScript stopped.
  // `js_end` is JavaScript's end of the pair: bytes it never read are still there.
  std::unique_ptr<Session> into_session(uint32_t session, UniqueFd js_end, std::string head, std::string preamble, SessionOptions o);

  void close() {
    if (dead_) return;
    dead_ = true;
    loop_->unwatch(tcp_.get());
    loop_->unwatch(pair_.get());
    tcp_.reset();
    pair_.reset();
  }
  bool dead() const { return dead_; }

  // JavaScript is done with it (answered and closed), but the client is not
  // taking the answer: give up after a while rather than hold the fds.
  void tick(double now) {
    if (dead_ || !js_done_) return;
    if (js_done_at_ == 0) js_done_at_ = now;
    else if (now - js_done_at_ > kCloseGraceMs * 5) close();
  }

 private:
  struct End final : Pollable {
    explicit End(Front* f) : front(f) {}
    Front* front;
    void on_events(uint32_t) override { front->relay(); }
  };

  Loop* loop_;
  uint32_t id_;
  UniqueFd tcp_;
  UniqueFd pair_;
  std::unique_ptr<Wire> wire_;  // after tcp_: it goes first
  End tcp_end_{this};
  End pair_end_{this};
  std::string to_js_;
  std::string to_tls_;
  bool tls_done_ = false;
  bool js_done_ = false;
  double js_done_at_ = 0;
  bool dead_ = false;
};

std::unique_ptr<Session> Front::into_session(uint32_t session, UniqueFd js, std::string head, std::string preamble, SessionOptions o) {
  int flags = ::fcntl(js.get(), F_GETFL);
  if (flags >= 0) ::fcntl(js.get(), F_SETFL, flags | O_NONBLOCK);
  // Decrypted bytes, in order: what JavaScript read (head), what it left in
  // its end of the pair, what we had not yet passed on.
  uint8_t* buf = loop_->read_buffer();
  for (ssize_t n; (n = ::recv(js.get(), buf, kReadBuffer, 0)) > 0;) head.append(reinterpret_cast<char*>(buf), static_cast<size_t>(n));
  head += to_js_;
  // Anything JavaScript wrote that has not gone out precedes the 101.
  for (ssize_t n; (n = ::recv(pair_.get(), buf, kReadBuffer, 0)) > 0;) to_tls_.append(reinterpret_cast<char*>(buf), static_cast<size_t>(n));
  preamble.insert(0, to_tls_);
  loop_->unwatch(tcp_.get());
  loop_->unwatch(pair_.get());
  pair_.reset();
  dead_ = true;
  auto s = std::make_unique<Session>(loop_, session, std::move(tcp_), o, std::move(wire_));
  if (!s->start(head, preamble)) s->cmd_close(1011, "cannot watch the socket");
  return s;
}

void Loop::tick_fronts(double now) {
  for (auto& kv : fronts_) kv.second->tick(now);
}

void Loop::bury_dead_fronts() {
  for (auto it = fronts_.begin(); it != fronts_.end();) {
    if (it->second->dead()) {
      graveyard_fronts_.push_back(std::move(it->second));
      it = fronts_.erase(it);
    } else {
      ++it;
    }
  }
  graveyard_fronts_.clear();
}

// ---- Engine: the JS-thread facade ----

const char* invalid_options(const SessionOptions& o) {
  if (o.timeout_ms == 0) return "timeoutMs must be above 0";
  if (o.initial_window < tws2::kEarlyDataLimit) return "initialWindow must be at least 65536";
  if (o.max_window < o.initial_window) return "maxWindow must be at least initialWindow";
  if (o.max_streams == 0) return "maxStreams must be above 0";
  if (o.session_budget < tws2::kEarlyDataLimit) return "sessionBudget must be at least 65536";
  if (o.process_budget < o.session_budget) return "processBudget must be at least sessionBudget";
  return nullptr;
}

Engine::Engine(std::function<void()> notify) : loop_(new Loop(std::move(notify))) {}
Engine::~Engine() { stop(); }
bool Engine::start(std::string* error) { return loop_->start(error); }
void Engine::set_busy_poll(uint32_t us) { loop_->set_busy_poll(us); }
void Engine::stop() { loop_->stop(); }
std::vector<Event> Engine::take_events() { return loop_->take_events(); }
EngineStats Engine::stats() const { return loop_->stats(); }

namespace {
Session* find_session(Loop* loop, uint32_t id) {
  auto it = loop->sessions().find(id);
  return it == loop->sessions().end() || it->second->dead() ? nullptr : it->second.get();
}

// Starts a session the loop now owns; one that cannot watch its socket closes at once.
void install(Loop* loop, uint32_t id, std::unique_ptr<Session> s, const std::string& head, const std::string& preamble,
             bool await_upgrade = false) {
  Session* sp = s.get();
  loop->sessions()[id] = std::move(s);
  if (!sp->start(head, preamble, await_upgrade)) sp->cmd_close(1011, "cannot watch the socket");
}
}  // namespace

void Engine::adopt(uint32_t session, UniqueFd fd, std::string head, std::string preamble, SessionOptions options) {
  Loop* loop = loop_.get();
  loop->post([loop, session, fd = std::move(fd), head = std::move(head), preamble = std::move(preamble), options]() mutable {
    install(loop, session, std::make_unique<Session>(loop, session, std::move(fd), options), head, preamble);
  });
}

void Engine::adopt_upgrading(uint32_t session, UniqueFd fd, std::unique_ptr<Wire> wire, std::string request, SessionOptions options) {
  Loop* loop = loop_.get();
  loop->post([loop, session, fd = std::move(fd), wire = std::move(wire), request = std::move(request), options]() mutable {
    install(loop, session, std::make_unique<Session>(loop, session, std::move(fd), options, std::move(wire)), std::string(), request, true);
  });
}

void Engine::open_stream(uint32_t session, uint32_t stream, UniqueFd fd, std::string target, std::string initial) {
  Loop* loop = loop_.get();
  loop->post([loop, session, stream, fd = std::move(fd), target = std::move(target), initial = std::move(initial)]() mutable {
    Session* s = find_session(loop, session);
    if (!s) {
      fd.reset_abortive();
      Event e{Event::kStreamClosed};
      e.session = session;
      e.stream = stream;
      e.text = "session closed";
      loop->emit(std::move(e));
      return;
    }
    s->cmd_open(stream, std::move(fd), std::move(target), std::move(initial));
  });
}

void Engine::accept_stream(uint32_t session, uint32_t stream, UniqueFd fd, std::string initial) {
  Loop* loop = loop_.get();
  loop->post([loop, session, stream, fd = std::move(fd), initial = std::move(initial)]() mutable {
    // A session that is gone has already reported the stream closed; fd closes with the command.
    if (Session* s = find_session(loop, session)) s->cmd_accept(stream, std::move(fd), std::move(initial));
  });
}

void Engine::dial_stream(uint32_t session, uint32_t stream, std::string address, uint16_t port, uint32_t timeout_ms) {
  Loop* loop = loop_.get();
  loop->post([loop, session, stream, address = std::move(address), port, timeout_ms] {
    if (Session* s = find_session(loop, session)) s->cmd_dial(stream, address, port, timeout_ms);
  });
}

void Engine::reject_stream(uint32_t session, uint32_t stream, uint16_t code, std::string reason) {
  Loop* loop = loop_.get();
  loop->post([loop, session, stream, code, reason = std::move(reason)] {
    if (Session* s = find_session(loop, session)) s->cmd_reject(stream, code, reason);
  });
}

void Engine::goaway(uint32_t session, uint16_t code, std::string reason) {
  Loop* loop = loop_.get();
  loop->post([loop, session, code, reason = std::move(reason)] {
    if (Session* s = find_session(loop, session)) s->cmd_goaway(code, reason);
  });
}

void Engine::front_tls(uint32_t front, UniqueFd tcp_fd, UniqueFd pair_fd, std::unique_ptr<Wire> wire) {
  Loop* loop = loop_.get();
  loop->post([loop, front, tcp = std::move(tcp_fd), pair = std::move(pair_fd), wire = std::move(wire)]() mutable {
    auto f = std::make_unique<Front>(loop, front, std::move(tcp), std::move(pair), std::move(wire));
    if (!f->start()) f->close();
    loop->fronts()[front] = std::move(f);
  });
}

void Engine::adopt_front(uint32_t session, uint32_t front, UniqueFd js_fd, std::string head, std::string preamble, SessionOptions options) {
  Loop* loop = loop_.get();
  loop->post([loop, session, front, js = std::move(js_fd), head = std::move(head), preamble = std::move(preamble), options]() mutable {
    auto it = loop->fronts().find(front);
    if (it == loop->fronts().end() || it->second->dead()) {
      Event e(Event::kSessionClosed);
      e.session = session;
      e.code = 1006;
      e.text = "connection closed before the upgrade";
      loop->emit(std::move(e));
      return;  // js closes with the command
    }
    loop->sessions()[session] = it->second->into_session(session, std::move(js), std::move(head), std::move(preamble), options);
  });
}

void Engine::upgraded(uint32_t session) {
  Loop* loop = loop_.get();
  loop->post([loop, session] {
    if (Session* s = find_session(loop, session)) s->cmd_upgraded();
  });
}

void Engine::close_session(uint32_t session, uint16_t code, std::string reason) {
  Loop* loop = loop_.get();
  loop->post([loop, session, code, reason = std::move(reason)] {
    if (Session* s = find_session(loop, session)) s->cmd_close(code, reason);
  });
}

void Engine::open_datagram_stream(uint32_t session, uint32_t stream, std::string target) {
  Loop* loop = loop_.get();
  loop->post([loop, session, stream, target = std::move(target)]() mutable {
    if (Session* s = find_session(loop, session)) s->cmd_open_datagrams(stream, std::move(target));
  });
}

void Engine::accept_datagrams(uint32_t session, uint32_t stream) {
  Loop* loop = loop_.get();
  loop->post([loop, session, stream] {
    if (Session* s = find_session(loop, session)) s->cmd_accept_datagrams(stream);
  });
}

void Engine::send_datagram(uint32_t session, uint32_t stream, std::string payload) {
  Loop* loop = loop_.get();
  // Bounded like the other direction: JavaScript may read a UDP socket faster than the link drains.
  if (!loop->admit_outgoing_datagram(payload.size())) return;
  loop->post([loop, session, stream, payload = std::move(payload)] {
    loop->outgoing_datagram_done(payload.size());
    if (Session* s = find_session(loop, session)) s->cmd_send_datagram(stream, payload);
  });
}

}  // namespace tws

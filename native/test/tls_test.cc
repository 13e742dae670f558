// Tests of the engine's TLS (native/io/tls_wire.cc, tls_front.cc) against a
// peer played here with the system's OpenSSL, over socketpairs with small
// buffers, built with ASan and UBSan by test/native/tls.test.ts (which skips
// without libssl-dev). What a TLS peer must not be able to do: keep the I/O
// thread busy while its socket is full, grow the ciphertext the engine holds
// for it by sending records that make OpenSSL answer (KeyUpdate) and never
// reading, or lose the commands sent for a session while it moves from the
// TLS thread to the sessions' thread. Prints one line per failure and a
// closing "N passed, N failed".
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "check.h"
#include "../core/ws_frame.h"
#include "../io/engine.h"
#include "../io/tls_wire.h"
#include "watched_engine.h"

namespace {

using Clock = std::chrono::steady_clock;
using ms = std::chrono::milliseconds;

void nonblock(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }
void blocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK); }

// A socketpair whose buffers are small, so that a side that does not read fills it soon.
std::pair<int, int> small_pair() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) std::abort();
  const int small = 16 * 1024;
  for (int fd : sv) {
    ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  }
  return {sv[0], sv[1]};
}

// A throw-away ECDSA P-256 certificate for "localhost", as PEM.
struct Pem {
  std::string cert, key;
};

std::string pem_of(int (*write)(BIO*, void*), void* what) {
  BIO* b = BIO_new(BIO_s_mem());
  write(b, what);
  char* p = nullptr;
  const long n = BIO_get_mem_data(b, &p);
  std::string s(p, static_cast<size_t>(n));
  BIO_free(b);
  return s;
}

Pem make_cert() {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* x = X509_new();
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), -60);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_set_pubkey(x, key);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
  X509_set_issuer_name(x, name);
  X509_sign(x, key, EVP_sha256());
  Pem pem;
  pem.cert = pem_of([](BIO* b, void* v) { return PEM_write_bio_X509(b, static_cast<X509*>(v)); }, x);
  pem.key = pem_of([](BIO* b, void* v) { return PEM_write_bio_PrivateKey(b, static_cast<EVP_PKEY*>(v), nullptr, nullptr, 0, nullptr, nullptr); }, key);
  X509_free(x);
  EVP_PKEY_free(key);
  return pem;
}

const Pem& cert() {
  static const Pem pem = make_cert();
  return pem;
}

// Our end of a TLS connection (blocking until nonblock() is called on its fd).
struct Peer {
  SSL_CTX* ctx = nullptr;
  SSL* ssl = nullptr;
  int fd = -1;
  ~Peer() {
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    if (fd >= 0) ::close(fd);
  }
};

std::unique_ptr<Peer> tls_peer(int fd, bool server) {
  auto p = std::make_unique<Peer>();
  p->fd = fd;
  p->ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  SSL_CTX_set_min_proto_version(p->ctx, TLS1_3_VERSION);
  if (server) {
    BIO* c = BIO_new_mem_buf(cert().cert.data(), static_cast<int>(cert().cert.size()));
    BIO* k = BIO_new_mem_buf(cert().key.data(), static_cast<int>(cert().key.size()));
    X509* x = PEM_read_bio_X509(c, nullptr, nullptr, nullptr);
    EVP_PKEY* key = PEM_read_bio_PrivateKey(k, nullptr, nullptr, nullptr);
    SSL_CTX_use_certificate(p->ctx, x);
    SSL_CTX_use_PrivateKey(p->ctx, key);
    X509_free(x);
    EVP_PKEY_free(key);
    BIO_free(c);
    BIO_free(k);
  }
  p->ssl = SSL_new(p->ctx);
  SSL_set_fd(p->ssl, fd);
  return p;
}

// Reads until `what` has arrived (blocking socket); false on EOF or error.
bool read_until(SSL* ssl, std::string* got, const std::string& what) {
  char buf[4096];
  while (got->find(what) == std::string::npos) {
    const int n = SSL_read(ssl, buf, sizeof buf);
    if (n <= 0) return false;
    got->append(buf, static_cast<size_t>(n));
  }
  return true;
}

// The engine as a wss:// client over one end of a small socketpair, upgraded;
// the other end is ours, a TLS 1.3 server (non-blocking once this returns).
std::unique_ptr<Peer> upgraded_client(tws::test::WatchedEngine& w, uint32_t session, uint32_t timeout_ms = 60000) {
  auto fds = small_pair();
  std::string err;
  auto context = tws::TlsContext::client("", true, &err);
  auto wire = tws::make_tls_client(fds.first, *context, "localhost", "localhost", &err);
  tws::SessionOptions o;
  o.timeout_ms = timeout_ms;
  w.engine.adopt_upgrading(session, tws::UniqueFd(fds.first), std::move(wire), "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", o);
  auto peer = tls_peer(fds.second, true);
  std::string request;
  const bool ok = SSL_accept(peer->ssl) == 1 && read_until(peer->ssl, &request, "\r\n\r\n");
  CHECK(ok, "the engine's TLS handshake and request");
  const std::string answer = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
  SSL_write(peer->ssl, answer.data(), static_cast<int>(answer.size()));
  bool head = false;
  for (auto until = Clock::now() + ms(5000); !head && Clock::now() < until;) {
    for (const auto& e : w.wait_events(50)) head |= e.kind == tws::Event::kUpgradeHead;
  }
  CHECK(head, "the engine reported the upgrade's head");
  w.engine.upgraded(session);
  nonblock(peer->fd);
  return peer;
}

bool wait_writable(int fd, int timeout_ms) {
  pollfd p{fd, POLLOUT, 0};
  return ::poll(&p, 1, timeout_ms) == 1;
}

// Waits for the session's close; `meanwhile` (if any) runs between waits of 50 ms.
bool session_closed(tws::test::WatchedEngine& w, uint32_t session, int timeout_ms, std::string* text = nullptr, int* code = nullptr,
                    const std::function<void()>& meanwhile = nullptr) {
  for (auto until = Clock::now() + ms(timeout_ms); Clock::now() < until;) {
    if (meanwhile) meanwhile();
    for (const auto& e : w.wait_events(50)) {
      if (e.kind == tws::Event::kSessionClosed && e.session == session) {
        if (text) *text = e.text;
        if (code) *code = e.code;
        return true;
      }
    }
  }
  return false;
}

// A peer that sends pings and never reads: the pongs fill the engine's
// ciphertext buffer and then the socket. The session must then wait for
// EPOLLOUT, not spin on a write that takes nothing: the I/O thread still
// runs commands (a close, here) and ticks (its grace period).
void test_a_full_socket_does_not_keep_the_thread_busy() {
  tws::test::WatchedEngine w;
  std::string err;
  if (!w.engine.start(&err)) std::abort();
  auto peer = upgraded_client(w, 1);
  uint8_t frame[128];
  uint8_t payload[100];
  std::memset(payload, 'p', sizeof payload);
  const size_t h = tws::ws::write_header(frame, tws::ws::kPing, true, sizeof payload, nullptr);
  std::memcpy(frame + h, payload, sizeof payload);
  // Each ping makes a pong (coalesced while one waits): a second of them fills 16 KiB buffers many times over.
  size_t sent = 0;
  for (auto until = Clock::now() + ms(1000); Clock::now() < until;) {
    const int r = SSL_write(peer->ssl, frame, static_cast<int>(h + sizeof payload));
    if (r > 0) sent += static_cast<size_t>(r);
    else if (SSL_get_error(peer->ssl, r) == SSL_ERROR_WANT_WRITE) wait_writable(peer->fd, 50);
    else break;
  }
  CHECK(sent > (256u << 10), "pings sent: " + std::to_string(sent >> 10) + " KiB");
  w.engine.take_events();
  w.engine.close_session(1, 1000, "bye", "test");
  std::string text;
  // The close frame cannot go out: the session goes after its 2 s close grace.
  CHECK(session_closed(w, 1, 5000, &text), "the I/O thread carried out the close: session-closed (" + text + ")");
  w.engine.stop();
}

// KeyUpdate(update_requested) makes OpenSSL write a KeyUpdate back for each
// one read. From a peer that never reads, those answers must not pile up:
// the engine stops reading it once its ciphertext buffer is full and the
// socket takes none of it.
void test_key_updates_from_a_peer_that_never_reads_are_bounded() {
  tws::test::WatchedEngine w;
  std::string err;
  if (!w.engine.start(&err)) std::abort();
  auto peer = upgraded_client(w, 1, 2000);
  size_t updates = 0;
  bool stalled = false;
  bool failed = false;  // the engine closed the connection (it may, once it held back reading for its timeout)
  const size_t limit = 400000;  // ~11 MB of KeyUpdate records
  for (auto until = Clock::now() + ms(8000); Clock::now() < until && !stalled && !failed && updates < limit;) {
    if (SSL_key_update(peer->ssl, SSL_KEY_UPDATE_REQUESTED) != 1) {
      failed = true;
      break;
    }
    for (;;) {
      const int r = SSL_do_handshake(peer->ssl);
      if (r == 1) break;
      if (SSL_get_error(peer->ssl, r) != SSL_ERROR_WANT_WRITE) {
        failed = true;
        break;
      }
      if (!wait_writable(peer->fd, 1000)) {
        stalled = true;
        break;
      }
    }
    if (!failed) updates++;
  }
  ERR_clear_error();
  CHECK(stalled || failed, "the engine stopped reading a peer whose KeyUpdates it cannot answer (" + std::to_string(updates) + " sent)");
  // 256 KiB of answers held, what one read of 256 KiB makes it answer, and the socket buffers: ~30 bytes a record.
  CHECK(updates < 40000, "after at most 40000 of them: " + std::to_string(updates));
  // Held back that long, the peer is not reading (not "silent": it sends all along): 1008 after the timeout and close
  // grace. It goes on sending whenever the engine takes any: a peer that stopped, its last updates read once the
  // engine's answers found room, would be silent (1006), which is right for it but not what this test is about.
  const auto keep_sending = [&] {
    if (!wait_writable(peer->fd, 0)) return;
    if (SSL_do_handshake(peer->ssl) == 1 && SSL_key_update(peer->ssl, SSL_KEY_UPDATE_REQUESTED) == 1) SSL_do_handshake(peer->ssl);
    ERR_clear_error();
  };
  std::string text;
  int code = 0;
  const bool closed = session_closed(w, 1, 6000, &text, &code, keep_sending);
  CHECK(closed && code == 1008, "closed as not reading: " + std::to_string(code) + " " + text);
  w.engine.stop();
}

// A peer whose only traffic is TLS records of its own (KeyUpdates; it reads
// what comes, pings included, and never answers them) is heard, not silent:
// the engine reads them though they give it no bytes. Once they stop, the
// session times out as silent.
void test_tls_records_alone_keep_a_peer_heard() {
  tws::test::WatchedEngine w;
  std::string err;
  if (!w.engine.start(&err)) std::abort();
  auto peer = upgraded_client(w, 1, 1000);
  const auto drain = [&] {
    char buf[4096];
    while (SSL_read(peer->ssl, buf, sizeof buf) > 0) {
    }
    ERR_clear_error();
  };
  bool closed_early = false;
  for (auto until = Clock::now() + ms(3000); Clock::now() < until && !closed_early;) {
    drain();
    if (SSL_do_handshake(peer->ssl) == 1 && SSL_key_update(peer->ssl, SSL_KEY_UPDATE_NOT_REQUESTED) == 1) SSL_do_handshake(peer->ssl);
    ERR_clear_error();
    for (const auto& e : w.wait_events(100)) closed_early |= e.kind == tws::Event::kSessionClosed && e.session == 1;
  }
  CHECK(!closed_early, "3 s of nothing but a KeyUpdate every 100 ms, with a 1 s timeout: still open");
  std::string text;
  int code = 0;
  const bool closed = session_closed(w, 1, 5000, &text, &code, drain);
  CHECK(closed && code == 1006 && text.find("silent") != std::string::npos, "then silent, timed out: " + std::to_string(code) + " " + text);
  w.engine.stop();
}

// A server's TLS front (on the engine's TLS thread) becomes a session on
// the sessions' thread; a command sent right after adopt_front (a close)
// is carried out there, not lost on the way.
void test_a_front_hands_over_with_the_commands_sent_meanwhile() {
  tws::test::WatchedEngine w;
  std::string err;
  if (!w.engine.start(&err)) std::abort();
  auto context = tws::TlsContext::server(cert().cert, cert().key, &err);
  CHECK(context != nullptr, "a server context: " + err);
  if (!context) return;
  int tcp[2];
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, tcp) != 0 || ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, pair) != 0) std::abort();
  auto wire = tws::make_tls_server(tcp[0], *context, &err);
  w.engine.front_tls(7, tws::UniqueFd(tcp[0]), tws::UniqueFd(pair[0]), std::move(wire));
  auto client = tls_peer(tcp[1], false);
  const std::string request = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
  const bool ok = SSL_connect(client->ssl) == 1 && SSL_write(client->ssl, request.data(), static_cast<int>(request.size())) > 0;
  CHECK(ok, "our TLS handshake with the front, and the request");
  // JavaScript's end of the pair: the request in plaintext.
  std::string plain;
  char buf[4096];
  blocking(pair[1]);
  while (plain.find("\r\n\r\n") == std::string::npos) {
    const ssize_t n = ::recv(pair[1], buf, sizeof buf, 0);
    if (n <= 0) break;
    plain.append(buf, static_cast<size_t>(n));
  }
  CHECK(plain == request, "the front relayed the request in plaintext");
  tws::SessionOptions o;
  o.server = true;
  o.timeout_ms = 60000;
  w.engine.adopt_front(8, 7, tws::UniqueFd(pair[1]), "", "HTTP/1.1 101 Switching Protocols\r\n\r\n", o);
  w.engine.close_session(8, 1000, "bye", "test");
  std::string got;
  const bool answered = read_until(client->ssl, &got, "bye");
  CHECK(answered && got.rfind("HTTP/1.1 101", 0) == 0, "the 101 first, then the close frame");
  const size_t at = got.find("\r\n\r\n") + 4;
  const bool close_frame = answered && got.size() >= at + 4 && static_cast<uint8_t>(got[at]) == 0x88 &&
                           static_cast<uint8_t>(got[at + 2]) == 0x03 && static_cast<uint8_t>(got[at + 3]) == 0xe8;
  CHECK(close_frame, "a close frame with code 1000");
  // Our close reply ends the handshake.
  const uint8_t reply[] = {0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8};
  SSL_write(client->ssl, reply, sizeof reply);
  CHECK(session_closed(w, 8, 5000), "session-closed for the session");
  w.engine.stop();
}

}  // namespace

// Runs every test, or those whose names contain the first argument.
int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  ::signal(SIGPIPE, SIG_IGN);  // our end writes to connections the engine may have closed
  const struct {
    const char* name;
    void (*run)();
  } tests[] = {
      {"full_socket", test_a_full_socket_does_not_keep_the_thread_busy},
      {"key_updates", test_key_updates_from_a_peer_that_never_reads_are_bounded},
      {"heard", test_tls_records_alone_keep_a_peer_heard},
      {"front_hand_over", test_a_front_hands_over_with_the_commands_sent_meanwhile},
  };
  for (const auto& t : tests) {
    if (argc < 2 || std::strstr(t.name, argv[1])) t.run();
  }
  return tws::test::report();
}

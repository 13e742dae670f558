// TlsWire: a Wire over an OpenSSL client connection (see tls_wire.h).
#include "tls_wire.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <climits>
#include <utility>
#include <vector>

namespace tws {
namespace {

// The largest TLS record's plaintext: what one SSL_write (partial-write mode) turns into one record.
constexpr size_t kRecord = 16384;
// Ciphertext is read in recv(2)s of up to this much (kInFirst until a read
// fills that, so connections that only exchange a little stay small).
constexpr size_t kInMax = 256 * 1024;
constexpr size_t kInFirst = 32 * 1024;

struct SslCtxFree {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
struct SslFree {
  void operator()(SSL* s) const { SSL_free(s); }
};
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};

// Node's names for verification failures, so both engines say the same.
const char* verify_code(long v) {
  switch (v) {
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT: return "UNABLE_TO_GET_ISSUER_CERT";
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY: return "UNABLE_TO_GET_ISSUER_CERT_LOCALLY";
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE: return "UNABLE_TO_VERIFY_LEAF_SIGNATURE";
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT: return "DEPTH_ZERO_SELF_SIGNED_CERT";
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN: return "SELF_SIGNED_CERT_IN_CHAIN";
    case X509_V_ERR_CERT_NOT_YET_VALID: return "CERT_NOT_YET_VALID";
    case X509_V_ERR_CERT_HAS_EXPIRED: return "CERT_HAS_EXPIRED";
    case X509_V_ERR_CERT_SIGNATURE_FAILURE: return "CERT_SIGNATURE_FAILURE";
    case X509_V_ERR_CERT_REVOKED: return "CERT_REVOKED";
    case X509_V_ERR_CERT_UNTRUSTED: return "CERT_UNTRUSTED";
    case X509_V_ERR_CERT_REJECTED: return "CERT_REJECTED";
    case X509_V_ERR_INVALID_CA: return "INVALID_CA";
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH: return "ERR_TLS_CERT_ALTNAME_INVALID";
    default: return "CERT_VERIFY_FAILED";
  }
}

bool is_ip(const std::string& s) {
  unsigned char buf[16];
  return ::inet_pton(AF_INET, s.c_str(), buf) == 1 || ::inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

// Records go out through this BIO into the wire's own buffer, then to the
// socket in large send(2)s: one syscall per 16 KiB record cost more than the
// encryption. The BIO never refuses, so OpenSSL never has a write to retry.
BIO_METHOD* out_method();
// Records come in through this one, from the wire's own buffer filled by
// large recv(2)s. OpenSSL's read-ahead did that too, but it realigns the
// rest of its buffer after every record (a memmove as large as what is still
// unread): on 256 KiB reads that copying cost more than the decryption.
BIO_METHOD* in_method();

class TlsWire final : public Wire {
 public:
  TlsWire(SSL* ssl, int fd) : ssl_(ssl), fd_(fd) {}

  // Set up after construction: the BIO points back at this object.
  bool attach() {
    BIO* rbio = BIO_new(in_method());
    BIO* wbio = BIO_new(out_method());
    if (!rbio || !wbio) {
      BIO_free(rbio);
      BIO_free(wbio);
      return false;
    }
    for (BIO* b : {rbio, wbio}) {
      BIO_set_data(b, this);
      BIO_set_init(b, 1);
    }
    SSL_set_bio(ssl_.get(), rbio, wbio);  // the SSL owns both now
    return true;
  }

  // For the read BIO: up to len buffered ciphertext bytes, refilling the
  // buffer from the socket when it is empty. > 0: bytes given; 0: the peer
  // ended the stream; -1: errno says why (EAGAIN: nothing yet).
  ssize_t give(uint8_t* dst, size_t len) {
    if (in_off_ == in_len_) {
      if (in_eof_) return 0;
      // What we read can make OpenSSL answer (a KeyUpdate, an alert): a peer
      // that sends such records and never reads would grow out_ without
      // bound. So no more is read while out_ holds more than sendv() ever
      // puts there (only such answers take it past kReadHold) and the socket
      // takes none of it; its EPOLLOUT brings the reader back (crosswise).
      // Below that, reading never waits for writing: two ends that both
      // send more than the other reads must both keep reading.
      held_ = pending() >= kReadHold;
      if (held_) {
        if (push_out() < 0) return -1;  // errno says why
        held_ = pending() >= kReadHold;
        if (held_) {
          errno = EAGAIN;
          return -1;
        }
      }
      if (!in_) in_.reset(new uint8_t[in_cap_]);
      ssize_t n;
      do {
        n = ::recv(fd_, in_.get(), in_cap_, 0);
      } while (n < 0 && errno == EINTR);
      if (n <= 0) {
        if (n == 0) in_eof_ = true;
        return n;
      }
      heard_ = true;
      if (static_cast<size_t>(n) == in_cap_ && in_cap_ < kInMax) {
        // Filled: a stream is flowing, read it in larger pieces from now on.
        in_cap_ = kInMax;
        std::unique_ptr<uint8_t[]> bigger(new uint8_t[in_cap_]);
        std::memcpy(bigger.get(), in_.get(), static_cast<size_t>(n));
        in_ = std::move(bigger);
      }
      in_off_ = 0;
      in_len_ = static_cast<size_t>(n);
    }
    const size_t n = std::min(len, in_len_ - in_off_);
    std::memcpy(dst, in_.get() + in_off_, n);
    in_off_ += n;
    return static_cast<ssize_t>(n);
  }
  bool in_eof() const { return in_eof_ && in_off_ == in_len_; }

  void take(const void* p, size_t n) {
    if (out_off_ > 0 && out_off_ * 2 >= out_.size()) {
      out_.erase(out_.begin(), out_.begin() + static_cast<std::ptrdiff_t>(out_off_));
      out_off_ = 0;
    }
    out_.insert(out_.end(), static_cast<const uint8_t*>(p), static_cast<const uint8_t*>(p) + n);
  }

  ssize_t recv(uint8_t* buf, size_t len) override {
    size_t got = 0;
    ssize_t result = -1;
    // SSL_read gives one record at a time: gather until the socket is dry or
    // buf is full. (A read that succeeds leaves the error queue as it was.)
    ERR_clear_error();
    while (got < len) {
      int n = SSL_read(ssl_.get(), buf + got, static_cast<int>(std::min<size_t>(len - got, INT_MAX)));
      if (n > 0) {
        got += static_cast<size_t>(n);
        continue;
      }
      int e = SSL_get_error(ssl_.get(), n);
      if (got > 0) break;  // a failure shows again on the next call
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        errno = EAGAIN;
      } else if (e == SSL_ERROR_ZERO_RETURN) {
        result = 0;  // close_notify, or EOF (SSL_OP_IGNORE_UNEXPECTED_EOF)
      } else {
        fail(e);
      }
      break;
    }
    if (got > 0) result = static_cast<ssize_t>(got);
    const int err = errno;
    push_out();  // handshake messages or alerts that reading produced
    errno = err;
    return result;
  }

  ssize_t sendv(const iovec* iov, int cnt) override {
    if (push_out() < 0) return -1;
    ERR_clear_error();  // as in recv: only a failed write leaves something behind
    size_t taken = 0;
    int i = 0;
    size_t off = 0;
    while (i < cnt && pending() < kOutHighWater) {
      const auto* base = static_cast<const uint8_t*>(iov[i].iov_base);
      size_t left = iov[i].iov_len - off;
      if (left == 0) {
        i++;
        off = 0;
        continue;
      }
      const uint8_t* p = base + off;
      size_t n = std::min(left, kRecord);
      if (left < kRecord) {
        // Small pieces (a frame header, the start of its payload) share one record.
        n = 0;
        for (int j = i; j < cnt && n < kRecord; j++) {
          const size_t from = j == i ? off : 0;
          const size_t take = std::min(iov[j].iov_len - from, kRecord - n);
          std::memcpy(stage_ + n, static_cast<const uint8_t*>(iov[j].iov_base) + from, take);
          n += take;
        }
        p = stage_;
      }
      int r = SSL_write(ssl_.get(), p, static_cast<int>(n));
      if (r <= 0) {
        int e = SSL_get_error(ssl_.get(), r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) break;  // the handshake waits for the server
        if (taken > 0) break;
        push_out();
        return fail(e);
      }
      taken += static_cast<size_t>(r);
      for (size_t adv = static_cast<size_t>(r); adv > 0;) {
        const size_t step = std::min(adv, iov[i].iov_len - off);
        adv -= step;
        off += step;
        if (off == iov[i].iov_len) {
          i++;
          off = 0;
        }
      }
    }
    if (push_out() < 0 && taken == 0) return -1;
    // Nothing taken and ciphertext still held (cnt 0 only pushes it): the
    // socket is full, which the caller must hear as EAGAIN, or it would
    // take 0 for progress and call again at once.
    if (taken == 0 && (cnt > 0 || pending() > 0)) {
      errno = EAGAIN;
      return -1;
    }
    return static_cast<ssize_t>(taken);
  }

  bool holding() const override { return pending() > 0; }
  bool crosswise() const override { return true; }
  std::string error_text(int err) const override { return error_.empty() ? errno_name(err) : error_; }
  uint16_t error_code() const override { return error_.empty() ? 1006 : 1015; }
  bool handshaking() const override { return !SSL_is_init_finished(ssl_.get()); }
  bool reading_held() const override { return held_; }
  bool heard_below() override { return std::exchange(heard_, false); }

 private:
  // Ciphertext waiting for the socket, beyond which sendv() encrypts no more
  // (it may pass it by one record), and beyond which nothing more is read.
  static constexpr size_t kOutHighWater = 256 * 1024;
  static constexpr size_t kReadHold = 2 * kOutHighWater;

  size_t pending() const { return out_.size() - out_off_; }

  // Sends buffered ciphertext: 0 when all is sent or the socket is full, -1 (errno) on an error.
  int push_out() {
    while (pending() > 0) {
      ssize_t n = ::send(fd_, out_.data() + out_off_, pending(), MSG_NOSIGNAL);
      if (n > 0) {
        out_off_ += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
      return -1;
    }
    out_.clear();
    out_off_ = 0;
    return 0;
  }

  // A failed read or write: remembers why (the first reason wins) and sets errno.
  ssize_t fail(int e) {
    if (e == SSL_ERROR_SYSCALL) {
      if (errno == 0) errno = ECONNRESET;
      return -1;
    }
    if (error_.empty()) error_ = describe();
    errno = EPROTO;
    return -1;
  }

  std::string describe() {
    unsigned long e = ERR_peek_last_error();
    if (ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
      long v = SSL_get_verify_result(ssl_.get());
      return std::string("TLS: ") + X509_verify_cert_error_string(v) + " (" + verify_code(v) + ")";
    }
    const char* why = e ? ERR_reason_error_string(e) : nullptr;
    return std::string("TLS: ") + (why ? why : "handshake or record failure") + " (ERR_SSL)";
  }

  std::unique_ptr<SSL, SslFree> ssl_;
  int fd_;
  std::vector<uint8_t> out_;
  size_t out_off_ = 0;
  std::string error_;
  std::unique_ptr<uint8_t[]> in_;  // ciphertext read ahead; allocated on the first read
  size_t in_cap_ = kInFirst;
  size_t in_off_ = 0;
  size_t in_len_ = 0;
  bool in_eof_ = false;
  bool held_ = false;  // give() refused to read (kReadHold)
  bool heard_ = false;  // give() read from the socket since heard_below() last asked
  uint8_t stage_[kRecord];
};

int out_write(BIO* bio, const char* data, size_t len, size_t* written) {
  static_cast<TlsWire*>(BIO_get_data(bio))->take(data, len);
  *written = len;
  return 1;
}

long out_ctrl(BIO*, int cmd, long, void*) {
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;  // nothing to flush: push_out() does the sending
}

int in_read(BIO* bio, char* data, size_t len, size_t* got) {
  BIO_clear_retry_flags(bio);
  ssize_t n = static_cast<TlsWire*>(BIO_get_data(bio))->give(reinterpret_cast<uint8_t*>(data), len);
  if (n > 0) {
    *got = static_cast<size_t>(n);
    return 1;
  }
  *got = 0;
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) BIO_set_retry_read(bio);
  return 0;  // errno stays for SSL_ERROR_SYSCALL
}

long in_ctrl(BIO* bio, int cmd, long, void*) {
  if (cmd == BIO_CTRL_EOF) return static_cast<TlsWire*>(BIO_get_data(bio))->in_eof() ? 1 : 0;
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

// A source/sink BIO type over a TlsWire, with one direction's callback.
BIO_METHOD* new_method(const char* name, int (*read)(BIO*, char*, size_t, size_t*),
                       int (*write)(BIO*, const char*, size_t, size_t*), long (*ctrl)(BIO*, int, long, void*)) {
  BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, name);
  if (read) BIO_meth_set_read_ex(m, read);
  if (write) BIO_meth_set_write_ex(m, write);
  BIO_meth_set_ctrl(m, ctrl);
  return m;
}

BIO_METHOD* in_method() {
  static BIO_METHOD* method = new_method("tws tls in", in_read, nullptr, in_ctrl);
  return method;
}

BIO_METHOD* out_method() {
  static BIO_METHOD* method = new_method("tws tls out", nullptr, out_write, out_ctrl);
  return method;
}

// A context with what both sides share: TLS 1.2 or later, partial writes
// (one record per SSL_write), no renegotiation. No read-ahead: the read BIO
// does the batching (see in_method). Forward-secret (ECDHE) AEAD suites only,
// as src/util/tls-suites.ts sets where Node runs TLS: no CBC, no RSA key
// exchange, no finite-field DHE (a hostile server picks its group size).
// AES-128-GCM first as browsers do: as safe here and about a third cheaper
// than AES-256 (servers mostly follow the client's order).
std::unique_ptr<SSL_CTX, SslCtxFree> new_context(const SSL_METHOD* method, std::string* error) {
  ERR_clear_error();
  std::unique_ptr<SSL_CTX, SslCtxFree> ctx(SSL_CTX_new(method));
  if (!ctx) {
    *error = "cannot create a TLS context";
    return ctx;
  }
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_ENABLE_PARTIAL_WRITE);
  SSL_CTX_set_options(ctx.get(), SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_ciphersuites(ctx.get(), "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256");
  SSL_CTX_set_cipher_list(ctx.get(),
                          "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
                          "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305");
  return ctx;
}

}  // namespace

std::shared_ptr<TlsContext> TlsContext::client(const std::string& ca_pem, bool insecure, std::string* error) {
  auto ctx = new_context(TLS_client_method(), error);
  if (!ctx) return nullptr;
  if (insecure) {
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  } else {
    X509_STORE* store = SSL_CTX_get_cert_store(ctx.get());
    std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(ca_pem.data(), static_cast<int>(ca_pem.size())));
    int added = 0;
    while (X509* cert = bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr) {
      if (X509_STORE_add_cert(store, cert) == 1) added++;
      X509_free(cert);
    }
    ERR_clear_error();  // the read past the last certificate leaves an error behind
    if (added == 0) {
      *error = "no usable trusted certificate";
      return nullptr;
    }
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  }
  return std::shared_ptr<TlsContext>(new TlsContext(ctx.release(), insecure));
}

std::shared_ptr<TlsContext> TlsContext::server(const std::string& cert_pem, const std::string& key_pem, std::string* error) {
  auto ctx = new_context(TLS_server_method(), error);
  if (!ctx) return nullptr;
  std::unique_ptr<BIO, BioFree> certs(BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size())));
  X509* leaf = certs ? PEM_read_bio_X509(certs.get(), nullptr, nullptr, nullptr) : nullptr;
  if (!leaf || SSL_CTX_use_certificate(ctx.get(), leaf) != 1) {
    ERR_clear_error();
    X509_free(leaf);
    *error = "no usable certificate";
    return nullptr;
  }
  X509_free(leaf);
  while (X509* ca = PEM_read_bio_X509(certs.get(), nullptr, nullptr, nullptr)) {
    if (SSL_CTX_add0_chain_cert(ctx.get(), ca) != 1) X509_free(ca);  // on success the context owns it
  }
  ERR_clear_error();
  std::unique_ptr<BIO, BioFree> keys(BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())));
  EVP_PKEY* key = keys ? PEM_read_bio_PrivateKey(keys.get(), nullptr, nullptr, nullptr) : nullptr;
  const bool ok = key && SSL_CTX_use_PrivateKey(ctx.get(), key) == 1 && SSL_CTX_check_private_key(ctx.get()) == 1;
  EVP_PKEY_free(key);
  if (!ok) {
    ERR_clear_error();
    *error = "the private key does not load or does not match the certificate";
    return nullptr;
  }
  return std::shared_ptr<TlsContext>(new TlsContext(ctx.release(), false));
}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

std::unique_ptr<Wire> make_tls_server(int fd, const TlsContext& context, std::string* error) {
  SSL* ssl = SSL_new(context.ctx_);
  std::unique_ptr<TlsWire> wire(ssl ? new TlsWire(ssl, fd) : nullptr);
  if (!wire || !wire->attach()) {
    *error = "cannot create a TLS connection";
    return nullptr;
  }
  SSL_set_accept_state(ssl);
  return wire;
}

std::unique_ptr<Wire> make_tls_client(int fd, const TlsContext& context, const std::string& servername,
                                      const std::string& verify_name, std::string* error) {
  SSL* ssl = SSL_new(context.ctx_);  // holds its own reference to the context
  if (!ssl) {
    *error = "cannot create a TLS connection";
    return nullptr;
  }
  std::unique_ptr<TlsWire> wire(new TlsWire(ssl, fd));
  if (!wire->attach()) {
    *error = "cannot create a TLS connection";
    return nullptr;
  }
  if (!servername.empty() && !is_ip(servername)) SSL_set_tlsext_host_name(ssl, servername.c_str());
  if (!context.insecure_) {
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    int ok = is_ip(verify_name) ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), verify_name.c_str())
                                : SSL_set1_host(ssl, verify_name.c_str());
    if (ok != 1) {
      ERR_clear_error();  // the JS thread's queue, which Node's crypto shares
      *error = "cannot verify against the name " + verify_name;
      return nullptr;
    }
  }
  SSL_set_connect_state(ssl);
  return wire;
}

}  // namespace tws

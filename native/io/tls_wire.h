// TLS for a Session's connection, done by the OpenSSL that Node itself
// links and exports (headers ship with Node): wss:// runs on the native
// engine instead of falling back to JavaScript. Built on the JS thread,
// then used only by the I/O thread.
#pragma once

#include <memory>
#include <string>

#include "wire.h"

struct ssl_ctx_st;  // OpenSSL's SSL_CTX, kept out of this header

namespace tws {

// A TLS context: for clients the trusted roots and protocol settings, for
// servers the certificate and key; shared by all connections made with it
// (parsing a system bundle takes tens of milliseconds, too long to
// repeat for every connection attempt). [built on the JS thread]
class TlsContext {
 public:
  // Client: ca_pem holds the trusted roots, PEM (a bundle may hold many),
  // unused when insecure. Null, with *error, when no usable certificate is in it.
  static std::shared_ptr<TlsContext> client(const std::string& ca_pem, bool insecure, std::string* error);
  // Server: a certificate chain and its private key, PEM. Null, with *error,
  // when they do not load or do not match.
  static std::shared_ptr<TlsContext> server(const std::string& cert_pem, const std::string& key_pem, std::string* error);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

 private:
  TlsContext(::ssl_ctx_st* ctx, bool insecure) : ctx_(ctx), insecure_(insecure) {}
  ::ssl_ctx_st* ctx_;
  bool insecure_;
  friend std::unique_ptr<Wire> make_tls_client(int, const TlsContext&, const std::string&, const std::string&, std::string*);
  friend std::unique_ptr<Wire> make_tls_server(int, const TlsContext&, std::string*);
};

// A TLS server connection over the accepted socket fd (stays the caller's). [JS thread]
std::unique_ptr<Wire> make_tls_server(int fd, const TlsContext& ctx, std::string* error);

// A TLS client over the connected socket fd (which stays the caller's to
// close): `servername` is sent as SNI (not for IP literals), and unless the
// context is insecure the certificate must be for `verify_name` (a host name
// or an IP address). The handshake runs on first use. [JS thread]
std::unique_ptr<Wire> make_tls_client(int fd, const TlsContext& ctx, const std::string& servername,
                                      const std::string& verify_name, std::string* error);

}  // namespace tws

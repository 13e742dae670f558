// TLS for a Session's connection, done by the OpenSSL that Node itself
// links and exports (headers ship with Node): wss:// runs on the native
// engine instead of falling back to JavaScript. Built on the JS thread,
// then used only by the I/O thread.
#pragma once

#include <memory>
#include <string>

#include "wire.h"

namespace tws {

struct TlsClientOptions {
  std::string ca_pem;       // trusted roots, PEM (a bundle may hold many); unused when insecure
  bool insecure = false;    // no certificate verification at all
  std::string servername;   // sent as SNI; empty for none (IP literals)
  std::string verify_name;  // host name or IP address the certificate must be for
};

// A TLS client over the connected socket fd (which stays the caller's to
// close). The handshake runs on first use. Null, with *error, when the
// options are unusable (no certificate in ca_pem, say). [JS thread]
std::unique_ptr<Wire> make_tls_client(int fd, const TlsClientOptions& o, std::string* error);

}  // namespace tws

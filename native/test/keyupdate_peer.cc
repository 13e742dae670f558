// A TLS 1.3 client that sends KeyUpdate(update_requested) records as fast as
// the server takes them and never reads what comes back, built against the
// system's OpenSSL by test/e2e/tls-keyupdate.test.ts. Usage: keyupdate_peer
// PORT SECONDS. Prints {"updates":N,"ended":"stalled"|"closed"|"time"}:
// stalled when the server stopped reading for 2 s, closed when it dropped us.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

int main(int argc, char** argv) {
  if (argc < 3) return 2;
  const int port = std::atoi(argv[1]);
  const int seconds = std::atoi(argv[2]);
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  const int small = 4096;  // read nothing, and hold little of what comes
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return 2;
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  SSL_set_tlsext_host_name(ssl, "localhost");
  if (SSL_connect(ssl) != 1) return 2;
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  long updates = 0;
  const char* ended = "time";
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < until && ended[0] == 't') {
    if (SSL_key_update(ssl, SSL_KEY_UPDATE_REQUESTED) != 1) {
      ended = "closed";
      break;
    }
    for (;;) {
      const int r = SSL_do_handshake(ssl);
      if (r == 1) {
        updates++;
        break;
      }
      if (SSL_get_error(ssl, r) != SSL_ERROR_WANT_WRITE) {
        ended = "closed";
        break;
      }
      pollfd p{fd, POLLOUT, 0};
      if (::poll(&p, 1, 2000) != 1) {
        ended = "stalled";
        break;
      }
      if (p.revents & (POLLERR | POLLHUP)) {
        ended = "closed";
        break;
      }
    }
  }
  std::printf("{\"updates\":%ld,\"ended\":\"%s\"}\n", updates, ended);
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  ::close(fd);
  return 0;
}

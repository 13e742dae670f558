/** What a server with --legacy says once at start (docs/legacy.md, docs/security.md). */

export const LEGACY_AUTH_WARNING = '--legacy: tws-rust 0.2 clients are accepted with their weaker authentication: '
  + 'an HMAC of the password over a timestamp and the target, without a nonce, so a captured handshake can be replayed within 5 s, '
  + 'and the messages after it (data, CONNECTION) are not signed at all; on a plain ws:// link anyone on the path can '
  + 'replay or inject, so serve it behind TLS (nginx with wss://, or --tls-cert) and move clients to tws as soon as you can';

export const LEGACY_NO_PASSWORD = '--legacy: this server has only --users and no shared password: tws-rust clients '
  + '(which send no user name) will be refused; give --passwd (or passwd_file) to serve them';

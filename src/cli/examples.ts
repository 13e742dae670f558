/** The examples `tws --help`, `tws server --help` and `tws client --help` end with. */

const SERVER = [
  '# plain ws:// (clients: -s ws://HOST:5202/)',
  'TWS_PASSWD=secret tws server -l 0.0.0.0:5202',
  '# behind nginx with TLS, as in example/nginx.conf (clients: -s wss://DOMAIN/some/path)',
  'tws server -l 127.0.0.1:5202 --passwd-file /etc/tws/passwd',
  '# wss:// served by tws itself, no nginx (clients: -s wss://DOMAIN:8443/)',
  'tws server -l 0.0.0.0:8443 --passwd-file /etc/tws/passwd --tls-cert fullchain.pem --tls-key privkey.pem',
  '# a password and allow list per user (--allow: for users without their own)',
  'tws server -l 127.0.0.1:5202 --users /etc/tws/users.yaml --allow 10.0.0.0/8:22 --allow db.internal:5432',
  '# let clients open reverse tunnels (-R) on loopback ports 8000-8999 of the server',
  'tws server -l 0.0.0.0:5202 --passwd-file /etc/tws/passwd --allow-reverse 127.0.0.1:8000-8999',
  '# also serve tws-rust 0.2 clients on the same port and path, while a fleet moves over (see "Moving from tws-rust" in the README)',
  'tws server -l 127.0.0.1:5202 --passwd-file /etc/tws/passwd --legacy',
  'tws server --config /etc/tws/server.yaml',
];

const CLIENT = [
  '# local port 2222 reaches 127.0.0.1:22 as the server sees it',
  'TWS_PASSWD=secret tws client -l 127.0.0.1:2222 -s ws://example.com:5202/ -r 127.0.0.1:22',
  '# over wss:// (nginx or --tls-cert), as one of the server\'s --users',
  'tws client -l 127.0.0.1:5432 -s wss://example.com/some/path -r db.internal:5432 --user alice --passwd-file ~/.tws-passwd',
  '# several tunnels over the same sessions (ssh -L syntax): ssh, postgres on [::1], DNS over UDP',
  'tws client -s wss://example.com/some/path --passwd-file ~/.tws-passwd -L 2222:127.0.0.1:22 -L [::1]:5432:db.internal:5432 -L 5353:10.0.0.53:53/udp',
  '# an HTTP CONNECT proxy on 127.0.0.1:8080 (then: curl --proxy http://127.0.0.1:8080 https://intranet.example/, or https_proxy=http://127.0.0.1:8080 git clone ...)',
  'tws client -s wss://example.com/some/path --passwd-file ~/.tws-passwd --http-connect 8080',
  '# a SOCKS5 listener on 127.0.0.1:1080 (then: curl --socks5-hostname 127.0.0.1:1080 http://intranet/)',
  'tws client -s wss://example.com/some/path --passwd-file ~/.tws-passwd -D 1080',
  '# a reverse tunnel (ssh -R syntax): port 8080 on the server reaches this machine\'s web server',
  'tws client -s wss://example.com/some/path --passwd-file ~/.tws-passwd -R 8080:127.0.0.1:80',
  '# as ssh\'s ProxyCommand: stdin/stdout carried to the host and port ssh asks for (%h:%p as the server sees them)',
  'ssh -o ProxyCommand=\'tws client --stdio %h:%p -s wss://example.com/some/path --passwd-file ~/.tws-passwd\' user@10.0.0.5',
  '# to a tws-rust 0.2 server that is not upgraded yet (its protocol; one -l/-r tunnel)',
  'tws client -l 127.0.0.1:2222 -s wss://example.com/some/path -r 127.0.0.1:22 --passwd-file ~/.tws-passwd --legacy',
  'tws client --config /etc/tws/client.yaml',
];

function block(title: string, lines: string[]): string {
  return `\n${title}:\n${lines.map((l) => `  ${l}`).join('\n')}\n`;
}

export const serverExamples = block('Examples', SERVER);
export const clientExamples = block('Examples', CLIENT);
export const topExamples = `${block('Server examples', SERVER)}${block('Client examples', CLIENT)}
Every flag: tws server --help, tws client --help (or tws help server).
`;

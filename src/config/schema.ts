/**
 * Every setting of `tws server` / `tws client`: its YAML key (tws-rust's
 * names where tws-rust had it), its flag, default and type. The CLI declares
 * its flags from this table and the loader validates against it, so the two
 * cannot drift apart.
 */
import { LOG_LEVELS } from '../util/log';

export type Mode = 'server' | 'client';

export type ValueKind =
  | { type: 'listen' }
  | { type: 'bindPort' }
  | { type: 'target' }
  | { type: 'url' }
  | { type: 'path' }
  | { type: 'int'; min: number; max: number; unit?: string }
  | { type: 'bool' }
  | { type: 'secret' }
  | { type: 'file' }
  | { type: 'name' }
  | { type: 'headers' }
  | { type: 'proxy' }
  | { type: 'allow' }
  | { type: 'user' }
  | { type: 'tunnels' }
  | { type: 'reverse' }
  | { type: 'enum'; values: readonly string[] };

export interface Setting {
  /** Property name in the resolved config. */
  name: string;
  /** YAML key. */
  key: string;
  /** Commander flag spelling, e.g. `-t, --timeout <ms>`; undefined = file only. */
  flag?: string;
  /** The flag may be given more than once (values collect into a list). */
  repeatable?: boolean;
  /** Environment variable read between the file and the flags. */
  env?: string;
  kind: ValueKind;
  modes: readonly Mode[];
  /** One value, or one per mode. */
  default?: string | number | boolean | Readonly<Record<Mode, number>>;
  required?: boolean;
  /** Help text; one per mode where the setting means something different to each (see helpFor). */
  help: string | Readonly<Record<Mode, string>>;
}

const both = ['server', 'client'] as const;

export const SETTINGS: readonly Setting[] = [
  { name: 'listen', key: 'listen', flag: '-l, --listen <addr>', kind: { type: 'listen' }, modes: both, required: true,
    help: {
      server: 'address to accept WebSocket connections on: host:port, [v6]:port or name:port',
      client: 'local address whose TCP connections (and UDP datagrams, unless --no-udp) are tunnelled: host:port, [v6]:port or name:port',
    } },
  { name: 'server', key: 'server', flag: '-s, --server <url>', kind: { type: 'url' }, modes: ['client'], required: true,
    help: 'URL of the tws server, e.g. ws://example.com:8080/ or ws://127.0.0.1:5202/some/path' },
  { name: 'remote', key: 'remote', flag: '-r, --remote <addr>', kind: { type: 'target' }, modes: ['client'], required: true,
    help: 'target the server connects each tunnelled connection to, as seen from the server (e.g. 127.0.0.1:22)' },
  { name: 'tunnels', key: 'tunnels', flag: '-L, --local <spec>', repeatable: true, kind: { type: 'tunnels' }, modes: ['client'],
    help: 'a tunnel, [BIND:]PORT:HOST:PORT[/udp] as in ssh -L: BIND:PORT (BIND default 127.0.0.1, [v6] in brackets) is carried to HOST:PORT as the server sees it; /udp for UDP; repeatable, all share the sessions, with or without -l/-r (e.g. -L 2222:db.internal:22 -L 5353:10.0.0.53:53/udp; YAML: a list of such strings, or maps with listen, remote, udp)' },
  { name: 'httpConnect', key: 'http_connect', flag: '--http-connect <addr>', kind: { type: 'bindPort' }, modes: ['client'],
    help: 'an HTTP CONNECT proxy on [BIND:]PORT (BIND default 127.0.0.1; loopback only, as the proxy reaches whatever the server reaches): each CONNECT host:port is carried to host:port as the server sees it and answered 200, or 403 (not allowed by the server), 502 (refused, unreachable, name not found), 504 (timed out); other methods get 405; shares the sessions with the tunnels (e.g. --http-connect 8080, then curl --proxy http://127.0.0.1:8080 https://intranet.example/ or https_proxy=http://127.0.0.1:8080 git clone https://git.internal/repo)' },
  { name: 'socks', key: 'socks', flag: '-D, --socks <[bind:]port>', kind: { type: 'bindPort' }, modes: ['client'],
    help: 'a SOCKS5 listener (as ssh -D; BIND default 127.0.0.1): CONNECT to IPv4, IPv6 or a name the server resolves (its --allow applies), and UDP ASSOCIATE, all over the sessions (e.g. -D 1080, then curl --socks5-hostname 127.0.0.1:1080 http://intranet/); on a non-loopback address it needs --socks-auth' },
  { name: 'socksAuth', key: 'socks_auth', flag: '--socks-auth <file>', kind: { type: 'file' }, modes: ['client'],
    help: 'the SOCKS listener asks for a user name and password (RFC 1929) found in this file: one user:password per line (# comments); e.g. curl --proxy socks5h://alice:secret@127.0.0.1:1080' },
  { name: 'reverse', key: 'reverse', flag: '-R, --reverse <spec>', repeatable: true, kind: { type: 'reverse' }, modes: ['client'],
    help: 'a reverse tunnel, [BIND:]PORT:HOST:PORT as in ssh -R: the server listens on BIND:PORT (BIND default 127.0.0.1 on the server; it must allow it with --allow-reverse) and each connection there reaches HOST:PORT as this client sees it; repeatable (e.g. -R 8080:127.0.0.1:80; YAML: a list of such strings)' },
  { name: 'stdio', key: 'stdio', flag: '--stdio <host:port>', kind: { type: 'target' }, modes: ['client'],
    help: 'no listener: carry stdin/stdout as one stream to HOST:PORT over one session and exit with it (0 on a clean end, else 1 with one line on stderr); logs stay on stderr, at warn unless --log-level says otherwise; -l/-r/-L and -c are not used (e.g. ssh -o ProxyCommand=\'tws client --stdio %h:%p -s wss://tws.example.com/ --passwd-file ~/.tws\' host)' },
  { name: 'passwd', key: 'passwd', flag: '-p, --passwd <secret>', env: 'TWS_PASSWD', kind: { type: 'secret' }, modes: both,
    help: 'shared password (visible in ps: prefer --passwd-file or TWS_PASSWD)' },
  { name: 'passwdFile', key: 'passwd_file', flag: '--passwd-file <file>', kind: { type: 'file' }, modes: both,
    help: 'read the password from this file (first line)' },
  { name: 'users', key: 'users', flag: '--users <file>', kind: { type: 'file' }, modes: ['server'],
    help: 'YAML file of users, each with passwd or passwd_file and its own allow list; clients pick one with --user; SIGHUP reloads it' },
  { name: 'user', key: 'user', flag: '--user <name>', kind: { type: 'user' }, modes: ['client'],
    help: 'user name to authenticate as (the server has a --users file)' },
  { name: 'path', key: 'path', flag: '--path <path>', kind: { type: 'path' }, modes: ['server'], default: '/',
    help: 'URL path the server accepts upgrades on; anything else gets 404' },
  { name: 'connections', key: 'connections', flag: '-c, --connections <n>', kind: { type: 'int', min: 1, max: 64 },
    modes: ['client'], default: 2, help: 'WebSocket connections to keep open; streams are spread over them' },
  { name: 'timeout', key: 'timeout', flag: '-t, --timeout <ms>', kind: { type: 'int', min: 100, max: 3_600_000, unit: 'ms' },
    modes: both, default: 5000,
    help: {
      server: 'a session is declared dead after this long without traffic from its peer (pinged after half)',
      client: 'a session is declared dead after this long without traffic from the server (pinged after half); also how long a new local connection waits for a session',
    } },
  { name: 'retryTimeout', key: 'retry_timeout', flag: '-e, --retry-timeout <ms>', kind: { type: 'int', min: 10, max: 600_000, unit: 'ms' },
    modes: ['client'], default: 1000, help: 'base reconnect delay; doubles per failure (full jitter), capped at 30 s' },
  { name: 'connectTimeout', key: 'connect_timeout', flag: '--connect-timeout <ms>', kind: { type: 'int', min: 100, max: 600_000, unit: 'ms' },
    modes: ['server'], default: 10000, help: 'how long the server tries to connect a target before RESET (timeout)' },
  { name: 'drainTimeout', key: 'drain_timeout', flag: '--drain-timeout <ms>', kind: { type: 'int', min: 0, max: 3_600_000, unit: 'ms' },
    modes: both, default: 10000, help: 'on SIGTERM/SIGINT, how long open streams may finish before sessions close' },
  { name: 'udpTimeout', key: 'udp_timeout', flag: '--udp-timeout <ms>', kind: { type: 'int', min: 100, max: 3_600_000, unit: 'ms' },
    modes: both, default: 60000, help: 'a UDP association (one local peer) with no datagram either way for this long is closed' },
  { name: 'idleTimeout', key: 'idle_timeout', flag: '--idle-timeout <ms>', kind: { type: 'int', min: 0, max: 86_400_000, unit: 'ms' },
    modes: both, default: 0, help: 'a TCP stream with no data either way for this long is reset (RESET 7, idle); 0 = never' },
  { name: 'noUdp', key: 'no_udp', flag: '--no-udp', kind: { type: 'bool' }, modes: both, default: false,
    help: { server: 'refuse UDP streams', client: 'do not listen for UDP on the listen address (TCP only)' } },
  { name: 'legacy', key: 'legacy', flag: '--legacy', kind: { type: 'bool' }, modes: both, default: false,
    help: {
      server: 'also serve tws-rust 0.2 clients on the same address and path (an upgrade without the tws2 subprotocol and Tws-Auth); they sign with the shared password (never a --users entry) and get every policy of the server; their authentication is weaker (replayable for 5 s): serve them behind TLS (see "Moving from tws-rust" in the README)',
      client: 'speak tws-rust 0.2\'s protocol to a tws-rust server: one tunnel, -l with -r (a name in -r is resolved here, as tws-rust takes only an IP); no -L, -R, -D, --http-connect, --stdio or --user',
    } },
  { name: 'maxSessions', key: 'max_sessions', flag: '--max-sessions <n>', kind: { type: 'int', min: 1, max: 1_000_000 }, modes: ['server'],
    default: 1024, help: 'sessions (WebSocket connections) at once; an authenticated upgrade beyond it gets HTTP 503' },
  { name: 'maxStreams', key: 'max_streams', flag: '--max-streams <n>', kind: { type: 'int', min: 1, max: 1_000_000 }, modes: both,
    default: { server: 16384, client: 1024 },
    help: {
      server: 'open streams per session; one more is refused with RESET 5 (too many streams)',
      client: 'open streams per session, and streams the server opened on all sessions together, beyond which a stream the server opens (a reverse tunnel, -R) is refused with RESET 5; each one costs this client a connection (a file descriptor)',
    } },
  { name: 'bufferBudget', key: 'buffer_budget', flag: '--buffer-budget <mib>', kind: { type: 'int', min: 0, max: 1_048_576, unit: 'MiB' },
    modes: both, default: 0,
    help: 'MiB of stream data all peers together may make this process buffer (flow-control credit granted, not yet delivered); past 3/4 windows stop growing, at the limit new streams are refused (RESET 5). 0 = a quarter of RAM, 256-2048' },
  { name: 'allow', key: 'allow', flag: '--allow <rule>', repeatable: true, kind: { type: 'allow' }, modes: ['server'],
    help: 'let streams reach only targets a rule matches: HOST:PORTS, HOST = IP, CIDR, [v6], name or *, PORTS = N, N-M or *; repeatable (YAML: a list). Without any rule every target is allowed' },
  { name: 'allowReverse', key: 'allow_reverse', flag: '--allow-reverse <rule>', repeatable: true, kind: { type: 'allow' }, modes: ['server'],
    help: 'let clients open reverse tunnels (-R) on bind addresses and ports a rule matches, same syntax as --allow (e.g. 127.0.0.1:8000-8999); repeatable (YAML: a list; per user: allow_reverse in the users file). Without any rule no reverse tunnel is allowed' },
  { name: 'tlsCert', key: 'tls_cert', flag: '--tls-cert <file>', kind: { type: 'file' }, modes: ['server'],
    help: 'serve wss:// directly with this PEM certificate chain (with --tls-key); SIGHUP reloads both' },
  { name: 'tlsKey', key: 'tls_key', flag: '--tls-key <file>', kind: { type: 'file' }, modes: ['server'],
    help: 'PEM private key for --tls-cert' },
  { name: 'ca', key: 'ca', flag: '--ca <file>', kind: { type: 'file' }, modes: ['client'],
    help: 'wss://: also trust the CA certificate(s) in this PEM file (system roots, or SSL_CERT_FILE/SSL_CERT_DIR, stay trusted)' },
  { name: 'insecure', key: 'insecure', flag: '--insecure', kind: { type: 'bool' }, modes: ['client'], default: false,
    help: 'wss://: do not verify the server certificate (anyone on the path can then read and change the tunnel)' },
  { name: 'sni', key: 'sni', flag: '--sni <name>', kind: { type: 'name' }, modes: ['client'],
    help: 'wss://: TLS server name to send and verify instead of the URL host' },
  { name: 'hostHeader', key: 'host_header', flag: '--host-header <name>', kind: { type: 'name' }, modes: ['client'],
    help: 'Host header of the upgrade request instead of the URL host (e.g. for a proxy that routes by it)' },
  { name: 'headers', key: 'headers', flag: '-H, --header <header>', repeatable: true, kind: { type: 'headers' }, modes: ['client'],
    help: 'extra header of the upgrade request, "Name: value"; repeatable (YAML: a list of such strings, or a mapping)' },
  { name: 'proxy', key: 'proxy', flag: '--proxy <url>', kind: { type: 'proxy' }, modes: ['client'],
    help: 'reach the server through this HTTP CONNECT proxy, http://[user:pass@]host:port (default: HTTPS_PROXY for wss://, HTTP_PROXY for ws://, except hosts in NO_PROXY)' },
  { name: 'metrics', key: 'metrics', flag: '--metrics <addr>', kind: { type: 'listen' }, modes: both,
    help: 'serve Prometheus metrics at http://ADDR/metrics (keep it on loopback or a private network)' },
  { name: 'engine', key: 'engine', flag: '--engine <name>', env: 'TWS_ENGINE', kind: { type: 'enum', values: ['auto', 'js', 'native'] },
    modes: both, default: 'auto', help: 'data plane: auto (native when it loads, else js), js or native' },
  { name: 'threads', key: 'threads', flag: '--threads <n>', kind: { type: 'int', min: 1, max: 64 }, modes: both, default: 1,
    help: {
      server: 'native engine: I/O threads; sessions are spread over them (use more for many clients)',
      client: 'native engine: I/O threads; sessions are spread over them (use more with -c above 1)',
    } },
  { name: 'busyPoll', key: 'busy_poll', flag: '--busy-poll <us>', kind: { type: 'int', min: 0, max: 100_000, unit: 'us' }, modes: both, default: 0,
    help: 'native engine: keep polling this long after traffic before sleeping; lower latency for CPU (0 = off)' },
  { name: 'logLevel', key: 'log_level', flag: '--log-level <level>', kind: { type: 'enum', values: LOG_LEVELS },
    modes: both, default: 'info', help: 'error, warn, info or debug (-v = debug)' },
];

/** The settings a mode accepts. */
export function settingsFor(mode: Mode): Setting[] {
  return SETTINGS.filter((s) => s.modes.includes(mode));
}

/** The help text of a setting for one mode. */
export function helpFor(s: Setting, mode: Mode): string {
  return typeof s.help === 'string' ? s.help : s.help[mode];
}

/** The long flag of a setting, e.g. `--timeout`, for messages. */
export function flagName(s: Setting): string {
  const m = /(?:^|\s)(-[A-Za-z])?,?\s*(--[a-z-]+)/.exec(s.flag ?? '');
  if (!m) return '';
  return m[1] ? `${m[1]}/${m[2]}` : m[2]!;
}

/** The default of `s` in `mode`, if it has one. */
export function defaultFor(s: Setting, mode: Mode): string | number | boolean | undefined {
  return typeof s.default === 'object' ? s.default[mode] : s.default;
}

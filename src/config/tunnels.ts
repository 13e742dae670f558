/**
 * Local tunnels of `tws client`: `-L [BIND:]PORT:HOST:PORT[/udp]` (ssh's
 * syntax) and YAML `tunnels:` entries (the same strings, or maps with
 * listen/remote/udp). Every error is one TWS_ERR_CONFIG line naming the value.
 */
import { isIP } from 'node:net';
import { fail } from '../util/errors';
import { formatHostPort, HostPort, parseHostPort } from '../util/address';
import { isLoopbackAddress } from '../util/ip';

/** One local listener and the target each of its connections (or UDP peers) is carried to. */
export interface TunnelSpec {
  listen: HostPort;
  /** `host:port` / `[v6]:port`, as the server reaches it. */
  remote: string;
  /** A UDP tunnel (datagrams) instead of TCP. */
  udp: boolean;
  /** How logs name it, e.g. `-L 2222:db:22`. */
  name: string;
}

const DEFAULT_BIND = '127.0.0.1';

/** Splits at colons outside brackets: `[::1]:80:h:1` → `[::1]`, `80`, `h`, `1`. */
function fields(text: string): string[] {
  const out: string[] = [];
  let cur = '';
  let depth = 0;
  for (const ch of text) {
    if (ch === '[') depth++;
    if (ch === ']') depth--;
    if (ch === ':' && depth === 0) {
      out.push(cur);
      cur = '';
    } else {
      cur += ch;
    }
  }
  out.push(cur);
  return out;
}

/** The name logs use for a tunnel: the -L spelling, bind left out when it is the default. */
export function tunnelName(listen: HostPort, remote: string, udp: boolean): string {
  const local = listen.host === DEFAULT_BIND ? String(listen.port) : formatHostPort(listen.host, listen.port);
  return `-L ${local}:${remote}${udp ? '/udp' : ''}`;
}

function build(listenText: string, remoteText: string, udp: boolean, shown: string, where: string): TunnelSpec {
  const listen = parseHostPort(listenText, true);
  if (typeof listen === 'string') fail('TWS_ERR_CONFIG', `${where}: ${listen} in listen address of ${shown}`);
  const remote = parseHostPort(remoteText);
  if (typeof remote === 'string') fail('TWS_ERR_CONFIG', `${where}: ${remote} in target of ${shown}`);
  const target = formatHostPort(remote.host, remote.port);
  return { listen, remote: target, udp, name: tunnelName(listen, target, udp) };
}

/** Parses one `[BIND:]PORT:HOST:PORT[/udp]`; throws TWS_ERR_CONFIG naming `where` and the value. */
export function parseTunnelSpec(text: string, where: string): TunnelSpec {
  const shown = JSON.stringify(text);
  let spec = text.trim();
  let udp = false;
  const proto = /\/(udp|tcp)$/i.exec(spec);
  if (proto) {
    udp = proto[1]!.toLowerCase() === 'udp';
    spec = spec.slice(0, -proto[0].length);
  }
  const f = fields(spec);
  if (f.length > 4 && !spec.includes('[')) fail('TWS_ERR_CONFIG', `${where}: IPv6 addresses need brackets ([::1]:PORT:[::1]:PORT) in ${shown}`);
  if (f.length !== 3 && f.length !== 4) {
    fail('TWS_ERR_CONFIG', `${where}: expected [BIND:]PORT:HOST:PORT[/udp], got ${shown}`);
  }
  const [bind, port, host, hostPort] = f.length === 4 ? f : [DEFAULT_BIND, ...f];
  if (!bind) fail('TWS_ERR_CONFIG', `${where}: empty bind address in ${shown}`);
  const bindText = bind!.startsWith('[') || !bind!.includes(':') ? bind! : `[${bind}]`;
  return build(`${bindText}:${port}`, `${host}:${hostPort}`, udp, shown, where);
}

const MAP_KEYS = new Set(['listen', 'remote', 'udp']);

/** One YAML `tunnels:` entry: a spec string or `{ listen: "[BIND:]PORT", remote: HOST:PORT, udp?: bool }`. */
function parseEntry(entry: unknown, where: string): TunnelSpec {
  if (typeof entry === 'string') return parseTunnelSpec(entry, where);
  if (!entry || typeof entry !== 'object' || Array.isArray(entry)) {
    fail('TWS_ERR_CONFIG', `${where}: expected "[BIND:]PORT:HOST:PORT[/udp]" or a map with listen, remote, udp; got ${JSON.stringify(entry)}`);
  }
  const m = entry as Record<string, unknown>;
  const extra = Object.keys(m).find((k) => !MAP_KEYS.has(k));
  if (extra !== undefined) fail('TWS_ERR_CONFIG', `${where}: unknown key ${JSON.stringify(extra)} (known: listen, remote, udp)`);
  const shown = JSON.stringify(entry);
  const listen = typeof m.listen === 'number' ? String(m.listen) : m.listen;
  if (typeof listen !== 'string' || typeof m.remote !== 'string') {
    fail('TWS_ERR_CONFIG', `${where}: needs listen ("[BIND:]PORT") and remote ("HOST:PORT"), got ${shown}`);
  }
  if (m.udp !== undefined && typeof m.udp !== 'boolean') fail('TWS_ERR_CONFIG', `${where}: udp must be true or false, got ${shown}`);
  const l = listen.trim();
  const listenText = /^\d+$/.test(l) ? `${DEFAULT_BIND}:${l}` : l;
  return build(listenText, m.remote.trim(), m.udp === true, shown, where);
}

/** Parses `-L` values (a list of strings) or YAML `tunnels:` (a list, or one entry). */
export function parseTunnels(value: unknown, where: string): TunnelSpec[] {
  const list: unknown[] = Array.isArray(value) ? value : [value];
  return list.map((e) => parseEntry(e, where));
}

/**
 * Refuses two tunnels on the same local address and protocol (port 0 = any
 * free port never clashes).
 */
export function checkDistinct(tunnels: readonly TunnelSpec[]): void {
  const seen = new Map<string, string>();
  for (const t of tunnels) {
    if (t.listen.port === 0) continue;
    const key = `${t.udp ? 'udp' : 'tcp'} ${formatHostPort(t.listen.host, t.listen.port)}`;
    const other = seen.get(key);
    if (other !== undefined) fail('TWS_ERR_CONFIG', `tunnels ${other} and ${t.name} both listen on ${key}`);
    seen.set(key, t.name);
  }
}

/**
 * A proxy listener's address (-D/--socks, --http-connect), `[BIND:]PORT` (`8080`, `127.0.0.1:8080`,
 * `[::1]:8080`; BIND default 127.0.0.1); throws TWS_ERR_CONFIG naming `where`.
 */
export function parseBindPort(text: string, where: string): HostPort {
  const spec = text.trim();
  const withBind = /^\d+$/.test(spec) ? `${DEFAULT_BIND}:${spec}` : spec;
  const hp = parseHostPort(withBind, true);
  if (typeof hp === 'string') fail('TWS_ERR_CONFIG', `${where}: ${hp} in ${JSON.stringify(text)} (expected [BIND:]PORT)`);
  return hp;
}

/**
 * A bind address only this machine can reach: 127.0.0.0/8, ::1 (in any
 * spelling), localhost. Proxy listeners elsewhere are open relays.
 */
export function isLoopbackBind(host: string): boolean {
  return host.toLowerCase() === 'localhost' || isLoopbackAddress(host);
}

/** A reverse tunnel (-R): the server listens on `bind`, the client connects each stream to `remote`. */
export interface ReverseSpec {
  /** `host:port` / `[v6]:port` the server listens on (an IP literal; 127.0.0.1 by default), as LISTEN carries it. */
  bind: string;
  /** `host:port` as the client reaches it. */
  remote: string;
  /** How logs name it: `reverse 8080`, or `reverse 0.0.0.0:8080` off the default bind. */
  name: string;
}

/** Parses one `-R [BIND:]PORT:HOST:PORT`; throws TWS_ERR_CONFIG naming `where` and the value. */
export function parseReverseSpec(text: string, where: string): ReverseSpec {
  const shown = JSON.stringify(text);
  if (/\/udp$/i.test(text.trim())) fail('TWS_ERR_CONFIG', `${where}: reverse tunnels carry TCP only, got ${shown}`);
  const t = parseTunnelSpec(text, where);
  if (!isIP(t.listen.host)) fail('TWS_ERR_CONFIG', `${where}: the server binds an IP address (e.g. 0.0.0.0:8080:HOST:PORT), got ${shown}`);
  if (t.listen.port === 0) fail('TWS_ERR_CONFIG', `${where}: a reverse tunnel needs a port on the server (1-65535), got ${shown}`);
  const bind = formatHostPort(t.listen.host, t.listen.port);
  const name = `reverse ${t.listen.host === DEFAULT_BIND ? String(t.listen.port) : bind}`;
  return { bind, remote: t.remote, name };
}

/** Parses `-R` values or YAML `reverse:` (a list of strings, or one); two on the same server address are an error. */
export function parseReverse(value: unknown, where: string): ReverseSpec[] {
  const list: unknown[] = Array.isArray(value) ? value : [value];
  const specs = list.map((e) => {
    if (typeof e !== 'string') fail('TWS_ERR_CONFIG', `${where}: expected "[BIND:]PORT:HOST:PORT", got ${JSON.stringify(e)}`);
    return parseReverseSpec(e, where);
  });
  const seen = new Set<string>();
  for (const r of specs) {
    if (seen.has(r.bind)) fail('TWS_ERR_CONFIG', `${where}: two reverse tunnels listen on ${r.bind}`);
    seen.add(r.bind);
  }
  return specs;
}

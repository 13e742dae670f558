/**
 * Resolves a config from defaults < YAML file < environment < flags and
 * validates it. Every error is one line naming where the bad value came from
 * (`config key "timeout"`, `flag -t/--timeout`).
 */
import { readFileSync } from 'node:fs';
import * as yaml from 'js-yaml';
import { fail } from '../util/errors';
import { formatHostPort, HostPort, parseHostPort } from '../util/address';
import { readPasswordFile } from '../util/password-file';
import type { LogLevel } from '../util/log';
import { parseProxyUrl } from '../util/proxy-url';
import { AllowRule, parseAllowRules } from '../policy/allow-list';
import { defaultFor, flagName, Mode, Setting, settingsFor, ValueKind } from './schema';
import { checkDistinct, parseBindPort, parseReverse, parseTunnels, ReverseSpec, TunnelSpec } from './tunnels';

export interface CommonConfig {
  listen: HostPort;
  /** Absent only on a server with a users file. */
  passwd?: string;
  timeout: number;
  drainTimeout: number;
  udpTimeout: number;
  idleTimeout: number;
  noUdp: boolean;
  engine: 'auto' | 'js' | 'native';
  threads: number;
  busyPoll: number;
  /** MiB; 0 = automatic. */
  bufferBudget: number;
  /** Server: streams per session. Client: streams per session beyond which the server may open none. */
  maxStreams: number;
  logLevel: LogLevel;
  metrics?: HostPort;
  /** Server: also serve tws-rust clients. Client: speak tws-rust's protocol. */
  legacy: boolean;
}

export interface ServerConfig extends CommonConfig {
  path: string;
  connectTimeout: number;
  maxSessions: number;
  users?: string;
  allow?: AllowRule[];
  /** Where clients may open reverse tunnels; absent = nowhere. */
  allowReverse?: AllowRule[];
  tlsCert?: string;
  tlsKey?: string;
}

export interface ClientConfig extends Omit<CommonConfig, 'listen'> {
  passwd: string;
  server: URL;
  /** The tws-rust tunnel (-l/-r): absent when only -L tunnels are given. */
  listen?: HostPort;
  remote?: string;
  /** -L / YAML tunnels (may be empty). */
  tunnels: TunnelSpec[];
  /** --http-connect: an HTTP CONNECT proxy listener. */
  httpConnect?: HostPort;
  /** -D / YAML socks: the SOCKS5 listener. */
  socks?: HostPort;
  /** --socks-auth / YAML socks_auth: the file of its logins. */
  socksAuth?: string;
  /** -R / YAML reverse (may be empty). */
  reverse: ReverseSpec[];
  connections: number;
  retryTimeout: number;
  ca?: string;
  insecure: boolean;
  sni?: string;
  hostHeader?: string;
  headers?: Record<string, string>;
  proxy?: URL;
  user?: string;
  /** --stdio HOST:PORT: one stream between stdin/stdout and the target, no listener. */
  stdio?: string;
}

// Headers the handshake itself sets: a user value would break or forge it.
const RESERVED_HEADERS = new Set(['host', 'connection', 'upgrade', 'tws-auth', 'content-length', 'transfer-encoding']);
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** Validates extra upgrade headers given as "Name: value" strings or a mapping. */
function parseHeaders(value: unknown, where: string): Record<string, string> {
  const pairs: [string, string][] = [];
  const list = Array.isArray(value) ? value : typeof value === 'string' ? [value] : undefined;
  if (list) {
    for (const item of list) {
      const m = typeof item === 'string' ? /^([^:]+):(.*)$/.exec(item) : null;
      if (!m) fail('TWS_ERR_CONFIG', `${where}: expected "Name: value", got ${JSON.stringify(item)}`);
      pairs.push([m[1]!.trim(), m[2]!.trim()]);
    }
  } else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      if (typeof v !== 'string' && typeof v !== 'number') fail('TWS_ERR_CONFIG', `${where}: header ${JSON.stringify(k)} needs a string value`);
      pairs.push([k.trim(), String(v).trim()]);
    }
  } else {
    fail('TWS_ERR_CONFIG', `${where}: expected a list of "Name: value" strings or a mapping`);
  }
  const out: Record<string, string> = {};
  for (const [name, v] of pairs) {
    if (!TOKEN.test(name)) fail('TWS_ERR_CONFIG', `${where}: ${JSON.stringify(name)} is not a valid header name`);
    const lower = name.toLowerCase();
    if (RESERVED_HEADERS.has(lower) || lower.startsWith('sec-websocket-')) {
      fail('TWS_ERR_CONFIG', `${where}: the handshake sets ${name} itself${lower === 'host' ? ' (use --host-header)' : ''}`);
    }
    if (/[\r\n\0]/.test(v)) fail('TWS_ERR_CONFIG', `${where}: the value of ${name} contains a line break`);
    out[name] = v;
  }
  return out;
}

/** Raw values from one layer, keyed by setting name; strings from flags/env, any type from YAML. */
export type Layer = Record<string, unknown>;

interface Sourced {
  value: unknown;
  where: string;
}


/** Reads and parses a YAML config file into a layer, rejecting unknown keys. */
export function readConfigFile(file: string, mode: Mode): Layer {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    fail('TWS_ERR_CONFIG', `cannot read config file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = yaml.load(text, { filename: file });
  } catch (err) {
    fail('TWS_ERR_CONFIG', `config file ${file} is not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  if (doc === undefined || doc === null) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) fail('TWS_ERR_CONFIG', `config file ${file}: expected a mapping of keys to values`);
  const byKey = new Map(settingsFor(mode).map((s) => [s.key, s]));
  const layer: Layer = {};
  for (const [key, value] of Object.entries(doc as Record<string, unknown>)) {
    const setting = byKey.get(key);
    if (!setting) {
      const known = [...byKey.keys()].join(', ');
      fail('TWS_ERR_CONFIG', `config file ${file}: unknown key "${key}" for tws ${mode} (known: ${known})`);
    }
    layer[setting.name] = value;
  }
  return layer;
}

function validate(s: Setting, kind: ValueKind, src: Sourced): unknown {
  const { value, where } = src;
  const bad = (expected: string): never => {
    const shown = s.kind.type === 'secret' ? '' : `, got ${JSON.stringify(value)}`;
    return fail('TWS_ERR_CONFIG', `${where}: expected ${expected}${shown}`);
  };
  switch (kind.type) {
    case 'int': {
      const n = typeof value === 'number' ? value : typeof value === 'string' && /^\d+$/.test(value.trim()) ? Number(value) : NaN;
      if (!Number.isInteger(n) || n < kind.min || n > kind.max) {
        bad(`a whole number from ${kind.min} to ${kind.max}${kind.unit ? ` (${kind.unit})` : ''}`);
      }
      return n;
    }
    case 'bool':
      if (typeof value === 'boolean') return value;
      if (value === 'true' || value === 'false') return value === 'true';
      return bad('true or false');
    case 'enum':
      if (typeof value === 'string' && kind.values.includes(value)) return value;
      return bad(`one of ${kind.values.join(', ')}`);
    case 'listen':
    case 'target': {
      if (typeof value !== 'string') return bad('host:port');
      const hp = parseHostPort(value.trim(), kind.type === 'listen');
      if (typeof hp === 'string') fail('TWS_ERR_CONFIG', `${where}: ${hp} in ${JSON.stringify(value)}`);
      return kind.type === 'listen' ? hp : value.trim();
    }
    case 'url': {
      if (typeof value !== 'string') return bad('a ws:// or wss:// URL');
      let url: URL;
      try {
        url = new URL(value.trim());
      } catch {
        // A URL that is right but for its port: name the port.
        const port = /^wss?:\/\/(?:\[[^\]]*\]|[^/?#:@]*):(\d+)(?:[/?#]|$)/i.exec(value.trim())?.[1];
        if (port !== undefined && Number(port) > 65535) fail('TWS_ERR_CONFIG', `${where}: port ${port} is out of range (1-65535) in ${JSON.stringify(value)}`);
        return bad('a ws:// or wss:// URL');
      }
      if (url.protocol !== 'ws:' && url.protocol !== 'wss:') bad('a ws:// or wss:// URL');
      if (url.username || url.password) fail('TWS_ERR_CONFIG', `${where}: put the password in passwd, not in the URL`);
      return url;
    }
    case 'path':
      if (typeof value !== 'string' || !value.startsWith('/') || /[\s?#]/.test(value)) bad('a URL path starting with /');
      return value;
    case 'name': {
      const text = typeof value === 'string' ? value.trim() : '';
      if (!/^[A-Za-z0-9_.:[\]-]{1,255}$/.test(text)) bad('a host name');
      return text;
    }
    case 'headers':
      return parseHeaders(value, where);
    case 'user':
      if (typeof value !== 'string' || !/^[^\s\x00-\x1f\x7f]{1,128}$/.test(value)) bad('a user name (1-128 characters, no spaces)');
      return value;
    case 'allow':
      return parseAllowRules(value, where);
    case 'tunnels':
      return parseTunnels(value, where);
    case 'bindPort':
      if (typeof value !== 'string' && typeof value !== 'number') return bad('[BIND:]PORT');
      return parseBindPort(String(value), where);
    case 'reverse':
      return parseReverse(value, where);
    case 'proxy':
      // Never echo the value: it may hold the proxy password.
      if (typeof value !== 'string') fail('TWS_ERR_CONFIG', `${where}: expected http://[user:pass@]host:port`);
      return parseProxyUrl(value.trim(), where);
    case 'secret':
    case 'file':
      if (typeof value !== 'string' && typeof value !== 'number') return bad('a string');
      if (String(value).length === 0) fail('TWS_ERR_CONFIG', `${where}: must not be empty`);
      return String(value);
  }
}

/**
 * A client needs -l with -r (tws-rust's one tunnel), -L tunnels, a proxy
 * listener (--http-connect), or several; no two of them may listen on the
 * same address and protocol.
 */
function checkClientTunnels(out: Record<string, unknown>, missing: { name: string; text: string }[]): void {
  const tunnels = (out.tunnels ?? []) as TunnelSpec[];
  out.tunnels = tunnels;
  const reverse = (out.reverse ?? []) as ReverseSpec[];
  out.reverse = reverse;
  const listen = out.listen as HostPort | undefined;
  const remote = out.remote as string | undefined;
  const proxy = out.httpConnect as HostPort | undefined;
  const socks = out.socks as HostPort | undefined;
  const gone = (name: string): number => missing.findIndex((m) => m.name === name);
  if (out.stdio !== undefined && out.legacy === true) fail('TWS_ERR_CONFIG', 'legacy (--legacy) carries one tunnel, -l with -r, as tws-rust does; drop --stdio');
  if (out.stdio !== undefined) {
    // One stream over stdin/stdout: no listener is opened, so none is needed (those of a shared config file are left unused).
    for (const name of ['listen', 'remote']) if (gone(name) >= 0) missing.splice(gone(name), 1);
    return;
  }
  if (tunnels.length === 0 && reverse.length === 0 && !proxy && !socks && gone('listen') >= 0 && gone('remote') >= 0) {
    missing.splice(gone('remote'), 1);
    missing[gone('listen')]!.text = '-l/--listen with -r/--remote, -L/--local, -R/--reverse, -D/--socks, --http-connect or --stdio (config keys "listen" and "remote", "tunnels", "reverse", "socks", "http_connect" or "stdio")';
  }
  if (tunnels.length > 0 || reverse.length > 0 || proxy || socks) {
    if ((listen === undefined) !== (remote === undefined)) {
      fail('TWS_ERR_CONFIG', `give ${listen ? '-r/--remote (config key "remote")' : '-l/--listen (config key "listen")'} too: -l and -r make one tunnel together`);
    }
    for (let i = missing.length - 1; i >= 0; i--) {
      if (missing[i]!.name === 'listen' || missing[i]!.name === 'remote') missing.splice(i, 1);
    }
  }
  if (out.legacy === true) {
    const extra = [tunnels.length > 0 && '-L/--local', reverse.length > 0 && '-R/--reverse', socks && '-D/--socks', proxy && '--http-connect',
      out.stdio !== undefined && '--stdio', out.user !== undefined && '--user'].filter(Boolean);
    if (extra.length > 0) {
      fail('TWS_ERR_CONFIG', `legacy (--legacy) carries one tunnel, -l with -r, as tws-rust does; drop ${extra.join(', ')}`);
    }
  }
  const all = [...tunnels];
  if (listen && remote) {
    const name = `-l ${formatHostPort(listen.host, listen.port)} -r ${remote}`;
    all.unshift({ listen, remote, udp: false, name });
    if (!out.noUdp) all.unshift({ listen, remote, udp: true, name });
  }
  if (proxy) all.push({ listen: proxy, remote: '*', udp: false, name: '--http-connect' });
  if (socks) all.push({ listen: socks, remote: 'SOCKS5', udp: false, name: 'socks' });
  if (out.socksAuth !== undefined && !socks) fail('TWS_ERR_CONFIG', 'socks_auth (--socks-auth) is for the SOCKS listener: give -D/--socks (config key "socks") too');
  checkDistinct(all);
}

/**
 * Merges the layers and validates every value. `flags` holds only flags the
 * user actually gave, so a flag overrides the file and a default never does.
 */
export function resolveConfig(mode: 'server', layers: { file?: Layer; fileName?: string; env: NodeJS.ProcessEnv; flags: Layer }): ServerConfig;
export function resolveConfig(mode: 'client', layers: { file?: Layer; fileName?: string; env: NodeJS.ProcessEnv; flags: Layer }): ClientConfig;
export function resolveConfig(
  mode: Mode,
  layers: { file?: Layer; fileName?: string; env: NodeJS.ProcessEnv; flags: Layer },
): ServerConfig | ClientConfig {
  const out: Record<string, unknown> = {};
  const missing: { name: string; text: string }[] = [];
  let defaultLogLevel = false;
  for (const s of settingsFor(mode)) {
    let src: Sourced | undefined;
    const def = defaultFor(s, mode);
    if (def !== undefined) src = { value: def, where: `default of ${s.key}` };
    if (layers.file && layers.file[s.name] !== undefined) {
      src = { value: layers.file[s.name], where: `config key "${s.key}"${layers.fileName ? ` in ${layers.fileName}` : ''}` };
    }
    if (s.env && layers.env[s.env] !== undefined && layers.env[s.env] !== '') {
      src = { value: layers.env[s.env], where: `environment variable ${s.env}` };
    }
    if (layers.flags[s.name] !== undefined) src = { value: layers.flags[s.name], where: `flag ${flagName(s)}` };
    if (!src) {
      if (s.required) missing.push({ name: s.name, text: `${flagName(s)} (config key "${s.key}")` });
      continue;
    }
    out[s.name] = validate(s, s.kind, src);
    if (s.name === 'logLevel' && src.where.startsWith('default')) defaultLogLevel = true;
  }
  // --stdio runs under ssh and the like: quiet unless asked (stdout is payload only either way; logs go to stderr).
  if (mode === 'client' && out.stdio !== undefined && defaultLogLevel) out.logLevel = 'warn';
  if (out.passwdFile !== undefined) {
    const fromFile = readPasswordFile(out.passwdFile as string);
    // Two sources for the secret are more likely a mistake than a wish; refuse rather than guess.
    if (out.passwd !== undefined) fail('TWS_ERR_CONFIG', 'give either passwd (-p/--passwd, TWS_PASSWD) or passwd_file (--passwd-file), not both');
    out.passwd = fromFile;
  }
  // A server with a users file may go without a shared password (then every client names a user).
  if (out.passwd === undefined && !(mode === 'server' && out.users !== undefined)) {
    missing.push({ name: 'passwd', text: `-p/--passwd, --passwd-file or TWS_PASSWD (config key "passwd")${mode === 'server' ? ', or --users' : ''}` });
  }
  if (mode === 'client') checkClientTunnels(out, missing);
  if ((out.tlsCert === undefined) !== (out.tlsKey === undefined)) fail('TWS_ERR_CONFIG', 'give both --tls-cert and --tls-key (config keys "tls_cert", "tls_key"), or neither');
  if (typeof out.bufferBudget === 'number' && out.bufferBudget > 0 && out.bufferBudget < 64) {
    fail('TWS_ERR_CONFIG', 'buffer_budget (--buffer-budget): at least 64 (MiB), or 0 for automatic');
  }
  if (missing.length > 0) fail('TWS_ERR_CONFIG', `missing required option${missing.length > 1 ? 's' : ''}: ${missing.map((m) => m.text).join('; ')}`);
  delete out.passwdFile;
  return out as unknown as ServerConfig | ClientConfig;
}

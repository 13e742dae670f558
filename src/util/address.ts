import { isIP } from 'node:net';

/** A parsed `host:port`; `host` has no brackets, even for IPv6. */
export interface HostPort {
  host: string;
  port: number;
}

const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})?(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})?)*\.?$/;

/**
 * Splits `host:x` / `[v6]:x` at the port separator (brackets removed). The
 * host is not validated beyond brackets being needed for IPv6; `what`
 * names the part after the colon in messages ("port", "ports").
 */
export function splitHostPort(text: string, what = 'port'): { host: string; rest: string } | string {
  if (text.startsWith('[')) {
    const end = text.indexOf(']');
    if (end < 0 || text[end + 1] !== ':') return `expected [ipv6]:${what}`;
    return { host: text.slice(1, end), rest: text.slice(end + 2) };
  }
  const colon = text.lastIndexOf(':');
  if (colon <= 0) return `expected host:${what}`;
  const host = text.slice(0, colon);
  if (host.includes(':')) return `IPv6 addresses need brackets: [addr]:${what}`;
  return { host, rest: text.slice(colon + 1) };
}

/**
 * Parses `host:port`, `[v6]:port` or `hostname:port`. Returns an error message
 * instead of throwing so callers can name the config path. `allowZeroPort`
 * is for listen addresses (port 0 = any free port).
 */
export function parseHostPort(text: string, allowZeroPort = false): HostPort | string {
  const split = splitHostPort(text);
  if (typeof split === 'string') return split;
  const { host, rest: portText } = split;
  if (text.startsWith('[')) {
    if (isIP(host) !== 6) return `"${host}" is not an IPv6 address`;
  } else if (isIP(host) === 0 && !HOSTNAME.test(host)) {
    return `"${host}" is not a valid host name`;
  }
  if (!/^\d{1,5}$/.test(portText)) return `"${portText}" is not a port number`;
  const port = Number(portText);
  if (port > 65535 || (port === 0 && !allowZeroPort)) return `port ${port} is out of range (1-65535)`;
  return { host, port };
}

/** Formats a host and port back to `host:port` / `[v6]:port`: the one way an address is printed. */
export function formatHostPort(host: string, port: number | string): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * A socket's peer as logs print it (`1.2.3.4:5`, `[::1]:5`); `?` stands in
 * for what a closed socket no longer knows.
 */
export function formatPeer(peer: { remoteAddress?: string; remotePort?: number } | undefined): string {
  return formatHostPort(peer?.remoteAddress ?? '?', peer?.remotePort ?? '?');
}

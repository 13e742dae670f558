import { isIP } from 'node:net';

/** A parsed `host:port`; `host` has no brackets, even for IPv6. */
export interface HostPort {
  host: string;
  port: number;
}

const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})?(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})?)*\.?$/;

/**
 * Parses `host:port`, `[v6]:port` or `hostname:port`. Returns an error message
 * instead of throwing so callers can name the config path. `allowZeroPort`
 * is for listen addresses (port 0 = any free port).
 */
export function parseHostPort(text: string, allowZeroPort = false): HostPort | string {
  let host: string;
  let portText: string;
  if (text.startsWith('[')) {
    const end = text.indexOf(']');
    if (end < 0 || text[end + 1] !== ':') return 'expected [ipv6]:port';
    host = text.slice(1, end);
    portText = text.slice(end + 2);
    if (isIP(host) !== 6) return `"${host}" is not an IPv6 address`;
  } else {
    const colon = text.lastIndexOf(':');
    if (colon <= 0) return 'expected host:port';
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(':')) return 'IPv6 addresses need brackets: [addr]:port';
    if (isIP(host) === 0 && !HOSTNAME.test(host)) return `"${host}" is not a valid host name`;
  }
  if (!/^\d{1,5}$/.test(portText)) return `"${portText}" is not a port number`;
  const port = Number(portText);
  if (port > 65535 || (port === 0 && !allowZeroPort)) return `port ${port} is out of range (1-65535)`;
  return { host, port };
}

/** Formats a host and port back to `host:port` / `[v6]:port`. */
export function formatHostPort(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

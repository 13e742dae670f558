/**
 * The proxy URL as tws accepts it (--proxy, HTTPS_PROXY, HTTP_PROXY): a
 * value parser the config loader and the client share, so neither imports
 * the other.
 */
import { TwsError } from './errors';

/** Validates a proxy URL: http://[user:pass@]host:port. */
export function parseProxyUrl(raw: string, where: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new TwsError('TWS_ERR_CONFIG', `${where}: not a URL (expected http://[user:pass@]host:port)`);
  }
  if (url.protocol !== 'http:') throw new TwsError('TWS_ERR_CONFIG', `${where}: only http:// proxies are supported (the tunnel inside is still TLS for wss://)`);
  return url;
}

/** A proxy URL without its credentials, for logs. */
export function showProxy(url: URL): string {
  return `http://${url.host}`;
}

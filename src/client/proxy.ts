/**
 * Reaching the server through an HTTP CONNECT proxy: `--proxy URL`, else
 * HTTPS_PROXY (wss://) or HTTP_PROXY (ws://) from the environment, unless
 * NO_PROXY names the server. The tunnel through the proxy is a plain TCP
 * socket, so the native engine can still take it over for ws://; for
 * wss:// TLS runs on top of it, end to end with the server.
 */
import { connect as netConnect, Socket } from 'node:net';
import { connect as tlsConnect, ConnectionOptions } from 'node:tls';
import { TwsError } from '../util/errors';
import { peerText } from '../util/log';
import { parseProxyUrl, showProxy } from '../util/proxy-url';

/** The proxy to use for `server`, or undefined for a direct connection. */
export function proxyFor(server: URL, flag: URL | undefined, env: NodeJS.ProcessEnv = process.env): URL | undefined {
  if (flag) return flag;
  const pick = (...names: string[]): string | undefined => names.map((n) => env[n]).find((v) => v !== undefined && v !== '');
  const raw = server.protocol === 'wss:' ? pick('HTTPS_PROXY', 'https_proxy') : pick('HTTP_PROXY', 'http_proxy');
  if (!raw || bypassed(server.hostname, pick('NO_PROXY', 'no_proxy'))) return undefined;
  return parseProxyUrl(raw, server.protocol === 'wss:' ? 'HTTPS_PROXY' : 'HTTP_PROXY');
}

/** NO_PROXY as curl reads it: `*`, or host names / IPs, each also matching its subdomains. */
export function bypassed(hostname: string, noProxy: string | undefined): boolean {
  if (!noProxy) return false;
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return noProxy.split(/[\s,]+/).filter(Boolean).some((entry) => {
    if (entry === '*') return true;
    const e = entry.toLowerCase().replace(/^\[|\]$/g, '').replace(/^\*?\./, '').replace(/:\d+$/, '');
    return host === e || host.endsWith(`.${e}`);
  });
}

type Callback = (err: Error | null, socket?: Socket) => void;

/**
 * A `createConnection` for http.request / ws: CONNECT through `proxy` to the
 * requested host:port, then TLS on top when `tls` is given.
 */
export function viaProxy(proxy: URL, timeoutMs: number, tls?: ConnectionOptions) {
  return (opts: { host?: string; hostname?: string; port?: number | string; servername?: string }, cb: Callback): undefined => {
    const host = (opts.hostname ?? opts.host ?? 'localhost').replace(/^\[|\]$/g, '');
    const port = Number(opts.port);
    const authority = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
    const sock = netConnect({ host: proxy.hostname.replace(/^\[|\]$/g, ''), port: Number(proxy.port || 80) });
    let done = false;
    const finish = (err: Error | null, s?: Socket): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err) sock.destroy();
      cb(err, s);
    };
    const timer = setTimeout(() => finish(new TwsError('TWS_ERR_CONNECT', `proxy ${showProxy(proxy)}: no answer to CONNECT within ${timeoutMs} ms`)), timeoutMs);
    sock.once('error', (err: NodeJS.ErrnoException) => finish(new TwsError('TWS_ERR_CONNECT', `proxy ${showProxy(proxy)}: ${err.code ?? err.message}`)));
    sock.once('connect', () => {
      const lines = [`CONNECT ${authority} HTTP/1.1`, `Host: ${authority}`];
      if (proxy.username) {
        const cred = `${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`;
        lines.push(`Proxy-Authorization: Basic ${Buffer.from(cred).toString('base64')}`);
      }
      sock.write(`${lines.join('\r\n')}\r\n\r\n`);
    });
    let buf = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      buf = Buffer.concat([buf, chunk]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) {
        if (buf.length > 16384) finish(new TwsError('TWS_ERR_CONNECT', `proxy ${showProxy(proxy)}: answer to CONNECT too long`));
        return;
      }
      sock.off('data', onData);
      const status = /^HTTP\/1\.[01] (\d{3})([^\r\n]*)/.exec(buf.subarray(0, end).toString('latin1'));
      if (!status || status[1] !== '200') {
        finish(new TwsError('TWS_ERR_CONNECT', `proxy ${showProxy(proxy)} refused CONNECT ${authority}: ${status ? `HTTP ${status[1]}${peerText(status[2]!, 120)}` : 'not an HTTP answer'}`));
        return;
      }
      const rest = buf.subarray(end + 4);
      sock.pause();
      if (rest.length > 0) sock.unshift(rest);  // bytes of the server's that came with the proxy's answer
      sock.removeAllListeners('error');
      if (!tls) {
        finish(null, sock);
        sock.resume();  // paused above so no byte is lost before the caller's listeners are on
        return;
      }
      const secure = tlsConnect({ ...tls, socket: sock, servername: tls.servername ?? opts.servername ?? (/^[\d.:]+$/.test(host) ? undefined : host) });
      secure.once('secureConnect', () => finish(null, secure));
      secure.once('error', (err) => finish(err));
    };
    sock.on('data', onData);
    return undefined;
  };
}

/** A small HTTP CONNECT proxy on loopback for tests: records requests, optional Basic auth. */
import { connect, createServer, Socket } from 'node:net';

export interface ConnectProxy {
  port: number;
  /** `CONNECT` targets seen, with the Proxy-Authorization header (or ''). */
  requests: { target: string; auth: string }[];
  close(): Promise<void>;
}

export async function connectProxy(opts: { user?: string; pass?: string } = {}): Promise<ConnectProxy> {
  const requests: ConnectProxy['requests'] = [];
  const sockets = new Set<Socket>();
  const want = opts.user ? `Basic ${Buffer.from(`${opts.user}:${opts.pass ?? ''}`).toString('base64')}` : undefined;
  const srv = createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => undefined);
    let buf = Buffer.alloc(0);
    const onData = (d: Buffer): void => {
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      client.off('data', onData);
      const head = buf.subarray(0, end).toString('latin1');
      const target = /^CONNECT (\S+) HTTP\/1\.1/.exec(head)?.[1] ?? '';
      const auth = /\r\nProxy-Authorization: ([^\r\n]*)/i.exec(head)?.[1] ?? '';
      requests.push({ target, auth });
      if (want && auth !== want) {
        client.end('HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n');
        return;
      }
      const m = /^(?:\[(.+)\]|([^:]+)):(\d+)$/.exec(target);
      if (!m) return void client.end('HTTP/1.1 400 Bad Request\r\n\r\n');
      const upstream = connect(Number(m[3]), m[1] ?? m[2]);
      sockets.add(upstream);
      upstream.on('close', () => sockets.delete(upstream));
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
      upstream.once('connect', () => {
        client.write('HTTP/1.1 200 Connection established\r\n\r\n');
        const rest = buf.subarray(end + 4);
        if (rest.length) upstream.write(rest);
        client.pipe(upstream);
        upstream.pipe(client);
      });
    };
    client.on('data', onData);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    port: (srv.address() as { port: number }).port,
    requests,
    close: () => new Promise((r) => { for (const s of sockets) s.destroy(); srv.close(() => r()); }),
  };
}

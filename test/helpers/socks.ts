/**
 * A raw SOCKS5 client for tests (written from RFC 1928/1929, not from
 * src/client/socks), to read the exact reply codes curl hides, and a tiny
 * DNS responder for UDP ASSOCIATE.
 */
import { createSocket, Socket as UdpSocket } from 'node:dgram';
import { AddressInfo, connect, isIP, Socket } from 'node:net';

/** Reads from `s` until `n` bytes came, or it ended (then fewer), or `timeoutMs` passed. */
export function readBytes(s: Socket, n: number, timeoutMs = 10_000): Promise<{ data: Buffer; ended: boolean }> {
  return new Promise((resolve) => {
    let data = Buffer.alloc(0);
    const finish = (ended: boolean): void => {
      clearTimeout(timer);
      s.off('data', onData);
      s.off('end', onEnd);
      s.off('close', onEnd);
      s.off('error', onEnd);
      s.pause();
      const rest = data.subarray(n);
      if (rest.length > 0) s.unshift(rest);
      resolve({ data: data.subarray(0, n), ended });
    };
    const onData = (c: Buffer): void => {
      data = Buffer.concat([data, c]);
      if (data.length >= n) finish(false);
    };
    const onEnd = (): void => finish(true);
    const timer = setTimeout(() => finish(false), timeoutMs);
    s.on('data', onData);
    s.once('end', onEnd);
    s.once('close', onEnd);
    s.once('error', onEnd);
    s.resume();
  });
}

/** Resolves once `s` is closed by the peer (end or reset), with how long it took. */
export function closedWithin(s: Socket, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    if (s.destroyed || s.readableEnded) return resolve(true);
    const timer = setTimeout(() => resolve(false), timeoutMs);
    const done = (): void => { clearTimeout(timer); resolve(true); };
    s.on('data', () => undefined);
    s.once('end', done);
    s.once('close', done);
    s.once('error', () => undefined);
  });
}

export function openSocket(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1' });
    s.once('connect', () => { s.off('error', reject); resolve(s); });
    s.once('error', reject);
  });
}

/** ATYP + DST.ADDR + DST.PORT for `host` (IPv4, IPv6 or a name). */
export function socksAddress(host: string, port: number): Buffer {
  let head: Buffer;
  if (isIP(host) === 4) head = Buffer.from([1, ...host.split('.').map(Number)]);
  else if (isIP(host) === 6) {
    // Only the loopback and simple forms tests use: groups with one '::' expanded.
    const [l, r = ''] = host.split('::');
    const left = l ? l.split(':') : [];
    const right = r ? r.split(':') : [];
    const groups = [...left, ...new Array<string>(8 - left.length - right.length).fill('0'), ...right];
    head = Buffer.alloc(17);
    head[0] = 4;
    groups.forEach((g, i) => head.writeUInt16BE(parseInt(g, 16), 1 + 2 * i));
  } else head = Buffer.concat([Buffer.from([3, host.length]), Buffer.from(host)]);
  return Buffer.concat([head, Buffer.from([port >> 8, port & 0xff])]);
}

/** Greets (no auth, or user/pass) and sends a request; resolves with the method, the login status and the reply code (undefined where the peer closed). */
export async function socksRequest(port: number, cmd: number, host: string, dstPort: number, login?: { user: string; pass: string }):
  Promise<{ socket: Socket; method?: number; authStatus?: number; reply?: number; bound?: { host: string; port: number } }> {
  const s = await openSocket(port);
  s.write(Buffer.from([5, 1, login ? 2 : 0]));
  const m = await readBytes(s, 2);
  if (m.data.length < 2) return { socket: s };
  const method = m.data[1]!;
  let authStatus: number | undefined;
  if (method === 2 && login) {
    s.write(Buffer.concat([Buffer.from([1, login.user.length]), Buffer.from(login.user), Buffer.from([login.pass.length]), Buffer.from(login.pass)]));
    const a = await readBytes(s, 2);
    authStatus = a.data[1];
    if (authStatus !== 0) return { socket: s, method, authStatus };
  } else if (method !== 0) {
    return { socket: s, method };
  }
  s.write(Buffer.concat([Buffer.from([5, cmd, 0]), socksAddress(host, dstPort)]));
  const r = await readBytes(s, 10);
  if (r.data.length < 2) return { socket: s, method, authStatus };
  const reply = r.data[1]!;
  let bound: { host: string; port: number } | undefined;
  if (r.data.length === 10 && r.data[3] === 1) bound = { host: [...r.data.subarray(4, 8)].join('.'), port: r.data.readUInt16BE(8) };
  return { socket: s, method, authStatus, reply, bound };
}

/** A DNS question for `name`, type A, class IN, with id `id`. */
export function dnsQuery(id: number, name: string): Buffer {
  const labels = name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)]));
  const head = Buffer.alloc(12);
  head.writeUInt16BE(id, 0);
  head.writeUInt16BE(0x0100, 2);  // RD
  head.writeUInt16BE(1, 4);  // QDCOUNT
  return Buffer.concat([head, ...labels, Buffer.from([0, 0, 1, 0, 1])]);
}

/**
 * A DNS responder on 127.0.0.1: answers each A question with `address`
 * (one answer, the name by pointer, TTL 60), echoing id and question.
 */
export function dnsResponder(address: string): Promise<{ sock: UdpSocket; port: number }> {
  const sock = createSocket('udp4');
  sock.on('message', (q, r) => {
    if (q.length < 17) return;
    const answer = Buffer.concat([
      Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]),
      Buffer.from(address.split('.').map(Number)),
    ]);
    const head = Buffer.from(q.subarray(0, 12));
    head.writeUInt16BE(0x8180, 2);  // response, RD, RA
    head.writeUInt16BE(1, 6);  // ANCOUNT
    sock.send(Buffer.concat([head, q.subarray(12), answer]), r.port, r.address);
  });
  return new Promise((resolve) => sock.bind(0, '127.0.0.1', () => resolve({ sock, port: (sock.address() as AddressInfo).port })));
}

/** The A record's address in a DNS response made by dnsResponder (the last four bytes), and its id. */
export function dnsAnswer(msg: Buffer): { id: number; address: string } {
  return { id: msg.readUInt16BE(0), address: [...msg.subarray(msg.length - 4)].join('.') };
}

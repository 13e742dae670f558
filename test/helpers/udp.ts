/** Real UDP peers for tests, on loopback. */
import { createSocket, Socket } from 'node:dgram';
import { AddressInfo } from 'node:net';

/** A UDP server answering each datagram with `echo:` and the datagram. */
export function udpEcho(): Promise<{ sock: Socket; addr: string }> {
  const sock = createSocket('udp4');
  sock.on('message', (msg, r) => sock.send(Buffer.concat([Buffer.from('echo:'), msg]), r.port, r.address));
  return new Promise((resolve) => sock.bind(0, '127.0.0.1', () => resolve({ sock, addr: `127.0.0.1:${(sock.address() as AddressInfo).port}` })));
}

/** Sends datagrams from one local socket and collects the replies. */
export async function exchange(port: number, messages: string[], waitMs = 2000): Promise<string[]> {
  const c = createSocket('udp4');
  const got: string[] = [];
  c.on('message', (m) => got.push(m.toString()));
  await new Promise<void>((r) => c.bind(0, '127.0.0.1', () => r()));
  for (const m of messages) {
    c.send(m, port, '127.0.0.1');
    await new Promise((r) => setTimeout(r, 20));
  }
  const deadline = Date.now() + waitMs;
  while (got.length < messages.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  c.close();
  return got;
}

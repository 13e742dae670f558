/**
 * Which local user owns a socket, from Linux's /proc/net tables: on
 * loopback the peer of a connection is a process of this machine, and the
 * table line for its socket names its uid. A SOCKS5 UDP association uses it
 * to take datagrams only from a socket of the user who asked for it
 * (src/client/socks/udp-associate.ts). Anything not found (another OS, a
 * socket gone meanwhile) is undefined: the caller decides what that means.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';

/** The 16 bytes of an IPv6 address in Node's text (no dotted tail), or the 4 of an IPv4 one. */
function addressBytes(address: string): number[] | undefined {
  if (isIP(address) === 4) return address.split('.').map(Number);
  if (isIP(address) !== 6 || address.includes('.') || address.includes('%')) return undefined;
  const [head, tail = ''] = address.split('::') as [string, string?];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t].map((g) => parseInt(g, 16));
  return groups.flatMap((g) => [g >> 8, g & 255]);
}

/** `bytes`:`port` as /proc/net spells a socket's end: hex, each 32-bit word in this machine's byte order. */
function procText(bytes: number[], port: number): string {
  const words: string[] = [];
  for (let i = 0; i < bytes.length; i += 4) words.push(Buffer.from(bytes.slice(i, i + 4)).readUInt32LE(0).toString(16).toUpperCase().padStart(8, '0'));
  return `${words.join('')}:${port.toString(16).toUpperCase().padStart(4, '0')}`;
}

/** `address`:`port` in the IPv4 table and in the IPv6 one (where an IPv4 end of a dual-stack socket is IPv4-mapped). */
function spellings(address: string, port: number): { v4?: string; v6?: string } {
  const bytes = addressBytes(address);
  if (!bytes) return {};
  if (bytes.length === 4) return { v4: procText(bytes, port), v6: procText([...Array<number>(10).fill(0), 255, 255, ...bytes], port) };
  return { v6: procText(bytes, port) };
}

/** The uid of the first line of `table` whose local end is one of `locals` (and remote end `remote`, if given). */
function uidIn(table: string, locals: string[], remote?: string): number | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/net/${table}`, 'latin1');
  } catch {
    return undefined;
  }
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8 || !locals.includes(f[1]!) || (remote !== undefined && f[2] !== remote)) continue;
    return Number(f[7]);
  }
  return undefined;
}

/** The uid of the local process whose TCP socket is the far end of our connection `local` ↔ `remote`. */
export function tcpPeerUid(local: { address: string; port: number }, remote: { address: string; port: number }): number | undefined {
  const far = spellings(remote.address, remote.port);
  const near = spellings(local.address, local.port);
  return (far.v4 && near.v4 ? uidIn('tcp', [far.v4], near.v4) : undefined) ?? (far.v6 && near.v6 ? uidIn('tcp6', [far.v6], near.v6) : undefined);
}

/** The uid owning the UDP socket bound to `address`:`port` (or to the unspecified address at that port). */
export function udpSocketUid(address: string, port: number): number | undefined {
  const own = spellings(address, port);
  const any4 = procText([0, 0, 0, 0], port);
  const any6 = procText(Array<number>(16).fill(0), port);
  return uidIn('udp', [...(own.v4 ? [own.v4] : []), any4]) ?? uidIn('udp6', [...(own.v6 ? [own.v6] : []), any6]);
}

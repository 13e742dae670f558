/**
 * Other tunnels measured beside tws (`--peer NAME=PATH`): the ones the
 * benchmark knows how to start, how it checks a binary before anything
 * runs, and how it starts a server/client pair of one on loopback in front
 * of the same targets the tws engines use.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { freePort, start, stop, Tunnel, waitFor } from './procs';

export const PEER_NAMES = ['wstunnel', 'wstunnel-unmasked', 'tws-rust'] as const;
export type PeerName = (typeof PEER_NAMES)[number];

/** A peer as the report names it: which binary, what it says its version is, and the flags it ran with. */
export interface Peer {
  name: PeerName;
  path: string;
  version: string;
  flags: string;
}

const isPeerName = (s: string): s is PeerName => (PEER_NAMES as readonly string[]).includes(s);

/** What `--version` must mention for a binary to be the peer it is named as. */
const SAYS: Record<PeerName, RegExp> = { wstunnel: /wstunnel/i, 'wstunnel-unmasked': /wstunnel/i, 'tws-rust': /tws-rust/i };

const FLAGS: Record<PeerName, string> = {
  wstunnel: '--websocket-mask-frame on server and client (masks client frames as RFC 6455 asks, like tws)',
  'wstunnel-unmasked': 'defaults: client frames unmasked (against RFC 6455)',
  'tws-rust': "-c 1 for one stream and round trips, -c 2 (its default) otherwise, --no_udp, -t 5000 (default)",
};

/** `s` as one printable line of at most `max` characters: what a peer binary printed may hold anything. */
export function printable(s: string, max = 200): string {
  const line = s.replace(/[^\x20-\x7e]/g, '?');
  return line.length > max ? `${line.slice(0, max)}…` : line;
}

/**
 * Parses the `--peer NAME=PATH` values and runs each binary with
 * `--version`: the peers, or the one line to print when a name is unknown,
 * given twice, or its binary does not run or is not what the name says.
 */
export function resolvePeers(specs: string[]): Peer[] | string {
  const peers: Peer[] = [];
  for (const spec of specs) {
    const eq = spec.indexOf('=');
    const name = eq > 0 ? spec.slice(0, eq) : '';
    const path = eq > 0 ? spec.slice(eq + 1) : '';
    if (!name || !path) return `--peer wants NAME=PATH (NAME one of ${PEER_NAMES.join(', ')}), not "${printable(spec)}"`;
    if (!isPeerName(name)) return `--peer ${printable(name)}: unknown peer; the bench knows how to start ${PEER_NAMES.join(', ')}`;
    if (peers.some((p) => p.name === name)) return `--peer ${name} given twice`;
    const r = spawnSync(path, ['--version'], { encoding: 'utf8', timeout: 10_000 });
    const said = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n')[0] ?? '';
    if (r.error || r.status !== 0) {
      return `--peer ${name}=${printable(path)}: does not run (${printable(r.error?.message ?? `--version exited ${r.status ?? r.signal}: ${said}`)})`;
    }
    if (!SAYS[name].test(said)) return `--peer ${name}=${printable(path)}: --version says "${printable(said)}", not ${name}`;
    peers.push({ name, path, version: printable(said, 100), flags: FLAGS[name] });
  }
  return peers;
}

/** Whether a TCP socket listens on 127.0.0.1:`port` (from /proc/net/tcp, without connecting to it). */
export function listening(port: number): boolean {
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  return readFileSync('/proc/net/tcp', 'utf8').split('\n').some((line) => {
    const f = line.trim().split(/\s+/);
    return f[1] === local && f[3] === '0A';
  });
}

/** tws-rust's shared secret on loopback. */
const PEER_PASSWD = 'bench-password';

/**
 * Starts `peer`'s server and client on loopback, the client forwarding a
 * local port to `target`; `sessions`: WebSocket connections for peers that
 * multiplex (tws-rust's -c); wstunnel opens one per TCP connection.
 * Peers take their ports on the command line, so a port found free can be
 * taken (by any connection's ephemeral port) before the peer binds it: a
 * start that fails is tried again, twice, on fresh ports.
 */
export async function startPeer(peer: Peer, target: string, sessions: number): Promise<Tunnel> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startPeerOn(peer, target, sessions, await freePort(), await freePort());
    } catch (e) {
      if (attempt === 3) throw e;
    }
  }
}

async function startPeerOn(peer: Peer, target: string, sessions: number, serverPort: number, localPort: number): Promise<Tunnel> {
  const ws = `ws://127.0.0.1:${serverPort}`;
  const rust = peer.name === 'tws-rust';
  const mask = peer.name === 'wstunnel' ? ['--websocket-mask-frame'] : [];
  // wstunnel takes NO_COLOR as its --no-color flag, which only accepts true or false (tap sets NO_COLOR=1).
  const env = rust ? {} : { NO_COLOR: 'true' };
  const s = rust
    ? await start(peer.path, ['server', '-l', `127.0.0.1:${serverPort}`, '-p', PEER_PASSWD, '--no_udp'], /Server up and listening/)
    : await start(peer.path, ['server', ...mask, ws], /listening on 127\.0\.0\.1/, env);
  let c: Awaited<ReturnType<typeof start>> | undefined;
  try {
    c = rust
      ? await start(peer.path, ['client', '-l', `127.0.0.1:${localPort}`, '-s', `${ws}/`, '-r', target, '-p', PEER_PASSWD, '-c', String(sessions), '--no_udp'], /Session up/)
      : await start(peer.path, ['client', ...mask, '-L', `tcp://127.0.0.1:${localPort}:${target}`, ws], /listening cnx on 127\.0\.0\.1/, env);
    const logs = c.logs;
    if (rust) await waitFor(() => (logs().match(/Session up/g) ?? []).length >= sessions, 10_000, `${peer.name}'s sessions`);
    // wstunnel logs its listener before binding it; a test connection would reach the target, so look instead.
    await waitFor(() => listening(localPort), 5_000, `${peer.name}'s client to listen on 127.0.0.1:${localPort}`);
  } catch (e) {
    await Promise.all([c && stop(c.proc), stop(s.proc)]);
    throw e;
  }
  const client = c;
  return {
    server: s.proc,
    client: client.proc,
    port: localPort,
    frontPids: () => [],
    logs: { server: s.logs, client: client.logs },
    stop: async () => { await Promise.all([stop(client.proc), stop(s.proc)]); },
  };
}

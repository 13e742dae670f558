/**
 * The client's UDP side (as in tws-rust): a UDP socket on the same address as
 * the TCP listener; each local peer address becomes one udp stream to the
 * remote, ended by the engine after `udp_timeout` without datagrams.
 */
import { createSocket, RemoteInfo, Socket } from 'node:dgram';
import { AddressInfo, isIP } from 'node:net';
import type { EngineSession } from '../engine/types';
import { openLines } from '../engine/stream-log';
import { formatHostPort } from '../util/address';
import type { Logger } from '../util/log';
import { boundedUdpSender } from '../net/udp-send';
import { UdpStreamBudget, UdpStreams } from './udp-streams';

/** Local peers carried at once; datagrams from more are dropped. */
const MAX_ASSOCIATIONS = 4096;

export class UdpRelay {
  private readonly sock: Socket;
  /** Sends on `sock` without letting its queue grow past MAX_PENDING_UDP_BYTES. */
  private readonly send: ReturnType<typeof boundedUdpSender>;
  private readonly peers = new UdpStreams(new UdpStreamBudget(MAX_ASSOCIATIONS));
  /** ` (-L …)` after a log line's target, or empty. */
  private readonly label: string;
  private bound = false;

  constructor(
    private readonly host: string,
    private readonly remote: string,
    /** The tunnel's name (`-L 5353:ns:53/udp`) for log lines, or empty (-l/-r). */
    private readonly tunnel: string,
    private readonly pick: () => EngineSession | undefined,
    private readonly log: Logger,
  ) {
    this.label = tunnel ? ` (${tunnel})` : '';
    this.sock = createSocket(isIP(host) === 6 ? 'udp6' : 'udp4');
    this.send = boundedUdpSender(this.sock);
    this.sock.on('message', (msg, rinfo) => this.onMessage(msg, rinfo));
    // A failed bind is reported once, by bind()'s caller; later errors here.
    this.sock.on('error', (err) => { if (this.bound) this.log.warn(`udp: ${err.message}`); });
  }

  /** Binds to `port` on the relay's host (the TCP listener's port, or 0 = any); a failure is the caller's to report. */
  bind(port: number): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.sock.once('error', reject);
      this.sock.bind(port, this.host, () => {
        this.sock.off('error', reject);
        this.bound = true;
        const addr = this.sock.address();
        this.log.info(`udp listening on ${formatHostPort(this.host, addr.port)} → ${this.remote}${this.label}`);
        resolve(addr);
      });
    });
  }

  /** The bound address, once bound. */
  address(): AddressInfo | undefined {
    return this.bound ? this.sock.address() : undefined;
  }

  /**
   * Closes the socket, as the client stops (its only caller): the sessions'
   * GOAWAY ends the udp streams. The relay drops no peer otherwise: a peer's
   * stream ends when the engine's udp timeout ends it.
   */
  close(): void {
    this.peers.forgetAll();
    try {
      this.sock.close();
    } catch {
      // already closed
    }
  }

  private onMessage(msg: Buffer, rinfo: RemoteInfo): void {
    const key = formatHostPort(rinfo.address, rinfo.port);
    let port = this.peers.get(key);
    if (!port) {
      const session = this.pick();
      if (!session || this.peers.full) {
        this.log.debug(`udp: dropped a datagram from ${key}: ${session ? 'too many udp peers' : 'no session up'}`);
        return;
      }
      const id = this.peers.open(key, session, (payload) => this.send(payload, rinfo.port, rinfo.address), this.remote, this.tunnel || undefined);
      if (id === 0) return;
      openLines(session, this.log).line('info', `stream#${id} udp open from ${key} → ${this.remote}${this.label}`);
      port = this.peers.get(key)!;
    }
    port.onDatagram?.(msg);
  }
}

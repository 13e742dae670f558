/**
 * One SOCKS5 UDP ASSOCIATE (RFC 1928 §7): a UDP socket on the listener's
 * address; each datagram from the associating client names its destination
 * in a header, and each destination becomes one udp stream (tws datagrams)
 * over the client's sessions. Answers come back wrapped in the same header
 * with the destination as their source. The association ends with its TCP
 * control connection, or after `udpTimeout` without a datagram either way.
 */
import { createSocket, RemoteInfo, Socket } from 'node:dgram';
import { AddressInfo, isIP } from 'node:net';
import type { EngineSession } from '../../engine/types';
import { formatHostPort } from '../../util/address';
import { openLines } from '../../engine/stream-log';
import { Logger, peerText } from '../../util/log';
import { udpSocketUid } from '../../net/socket-owner';
import { boundedUdpSender } from '../../net/udp-send';
import { UdpStreamBudget, UdpStreams } from '../udp-streams';
import { encodeUdp, parseUdp, targetOf } from './messages';

/** Destinations one association may reach at once; datagrams to more are dropped. */
export const MAX_DESTINATIONS = 64;

export interface AssociationOptions {
  /** The control connection's local address: the UDP socket binds there. */
  localAddress: string;
  /** The client's address: only its datagrams are taken. */
  clientAddress: string;
  /** The port the client said it sends from (0 = not known yet: the first datagram's). */
  clientPort: number;
  /**
   * On loopback, the uid of the process that asked (its control connection's
   * socket): until a datagram is taken, one from a socket of another user is
   * not. Else another local user could send first and take the association
   * over, its answers included (RFC 1928 lets the client say port 0).
   */
  clientUid?: number;
  udpTimeout: number;
  /** The listener's cap on udp streams over all its associations. */
  budget: UdpStreamBudget;
  pick(): EngineSession | undefined;
  logger: Logger;
  /** Called once when the association ends (for the listener's bookkeeping). */
  onEnd(): void;
}

export class UdpAssociation {
  private readonly sock: Socket;
  /** Sends on `sock` without letting its queue grow past MAX_PENDING_UDP_BYTES. */
  private readonly send: ReturnType<typeof boundedUdpSender>;
  private readonly dests: UdpStreams;
  private clientPort: number;
  /** A datagram was taken: the client's port is known (and its user checked). */
  private confirmed = false;
  /** Source ports already found to be another user's (bounded): not looked up again. */
  private readonly strangers = new Set<number>();
  private timer: NodeJS.Timeout | undefined;
  private ended = false;

  constructor(private readonly opts: AssociationOptions) {
    this.clientPort = opts.clientPort;
    this.dests = new UdpStreams(opts.budget);
    this.sock = createSocket(isIP(opts.localAddress) === 6 ? 'udp6' : 'udp4');
    this.send = boundedUdpSender(this.sock);
    this.sock.on('message', (msg, rinfo) => this.onClient(msg, rinfo));
    this.sock.on('error', (err) => opts.logger.debug(`socks udp: ${err.message}`));
  }

  /** Binds a free port on the local address. */
  bind(): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.sock.once('error', reject);
      this.sock.bind(0, this.opts.localAddress, () => {
        this.sock.off('error', reject);
        this.touch();
        resolve(this.sock.address());
      });
    });
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.timer);
    // Its streams end on both sides now, not after the engines' udp timeout.
    this.dests.closeAll();
    try {
      this.sock.close();
    } catch {
      // never bound
    }
    this.opts.onEnd();
  }

  private touch(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.opts.logger.debug(`socks udp: association of ${this.opts.clientAddress} idle for ${this.opts.udpTimeout} ms; ended`);
      this.end();
    }, this.opts.udpTimeout);
  }

  /** Whether `rinfo`'s socket is the asking user's (always, where that user is not known). */
  private sameUser(rinfo: RemoteInfo): boolean {
    if (this.opts.clientUid === undefined) return true;
    if (this.strangers.has(rinfo.port)) return false;
    if (udpSocketUid(rinfo.address, rinfo.port) === this.opts.clientUid) return true;
    if (this.strangers.size < 256) this.strangers.add(rinfo.port);
    return false;
  }

  private onClient(msg: Buffer, rinfo: RemoteInfo): void {
    const from = formatHostPort(rinfo.address, rinfo.port);
    if (rinfo.address !== this.opts.clientAddress || (this.clientPort !== 0 && rinfo.port !== this.clientPort)) {
      this.opts.logger.debug(`socks udp: dropped a datagram from ${from}: not the associated client`);
      return;
    }
    const d = parseUdp(msg);
    if (d.kind !== 'ok') {
      this.opts.logger.debug(`socks udp: dropped a datagram from ${from}: ${d.kind === 'bad' ? d.why : 'incomplete'}`);
      return;
    }
    if (!this.confirmed && !this.sameUser(rinfo)) {
      this.opts.logger.debug(`socks udp: dropped a datagram from ${from}: not a socket of the user who asked for the association`);
      return;
    }
    this.confirmed = true;
    this.clientPort = rinfo.port;
    this.touch();
    const { host, port } = d.value;
    const target = targetOf(d.value);
    let dest = this.dests.get(target);
    if (!dest) {
      const session = this.opts.pick();
      const full = this.dests.size >= MAX_DESTINATIONS ? 'too many destinations' : this.dests.full ? 'too many socks udp streams' : '';
      if (!session || full) {
        this.opts.logger.debug(`socks udp: dropped a datagram from ${from} to ${peerText(target)}: ${session ? full : 'no session up'}`);
        return;
      }
      const id = this.dests.open(target, session, (payload) => {
        if (this.ended) return;
        this.touch();
        this.send(encodeUdp(host, port, payload), this.clientPort, this.opts.clientAddress);
      }, target, 'socks');
      if (id === 0) return;
      openLines(session, this.opts.logger).line('info', `stream#${id} udp open from ${from} → ${peerText(target)} (socks)`);
      dest = this.dests.get(target)!;
    }
    dest.onDatagram?.(d.value.data);
  }
}

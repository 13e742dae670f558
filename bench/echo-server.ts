/**
 * Target helper for the benchmark, in its own process. A connection whose
 * first byte is 0xFF is echoed (ping-pong, connect rate); any other is
 * proxied to the iperf3 server given as argv[2] (iperf3 opens with an ASCII
 * cookie). So one tws session can carry a bulk iperf3 stream and the
 * latency probe side by side.
 */
import { connect, createServer, AddressInfo, Socket } from 'node:net';

const iperfPort = Number(process.argv[2] ?? 0);

const server = createServer({ noDelay: true }, (s: Socket) => {
  s.on('error', () => undefined);
  s.once('data', (first: Buffer) => {
    if (first[0] === 0xff || !iperfPort) {
      s.write(first);
      s.pipe(s);
      return;
    }
    const up = connect({ port: iperfPort, host: '127.0.0.1', noDelay: true });
    up.on('error', () => s.destroy());
    s.on('close', () => up.destroy());
    up.write(first);
    s.pipe(up).pipe(s);
  });
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`echo on ${(server.address() as AddressInfo).port}\n`);
});

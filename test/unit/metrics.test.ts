import t from 'tap';
import { EventEmitter } from 'node:events';
import type { EngineSession, SessionStats } from '../../src/engine/types';
import { Metrics } from '../../src/metrics/metrics';

/** Just enough of a session for Metrics: its events and stats(). */
function session(stats: SessionStats): EngineSession {
  return Object.assign(new EventEmitter(), { stats: () => stats }) as unknown as EngineSession;
}

function sample(body: string, name: string): string | undefined {
  return body.split('\n').find((l) => l.startsWith(`${name} `))?.slice(name.length + 1);
}

t.test('ping round trips print as whole microseconds in seconds, with no float noise', async (t) => {
  const m = new Metrics('client', 'native', '0.0.0');
  // The native engine reports 138 us as 0.138 ms; 0.138 / 1000 is 0.00013800000000000002 in binary floating point.
  m.track(session({ streams: 0, bytesIn: 0, bytesOut: 0, rttMs: 138 / 1000 }));
  // The js engine measures in nanoseconds.
  m.track(session({ streams: 0, bytesIn: 0, bytesOut: 0, rttMs: 301_457 / 1e6 }));
  const body = m.render();
  t.equal(sample(body, 'tws_ping_rtt_seconds{stat="max"}'), '0.000301');
  t.equal(sample(body, 'tws_ping_rtt_seconds{stat="mean"}'), '0.00022', 'mean of 138 and 301 us, to the microsecond');
  const one = new Metrics('server', 'native', '0.0.0');
  one.track(session({ streams: 0, bytesIn: 0, bytesOut: 0, rttMs: 138 / 1000 }));
  t.equal(sample(one.render(), 'tws_ping_rtt_seconds{stat="mean"}'), '0.000138');
});

t.test('label values a peer chooses are bounded: unknown RESET and close codes are "other"', async (t) => {
  const m = new Metrics('server', 'native', '0.0.0');
  const s = session({ streams: 0, bytesIn: 0, bytesOut: 0, rttMs: 0.1 });
  m.track(s);
  for (let code = 10; code < 2010; code++) s.emit('stream-closed', { stream: code, how: `peer reset: code ${code} (x)`, bytesIn: 0, bytesOut: 0 });
  s.emit('stream-closed', { stream: 1, how: 'peer reset: connect failed (refused)', bytesIn: 0, bytesOut: 0 });
  s.emit('close', 4321);
  const body = m.render();
  t.equal(sample(body, 'tws_stream_resets_received_total{code="other"}'), '2000', '2000 unknown codes, one series');
  t.equal(sample(body, 'tws_stream_resets_received_total{code="connect_failed"}'), '1', 'a named code keeps its name');
  t.equal(sample(body, 'tws_sessions_closed_total{code="other"}'), '1', 'a private close code is "other"');
  t.equal(body.split('\n').filter((l) => l.startsWith('tws_stream_resets_received_total{')).length, 2);
});

t.test('streams are counted per tunnel, with a bounded number of tunnel labels', async (t) => {
  const m = new Metrics('client', 'native', '0.0.0');
  const s = session({ streams: 0, bytesIn: 0, bytesOut: 0 });
  m.track(s);
  s.emit('stream-closed', { stream: 1, target: 'db:22', tunnel: '-L 2222:db:22', how: 'fin', bytesIn: 10, bytesOut: 20 });
  s.emit('stream-closed', { stream: 3, target: 'db:22', tunnel: '-L 2222:db:22', how: 'fin', bytesIn: 1, bytesOut: 2 });
  s.emit('stream-closed', { stream: 5, target: 'example.com:443', tunnel: 'socks', how: 'peer reset: denied (x)', bytesIn: 0, bytesOut: 7 });
  s.emit('stream-closed', { stream: 7, target: 'h:1', how: 'fin', bytesIn: 5, bytesOut: 5 });
  let body = m.render();
  t.equal(sample(body, 'tws_tunnel_streams_closed_total{tunnel="-L 2222:db:22"}'), '2');
  t.equal(sample(body, 'tws_tunnel_bytes_total{tunnel="-L 2222:db:22",direction="in"}'), '11');
  t.equal(sample(body, 'tws_tunnel_bytes_total{tunnel="-L 2222:db:22",direction="out"}'), '22');
  t.equal(sample(body, 'tws_tunnel_streams_closed_total{tunnel="socks"}'), '1');
  t.equal(body.split('\n').filter((l) => l.startsWith('tws_tunnel_streams_closed_total{')).length, 2, 'a stream with no tunnel name has no tunnel series');
  for (let i = 0; i < 200; i++) s.emit('stream-closed', { stream: 9 + 2 * i, target: 'h:1', tunnel: `reverse ${1000 + i}`, how: 'fin', bytesIn: 1, bytesOut: 0 });
  body = m.render();
  const series = body.split('\n').filter((l) => l.startsWith('tws_tunnel_streams_closed_total{'));
  t.equal(series.length, 65, '64 names, then "other"');
  t.equal(sample(body, 'tws_tunnel_streams_closed_total{tunnel="other"}'), String(200 - 62));
});

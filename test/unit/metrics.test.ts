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

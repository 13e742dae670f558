import t from 'tap';
import { defaultProcessBudget, sessionOptions, validateSessionOptions } from '../../src/engine/options';
import { JsSession } from '../../src/engine/js/session';
import { loadNativeAddon } from '../../src/engine/native-addon';
import type { SessionOptions } from '../../src/engine/types';
import { silentLogger } from '../../src/util/log';

const good = (): SessionOptions => sessionOptions('server', { logger: silentLogger });

t.test('session options are checked at the engine boundary: a TypeError naming the option', async (t) => {
  t.doesNotThrow(() => validateSessionOptions(good()), 'the defaults pass');
  const cases: [Partial<SessionOptions>, RegExp][] = [
    [{ initialWindow: 32 * 1024 * 1024 }, /maxWindow must be an integer from 33554432/],
    [{ initialWindow: 1000 }, /initialWindow must be an integer from 65536/],
    [{ timeoutMs: 0 }, /timeoutMs/],
    [{ timeoutMs: 1.5 }, /timeoutMs/],
    [{ maxStreams: -1 }, /maxStreams/],
    [{ processBudget: 1024 }, /processBudget must be an integer from 67108864/],
    [{ firstStreamId: 2 ** 32 }, /firstStreamId/],
    [{ role: 'peer' as never }, /role/],
  ];
  for (const [bad, re] of cases) {
    const o = { ...good(), ...bad };
    t.throws(() => validateSessionOptions(o), { name: 'TypeError', message: re }, `${Object.keys(bad)[0]}: ${re}`);
    t.throws(() => new JsSession({} as never, o), TypeError, 'the js engine refuses it before touching the socket');
  }
});

t.test('the native addon refuses the same options with a TypeError', async (t) => {
  const { addon, error } = loadNativeAddon();
  if (!addon) throw new Error(`native addon did not load: ${error}`);
  const core = new (addon as unknown as { NativeEngine: new (cb: () => void) => { adopt(...a: unknown[]): unknown; stop(): void } }).NativeEngine(() => undefined);
  t.teardown(() => core.stop());
  const opts = { server: true, timeoutMs: 5000, initialWindow: 32 * 1024 * 1024, maxWindow: 16 * 1024 * 1024, maxStreams: 10, udpTimeoutMs: 1000, noUdp: false };
  t.throws(() => core.adopt(1, -1, Buffer.alloc(0), Buffer.alloc(0), opts), { name: 'TypeError', message: /maxWindow must be at least initialWindow/ });
});

t.test('the process budget defaults to a quarter of RAM within 256 MiB-2 GiB, and --buffer-budget sets it', async (t) => {
  const d = defaultProcessBudget();
  t.ok(d >= 256 * 1048576 && d <= 2048 * 1048576, `${d / 1048576} MiB`);
  t.equal(sessionOptions('client', { bufferBudget: 100, logger: silentLogger }).processBudget, 100 * 1048576);
});

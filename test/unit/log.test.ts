import t from 'tap';
import { createLogger, MAX_LINE, peerText, RateLimitedLog, safeLine } from '../../src/util/log';

t.test('every log line is one safe line: control characters, separators and bidi overrides escaped', async (t) => {
  t.equal(safeLine('a\nb\rc\td\x00e\x1bf\x7fg\x85h\u2028i\u202ej'), 'a\\nb\\rc\\td\\x00e\\x1bf\\x7fg\\x85h\\u2028i\\u202ej');
  t.equal(safeLine('plain → ünïcode ok'), 'plain → ünïcode ok', 'ordinary text is untouched');
  const long = safeLine('x'.repeat(MAX_LINE + 10));
  t.match(long, /…\(\+10 chars cut\)$/);
  const lines: string[] = [];
  const log = createLogger('debug', (l) => lines.push(l)).child('session#1');
  log.info('target evil\nFORGED line');
  t.equal(lines.length, 1);
  t.equal(lines[0]!.split('\n').length, 2, 'one line, one newline at its end');
  t.match(lines[0]!, /session#1 target evil\\nFORGED line\n$/);
});

t.test('peer strings are capped at 256 bytes on a character boundary, marked as cut', async (t) => {
  t.equal(peerText('short'), 'short');
  t.equal(peerText('é'.repeat(128)), 'é'.repeat(128), 'exactly 256 bytes is kept');
  const cut = peerText('é'.repeat(200));
  t.equal(cut, `${'é'.repeat(128)}…(+144 bytes cut)`);
  t.match(peerText(`ab${'€'.repeat(100)}`), /^ab€{84}…\(\+48 bytes cut\)$/, 'never half a character');
});

t.test('a rate-limited kind of line: a burst, then one summary with the count', async (t) => {
  const lines: string[] = [];
  const log = createLogger('info', (l) => lines.push(l));
  const limited = new RateLimitedLog(log, 'refused streams', 3, 60_000);
  for (let i = 0; i < 10; i++) limited.line('info', `refused ${i}`);
  t.equal(lines.length, 3, 'the first 3 go out');
  limited.flush();
  t.equal(lines.length, 4);
  t.match(lines[3]!, /… 7 more refused streams in the last [\d.]+ s/);
  limited.flush();
  t.equal(lines.length, 4, 'nothing more to say');
  const quiet = new RateLimitedLog(createLogger('warn', (l) => lines.push(l)), 'x', 1, 1000);
  quiet.line('info', 'below the level');
  t.equal(lines.length, 4, 'lines below the level cost nothing');
});

t.test('log lines to a stderr pipe nobody reads are dropped past 1 MiB and counted, not buffered without bound', async (t) => {
  const { spawn } = await import('node:child_process');
  const { join } = await import('node:path');
  const child = spawn(process.execPath, ['-e', `
    const { createLogger } = require(${JSON.stringify(join(__dirname, '..', '..', 'dist', 'util', 'log.js'))});
    const log = createLogger('info');
    let peak = 0;
    for (let i = 0; i < 100000; i++) { log.info('x'.repeat(200)); peak = Math.max(peak, process.stderr.writableLength); }
    console.log(JSON.stringify({ peak }));
    // The reader catches up now: the next line says how many were dropped.
    setTimeout(() => { log.info('after'); setTimeout(() => process.exit(0), 200); }, 500);
  `], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stderr.pause();  // nobody reads stderr for now
  const out = await new Promise<string>((resolve) => child.stdout.once('data', (d: Buffer) => resolve(String(d))));
  let err = '';
  child.stderr.on('data', (d: Buffer) => { err += d; });
  child.stderr.resume();
  await new Promise((r) => child.once('exit', r));
  const { peak } = JSON.parse(out) as { peak: number };
  t.ok(peak <= 1024 * 1024 + 300, `at most ${peak} bytes waited in stderr (20 MB were logged)`);
  t.match(err, /… \d+ log lines dropped: stderr was not keeping up/, 'the drop is said once the reader caught up');
});

t.test('process metrics never throw: when memoryUsage() fails (EMFILE), RSS is left out and the heap comes from V8', async (t) => {
  const { processRows } = await import('../../src/metrics/process');
  const real = process.memoryUsage;
  process.memoryUsage = (() => { throw Object.assign(new Error('EMFILE: too many open files'), { code: 'EMFILE' }); }) as unknown as typeof process.memoryUsage;
  try {
    const rows = processRows();
    const names = rows.map((r) => r[0]);
    t.notOk(names.includes('process_resident_memory_bytes'), 'no RSS row');
    t.ok(names.includes('nodejs_heap_size_used_bytes') && rows.every((r) => Number.isFinite(r[3])), 'the heap rows, all numbers');
  } finally {
    process.memoryUsage = real;
  }
});

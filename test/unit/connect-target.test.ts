import t from 'tap';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { needs } from '../helpers/tools';

const dist = join(__dirname, '..', '..', 'dist');

t.test('an OPEN whose UDP socket cannot be made (the process is out of fds) is answered RESET 2, not left unanswered',
  { skip: needs('prlimit') }, async (t) => {
    // A child under a low fd limit takes every fd it has left, then asks for a
    // udp stream: the socket fails with EMFILE and the request must still get its answer.
    const r = spawnSync('prlimit', ['--nofile=64:64', process.execPath, '-e', `
      const fs = require('node:fs');
      const { connectUdpTarget } = require(${JSON.stringify(join(dist, 'server', 'connect-target.js'))});
      const { createLogger, RateLimitedLog } = require(${JSON.stringify(join(dist, 'util', 'log.js'))});
      const log = createLogger('error', () => undefined);
      const held = [];
      try { for (;;) held.push(fs.openSync('/dev/null', 'r')); } catch (e) { if (e.code !== 'EMFILE') throw e; }
      const answer = (kind, code, reason) => { console.log(JSON.stringify({ kind, code, reason, held: held.length })); process.exit(0); };
      const req = {
        stream: 1, kind: 2, target: '127.0.0.1:53', signal: new AbortController().signal,
        accept: () => answer('accept'), acceptDatagrams: () => answer('datagrams'), reject: (code, reason) => answer('reject', code, reason), nameTunnel: () => undefined,
      };
      connectUdpTarget(req, 2000, { allow: undefined, current: () => undefined, log, refusals: new RateLimitedLog(log, 'x'), admitted: () => {}, lookups: { n: 0 } });
      setTimeout(() => answer('none'), 3000);
    `], { encoding: 'utf8', timeout: 20_000 });
    const out = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as { kind?: string; code?: number; reason?: string; held?: number };
    t.ok((out.held ?? 0) > 0, `the child held every fd it had left (${out.held})`);
    t.equal(out.kind, 'reject', `the request was answered (${out.kind})`);
    t.equal(out.code, 2, 'RESET 2');
    t.match(out.reason ?? '', /EMFILE/, `saying why: ${out.reason}`);
  });

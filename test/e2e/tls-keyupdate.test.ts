/**
 * A TLS 1.3 peer that sends KeyUpdate(update_requested) records and never
 * reads makes OpenSSL write an answer for each, below anything a WebSocket
 * or HTTP layer can see, before any password is checked. The server must
 * not hold those answers without bound. With Node's TLS (the js engine)
 * the connection is dropped (src/net/tls-backlog.ts), tested here with a
 * small program built against the system's OpenSSL
 * (native/test/keyupdate_peer.cc). The native engine stops reading such a
 * peer, which only shows once the kernel's buffers both ways are full (tens
 * of MB on some machines): that is tested over small socketpairs in
 * test/native/tls.test.ts.
 */
import t from 'tap';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { makeCa, makeCert } from '../../bench/certs';
import { rssMiB } from '../helpers/net';
import { engines, runCli } from '../helpers/procs';
import { fileNeeds, skipLine } from '../helpers/tools';

fileNeeds(t, 'openssl');
const noHeaders = !existsSync('/usr/include/openssl/ssl.h') && skipLine('OpenSSL headers', 'libssl-dev');
const dir = t.testdir({});
const ca = makeCa(dir, 'ku-ca');
const leaf = makeCert(dir, ca, 'leaf', ['localhost', '127.0.0.1']);

function peerProgram(): string {
  const bin = join(dir, 'keyupdate_peer');
  if (!existsSync(bin)) {
    execFileSync('g++', ['-std=c++17', '-O2', join(__dirname, '..', '..', 'native', 'test', 'keyupdate_peer.cc'), '-o', bin, '-lssl', '-lcrypto'], { stdio: 'pipe' });
  }
  return bin;
}

/** Runs the peer against `port` for up to `seconds`: how it ended and how many KeyUpdates it got out. */
function flood(port: number, seconds: number): Promise<{ updates: number; ended: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(peerProgram(), [String(port), String(seconds)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), (seconds + 10) * 1000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(out) as { updates: number; ended: string });
      } catch {
        reject(new Error(`keyupdate_peer exited ${code}: ${out}`));
      }
    });
  });
}

const js = engines().includes('js') ? false : 'the js engine is not tested in this pass';
t.test('[js] a TLS peer flooding KeyUpdates and never reading, before its upgrade, is dropped', { skip: noHeaders || js }, async (t) => {
  // The answers reach the bound only once the kernel's buffers both ways are full (over 4 MB here), which takes a
  // slow machine more than the 9 s a connection may wait for its request; that timeout, lifted here, must not be
  // what ends it. The peer stops as soon as it is dropped.
  const server = await runCli(['server', '-l', '127.0.0.1:0', '--engine', 'js', '--tls-cert', leaf.cert, '--tls-key', leaf.key],
    { TWS_TEST_PRE_UPGRADE_MS: '120000' });
  t.teardown(() => server.stop('SIGKILL'));
  const before = rssMiB(server.proc.pid!);
  const result = await flood(server.port, 60);
  const grown = rssMiB(server.proc.pid!) - before;
  t.equal(result.ended, 'closed', `the server dropped the peer (after ${result.updates} KeyUpdates)`);
  t.match(server.logs(), /dropped: \d+ bytes of TLS answers it does not read/, 'and said why');
  t.ok(grown < 40, `server RSS grew ${grown.toFixed(0)} MiB`);
});

/**
 * The prebuilt addons npm pack ships (scripts/prebuild.js: Zig, glibc 2.28):
 * what each needs from the system and exports, and that each runs where a
 * user's Node would pick it: the x64 one in this Node, the arm64 one in
 * Debian's arm64 Node under qemu-user. node-gyp-build picks the binary, as
 * in an installed package (a tree without build/).
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { echoServer, roundTrip, sha256 } from '../helpers/net';
import { runCli } from '../helpers/procs';
import type { Test } from 'tap';
import { needs, needsZig } from '../helpers/tools';

// eslint-disable-next-line @typescript-eslint/no-var-requires
const prebuilds = require('../../scripts/prebuild.js') as { TARGETS: Record<string, string>; FILE: string };

// The sanitizer pass (scripts/test-asan.sh) names its own build in TWS_NATIVE_ADDON, which would win over the prebuilds.
if (process.env.TWS_NATIVE_ADDON) {
  t.plan(0, 'TWS_NATIVE_ADDON picks the addon: the prebuilds are tested in the main pass');
  process.exit(0);
}

const root = join(__dirname, '..', '..');
const CLI = ['dist', 'cli', 'main.js'];
const ENTRY_POINTS = ['napi_register_module_v1', 'node_api_module_get_api_version_v1'];
const noZig = needsZig();
// The file's own timeout (package.json's tap.timeout) would cut a build that Zig's cache does not have yet: its libc++ and glibc
// stubs for two targets take minutes on 2 cores, and package.test.ts runs the same build meanwhile.
t.setTimeout(1_800_000);
const file = (dir: string): string => join(root, 'prebuilds', dir, prebuilds.FILE);
const run = (cmd: string, args: string[]): string => spawnSync(cmd, args, { encoding: 'utf8' }).stdout;

/** Debian's arm64 Node, unpacked by .ci/run (nodejs:arm64 cannot be installed beside an amd64 nodejs), with its libnode. */
const ARM_NODE = process.env.TWS_ARM64_NODE ?? '/opt/nodejs-arm64/usr/bin/node';
const armEnv = { LD_LIBRARY_PATH: join(dirname(dirname(ARM_NODE)), 'lib', 'aarch64-linux-gnu') };
// qemu-user drops NODE_OPTIONS for the arm64 Node: tap sets it in every child, for hooks that need a newer Node than 18.
const QEMU = ['qemu-aarch64-static', '-U', 'NODE_OPTIONS'];
/** The arm64 Node's version, or the skip line: qemu-user and the arm64 Node with its libraries must be there. */
function armNode(): { version?: string; skip: string | false } {
  const noQemu = needs('qemu-aarch64-static');
  if (noQemu) return { skip: noQemu };
  const r = spawnSync(QEMU[0]!, [...QEMU.slice(1), ARM_NODE, '-p', 'process.arch + " " + process.version'], {
    encoding: 'utf8', timeout: 180_000, env: { ...process.env, ...armEnv },
  });
  const [arch, version] = (r.stdout ?? '').trim().split(' ');
  if (arch === 'arm64') return { version, skip: false };
  return { skip: `needs an arm64 Node at ${ARM_NODE} (Debian package nodejs:arm64 and its libraries, unpacked as .ci/run does)` };
}

/** What an installed package has (dist, prebuilds, no build/): node-gyp-build picks from prebuilds/. */
function packageTree(tree: string, withPrebuilds = true): string {
  mkdirSync(tree, { recursive: true });
  for (const f of ['package.json', 'dist', ...(withPrebuilds ? ['prebuilds'] : [])]) cpSync(join(root, f), join(tree, f), { recursive: true });
  symlinkSync(join(root, 'node_modules'), join(tree, 'node_modules'));
  return tree;
}

t.test('prebuild.js builds linux-x64 and linux-arm64 for glibc 2.28, without libstdc++, exporting N-API only', {
  timeout: 1_200_000, skip: noZig || needs('objdump', 'readelf', 'nm'),
}, async (t) => {
  // Up to date (another test or npm pack built them) or built now: one line either way.
  const r = spawnSync(process.execPath, [join(root, 'scripts', 'prebuild.js')], { cwd: root, encoding: 'utf8', timeout: 1_100_000 });
  t.equal(r.status, 0, r.stderr);
  t.match(r.stderr, /^prebuild: [^\n]*prebuilds\/linux-x64\/[^\n]*\(Zig [\d.]+, glibc >= 2\.28, N-API 8[^\n]*\)\n$/, 'one line');
  const machine = { 'linux-x64': 'X86-64', 'linux-arm64': 'AArch64' } as Record<string, string>;
  for (const dir of Object.keys(prebuilds.TARGETS)) {
    const so = file(dir);
    t.match(run('readelf', ['-h', so]), new RegExp(`Machine:\\s+.*${machine[dir]}`), `${dir}: the machine is ${machine[dir]}`);
    const versions = [...new Set(run('objdump', ['-T', so]).match(/\b[A-Z]+_\d+(\.\d+)+\b/g) ?? [])];
    const glibc = versions.filter((v) => v.startsWith('GLIBC_'));
    t.ok(glibc.length > 0, `${dir}: needs ${glibc.join(' ')}`);
    const newer = glibc.filter((v) => {
      const [major, minor] = v.slice('GLIBC_'.length).split('.').map(Number);
      return major! > 2 || (major === 2 && minor! > 28);
    });
    t.same(newer, [], `${dir}: no GLIBC_ version above 2.28`);
    t.same(versions.filter((v) => !v.startsWith('GLIBC_')), [], `${dir}: no GLIBCXX_ or CXXABI_ versions`);
    const needed = [...run('readelf', ['-d', so]).matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]!);
    t.same(needed.filter((lib) => !/^(libc|libm|libpthread|libdl|ld-linux-[\w-]+)\.so\.\d$/.test(lib)), [],
      `${dir}: needs only glibc's libraries (${needed.join(' ')})`);
    const exported = run('nm', ['-D', '--defined-only', so]).trim().split('\n').map((l) => l.split(' ').pop()).sort();
    t.same(exported, ENTRY_POINTS, `${dir}: exports N-API's entry points only`);
  }
});

t.test('the local build exports N-API\'s entry points only (hidden visibility), and wins over the prebuilds', { skip: needs('nm') }, async (t) => {
  const exported = run('nm', ['-D', '--defined-only', join(root, 'build', 'Release', 'tws_native.node')]).trim().split('\n');
  t.same(exported.map((l) => l.split(' ').pop()).sort(), ENTRY_POINTS, `${exported.length} exported`);
  const version = spawnSync(process.execPath, [join(root, ...CLI), '--version'], { encoding: 'utf8', env: { ...process.env, TWS_ENGINE: '' } });
  t.match(version.stdout, /\(engine: native, napi 8, local build, linux-/, 'the dev tree runs its build/Release');
});

t.test('where the addon cannot load, the one warning says why and what to do', async (t) => {
  const remedy = /; install a C\+\+ compiler and run npm rebuild tws-native \(-g for a global install\)$/;
  const dir = t.testdir({});
  const none = packageTree(join(dir, 'none'), false);
  const version = spawnSync(process.execPath, [join(none, ...CLI), '--version'], { encoding: 'utf8', env: { ...process.env, TWS_ENGINE: '' } });
  t.match(version.stdout, /\(engine: js; native unavailable: no prebuilt addon for linux-\w+ and no local build; install a C\+\+ compiler/,
    'no prebuild for this platform: --version says so');
  // A prebuild that is there but does not load (what an older glibc makes of one that needs a newer).
  const broken = packageTree(join(dir, 'broken'), false);
  mkdirSync(join(broken, 'prebuilds', `linux-${process.arch}`), { recursive: true });
  writeFileSync(join(broken, 'prebuilds', `linux-${process.arch}`, prebuilds.FILE), 'not a shared object');
  const server = await runCli(['server', '-l', '127.0.0.1:0'], {}, join(broken, ...CLI), [], { readyMs: 60_000 });
  t.teardown(() => server.stop('SIGKILL'));
  const warnings = server.logs().split('\n').filter((l) => /native engine unavailable/.test(l));
  t.equal(warnings.length, 1, 'one warning line');
  t.match(warnings[0], new RegExp(`using the js engine: the prebuild linux-${process.arch} does not load: .*${remedy.source}`), warnings[0] ?? server.logs());
  t.match(server.logs(), /\(engine js\)/, 'and the server runs the js engine');
});

/** Server and client, `data` through them to an echo server and back; sha256 compared. */
async function tunnelThrough(t: Test, server: Parameters<typeof runCli>, client: (serverPort: number, target: string) => Parameters<typeof runCli>,
  bytes: number): Promise<void> {
  const echo = await echoServer();
  t.teardown(() => echo.close());
  const s = await runCli(...server);
  t.teardown(() => s.stop('SIGKILL'));
  const c = await runCli(...client(s.port, echo.addr));
  t.teardown(() => c.stop('SIGKILL'));
  await c.waitLog(/up → /, 180_000);
  t.match(s.logs(), /\(engine native\)/, 'the server runs the native engine');
  t.match(c.logs(), /\(engine native\)/, 'the client runs the native engine');
  const data = randomBytes(bytes);
  t.equal(sha256(await roundTrip(c.port, data, 300_000)), sha256(data), `${bytes >> 20} MiB through the tunnel and back arrive intact`);
}

t.test('the x64 prebuild is what an installed package loads here, and it tunnels', {
  timeout: 300_000, skip: noZig || process.arch !== 'x64',
}, async (t) => {
  const tree = packageTree(t.testdir({}));
  const version = spawnSync(process.execPath, [join(tree, ...CLI), '--version'], { encoding: 'utf8', env: { ...process.env, TWS_ENGINE: '' } });
  t.match(version.stdout, /\(engine: native, napi 8, prebuild linux-x64\)/, version.stdout || version.stderr);
  const cli = join(tree, ...CLI);
  await tunnelThrough(t, [['server', '-l', '127.0.0.1:0', '--engine', 'native'], {}, cli],
    (port, target) => [['client', '-l', '127.0.0.1:0', '-s', `ws://127.0.0.1:${port}/`, '-r', target, '-c', '1', '--engine', 'native'], {}, cli], 4 << 20);
});

const arm = noZig ? { skip: noZig } : armNode();
t.test(`the arm64 prebuild loads in Debian's arm64 Node ${arm.version ?? ''} under qemu-user, and tunnels to an x64 client`, {
  timeout: 900_000, skip: arm.skip,
}, async (t) => {
  const tree = packageTree(t.testdir({}));
  const cli = join(tree, ...CLI);
  const version = spawnSync(QEMU[0]!, [...QEMU.slice(1), ARM_NODE, cli, '--version'], {
    encoding: 'utf8', timeout: 300_000, env: { ...process.env, ...armEnv, TWS_ENGINE: '' },
  });
  t.match(version.stdout, /\(engine: native, napi 8, prebuild linux-arm64\)/, version.stdout || version.stderr);
  // The arm64 server unmasks what the client sent and sends the echo back; the client is this machine's x64 prebuild.
  await tunnelThrough(t, [['server', '-l', '127.0.0.1:0', '--engine', 'native'], armEnv, cli, QEMU, { node: ARM_NODE, readyMs: 300_000 }],
    (port, target) => [['client', '-l', '127.0.0.1:0', '-s', `ws://127.0.0.1:${port}/`, '-r', target, '-c', '1', '--engine', 'native'], {}, cli], 4 << 20);
});

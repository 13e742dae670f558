import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, readdirSync, readFileSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { echoServer, roundTrip, sha256 } from '../helpers/net';
import { runCli } from '../helpers/procs';
import { needsZig } from '../helpers/tools';

const root = join(__dirname, '..', '..');
const npm = process.env.npm_execpath;
const noZig = needsZig();
// The file's own timeout (package.json's tap.timeout) would cut the prebuild below where Zig's cache is cold (see prebuild.test.ts).
t.setTimeout(1_800_000);

t.test('npm pack ships what users need, and installs without scripts or a compiler', { timeout: 1_200_000, skip: noZig }, async (t) => {
  const dir = t.testdir({ pack: {}, prefix: {}, tree: {} });
  // What prepack does, minus rebuilding dist/ (the suite's build already did): in the real tree, where the
  // binaries stay for the next run (and for test/e2e/prebuild.test.ts) while their sources do not change.
  const prebuild = spawnSync(process.execPath, [join(root, 'scripts', 'prebuild.js')], { cwd: root, encoding: 'utf8', timeout: 1_100_000 });
  t.equal(prebuild.status, 0, 'the prebuild succeeds');
  t.equal(prebuild.stdout, '', "nothing on stdout (npm pack --json's)");
  t.match(prebuild.stderr, /^prebuild: [^\n]*prebuilds\/linux-arm64\/tws-native\.glibc\.node[^\n]*\(Zig [^\n]*\)\n$/, 'one line, not the build log');
  // Pack from a copy without build/: npm pack takes what `files` lists.
  const tree = join(dir, 'tree');
  for (const f of ['package.json', 'README.md', 'LICENSE', 'binding.gyp', 'CMakeLists.txt', 'dist', 'native', 'scripts', 'prebuilds', 'example', 'docs']) {
    cpSync(join(root, f), join(tree, f), { recursive: true });
  }
  symlinkSync(join(root, 'node_modules'), join(tree, 'node_modules'));
  const npmCmd = (args: string[], cwd = tree): string => (npm
    ? execFileSync(process.execPath, [npm, ...args], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 })
    : execFileSync('npm', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 }));
  const packed = JSON.parse(npmCmd(['pack', '--ignore-scripts', '--json', '--pack-destination', join(dir, 'pack')])) as { filename: string; files: { path: string }[] }[];
  const files = packed[0]!.files.map((f) => f.path);
  for (const need of ['dist/cli/main.js', 'dist/index.d.ts', 'prebuilds/linux-x64/tws-native.glibc.node', 'prebuilds/linux-arm64/tws-native.glibc.node',
    'README.md', 'LICENSE', 'example/server.yaml', 'example/tws-server@.service', 'binding.gyp', 'native/addon.cc', 'native/exports.map']) {
    t.ok(files.includes(need), `ships ${need}`);
  }
  t.same(files.filter((f) => /^(test|bench|dist\/bench|\.ci)\//.test(f) || f.endsWith('.test.ts')), [], 'no tests, bench or CI files');

  const tgz = join(dir, 'pack', readdirSync(join(dir, 'pack')).find((f) => f.endsWith('.tgz'))!);
  npmCmd(['install', '-g', '--prefix', join(dir, 'prefix'), '--ignore-scripts', '--no-audit', '--no-fund', tgz], dir);
  const bin = join(dir, 'prefix', 'bin', 'tws');
  t.ok(existsSync(bin), 'tws is on the installed PATH');
  // Without the sanitizer pass's TWS_NATIVE_ADDON, which would win over the prebuild.
  const version = execFileSync(bin, ['--version'], { encoding: 'utf8', env: { ...process.env, PATH: '/usr/bin:/bin', TWS_NATIVE_ADDON: '' } });
  t.match(version, /^tws-native \d+\.\d+\.\d+ \(engine: native, napi 8, prebuild linux-x64\)/,
    'the prebuilt addon loads without any build step');

  // The programmatic API works from the installed package, with its types.
  const pkgDir = join(dir, 'prefix', 'lib', 'node_modules', 'tws-native');
  const api = execFileSync(process.execPath, [join(pkgDir, 'example', 'api.js')], { encoding: 'utf8', timeout: 30_000, stdio: ['ignore', 'pipe', 'ignore'] });
  t.match(api, /^echoed: hello through the tunnel$/m, 'example/api.js runs against the installed package');
  t.match(readFileSync(join(pkgDir, 'dist', 'index.d.ts'), 'utf8'), /createServer[\s\S]*createClient/, 'type declarations export createServer and createClient');

  // And the installed tws actually tunnels.
  const main = realpathSync(bin);
  const echo = await echoServer();
  const server = await runCli(['server', '-l', '127.0.0.1:0'], {}, main);
  const client = await runCli(['client', '-l', '127.0.0.1:0', '-s', `ws://127.0.0.1:${server.port}/`, '-r', echo.addr], {}, main);
  t.teardown(async () => { await client.stop('SIGKILL'); await server.stop('SIGKILL'); await echo.close(); });
  const data = randomBytes(500_000);
  t.equal(sha256(await roundTrip(client.port, data)), sha256(data), 'data through the installed tws arrives intact');
});

t.test('a failing prebuild shows the whole build log and exits 1', { skip: noZig }, async (t) => {
  const tree = t.testdir({
    'binding.gyp': '{ "targets": [ { "target_name": "tws_native", "sources": [ "broken.cc" ] } ] }',
    'broken.cc': '#error this build is meant to fail\n',
  });
  cpSync(join(root, 'scripts'), join(tree, 'scripts'), { recursive: true });
  writeFileSync(join(tree, 'package.json'), JSON.stringify({ name: 'tws-native', version: '0.0.0' }));
  symlinkSync(join(root, 'node_modules'), join(tree, 'node_modules'));
  const r = spawnSync(process.execPath, [join(tree, 'scripts', 'prebuild.js')], { cwd: tree, encoding: 'utf8', timeout: 120_000 });
  t.equal(r.status, 1, 'exit 1');
  t.match(r.stderr, /broken\.cc.*this build is meant to fail/, "the log has the compiler's error");
  t.ok(r.stderr.split('\n').length > 5, 'the whole log, not one line');
  t.match(r.stderr, /prebuild: failed \(.*\); the log is above\n$/);
});

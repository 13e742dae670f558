/**
 * System tools some tests need beyond Node and a C++ compiler. Where one is
 * missing, the test skips with one line naming the Debian package:
 *
 *     needs nginx (Debian package nginx)
 *
 * (or the PyPI package, for the one tool Debian does not have: Zig),
 * so `npm test` passes on a fresh machine, and .ci/run, which installs every
 * package, fails when it finds such a line (CI must run everything).
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, readdirSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { Test } from 'tap';

/** Each tool a test runs, and the Debian package that provides it. */
const PACKAGES = {
  cmake: 'cmake',
  curl: 'curl',
  'clang++': 'clang',
  ip: 'iproute2',
  iperf3: 'iperf3',
  mount: 'mount',
  nginx: 'nginx',
  nm: 'binutils',
  objdump: 'binutils',
  openssl: 'openssl',
  pgrep: 'procps',
  prlimit: 'util-linux',
  python3: 'python3',
  'qemu-aarch64-static': 'qemu-user-static',
  readelf: 'binutils',
  'rsvg-convert': 'librsvg2-bin',
  ssh: 'openssh-client',
  'ssh-keygen': 'openssh-client',
  sshd: 'openssh-server',
  'systemd-analyze': 'systemd',
  tc: 'iproute2',
  unshare: 'util-linux',
} as const;

export type Tool = keyof typeof PACKAGES;

/** Whether `cmd` is an executable file in a directory of $PATH (what a spawn of it would find). */
export function onPath(cmd: string): boolean {
  return (process.env.PATH ?? '').split(delimiter).filter(Boolean).some((dir) => {
    try {
      accessSync(join(dir, cmd), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** The skip line for a missing `what` from Debian package `pkg`: the form .ci/run looks for. */
export function skipLine(what: string, pkg: string): string {
  return `needs ${what} (Debian package ${pkg})`;
}

/** For a test's `{ skip }` option: the line naming the first missing tool, or false when all are there. */
export function needs(...tools: Tool[]): string | false {
  const missing = tools.find((tool) => !onPath(tool));
  return missing ? skipLine(missing, PACKAGES[missing]) : false;
}

/**
 * Skips the whole test file, with one line, when a tool is missing: for files
 * whose top level already uses it (certificates made with openssl, say).
 * Call it before that code; it ends the process at once.
 */
export function fileNeeds(t: Test, ...tools: Tool[]): void {
  const why = needs(...tools);
  if (!why) return;
  t.plan(0, why);
  process.exit(0);
}

/**
 * clang++ with its libFuzzer runtime, or the line naming what is missing:
 * Debian ships the runtime apart from clang, in libclang-rt-<major>-dev.
 */
export function needsLibFuzzer(): string | false {
  const noClang = needs('clang++');
  if (noClang) return noClang;
  const dir = spawnSync('clang++', ['--print-runtime-dir'], { encoding: 'utf8' }).stdout.trim();
  let files: string[] = [];
  try {
    files = readdirSync(dir);
  } catch {
    // no runtime directory at all: the runtime package is missing
  }
  if (files.some((f) => /^libclang_rt\.fuzzer(-[\w]+)?\.a$/.test(f))) return false;
  const major = /clang version (\d+)/.exec(spawnSync('clang++', ['--version'], { encoding: 'utf8' }).stdout)?.[1] ?? 'N';
  return skipLine("clang's libFuzzer runtime", `libclang-rt-${major}-dev`);
}

/**
 * The environment for a system tool a test runs (curl, ssh): ours without
 * LD_PRELOAD, which the sanitizer pass (scripts/test-asan.sh) sets for the
 * tws processes and which an uninstrumented tool must not load.
 */
export function toolEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.LD_PRELOAD;
  return env;
}

/**
 * Zig at the version scripts/prebuild.js pins (the prebuilds' cross
 * compiler), or the line naming its PyPI package: Debian has no Zig.
 */
export function needsZig(): string | false {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const { ZIG_VERSION, findZig } = require('../../scripts/prebuild.js') as { ZIG_VERSION: string; findZig(): { zig?: string[] } };
  return findZig().zig ? false : `needs zig ${ZIG_VERSION} (PyPI package ziglang==${ZIG_VERSION})`;
}

import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const root = join(__dirname, '..', '..');

/** The addon's C++ sources as binding.gyp lists them (CMakeLists.txt lists the same: test/native/build.test.ts). */
export function addonSources(): string[] {
  const text = readFileSync(join(root, 'binding.gyp'), 'utf8').replace(/^\s*#.*$/gm, '');
  const gyp = JSON.parse(text) as { targets: { sources: string[] }[] };
  return gyp.targets[0]?.sources.slice() ?? [];
}

/**
 * The sources of the engine without the N-API binding and OpenSSL (absolute
 * paths): what a native test or fuzz harness links to drive a real Engine.
 */
export function engineSources(): string[] {
  return addonSources().filter((s) => !/addon\.cc$|tls_wire\.cc$/.test(s)).map((s) => join(root, s));
}

/** The engine with its TLS (absolute paths), for a test built against the system's OpenSSL (libssl-dev). */
export function tlsEngineSources(): string[] {
  return addonSources().filter((s) => !/addon\.cc$/.test(s)).map((s) => join(root, s));
}

/** The sans-I/O mux core alone (absolute paths), for its unit tests and fuzzer. */
export function muxSources(): string[] {
  return addonSources().filter((s) => s.startsWith('native/core/')).map((s) => join(root, s));
}

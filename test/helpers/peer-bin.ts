/**
 * Reference binaries of other tunnels (../shared/peers/README.md) for
 * interop tests and the bench's --peer test: found through an environment
 * variable, then ../shared/peers/ beside the repository, then
 * /work/shared/peers/ (a clone elsewhere, e.g. /tmp/ci). Never shipped.
 */
import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';

const ROOT = join(__dirname, '..', '..');

/** Where a test looks for peer `name`, in order. */
export function peerPlaces(env: string, name: string): string[] {
  return [process.env[env] ?? '', join(ROOT, '..', 'shared', 'peers', name), join('/work/shared/peers', name)].filter(Boolean);
}

/** The first executable one, or undefined. */
export function peerBin(env: string, name: string): string | undefined {
  return peerPlaces(env, name).find((p) => {
    try {
      accessSync(p, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** The one-line reason a test that needs peer `name` skips, or false when it is there. */
export function needsPeer(env: string, name: string): string | false {
  return peerBin(env, name) ? false : `${name} binary not found (${env}, ../shared/peers/${name}, /work/shared/peers/${name})`;
}

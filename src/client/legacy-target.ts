/**
 * The TARGET a tws-rust session names: tws-rust parses it as a socket
 * address, so an IP literal, IPv6 unbracketed. A name in the client's -r is
 * resolved here, at each connect, within `timeoutMs`.
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { parseHostPort } from '../util/address';
import { UpgradeError } from './raw-upgrade';

/** `remote` (`host:port`) as tws-rust's `ip:port`; rejects with an UpgradeError when it cannot be resolved in time. */
export async function legacyTarget(remote: string, timeoutMs: number): Promise<string> {
  const hp = parseHostPort(remote);
  if (typeof hp === 'string') throw new UpgradeError(`bad remote ${remote}: ${hp}`);
  const bare = hp.host.replace(/^\[|\]$/g, '');
  if (isIP(bare)) return `${bare}:${hp.port}`;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new UpgradeError(`resolving ${bare} took over ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    const { address } = await Promise.race([lookup(bare), late]);
    return `${address}:${hp.port}`;
  } catch (err) {
    if (err instanceof UpgradeError) throw err;
    throw new UpgradeError(`cannot resolve ${bare} for tws-rust's TARGET: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  } finally {
    clearTimeout(timer);
  }
}

/** Reads a password from a file: its first line, which must not be empty. */
import { readFileSync } from 'node:fs';
import { TwsError } from './errors';

/** `prefix` says where the file name came from in the error (e.g. a users file entry). */
export function readPasswordFile(file: string, prefix = ''): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new TwsError('TWS_ERR_CONFIG', `${prefix}cannot read password file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const line = text.split(/\r?\n/)[0] ?? '';
  if (line.length === 0) throw new TwsError('TWS_ERR_CONFIG', `${prefix}password file ${file} is empty`);
  return line;
}

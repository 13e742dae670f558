/**
 * The SOCKS listener's logins (RFC 1929), from `--socks-auth FILE`: one
 * `user:password` a line (the password is the rest of the line, colons and
 * all); blank lines and lines starting with `#` are skipped. Passwords are
 * compared in constant time and never logged.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fail } from '../../util/errors';

/** RFC 1929 carries at most 255 bytes of each. */
const MAX_FIELD = 255;

const digest = (b: Buffer | string): Buffer => createHash('sha256').update(b).digest();

export class SocksLogins {
  /** User name → sha256 of the password: equal-length buffers for timingSafeEqual. */
  private constructor(private readonly users: ReadonlyMap<string, Buffer>) {}

  /** Reads the file; any unusable line is a TWS_ERR_CONFIG naming its number (never its password). */
  static fromFile(file: string): SocksLogins {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      fail('TWS_ERR_CONFIG', `cannot read socks auth file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    return SocksLogins.parse(text, file);
  }

  static parse(text: string, file: string): SocksLogins {
    const users = new Map<string, Buffer>();
    text.split(/\r?\n/).forEach((line, i) => {
      if (line.trim() === '' || line.trimStart().startsWith('#')) return;
      const where = `socks auth file ${file} line ${i + 1}`;
      const colon = line.indexOf(':');
      if (colon <= 0 || colon === line.length - 1) fail('TWS_ERR_CONFIG', `${where}: expected user:password`);
      const user = line.slice(0, colon);
      const pass = line.slice(colon + 1);
      if (Buffer.byteLength(user) > MAX_FIELD || Buffer.byteLength(pass) > MAX_FIELD) {
        fail('TWS_ERR_CONFIG', `${where}: user name and password may have at most ${MAX_FIELD} bytes each (RFC 1929)`);
      }
      if (users.has(user)) fail('TWS_ERR_CONFIG', `${where}: user ${JSON.stringify(user)} is given twice`);
      users.set(user, digest(pass));
    });
    if (users.size === 0) fail('TWS_ERR_CONFIG', `socks auth file ${file} has no user:password line`);
    return new SocksLogins(users);
  }

  /** Whether `user` is one of the file's (for the login throttle's bookkeeping only, never for an answer). */
  has(user: Buffer): boolean {
    return this.users.has(user.toString('utf8'));
  }

  /** Whether `user` exists and `pass` is its password; as slow for an unknown user as for a wrong password. */
  check(user: Buffer, pass: Buffer): boolean {
    const want = this.users.get(user.toString('utf8'));
    const ok = timingSafeEqual(want ?? digest(''), digest(pass));
    return want !== undefined && ok;
  }
}

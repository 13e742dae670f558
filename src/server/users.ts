/**
 * `--users FILE`: per-user passwords and allow-lists. The file is a YAML
 * mapping of user name to settings:
 *
 *     alice:
 *       passwd_file: /etc/tws/alice.passwd   # or passwd: ...
 *       allow: ["10.0.0.0/8:22", "db.internal:5432"]
 *       allow_reverse: ["127.0.0.1:8000-8099"]   # reverse tunnels (-R) alice may open
 *     bob:
 *       passwd: another long secret          # no allow: the server's --allow applies
 *
 * Clients name themselves with `--user`. SIGHUP reloads the file.
 */
import { readFileSync } from 'node:fs';
import * as yaml from 'js-yaml';
import { fail } from '../util/errors';
import { readPasswordFile } from '../util/password-file';
import { AllowList, parseAllowRules } from '../policy/allow-list';

export interface User {
  name: string;
  passwd: string;
  /** The user's own rules; undefined = the server's --allow. */
  allow?: AllowList;
  /** Where the user may open reverse tunnels; undefined = the server's --allow-reverse. */
  allowReverse?: AllowList;
}

const NAME = /^[^\s\x00-\x1f\x7f]{1,128}$/;


/** Reads and validates a users file; every error names the file, the user and the key. */
export function loadUsers(file: string): Map<string, User> {
  let doc: unknown;
  try {
    doc = yaml.load(readFileSync(file, 'utf8'), { filename: file });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    fail('TWS_ERR_CONFIG', e.code ? `cannot read users file ${file}: ${e.code}` : `users file ${file} is not valid YAML: ${e.message.split('\n')[0]}`);
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) fail('TWS_ERR_CONFIG', `users file ${file}: expected a mapping of user names to settings`);
  const users = new Map<string, User>();
  for (const [name, raw] of Object.entries(doc as Record<string, unknown>)) {
    const where = `users file ${file}, user "${name}"`;
    if (!NAME.test(name)) fail('TWS_ERR_CONFIG', `${where}: names are 1-128 characters without spaces or control characters`);
    if (!raw || typeof raw !== 'object' || Array.isArray(raw)) fail('TWS_ERR_CONFIG', `${where}: expected passwd or passwd_file, and optionally allow`);
    const r = raw as Record<string, unknown>;
    for (const key of Object.keys(r)) {
      if (!['passwd', 'passwd_file', 'allow', 'allow_reverse'].includes(key)) {
        fail('TWS_ERR_CONFIG', `${where}: unknown key "${key}" (known: passwd, passwd_file, allow, allow_reverse)`);
      }
    }
    if ((r.passwd === undefined) === (r.passwd_file === undefined)) fail('TWS_ERR_CONFIG', `${where}: give exactly one of passwd and passwd_file`);
    let passwd: string;
    if (r.passwd !== undefined) {
      if ((typeof r.passwd !== 'string' && typeof r.passwd !== 'number') || String(r.passwd) === '') fail('TWS_ERR_CONFIG', `${where}: passwd must be a non-empty string`);
      passwd = String(r.passwd);
    } else {
      if (typeof r.passwd_file !== 'string') fail('TWS_ERR_CONFIG', `${where}: passwd_file must be a file name`);
      passwd = readPasswordFile(r.passwd_file, `${where}: `);
    }
    const allow = r.allow === undefined ? undefined : new AllowList(parseAllowRules(r.allow, `${where}, allow`));
    const allowReverse = r.allow_reverse === undefined ? undefined : new AllowList(parseAllowRules(r.allow_reverse, `${where}, allow_reverse`));
    users.set(name, { name, passwd, allow, allowReverse });
  }
  return users;
}

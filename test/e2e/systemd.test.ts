import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { needs } from '../helpers/tools';

const example = join(__dirname, '..', '..', 'example');

for (const unit of ['tws-server@.service', 'tws-client@.service']) {
  t.test(`${unit}: reads /etc/tws/%i.yaml, hardened, restarts on failure`, async (t) => {
    const text = readFileSync(join(example, unit), 'utf8');
    t.match(text, /^LoadCredential=config:\/etc\/tws\/%i\.yaml$/m);
    t.match(text, /^ExecStart=.*tws (server|client) --config \$\{CREDENTIALS_DIRECTORY\}\/config$/m);
    for (const line of ['DynamicUser=yes', 'NoNewPrivileges=yes', 'ProtectSystem=strict', 'Restart=on-failure', 'KillSignal=SIGTERM']) {
      t.match(text, new RegExp(`^${line}$`, 'm'), line);
    }
  });

  t.test(`${unit}: systemd-analyze verify finds nothing`, { skip: needs('systemd-analyze') }, async (t) => {
    const dir = t.testdir({ [unit]: readFileSync(join(example, unit), 'utf8') });
    const r = spawnSync('systemd-analyze', ['verify', join(dir, unit)], { encoding: 'utf8', timeout: 60_000 });
    t.equal(r.status, 0, 'exit 0');
    t.equal(r.stderr.trim(), '', 'no warnings (an unknown or misspelt key would be one)');
  });
}

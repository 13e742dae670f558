/**
 * The `tws` command line: flags → partial config. No tunnel logic here;
 * run.ts starts the server or client from the resolved config.
 */
import { Command, Option } from 'commander';
import { readConfigFile, resolveConfig, Layer } from '../config/load';
import { defaultFor, helpFor, Mode, settingsFor } from '../config/schema';
import { ENGINE_CHOICES, engineSummary } from '../engine/select';
import { errorLine } from '../util/errors';
import { clientExamples, serverExamples, topExamples } from './examples';
import { runClient, runServer } from './run';

// eslint-disable-next-line @typescript-eslint/no-var-requires
const VERSION: string = require('../../package.json').version;

/** Flags that, given before the subcommand, are meant for it: tws-rust's `-v server`, and `-h server`. */
const FOR_SUBCOMMAND = new Set(['-v', '-h', '--help']);

/**
 * tws-rust spells some long flags with underscores, and takes -v before the
 * subcommand; `tws -h server` asks for the server's help; `tws -v` alone
 * (no subcommand to be verbose about) asks for the version.
 */
export function normalizeArgv(args: string[]): string[] {
  const renamed = args.map((a) => a.replace(/^--(retry_timeout|udp_timeout|no_udp|passwd_file|log_level|connect_timeout|drain_timeout)(?==|$)/,
    (_m, name: string) => `--${name.replace(/_/g, '-')}`));
  const sub = renamed.findIndex((a) => a === 'server' || a === 'client');
  if (sub < 0) return renamed.map((a) => (a === '-v' ? '-V' : a));
  const before = renamed.slice(0, sub);
  const moved = before.filter((a) => FOR_SUBCOMMAND.has(a));
  if (!moved.length) return renamed;
  return [...before.filter((a) => !FOR_SUBCOMMAND.has(a)), renamed[sub]!, ...moved, ...renamed.slice(sub + 1)];
}

/** `tws --version`: the engine TWS_ENGINE picks (flags and config files belong to the subcommands). */
function versionLine(env: NodeJS.ProcessEnv): string {
  const wanted = env.TWS_ENGINE || 'auto';
  const choice = ENGINE_CHOICES.find((c) => c === wanted);
  const engine = choice ? engineSummary(choice) : `${engineSummary('auto')}; TWS_ENGINE must be auto, js or native`;
  const platform = `${process.platform}-${process.arch}`;
  // A prebuild's name already says the platform.
  return `tws-native ${VERSION} (${engine.endsWith(`prebuild ${platform}`) ? engine : `${engine}, ${platform}`})`;
}

function describe(mode: Mode, cmd: Command): void {
  for (const s of settingsFor(mode)) {
    if (!s.flag) continue;
    const def = defaultFor(s, mode);
    const extra = [def !== undefined && s.kind.type !== 'bool' ? `default: ${def}` : '', `config: ${s.key}`, s.env ? `env: ${s.env}` : '']
      .filter(Boolean).join(', ');
    const option = new Option(s.flag, `${helpFor(s, mode)} [${extra}]`);
    if (s.repeatable) option.argParser((v: string, prev: string[] | undefined) => [...(prev ?? []), v]);
    cmd.addOption(option);
  }
  cmd.option('--config <file>', 'YAML config file with the keys shown in [config: ...]; flags given explicitly override it');
  cmd.option('-v, --verbose', 'debug logging (same as --log-level debug)');
}

/** Collects only the options the user actually typed, so they override the file. */
function explicitFlags(mode: Mode, cmd: Command): Layer {
  const opts = cmd.opts();
  const layer: Layer = {};
  for (const s of settingsFor(mode)) {
    if (s.name === 'noUdp') {
      if (cmd.getOptionValueSource('udp') === 'cli') layer.noUdp = !opts.udp;
      continue;
    }
    // Commander stores a value under the long flag's camel-cased name (`--header` → header).
    const attr = s.flag ? new Option(s.flag).attributeName() : s.name;
    if (cmd.getOptionValueSource(attr) === 'cli') layer[s.name] = opts[attr];
  }
  if (opts.verbose) layer.logLevel = 'debug';
  return layer;
}

export function buildProgram(): Command {
  const program = new Command('tws')
    .description('TCP over WebSocket: tunnel any TCP service through a WebSocket (tws-rust compatible)')
    .version(versionLine(process.env), '-V, --version')
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText('after', topExamples);

  const server = program.command('server')
    .description('accept tunnel sessions over WebSocket and connect each stream to its target')
    .addHelpText('after', serverExamples);
  describe('server', server);
  server.action(async () => {
    process.title = 'tws server';
    const cfg = resolveConfig('server', layers('server', server));
    await runServer(cfg);
  });

  const client = program.command('client')
    .description('listen for local TCP connections (and UDP datagrams) and tunnel each to --remote, or to its -L tunnel\'s target, through the server')
    .addHelpText('after', clientExamples);
  describe('client', client);
  client.action(async () => {
    process.title = 'tws client';
    const cfg = resolveConfig('client', layers('client', client));
    await runClient(cfg);
  });
  return program;
}

function layers(mode: Mode, cmd: Command): Parameters<typeof resolveConfig>[1] {
  const file: string | undefined = cmd.opts().config;
  return {
    file: file ? readConfigFile(file, mode) : undefined,
    fileName: file,
    env: process.env,
    flags: explicitFlags(mode, cmd),
  };
}

/** Runs the CLI; any error becomes one line on stderr and exit code 1. */
export async function main(argv: string[]): Promise<void> {
  // Hide the arguments (which may hold -p SECRET) from ps as early as possible.
  const sub = argv.slice(2).find((a) => a === 'server' || a === 'client');
  if (sub) process.title = `tws ${sub}`;
  try {
    await buildProgram().parseAsync(normalizeArgv(argv.slice(2)), { from: 'user' });
  } catch (err) {
    process.stderr.write(`tws: error: ${errorLine(err)}\n`);
    process.exit(1);
  }
}

/**
 * How the client reaches the server beyond the URL: extra upgrade headers,
 * the Host header, and for wss:// the trusted roots, SNI and whether the
 * certificate is verified at all. Built once at start-up so that a bad CA
 * file is a start-up error, not a reconnect loop.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { rootCertificates } from 'node:tls';
import { fail, TwsError } from '../util/errors';
import { peerText } from '../util/log';
import { proxyFor } from './proxy';

export interface ConnectOptions {
  /** Extra headers for the upgrade request (validated by the config loader). */
  headers?: Record<string, string>;
  /** Host header instead of the URL's host. */
  hostHeader?: string;
  /** wss://: PEM certificates to trust; undefined = Node's defaults. */
  ca?: string[];
  /** wss://: server name for SNI and verification instead of the URL host. */
  sni?: string;
  /** wss://: skip certificate verification. */
  insecure?: boolean;
  /** HTTP CONNECT proxy to go through (credentials in the URL). */
  proxy?: URL;
}

// Where Debian/Ubuntu, RHEL/Fedora and Alpine keep the system bundle (OpenSSL's default file).
const SYSTEM_BUNDLES = ['/etc/ssl/certs/ca-certificates.crt', '/etc/pki/tls/certs/ca-bundle.crt', '/etc/ssl/cert.pem'];


const PEM = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** The PEM certificates in a file (a bundle may hold many); none is an error. */
function certsIn(file: string, what: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    fail('TWS_ERR_CONFIG', `cannot read ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const certs = text.match(PEM) ?? [];
  if (certs.length === 0) fail('TWS_ERR_CONFIG', `${what} ${file} holds no PEM certificate`);
  return certs;
}

/**
 * The roots a wss:// connection trusts: SSL_CERT_FILE and SSL_CERT_DIR when
 * set (as OpenSSL-based tools read them), else the system bundle, else
 * Node's built-in Mozilla roots; then every certificate of --ca.
 */
export function trustedRoots(caFile: string | undefined, env: NodeJS.ProcessEnv = process.env): string[] {
  const roots: string[] = [];
  if (env.SSL_CERT_FILE) roots.push(...certsIn(env.SSL_CERT_FILE, 'SSL_CERT_FILE'));
  if (env.SSL_CERT_DIR) {
    for (const dir of env.SSL_CERT_DIR.split(':').filter(Boolean)) {
      let names: string[];
      try {
        names = readdirSync(dir);
      } catch (err) {
        fail('TWS_ERR_CONFIG', `cannot read SSL_CERT_DIR ${dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
      for (const name of names) {
        // Like OpenSSL, a directory entry that is not a readable file (a dangling hash link, say) is skipped.
        let text: string;
        try {
          text = readFileSync(join(dir, name), 'utf8');
        } catch {
          continue;
        }
        roots.push(...(text.match(PEM) ?? []));
      }
    }
  }
  if (roots.length === 0) {
    const bundle = SYSTEM_BUNDLES.find((f) => existsSync(f));
    roots.push(...(bundle ? certsIn(bundle, 'system CA bundle') : rootCertificates));
  }
  if (caFile) roots.push(...certsIn(caFile, '--ca file'));
  return roots;
}

/** Builds the client's ConnectOptions from its config. */
export function connectOptions(
  cfg: { server: URL; ca?: string; insecure?: boolean; sni?: string; hostHeader?: string; headers?: Record<string, string>; proxy?: URL },
  env: NodeJS.ProcessEnv = process.env,
): ConnectOptions {
  const tls = cfg.server.protocol === 'wss:';
  return {
    headers: cfg.headers,
    hostHeader: cfg.hostHeader,
    ca: tls && !cfg.insecure ? trustedRoots(cfg.ca, env) : undefined,
    sni: tls ? cfg.sni : undefined,
    insecure: tls && cfg.insecure === true,
    proxy: proxyFor(cfg.server, cfg.proxy, env),
  };
}

const TLS_CODES = /^(UNABLE_TO_|SELF_SIGNED|DEPTH_ZERO|CERT_|ERR_TLS_|ERR_SSL_)/;
const TLS_HINT = 'trust its CA with --ca FILE, or use --sni if the certificate is for another name';
/** OpenSSL's words (both engines) when what came back to our ClientHello was not TLS: a plain HTTP port, say. */
const NOT_TLS = /wrong version number|packet length too long|http request/i;

/** One clear line for a failed connection; TLS verification failures say what to do. */
export function describeConnectError(err: NodeJS.ErrnoException): string {
  if (err instanceof TwsError) return err.message;  // already one line of ours (a proxy failure, say)
  const code = err.code ?? '';
  // Node gives OpenSSL's whole error string (EPROTO) here: its reason is what the native engine says.
  const notTls = NOT_TLS.exec(err.message)?.[0];
  if (notTls) return `TLS: ${notTls.toLowerCase()} (${code || 'ERR_SSL'})`;
  // Node's message can quote the server's certificate (a name mismatch lists all its names): the server's words, capped.
  if (TLS_CODES.test(code)) return `TLS: ${peerText(err.message)} (${code}); ${TLS_HINT}`;
  return code || err.message;
}

/**
 * What a failed attempt suggests, where the URL and the failure make the
 * cause knowable: a ws:// connection reset at once (a TLS port hangs up on
 * plain HTTP), or a wss:// handshake that stalled, was cut, or got an answer
 * that is not TLS (a plain port). Both engines word those failures alike.
 */
export function connectHint(server: URL, why: string): string {
  if (server.protocol === 'ws:' && why === 'ECONNRESET') return ' (does the server speak TLS? then use wss://)';
  if (server.protocol === 'wss:' && (/TLS handshake/.test(why) || NOT_TLS.test(why))) return ' (is it a plain ws:// port? then use ws://)';
  return '';
}

/** The same line for the native engine's TLS failures, which come as "TLS: <reason> (<CODE>)". */
export function describeTlsFailure(text: string): string {
  const code = /\(([A-Z_]+)\)$/.exec(text)?.[1] ?? '';
  return code !== 'ERR_SSL' && TLS_CODES.test(code) ? `${text}; ${TLS_HINT}` : text;
}

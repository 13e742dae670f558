/**
 * Loads the native addon (a dev tree's build/Release first, then prebuilds/)
 * with node-gyp-build. Never throws: a failed load is a reason string, and
 * tws falls back to the js engine.
 */
import { join } from 'node:path';

export interface NativeAddon {
  napiVersion: number;
  /** True once the addon carries the event-loop-free data plane. */
  dataPlane: boolean;
  /** Parses WebSocket bytes as a server (masked) or client would, decoding TWS2 inside. */
  decodeStream(bytes: Buffer, server: boolean): {
    events: { kind: 'data' | 'frame' | 'control'; type: number; stream: number; body: Buffer }[];
    closeCode: number;
    reason: string;
  };
  /** Trusted roots and TLS settings for adoptTls, built once (opaque), or why the roots are unusable. */
  tlsClientContext(caPem: string, insecure: boolean): object | string;
  /** A server certificate chain and key for frontTls (opaque), or why they cannot be used. */
  tlsServerContext(certPem: string, keyPem: string): object | string;
}

let cached: { addon?: NativeAddon; error?: string } | undefined;

/** The addon, or why it could not be loaded. */
export function loadNativeAddon(): { addon?: NativeAddon; error?: string } {
  if (cached) return cached;
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    // TWS_NATIVE_ADDON picks a specific build (npm run test:asan uses a sanitizer build).
    const explicit = process.env.TWS_NATIVE_ADDON;
    const load = require('node-gyp-build') as (dir: string) => NativeAddon;
    cached = { addon: explicit ? (require(explicit) as NativeAddon) : load(join(__dirname, '..', '..')) };
  } catch (err) {
    const msg = (err as Error).message.split('\n')[0] ?? 'unknown error';
    cached = { error: /No native build was found/.test(msg) ? 'no native build for this platform (run npm run build:native)' : msg };
  }
  return cached;
}

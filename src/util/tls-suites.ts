/**
 * The TLS suites tws offers and accepts when Node runs TLS (the native engine
 * sets the same in native/io/tls_wire.cc): TLS 1.2 or later, forward-secret
 * (ECDHE) AEAD only. No CBC, no RSA key exchange, and no finite-field DHE, whose
 * group size a hostile server picks (a large one makes each handshake costly).
 * tws talks only to tws (nginx in front terminates TLS itself), so nothing
 * needs the older suites.
 */
export const TLS_SUITES = {
  minVersion: 'TLSv1.2',
  ciphers: [
    'TLS_AES_128_GCM_SHA256',
    'TLS_AES_256_GCM_SHA384',
    'TLS_CHACHA20_POLY1305_SHA256',
    'ECDHE-ECDSA-AES128-GCM-SHA256',
    'ECDHE-RSA-AES128-GCM-SHA256',
    'ECDHE-ECDSA-AES256-GCM-SHA384',
    'ECDHE-RSA-AES256-GCM-SHA384',
    'ECDHE-ECDSA-CHACHA20-POLY1305',
    'ECDHE-RSA-CHACHA20-POLY1305',
  ].join(':'),
} as const;

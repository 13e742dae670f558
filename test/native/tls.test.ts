import t from 'tap';
import { existsSync } from 'node:fs';
import { runNativeProgram } from '../helpers/native-program';
import { tlsEngineSources } from '../helpers/native-sources';
import { skipLine } from '../helpers/tools';

// The addon builds against Node's own OpenSSL headers; this program, which also plays the TLS peer, against the system's.
const why = !existsSync('/usr/include/openssl/ssl.h') && skipLine('OpenSSL headers', 'libssl-dev');

t.test("the engine's TLS under ASan and UBSan: a full socket does not spin the I/O thread, a peer's KeyUpdates cannot grow what it holds and keep it heard, a front hands over with its commands", { skip: why }, async (t) => {
  runNativeProgram(t, 'tls_test.cc', tlsEngineSources(), 17, 120_000, ['-lssl', '-lcrypto']);
});

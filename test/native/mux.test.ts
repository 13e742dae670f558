import t from 'tap';
import { runNativeProgram } from '../helpers/native-program';
import { muxSources } from '../helpers/native-sources';

t.test('the sans-I/O mux core passes its unit tests under ASan and UBSan, with peers that read slowly or not at all', async (t) => {
  runNativeProgram(t, 'mux_test.cc', muxSources(), 50, 60_000);
});

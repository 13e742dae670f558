import t from 'tap';
import { runNativeProgram } from '../helpers/native-program';

t.test('the native core passes its unit tests under ASan and UBSan, every input split at every byte', async (t) => {
  runNativeProgram(t, 'core_test.cc', [], 40, 60_000);
});

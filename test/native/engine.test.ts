import t from 'tap';
import { runNativeProgram } from '../helpers/native-program';
import { engineSources } from '../helpers/native-sources';

t.test('the native engine survives hostile peers under ASan and UBSan: no use-after-free, bounded queues, the 101 first, RFC 6455 close replies', async (t) => {
  runNativeProgram(t, 'engine_test.cc', engineSources(), 40);
});

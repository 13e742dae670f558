import t from 'tap';
import { describeClose } from '../../src/engine/session-close';

t.test('a close reads the same for every engine: code and reason, or words for a code without one', async (t) => {
  t.equal(describeClose(1001, 'client shutting down'), '1001 client shutting down');
  t.equal(describeClose(1000, ''), '1000 normal');
  t.equal(describeClose(1006, ''), '1006 connection lost', 'a connection that ended without a close frame');
  t.equal(describeClose(1006, 'ECONNRESET'), '1006 connection lost: ECONNRESET', 'and what the engine knows of why');
  t.equal(describeClose(4321, ''), '4321', 'an unknown code without a reason is the code alone');
  t.match(describeClose(1002, 'x'.repeat(500)), /^1002 x+…\(\+372 bytes cut\)$/, "the peer's reason is capped");
});

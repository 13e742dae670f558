import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import * as flow from '../../src/engine/flow-control';

/** One row of test/vectors/flow-control.json: the inputs, what must come out, and why. */
interface Vector {
  why: string;
  in: Record<string, unknown>;
  out: unknown;
}

const file = join(__dirname, '..', 'vectors', 'flow-control.json');
const { about, ...tables } = JSON.parse(readFileSync(file, 'utf8')) as { about: string } & Record<string, Vector[]>;

/** Each table of the JSON and the function that must reproduce it, by the table's name. */
const functions: Record<string, (i: never) => unknown> = {
  autotune: flow.autotune,
  windowUpdate: flow.windowUpdate,
  windowRoom: flow.windowRoom,
  freshWindow: flow.freshWindow,
  sessionFull: flow.sessionFull,
  processFull: flow.processFull,
  starved: flow.starved,
};

t.ok(about, 'the vectors say what they are about');

t.test('every table of the flow-control vectors has a function that answers it', async (t) => {
  for (const name of Object.keys(tables)) t.ok(functions[name], `${name} has a function in src/engine/flow-control.ts`);
  for (const name of Object.keys(functions)) t.ok(tables[name]?.length, `${name} has cases in the vectors`);
});

for (const [name, cases] of Object.entries(tables)) {
  const fn = functions[name];
  if (!fn) continue;
  t.test(name, async (t) => {
    for (const c of cases) {
      // Exact equality, rates included: both engines compute them in doubles the same way.
      t.strictSame(fn(c.in as never), c.out, c.why);
    }
  });
}

/**
 * Every native op with each of its dimensions 0 in turn, then all of them (test/helpers/empty-shape-sweep.cjs, about
 * 700 calls over some 110 cases: elementwise, linear algebra, softmax and layer norm, embedding and the losses,
 * dropout, attention with its options and variable lengths, convolutions, pooling, batch norm, the MIM, sparse, ASA
 * and PGD ops, the optimizer). An empty shape must give an empty result or a clear error naming the op, never a
 * crash: the sweep found `maxPool2d` reading out of bounds on an empty plane with padding and `linearBackward`
 * dividing by zero for a width-0 layer. It runs in a child so that a crash fails this test with the last case
 * printed instead of killing the runner.
 * It complements test/boundary.test.ts, whose sweep swaps one argument at a time for a zero-size tensor of a fixed
 * shape, which the shape checks mostly refuse: here every argument shares the empty dimension, so the calls get past
 * the checks and into the kernels (which is where both crashes were).
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadAddon } from '../src/native/loader.js';

const sweep = fileURLToPath(new URL('./helpers/empty-shape-sweep.cjs', import.meta.url));

describe('native ops on empty shapes', () => {
  it('every op returns an empty result or throws an error naming itself; none crashes', () => {
    const r = spawnSync(process.execPath, [sweep, loadAddon().path], { encoding: 'utf8', timeout: 120_000, maxBuffer: 64 << 20 });
    const lines = r.stdout.trim().split('\n');
    const lastCase = [...lines].reverse().find((l) => l.startsWith('CASE'));
    expect({ status: r.status, signal: r.signal, stderr: r.stderr, last: lines.at(-1) }, `the last case started: ${lastCase}`).toEqual({
      status: 0,
      signal: null,
      stderr: '',
      last: 'DONE',
    });
    const calls: Array<{ name: string; full: boolean; outcome: string }> = [];
    for (let i = 0; i < lines.length - 1; i++) {
      const m = /^CASE (.*) (full|empty) (\{.*\})$/.exec(lines[i]!);
      if (!m) continue;
      calls.push({ name: `${m[1]} ${m[3]}`, full: m[2] === 'full', outcome: lines[i + 1]! });
    }
    expect(calls.length).toBeGreaterThan(600);
    // Errors come from the addon's argument checks, which name the op ("maxPool2d: Expected ..."), not from a
    // TypeError or a RangeError of the script.
    const unnamed = calls.filter((c) => c.outcome.startsWith('THROW') && !/^THROW [A-Za-z0-9]+: /.test(c.outcome));
    expect(unnamed).toEqual([]);
    expect(calls.filter((c) => !/^(RESULT|THROW) /.test(c.outcome))).toEqual([]);
    // The full-size call of every case runs (the sweep exercises the ops, not its own mistakes); the variable-length
    // attention cases named "[]" start from an empty batch, which cuSeqlens must refuse.
    const fullFailed = calls.filter((c) => c.full && !c.name.includes('[]') && !c.outcome.startsWith('RESULT'));
    expect(fullFailed).toEqual([]);
    // Most empty variants are valid and give empty results; the rest are refused with the op's message.
    const empties = calls.filter((c) => !c.full);
    expect(empties.filter((c) => c.outcome.startsWith('RESULT')).length).toBeGreaterThan(empties.length / 2);
  });
});

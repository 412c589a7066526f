/**
 * Fuzz test per reader (issue 14): a fixed seed and a few thousand mutated
 * inputs each; every failure must be a ClozeError, never a raw TypeError,
 * RangeError or crash. The long campaign (10^5 inputs a reader) runs from
 * bench/fuzz-readers.ts; its figures are in the README (Reliability: readers).
 */
import { describe, expect, it } from 'vitest';
import { fuzzReader, READERS } from '../bench/fuzz-readers.js';

const COUNTS: Record<(typeof READERS)[number], number> = { safetensors: 2000, idx: 2000, shard: 2000, tokenizer: 1500, jsonl: 2000, csv: 2000 };

describe('reader fuzzing (seed 14)', () => {
  for (const reader of READERS) {
    it(`${reader}: every mutated input is read or refused with a ClozeError`, async () => {
      const r = await fuzzReader(reader, COUNTS[reader], 14);
      expect(r.escapes).toEqual([]);
      expect(r.inputs).toBe(COUNTS[reader]);
      // The mutations reach past the first check: both outcomes occur.
      expect(r.refused).toBeGreaterThan(0);
      expect(r.read).toBeGreaterThan(0);
    }, 60_000);
  }
});

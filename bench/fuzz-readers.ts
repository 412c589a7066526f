/**
 * Fuzzing the file readers (issue 14): each reader gets seeded mutations of a
 * few valid files (bit flips, byte overwrites with boundary values, inserted
 * and deleted runs, truncations, splices, and for the JSON-headed formats
 * number and structure edits) and must either read the input or refuse it
 * with a ClozeError, never a TypeError, RangeError or crash.
 *
 * The tests (test/fuzz-readers.test.ts) run a few thousand inputs per reader
 * with a fixed seed; the long campaign runs from here:
 *
 *   npx tsc -p . && node dist/bench/fuzz-readers.js [--count 100000] [--seed 1] [--reader safetensors,idx,...]
 *
 * It prints, per reader, the inputs tried, how many were read and refused,
 * the error codes seen and any failure that was not a ClozeError (with the
 * seed and index that reproduce it); it exits 1 when there is one.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { saveSafetensors, loadSafetensors } from '../src/checkpoint/safetensors.js';
import { readIdx } from '../src/data/images/idx.js';
import { readLabelledFile } from '../src/data/labelled.js';
import { Shard, ShardWriter } from '../src/data/shard.js';
import { loadTokenizer } from '../src/data/tokenizer.js';
import { ClozeError } from '../src/errors.js';
import { Rng } from '../src/rng.js';
import { tensor } from '../src/tensor.js';

export interface FuzzReport {
  reader: string;
  inputs: number;
  read: number;
  refused: number;
  codes: Record<string, number>;
  /** Failures that were not ClozeErrors: the index that reproduces each, and the error. */
  escapes: Array<{ index: number; error: string }>;
  ms: number;
}

const BOUNDARY = [0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff, 0x22, 0x5b, 0x5d, 0x7b, 0x7d, 0x2c, 0x3a, 0x2d, 0x30, 0x39, 0x0a, 0x25];
const NUMBERS = ['0', '-1', '1e400', '4294967296', '9007199254740993', '18446744073709551616', '1.5', '-0', '2147483648', '1e-400', '[]', '{}', 'null', '"x"', 'true'];

/** `b` with `del` bytes at `at` replaced by `ins`. */
function splice(b: Buffer, at: number, del: number, ins: Uint8Array = new Uint8Array(0)): Buffer {
  return Buffer.concat([b.subarray(0, at), ins, b.subarray(Math.min(b.length, at + del))]);
}

/** One seeded mutation of `b`. */
export function mutate(input: Uint8Array, rng: Rng, text: boolean): Uint8Array {
  let out: Buffer = Buffer.from(input);
  const rounds = 1 + rng.int(4);
  for (let r = 0; r < rounds; r++) {
    const at = out.length > 0 ? rng.int(out.length) : 0;
    switch (rng.int(text ? 9 : 7)) {
      case 0: if (out.length > 0) out[at] = out[at]! ^ (1 << rng.int(8)); break;
      case 1: if (out.length > 0) out[at] = BOUNDARY[rng.int(BOUNDARY.length)]!; break;
      case 2: out = splice(out, at, 0, Uint8Array.from({ length: 1 + rng.int(8) }, () => rng.int(256))); break;
      case 3: out = splice(out, at, 1 + rng.int(16)); break;
      case 4: out = out.subarray(0, rng.int(out.length + 1)); break;
      case 5: { // duplicate a run elsewhere
        const from = out.length > 0 ? rng.int(out.length) : 0;
        out = splice(out, at, 0, Buffer.from(out.subarray(from, from + 1 + rng.int(32))));
        break;
      }
      case 6: for (let k = 0; k < 4 && at + k < out.length; k++) out[at + k] = rng.int(2) ? 0xff : 0x00; break;
      case 7: { // replace a number in the text with a boundary one
        const s = out.toString('latin1');
        const nums = [...s.matchAll(/-?\d+(\.\d+)?/g)];
        if (nums.length === 0) break;
        const m = nums[rng.int(nums.length)]!;
        out = splice(out, m.index!, m[0].length, Buffer.from(NUMBERS[rng.int(NUMBERS.length)]!, 'latin1'));
        break;
      }
      case 8: { // nest deeply or open a structure that never closes
        const depth = [10, 1000, 100_000][rng.int(3)]!;
        out = splice(out, at, 0, Buffer.from(rng.int(2) ? `${'['.repeat(depth)}${']'.repeat(depth)}` : '['.repeat(depth), 'latin1'));
        break;
      }
    }
  }
  return Uint8Array.from(out);
}

interface Target {
  /** Valid files to mutate. */
  seeds: Uint8Array[];
  /** The file name to write (its extension may matter to the reader). */
  name: string;
  text: boolean;
  /** Reads the file fully; returns after freeing what it made. */
  read(path: string): void | Promise<void>;
}

function safetensorsSeeds(dir: string): Uint8Array[] {
  const specs: Array<Record<string, ReturnType<typeof tensor>>> = [
    { a: tensor([1, 2, 3, 4, 5, 6], [2, 3]), b: tensor([7], [1], 'int32') },
    { 'x.weight': tensor([0.5, -0.5], [2], 'float64'), mask: tensor([1, 0, 1], [3], 'uint8'), e: tensor([], [0, 4]) },
  ];
  const out = specs.map((t, i) => {
    const f = join(dir, `seed-${i}.safetensors`);
    saveSafetensors(f, t, { format: 'pt' });
    for (const x of Object.values(t)) x.dispose();
    return Uint8Array.from(readFileSync(f));
  });
  // F16, BF16, I64 and BOOL by hand (the writer does not emit them).
  const header = JSON.stringify({ h: { dtype: 'F16', shape: [2], data_offsets: [0, 4] }, g: { dtype: 'BF16', shape: [2], data_offsets: [4, 8] }, i: { dtype: 'I64', shape: [1], data_offsets: [8, 16] }, k: { dtype: 'BOOL', shape: [2], data_offsets: [16, 18] } });
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  out.push(Uint8Array.from(Buffer.concat([len, Buffer.from(header), Buffer.from([0, 0x3c, 0, 0xc0, 0x80, 0x3f, 0, 0x40, 5, 0, 0, 0, 0, 0, 0, 0, 1, 0])])));
  return out;
}


function idxSeeds(): Uint8Array[] {
  const idx = (dims: number[]): Buffer => {
    const head = Buffer.alloc(4 + 4 * dims.length);
    head[2] = 8;
    head[3] = dims.length;
    dims.forEach((d, i) => head.writeUInt32BE(d, 4 + 4 * i));
    return Buffer.concat([head, Buffer.from(Array.from({ length: dims.reduce((a, b) => a * b, 1) }, (_, i) => i % 251))]);
  };
  const images = idx([3, 4, 5]);
  const labels = idx([7]);
  return [images, labels, gzipSync(images), gzipSync(labels)].map((b) => Uint8Array.from(b));
}

function shardSeeds(dir: string): Uint8Array[] {
  const make = (vocab: number, docs: number[][], i: number): Uint8Array => {
    const f = join(dir, `seed-${i}.shard`);
    const w = new ShardWriter(f, vocab, 'd'.repeat(64));
    for (const d of docs) w.append(d);
    w.finish();
    return Uint8Array.from(readFileSync(f));
  };
  return [make(100, [[1, 2, 3], [4], [5, 6, 7, 8, 9]], 0), make(70_000, [[69_999, 0, 5], [6]], 1)];
}

function tokenizerSeeds(): Uint8Array[] {
  const vocab: Record<string, number> = { '[PAD]': 0, '[UNK]': 1, '[CLS]': 2, '[SEP]': 3, '[MASK]': 4, the: 5, cat: 6, '##s': 7, sat: 8 };
  const json = {
    version: '1.0', truncation: null, padding: null,
    added_tokens: ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'].map((t, id) => ({ id, content: t, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
    pre_tokenizer: { type: 'BertPreTokenizer' }, post_processor: null,
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab },
  };
  return [Uint8Array.from(Buffer.from(JSON.stringify(json))), Uint8Array.from(Buffer.from(JSON.stringify(json, null, 1)))];
}

function labelledSeeds(): Uint8Array[] {
  const rows = [['a good film', 'pos'], ['a bad film', 'neg'], ['great, "really"', 'pos'], ['dull', 'neg']];
  return [Uint8Array.from(Buffer.from(rows.map(([text, label]) => JSON.stringify({ text, label })).join('\n')))];
}

function labelledCsvSeeds(): Uint8Array[] {
  return [Uint8Array.from(Buffer.from('text,label\n"a good film",pos\n"a bad, bad film",neg\ngreat,pos\n"dull ""x""",neg\n'))];
}

function targets(dir: string): Record<string, Target> {
  return {
    safetensors: {
      seeds: safetensorsSeeds(dir), name: 'x.safetensors', text: true,
      read: (p) => { for (const t of Object.values(loadSafetensors(p))) t.dispose(); },
    },
    idx: { seeds: idxSeeds(), name: 'x-idx3-ubyte', text: false, read: (p) => void readIdx(p) },
    shard: {
      seeds: shardSeeds(dir), name: 'x.shard', text: false,
      read: (p) => {
        const s = Shard.open(p);
        try {
          for (let d = 0; d < s.header.docCount; d++) s.document(d);
        } finally {
          s.close();
        }
      },
    },
    tokenizer: {
      seeds: tokenizerSeeds(), name: 'tokenizer.json', text: true,
      read: async (p) => {
        const t = await loadTokenizer(p);
        await t.encodeBatch(['the cats sat', 'zzz unknown ##s']);
      },
    },
    jsonl: { seeds: labelledSeeds(), name: 'x.jsonl', text: true, read: (p) => void readLabelledFile(p, { minPerClass: 1 }) },
    csv: { seeds: labelledCsvSeeds(), name: 'x.csv', text: true, read: (p) => void readLabelledFile(p, { minPerClass: 1 }) },
  };
}

export const READERS = ['safetensors', 'idx', 'shard', 'tokenizer', 'jsonl', 'csv'] as const;

/** Runs `count` mutated inputs through `reader` from `seed`. */
export async function fuzzReader(reader: (typeof READERS)[number], count: number, seed: number): Promise<FuzzReport> {
  const dir = mkdtempSync(join(tmpdir(), `cloze-fuzz-${reader}-`));
  const t0 = Date.now();
  const report: FuzzReport = { reader, inputs: 0, read: 0, refused: 0, codes: {}, escapes: [], ms: 0 };
  try {
    const target = targets(dir)[reader];
    const rng = new Rng(seed);
    const path = join(dir, target.name);
    for (let i = 0; i < count; i++) {
      const base = target.seeds[rng.int(target.seeds.length)]!;
      writeFileSync(path, mutate(base, rng, target.text));
      report.inputs++;
      try {
        await target.read(path);
        report.read++;
      } catch (e) {
        if (e instanceof ClozeError) {
          report.refused++;
          report.codes[e.code] = (report.codes[e.code] ?? 0) + 1;
        } else {
          report.escapes.push({ index: i, error: `${(e as Error)?.name}: ${String((e as Error)?.message ?? e).slice(0, 300)}` });
        }
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  report.ms = Date.now() - t0;
  return report;
}

async function main(): Promise<void> {
  const arg = (name: string, dflt: string): string => {
    const i = process.argv.indexOf(`--${name}`);
    return i > 0 && process.argv[i + 1] ? process.argv[i + 1]! : dflt;
  };
  const count = Number(arg('count', '100000'));
  const seed = Number(arg('seed', '1'));
  const readers = arg('reader', READERS.join(',')).split(',') as Array<(typeof READERS)[number]>;
  let bad = 0;
  for (const r of readers) {
    const rep = await fuzzReader(r, count, seed);
    bad += rep.escapes.length;
    console.log(`${r}: ${rep.inputs} inputs in ${(rep.ms / 1000).toFixed(1)} s, ${rep.read} read, ${rep.refused} refused ${JSON.stringify(rep.codes)}, ${rep.escapes.length} escapes`);
    for (const e of rep.escapes.slice(0, 10)) console.log(`  seed ${seed} index ${e.index}: ${e.error}`);
  }
  process.exitCode = bad > 0 ? 1 : 0;
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) await main();

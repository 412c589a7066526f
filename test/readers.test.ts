/**
 * Issue 14, section 3: readers that refuse what they cannot trust. Each
 * reproduction of the issue is a test here (safetensors, IDX, corpus shards,
 * tokenizer.json, run settings, text corpora, checkpoint directories as data).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { loadCheckpoint, saveCheckpoint } from '../src/checkpoint/checkpoint.js';
import { checkpointDataPath, isInside } from '../src/checkpoint/named-paths.js';
import { loadSafetensors, readSafetensorsHeader } from '../src/checkpoint/safetensors.js';
import { readDocuments, type CorpusOptions } from '../src/data/documents.js';
import { readLabelledFile } from '../src/data/labelled.js';
import { readIdx } from '../src/data/images/idx.js';
import { openImageData } from '../src/data/images/open.js';
import { newEncodingStats, readLines } from '../src/data/lines.js';
import { prepareShard } from '../src/data/prepare.js';
import { Shard, ShardWriter, SHARD_HEADER_BYTES } from '../src/data/shard.js';
import { listCorpusFiles } from '../src/data/sources.js';
import { loadTokenizer, trainWordPiece } from '../src/data/tokenizer.js';
import { ClozeError } from '../src/errors.js';
import { resolveConfig } from '../src/tasks/config.js';
import { resolveFinetuneConfig, readFinetuneFile } from '../src/tasks/finetune/config.js';
import { evaluateMlmCheckpoint } from '../src/tasks/mlm/evaluate-checkpoint.js';
import { checkActivationMemory } from '../src/tasks/mlm/task.js';
import { pretrain } from '../src/tasks/pretrain.js';
import { writeFixtureCorpus } from './helpers/fixture-corpus.js';
import { tensor } from '../src/tensor.js';

const root = mkdtempSync(join(tmpdir(), 'cloze-readers-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let counter = 0;
const fresh = (): string => mkdtempSync(join(root, `t${counter++}-`));

function put(name: string, content: string | Uint8Array): string {
  const p = join(root, name);
  mkdirSync(join(p, '..'), { recursive: true });
  writeFileSync(p, content);
  return p;
}

/** A safetensors file from a header object or text and data bytes. */
function safetensorsFile(name: string, header: string | object, data: Uint8Array = new Uint8Array(0)): string {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return put(name, Buffer.concat([len, json, data]));
}

function thrown(f: () => unknown): ClozeError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(ClozeError);
    return e as ClozeError;
  }
  throw new Error('expected a throw');
}

async function rejected(p: Promise<unknown>): Promise<ClozeError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(ClozeError);
    return e as ClozeError;
  }
  throw new Error('expected a rejection');
}

describe('safetensors', () => {
  it('loads a tensor named __proto__ (and constructor) as an ordinary key', () => {
    const header = '{"__proto__":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"constructor":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}';
    const f = safetensorsFile('proto.safetensors', header, new Uint8Array(new Float32Array([1.5, 2.5]).buffer));
    const t = loadSafetensors(f);
    expect(Object.keys(t).sort()).toEqual(['__proto__', 'constructor']);
    expect(Array.from(t['__proto__']!.toArray())).toEqual([1.5]);
    expect(Array.from(t['constructor']!.toArray())).toEqual([2.5]);
    for (const x of Object.values(t)) x.dispose();
  });

  it('refuses a deeply nested shape with an error naming the file, not a RangeError', () => {
    const deep = `${'['.repeat(200_000)}${']'.repeat(200_000)}`;
    const f = safetensorsFile('deep.safetensors', `{"x":{"dtype":"F32","shape":${deep},"data_offsets":[0,0]}}`);
    for (const read of [() => loadSafetensors(f), () => readSafetensorsHeader(f)]) {
      const e = thrown(read);
      expect(e.message).toContain(f);
    }
  });

  it('names the file in native shape errors', () => {
    const f = safetensorsFile('native.safetensors', { x: { dtype: 'F32', shape: [0, 2 ** 40], data_offsets: [0, 0] } });
    const e = thrown(() => loadSafetensors(f));
    expect(e.code).toBe('E_SHAPE');
    expect(e.message).toContain(f);
    expect(e.message).toContain("tensor 'x'");
  });
});

describe('IDX', () => {
  const head = (dims: number[]): Buffer => {
    const b = Buffer.alloc(4 + 4 * dims.length);
    b.writeUInt8(8, 2);
    b.writeUInt8(dims.length, 3);
    dims.forEach((d, i) => b.writeUInt32BE(d, 4 + 4 * i));
    return b;
  };

  it('stops inflating a gzip file at the size its header promises', () => {
    // 64 MiB of zeros behind a header promising 10 × 28 × 28: a 64 KB file that used to inflate whole.
    const f = put('bomb.idx.gz', gzipSync(Buffer.concat([head([10, 28, 28]), Buffer.alloc(64 << 20)])));
    const before = process.memoryUsage().arrayBuffers;
    const t = Date.now();
    const e = thrown(() => readIdx(f));
    expect(e.message).toMatch(/Expected 7840 bytes of image data for dims \[10, 28, 28\] but received more \(trailing bytes\)/);
    expect(e.message.startsWith(f)).toBe(true);
    expect(Date.now() - t).toBeLessThan(2000);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(16 << 20);
  });

  it('refuses a header that promises more than the compressed size can hold, before inflating', () => {
    const f = put('liar.idx.gz', gzipSync(Buffer.concat([head([60000, 28, 28]), Buffer.alloc(100)])));
    expect(thrown(() => readIdx(f)).message).toMatch(/cannot inflate to that much/);
    const g = put('huge.idx', head([65535, 65535, 4]));
    expect(thrown(() => readIdx(g)).message).toMatch(/Expected at most 2147483647 bytes of data/);
  });

  it('still reads a valid gzipped file', () => {
    const payload = Uint8Array.from({ length: 2 * 3 * 4 }, (_, i) => i);
    const f = put('ok.idx.gz', gzipSync(Buffer.concat([head([2, 3, 4]), payload])));
    const r = readIdx(f);
    expect(r.dims).toEqual([2, 3, 4]);
    expect(Array.from(r.data)).toEqual(Array.from(payload));
  });
});

describe('corpus shards', () => {
  const HASH = 'c'.repeat(64);
  const write = (p: string, docs: number[][], vocab = 100): void => {
    const w = new ShardWriter(p, vocab, HASH);
    for (const d of docs) w.append(d);
    w.finish();
  };

  it('refuses a shard whose payload was corrupted, naming the file (checksum)', () => {
    const p = join(fresh(), 'c.shard');
    write(p, [[5, 6, 7], [8, 9]]);
    const b = readFileSync(p);
    b[SHARD_HEADER_BYTES + 2] ^= 0x01; // token 1: 6 → 7, still a valid id
    writeFileSync(p, b);
    const e = thrown(() => Shard.open(p));
    expect(e.message).toMatch(/Expected checksum [0-9a-f]{16} for shard '.*c\.shard' but received [0-9a-f]{16} \(the file is corrupt\)/);
  });

  it('range-checks token ids once at open, naming the shard and the token', () => {
    const p = join(fresh(), 'ids.shard');
    write(p, [[5, 150]], 200);
    const b = readFileSync(p);
    b.writeUInt32LE(100, 16); // the header now claims a vocabulary of 100; the checksum covers only the payload
    writeFileSync(p, b);
    expect(thrown(() => Shard.open(p)).message).toContain(`Expected token ids in [0, 99] for shard '${p}' but received 150 at token 1`);
    const q = join(fresh(), 'vocab.shard');
    write(q, [[5]], 300);
    expect(thrown(() => Shard.open(q, { vocabSize: 200 })).message).toMatch(/vocabulary of at most 200 \(the tokenizer's\)/);
  });

  it('prepareShard rebuilds a corrupted cache with a message', async () => {
    const dir = fresh();
    const src = put(join(dir.slice(root.length + 1), 'c.txt'), 'alpha beta\ngamma delta\n');
    const tok = await loadTokenizer(put(join(dir.slice(root.length + 1), 'vocab.txt'), ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', 'alpha', 'beta', 'gamma', 'delta'].join('\n')));
    const notes: string[] = [];
    const first = await prepareShard(src, tok, { cacheDir: dir, log: (m) => notes.push(m) });
    const b = readFileSync(first.path);
    b[SHARD_HEADER_BYTES] ^= 0x03;
    writeFileSync(first.path, b);
    const again = await prepareShard(src, tok, { cacheDir: dir, log: (m) => notes.push(m) });
    expect(again.rebuilt).toBe(true);
    expect(notes).toHaveLength(1);
    expect(notes[0]).toMatch(/Expected .* for shard '.*corpus\.shard' .*; rebuilding it from the corpus/);
    expect(Shard.open(again.path).header.checksum).toBe(first.header.checksum);
  });
});

describe('tokenizer.json', () => {
  const vocab = { '[PAD]': 0, '[UNK]': 1, '[CLS]': 2, '[SEP]': 3, '[MASK]': 4, a: 5, b: 6 };
  const tokenizerJson = (model: object, added: object[] = []): object => ({
    version: '1.0', truncation: null, padding: null, added_tokens: added, normalizer: null,
    pre_tokenizer: { type: 'Whitespace' }, post_processor: null, decoder: null,
    model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab, ...model },
  });

  it('refuses special-token ids outside the vocabulary at load', async () => {
    const f = put('tok-oor/tokenizer.json', JSON.stringify(tokenizerJson({ vocab: { ...vocab, '[MASK]': 1000 } })));
    const e = await rejected(loadTokenizer(f));
    expect(e.message).toContain(`Expected an id in [0, 6] (the vocabulary) for [MASK] in ${f} but received 1000`);
    const neg = put('tok-neg/tokenizer.json', JSON.stringify(tokenizerJson({ vocab: { ...vocab, '[MASK]': -1 } })));
    await rejected(loadTokenizer(neg));
  });

  it('refuses a model whose unknown token is missing at load, not at encode time', async () => {
    const noUnk: Record<string, number> = { ...vocab };
    delete noUnk['[UNK]'];
    const f = put('tok-unk/tokenizer.json', JSON.stringify(tokenizerJson({ vocab: noUnk })));
    expect((await rejected(loadTokenizer(f))).message).toMatch(/Expected the model's unknown token "\[UNK\]" in its vocabulary/);
    const other = put('tok-unk2/tokenizer.json', JSON.stringify(tokenizerJson({ unk_token: '<unk>' })));
    expect((await rejected(loadTokenizer(other))).message).toMatch(/unknown token "<unk>"/);
  });

  it('does not quote the file in a JSON error', async () => {
    const f = put('tok-bad/tokenizer.json', 'SECRET-LINE-CONTENT {');
    const e = await rejected(loadTokenizer(f));
    expect(e.message).not.toContain('SECRET');
  });
});

describe('run settings', () => {
  it('refuses constructor, toString and __proto__ as unknown fields', () => {
    for (const key of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
      const parsed = JSON.parse(`{"${key}": 1}`) as Record<string, unknown>;
      expect(() => resolveConfig(parsed)).toThrow(`Expected a known setting for ${key}`);
      expect(() => resolveFinetuneConfig({ task: 'spam', ...parsed })).toThrow(`Expected a known setting for ${key}`);
      const f = put(`cfg-${key}.json`, `{"${key}": 1}`);
      expect(() => readFinetuneFile(f)).toThrow(`Expected a known setting for ${key}`);
    }
  });

  it('refuses integers beyond 2^53, eps 0 and absurd sizes with a documented bound', () => {
    expect(() => resolveConfig({ seed: 2 ** 53 })).toThrow(/for seed but received 9007199254740992 \(beyond 2\^53/);
    expect(() => resolveConfig({ eps: 0 })).toThrow('Expected a number in (0, ∞] for eps but received 0');
    expect(() => resolveFinetuneConfig({ task: 'spam', eps: 0 })).toThrow('for eps but received 0');
    expect(() => resolveConfig({ epochs: 1e21 })).toThrow('Expected an integer in [0, 100000] for epochs');
    expect(() => resolveConfig({ maxSteps: 1e12 })).toThrow('Expected an integer in [1, 1000000000] for maxSteps');
    expect(() => resolveConfig({ task: 'mim', probeEpochs: 1e21 })).toThrow('Expected an integer in [1, 10000] for probeEpochs');
    expect(() => resolveConfig({ maxLength: 65536 })).toThrow('Expected an integer in [8, 8192] for maxLength');
    expect(() => resolveConfig({ lr: NaN })).toThrow('for lr but received NaN');
    expect(() => resolveConfig({ encodingErrors: 'lenient' })).toThrow('Expected one of strict, replace, skip for encodingErrors');
  });

  it('refuses, before it starts, a text run whose activations cannot fit in memory', () => {
    const tiny = { layers: 2, hidden: 128, intermediate: 512, heads: 2 };
    expect(() => checkActivationMemory(tiny, { batchSize: 32, maxLength: 128, preset: 'bert-tiny' })).not.toThrow();
    const e = thrown(() => checkActivationMemory(tiny, { batchSize: 4096, maxLength: 8192, preset: 'bert-tiny' }));
    expect(e.code).toBe('E_OOM');
    expect(e.message).toMatch(/batchSize 4096 × maxLength 8192 on bert-tiny, about [\d.]+ GiB per micro-batch; lower maxLength or batchSize/);
  });

  it('refuses a device as a corpus (data: /dev/zero) and a line without end', async () => {
    if (existsSync('/dev/zero')) {
      expect(thrown(() => listCorpusFiles('/dev/zero')).message).toContain("'/dev/zero', a character device");
      const link = join(fresh(), 'zero.jsonl');
      symlinkSync('/dev/zero', link);
      expect(thrown(() => readLabelledFile(link)).message).toContain('Expected a regular file for labelled data');
    }
    const f = put('long-line.txt', 'x'.repeat(5000));
    const lines = async (): Promise<void> => {
      for await (const _ of readLines(f, { chunkBytes: 1024, maxLineBytes: 4096 })) void _;
    };
    expect((await rejected(lines())).message).toContain(`Expected lines of at most 4096 bytes for ${f}:1`);
  });

  it('--task mim --data <a file> says it is a file, not a directory', async () => {
    const f = put('not-a-dir.idx', 'x');
    const e = await rejected(openImageData(f, { size: [28, 28], channels: 1 }));
    expect(e.message).toContain(`received ${f}, a file, not a directory`);
  });

  const bin = join(__dirname, '..', 'bin', 'cloze.js');
  it.skipIf(!existsSync(join(__dirname, '..', 'dist', 'src', 'cli.js')))('--lr abc reports what was typed', () => {
    const run = (...args: string[]): string => {
      try {
        execFileSync(process.execPath, [bin, 'pretrain', ...args, '--out', join(root, 'never')], { encoding: 'utf8', stdio: 'pipe', timeout: 60_000 });
        return '';
      } catch (e) {
        return String((e as { stderr: string }).stderr);
      }
    };
    expect(run('--lr', 'abc')).toContain('Expected a number in [0, ∞] for lr but received "abc"');
    expect(run('--betas', '0.9', 'x')).toContain('for betas but received [0.9,"x"]');
    expect(run('--eps', '0')).toContain('Expected a number in (0, ∞] for eps but received 0');
    expect(existsSync(join(root, 'never'))).toBe(false);
  });
});

describe('text corpora', () => {
  const cp1252 = Buffer.concat([Buffer.from('caf'), Buffer.from([0xe9]), Buffer.from(' au lait\nplain line\n')]);

  async function docs(paths: string, opts: CorpusOptions = {}): Promise<string[]> {
    const out: string[] = [];
    for await (const d of readDocuments(paths, opts)) out.push(d.text);
    return out;
  }

  it('strict by default; replace and skip read the corpus and count the lines', async () => {
    const f = put('cp1252.txt', cp1252);
    expect((await rejected(docs(f))).message).toContain(`Expected valid UTF-8 for ${f}:1 but received invalid bytes (--encoding-errors replace or skip reads such lines)`);
    const stats = newEncodingStats();
    expect(await docs(f, { encodingErrors: 'replace', stats })).toEqual(['caf\uFFFD au lait', 'plain line']);
    expect(stats).toEqual({ replaced: 1, skipped: 0, examples: [`${f}:1`] });
    const skip = newEncodingStats();
    expect(await docs(f, { encodingErrors: 'skip', stats: skip })).toEqual(['plain line']);
    expect(skip.skipped).toBe(1);
  });

  it('prepareShard reports the count of replaced lines', async () => {
    const dir = fresh();
    const f = join(dir, 'c.txt');
    writeFileSync(f, cp1252);
    const tok = await loadTokenizer(put(join(dir.slice(root.length + 1), 'vocab.txt'), ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', 'plain', 'line'].join('\n')));
    const notes: string[] = [];
    const r = await prepareShard(f, tok, { cacheDir: dir, encodingErrors: 'replace', log: (m) => notes.push(m) });
    expect(r.encoding?.replaced).toBe(1);
    expect(notes).toEqual([`corpus: 1 line of invalid UTF-8 read with U+FFFD (first: ${f}:1)`]);
  });

  it('splits fortune files on a record separator', async () => {
    const f = put('fortunes', 'A bird in the hand\nis worth two.\n%\n\n%\nLook before\n  you leap.\n%\n');
    expect(await docs(f, { recordSeparator: '%' })).toEqual(['A bird in the hand is worth two.', 'Look before you leap.']);
    await expect(docs(f, { recordSeparator: ' ' })).rejects.toThrow('Expected a non-blank single-line string for recordSeparator');
  });
});

describe('checkpoint directories are data', () => {
  const config = { architectures: ['BertForMaskedLM'] };

  it('refuses marker names outside the checkpoint directory', () => {
    const out = fresh();
    const dir = saveCheckpoint(out, { step: 1, model: { w: tensor([1], [1]) }, config });
    const marker = join(dir, 'complete');
    const m = JSON.parse(readFileSync(marker, 'utf8')) as { files: Record<string, number> };
    for (const bad of ['../../etc/passwd', '/etc/passwd', '..', 'a/b']) {
      writeFileSync(marker, JSON.stringify({ ...m, files: { ...m.files, [bad]: 1 } }));
      expect(thrown(() => loadCheckpoint(dir)).message).toMatch(/Expected plain file names of the checkpoint directory/);
    }
  });

  it('does not echo the text of a malformed trainer_state.json', () => {
    const out = fresh();
    const dir = saveCheckpoint(out, { step: 1, model: { w: tensor([1], [1]) }, config });
    writeFileSync(join(dir, 'trainer_state.json'), 'TOP-SECRET-VALUE');
    const m = JSON.parse(readFileSync(join(dir, 'complete'), 'utf8')) as { files: Record<string, number> };
    writeFileSync(join(dir, 'complete'), JSON.stringify({ ...m, files: { ...m.files, 'trainer_state.json': 16 } }));
    const e = thrown(() => loadCheckpoint(dir));
    expect(e.message).not.toContain('SECRET');
    writeFileSync(join(dir, 'trainer_state.json'), 'null');
    writeFileSync(join(dir, 'complete'), JSON.stringify({ ...m, files: { ...m.files, 'trainer_state.json': 4 } }));
    expect(thrown(() => loadCheckpoint(dir)).message).toContain('Expected a JSON object');
  });

  it('follows a data path a checkpoint names only inside its run directory', () => {
    const run = fresh();
    const ck = join(run, 'checkpoint-5');
    expect(isInside(run, join(run, 'data', 'x.txt'))).toBe(true);
    expect(isInside(run, `${run}-other/x.txt`)).toBe(false);
    expect(checkpointDataPath(ck, null, undefined, '--data')).toEqual({ path: null, same: true });
    expect(checkpointDataPath(ck, join(run, 'corpus.txt'), undefined, '--data').path).toBe(join(run, 'corpus.txt'));
    expect(checkpointDataPath(ck, '/etc/passwd', '/etc/passwd', '--data')).toEqual({ path: '/etc/passwd', same: true });
    expect(checkpointDataPath(ck, '/etc/passwd', '/tmp/x', '--data').same).toBe(false);
    const e = thrown(() => checkpointDataPath(ck, '/etc/passwd', undefined, '--data'));
    expect(e.message).toMatch(/Expected --data for the data to evaluate on but received none: .* a checkpoint's paths are not followed/);
  });
});

describe('runs and checkpoints end to end', () => {
  const base = { maxLength: 32, batchSize: 8, evalBatches: 2, logEvery: 1, threads: 0, maxSteps: 2, saveEvery: 2 };
  let corpus = '';
  let tokenizer = '';

  it('--eval-fraction 0 trains without evaluating (no NaN metrics); eval of that run asks for --data', async () => {
    const dir = fresh();
    corpus = writeFixtureCorpus(join(dir, 'data'), 80);
    const tok = await trainWordPiece(corpus, { vocabSize: 120 });
    tokenizer = join(dir, 'tokenizer.json');
    tok.save(tokenizer);
    const out = join(dir, 'run');
    const notes: string[] = [];
    const r = await pretrain({ ...base, data: corpus, tokenizer, out, evalFraction: 0, evalEvery: 1 }, { output: { write: (s: string) => notes.push(s) } });
    expect(r.eval).toBeNull();
    const metrics = readFileSync(join(out, 'metrics.jsonl'), 'utf8');
    expect(metrics).not.toMatch(/NaN|null/);
    expect(metrics).not.toContain('"kind":"eval"');
    expect(notes.join('')).toContain('no held-out split (evalFraction 0)');
    expect((await rejected(evaluateMlmCheckpoint({ checkpoint: out }))).message).toContain('trained with evalFraction 0; pass --data');
  }, 120_000);

  it('cloze eval never reads the corpus a checkpoint names outside its run directory', async () => {
    const dir = fresh();
    const out = join(dir, 'run');
    await pretrain({ ...base, data: corpus, tokenizer, out }, { output: null });
    // The run's own shard stands for its corpus: scoring works without --data.
    expect((await evaluateMlmCheckpoint({ checkpoint: out, maxBatches: 1 })).split).toBe('eval');
    // A crafted checkpoint: its settings name a "corpus" outside the run, holding a secret on a malformed JSONL line.
    const secret = put(join(dir.slice(root.length + 1), 'outside', 'secret.jsonl'), 'TOP-SECRET-TOKEN not json\n');
    rmSync(join(out, 'corpus.shard'));
    const ck = readdirSync(out).find((f) => f.startsWith('checkpoint-'))!;
    const statePath = join(out, ck, 'trainer_state.json');
    const state = JSON.parse(readFileSync(statePath, 'utf8')) as { extra: { run: Record<string, unknown> } };
    state.extra.run.data = secret;
    writeFileSync(statePath, JSON.stringify(state));
    const marker = JSON.parse(readFileSync(join(out, ck, 'complete'), 'utf8')) as { files: Record<string, number> };
    marker.files['trainer_state.json'] = statSync(statePath).size;
    writeFileSync(join(out, ck, 'complete'), JSON.stringify(marker));
    const e = await rejected(evaluateMlmCheckpoint({ checkpoint: out }));
    expect(e.message).toMatch(/Expected --data for the data to evaluate on but received none/);
    expect(e.message).not.toContain('TOP-SECRET');
  }, 120_000);
});

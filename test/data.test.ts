/** Text data: readers, WordPiece tokenizers, token shards and packing. */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readDocuments, type CorpusOptions, type Document } from '../src/data/documents.js';
import { readLines } from '../src/data/lines.js';
import { PackedCorpus } from '../src/data/packing.js';
import { prepareShard } from '../src/data/prepare.js';
import { Shard, ShardWriter, SHARD_HEADER_BYTES } from '../src/data/shard.js';
import { listCorpusFiles } from '../src/data/sources.js';
import { loadTokenizer, trainWordPiece, type TextTokenizer } from '../src/data/tokenizer.js';

let root: string;
const HASH_A = 'a'.repeat(64);
const HASH_B = 'b'.repeat(64);

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'cloze-data-'));
});
afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

function file(name: string, content: string | Buffer): string {
  const p = join(root, name);
  mkdirSync(join(p, '..'), { recursive: true });
  writeFileSync(p, content);
  return p;
}

async function collect(paths: string | string[], opts: CorpusOptions = {}): Promise<Document[]> {
  const out: Document[] = [];
  for await (const d of readDocuments(paths, opts)) out.push(d);
  return out;
}

const SENTENCES = [
  'the quick brown fox jumps over the lazy dog',
  'a journey of a thousand miles begins with a single step',
  'all that glitters is not gold',
  'the early bird catches the worm',
  'actions speak louder than words',
  'knowledge is power and time is money',
];

describe('readers', () => {
  it('reads text files one document per line, skipping blank lines, CRLF and BOM handled', async () => {
    const p = file('lines.txt', '\uFEFFfirst doc\r\n\n  \nsecond doc\nthird doc');
    const docs = await collect(p);
    expect(docs.map((d) => [d.text, d.line])).toEqual([['first doc', 1], ['second doc', 4], ['third doc', 5]]);
    expect(docs[0]!.file).toBe(p);
  });

  it('reads blank-line-separated paragraphs', async () => {
    const p = file('para.txt', 'para one\ncontinues here\n\n\npara two\n  \nthree\n');
    const docs = await collect(p, { mode: 'paragraph' });
    expect(docs.map((d) => [d.text, d.line])).toEqual([['para one continues here', 1], ['para two', 5], ['three', 7]]);
  });

  it('splits lines correctly across small read chunks', async () => {
    const p = file('chunks.txt', 'héllo wörld\nsecond line ✓\nthird');
    const lines: string[] = [];
    for await (const l of readLines(p, 3)) lines.push(`${l.line}:${l.text}`);
    expect(lines).toEqual(['1:héllo wörld', '2:second line ✓', '3:third']);
  });

  it('reads a named JSONL field', async () => {
    const p = file('good.jsonl', '{"text": "alpha", "id": 1}\n\n{"body": "x", "text": "beta"}\n');
    expect((await collect(p)).map((d) => [d.text, d.line])).toEqual([['alpha', 1], ['beta', 3]]);
    expect((await collect(p, { field: 'body' }).catch((e: Error) => e.message))).toBe(
      `Expected a string field 'body' for ${p}:1 but received an object without 'body'`,
    );
  });

  it('rejects a JSONL line that is not JSON, not an object, or has a non-string field', async () => {
    const bad = file('bad.jsonl', '{"text": "ok"}\n{"text": oops}\n');
    await expect(collect(bad)).rejects.toThrow(`Expected a JSON object for ${bad}:2 but received '{"text": oops}'`);
    const arr = file('arr.jsonl', '[1, 2]\n');
    await expect(collect(arr)).rejects.toThrow(`Expected a JSON object for ${arr}:1 but received '[1, 2]'`);
    const num = file('num.jsonl', '{"text": "a"}\n{"text": "b"}\n{"text": 7}\n');
    await expect(collect(num)).rejects.toThrow(`Expected a string field 'text' for ${num}:3 but received 7`);
  });

  it('reports invalid UTF-8 with file and line', async () => {
    const p = file('latin1.txt', Buffer.concat([Buffer.from('fine\nalso fine\ncaf'), Buffer.from([0xe9]), Buffer.from('\n')]));
    await expect(collect(p)).rejects.toThrow(`Expected valid UTF-8 for ${p}:3 but received invalid bytes`);
  });

  it('reports a missing file and an empty corpus', async () => {
    const missing = join(root, 'nope.txt');
    await expect(collect(missing)).rejects.toThrow(`Expected an existing file or directory for corpus but received '${missing}'`);
    const empty = file('empty.txt', '\n   \n\n');
    await expect(collect(empty)).rejects.toThrow(`Expected at least one non-empty document for corpus but received none in '${empty}'`);
    const dir = join(root, 'emptydir');
    mkdirSync(dir, { recursive: true });
    file('emptydir/notes.md', 'ignored');
    await expect(collect(dir)).rejects.toThrow(`Expected at least one .txt or .jsonl file for corpus but received none in '${dir}'`);
  });

  it('walks directories recursively in sorted order, by extension, mixing formats', async () => {
    file('tree/b.txt', 'from b\n');
    file('tree/a/z.jsonl', '{"text": "from a/z"}\n');
    file('tree/a/y.txt', 'from a/y\n');
    file('tree/c.md', 'not picked\n');
    const dir = join(root, 'tree');
    expect(listCorpusFiles(dir).map((f) => f.slice(dir.length + 1))).toEqual(['a/y.txt', 'a/z.jsonl', 'b.txt']);
    expect((await collect(dir)).map((d) => d.text)).toEqual(['from a/y', 'from a/z', 'from b']);
    expect((await collect(dir, { extensions: ['.md'] })).map((d) => d.text)).toEqual(['not picked']);
  });
});

describe('tokenizer', () => {
  let tok: TextTokenizer;
  let corpus: string;

  beforeAll(async () => {
    corpus = file('tok/corpus.txt', `${Array.from({ length: 30 }, (_, i) => SENTENCES[i % SENTENCES.length]!.toUpperCase()).join('\n')}\n`);
    tok = await trainWordPiece(corpus, { vocabSize: 120, lowercase: true });
  });

  it('trains a WordPiece vocabulary with the special tokens first and the requested size', () => {
    expect([tok.padId, tok.unkId, tok.clsId, tok.sepId, tok.maskId]).toEqual([0, 1, 2, 3, 4]);
    expect(tok.vocabSize).toBe(120);
    expect(tok.hf.idToToken(4)).toBe('[MASK]');
  });

  it('round-trips text through encode and decode, lowercased', async () => {
    const text = 'The Early Fox Catches The Lazy Worm';
    const ids = await tok.encode(text);
    expect(ids).toBeInstanceOf(Int32Array);
    expect(ids.every((v) => v > 4 && v < 120)).toBe(true);
    expect(await tok.decode(ids)).toBe(text.toLowerCase());
  });

  it('keeps case when lowercase is false', async () => {
    const cased = await trainWordPiece(corpus, { vocabSize: 200, lowercase: false });
    expect(await cased.decode(await cased.encode('THE QUICK FOX'))).toBe('THE QUICK FOX');
    await expect(trainWordPiece(corpus, { vocabSize: 3 })).rejects.toThrow('Expected an integer in [6, 30000] for vocabSize but received 3');
  });

  it('saves and loads tokenizer.json with identical encodings', async () => {
    const p = join(root, 'tok/tokenizer.json');
    tok.save(p);
    const back = await loadTokenizer(p);
    const text = SENTENCES.join(' ');
    expect(Array.from(await back.encode(text))).toEqual(Array.from(await tok.encode(text)));
    expect(back.fingerprint()).toBe(tok.fingerprint());
    expect(back.vocabSize).toBe(120);
  });

  it('loads a BERT vocab.txt', async () => {
    const p = file('tok/vocab.txt', ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', 'hello', 'world', 'wor', '##ld', '!'].join('\n') + '\n');
    const v = await loadTokenizer(p);
    expect(v.vocabSize).toBe(10);
    expect(Array.from(await v.encode('Hello world! xyz'))).toEqual([5, 6, 9, 1]);
    expect(await v.decode([2, 5, 7, 8, 3])).toBe('hello world');
  });

  it('rejects bad tokenizer files', async () => {
    const dup = file('tok/dup.txt', '[PAD]\n[UNK]\n[PAD]\n');
    await expect(loadTokenizer(dup)).rejects.toThrow(`Expected a unique token for ${dup}:3 but received '[PAD]', already on line 1`);
    const noMask = file('tok/nomask.txt', '[PAD]\n[UNK]\n[CLS]\n[SEP]\nhi\n');
    await expect(loadTokenizer(noMask)).rejects.toThrow(
      `Expected a vocabulary with [PAD] [UNK] [CLS] [SEP] [MASK] for ${noMask} but received one without [MASK]`,
    );
    const missing = join(root, 'tok/missing.json');
    await expect(loadTokenizer(missing)).rejects.toThrow(`Expected an existing tokenizer.json for tokenizer but received '${missing}'`);
  });
});

function writeShard(path: string, docs: number[][], vocab = 100, hash = HASH_A): void {
  const w = new ShardWriter(path, vocab, hash);
  for (const d of docs) w.append(d);
  w.finish();
}

describe('shards', () => {
  it('round-trips tokens and document boundaries (uint16 and int32)', () => {
    const docs = [[5, 6, 7], [8], [9, 10, 11, 12]];
    const p = join(root, 'rt.shard');
    writeShard(p, [docs[0]!, [], docs[1]!, docs[2]!]);
    const s = Shard.open(p);
    expect(s.header).toMatchObject({ version: 2, tokenBytes: 2, vocabSize: 100, tokenCount: 8, docCount: 3, hash: HASH_A });
    expect(Array.from(s.docStarts)).toEqual([0, 3, 4, 8]);
    expect([0, 1, 2].map((d) => Array.from(s.document(d)))).toEqual(docs);
    s.close();

    const big = join(root, 'big.shard');
    writeShard(big, [[70000, 1], [69999]], 70001);
    const b = Shard.open(big);
    expect(b.header.tokenBytes).toBe(4);
    expect(Array.from(b.document(0))).toEqual([70000, 1]);
    b.close();
  });

  it('reports a corrupt or truncated header', () => {
    const p = join(root, 'corrupt.shard');
    writeShard(p, [[5, 6]]);
    const bytes = readFileSync(p);
    writeFileSync(p, Buffer.concat([Buffer.from('NOTASHRD'), bytes.subarray(8)]));
    expect(() => Shard.open(p)).toThrow(`Expected magic 'CLZSHARD' for shard '${p}' but received "NOTASHRD"`);
    writeFileSync(p, bytes.subarray(0, 20));
    expect(() => Shard.open(p)).toThrow(`Expected a ${SHARD_HEADER_BYTES}-byte header for shard '${p}' but received 20 bytes`);
    writeFileSync(p, bytes.subarray(0, bytes.length - 3));
    expect(() => Shard.open(p)).toThrow(`Expected ${bytes.length} bytes for shard '${p}' but received ${bytes.length - 3}`);
    const v2 = Buffer.from(bytes);
    v2.writeUInt32LE(1, 8);
    writeFileSync(p, v2);
    expect(() => Shard.open(p)).toThrow(`Expected version 2 for shard '${p}' but received 1`);
  });

  it('writes atomically: a failed write leaves neither a partial shard nor a temp file', () => {
    const dir = join(root, 'atomic');
    mkdirSync(dir);
    const p = join(dir, 'x.shard');
    writeShard(p, [[5, 6, 7]]);
    const before = readFileSync(p);
    const w = new ShardWriter(p, 100, HASH_B);
    w.append([1, 2]);
    expect(() => w.append([3, 100])).toThrow('Expected a token id in [0, 99] for ids[1] but received 100');
    expect(readdirSync(dir).sort()).toEqual(['x.shard', w.tempPath.slice(dir.length + 1)].sort());
    w.abort();
    expect(readdirSync(dir)).toEqual(['x.shard']);
    expect(readFileSync(p).equals(before)).toBe(true);
  });

  it('prepares a cached shard once and rebuilds it when a source changes', async () => {
    const src = file('prep/a.txt', `${SENTENCES.join('\n')}\n`);
    const tok = await trainWordPiece(src, { vocabSize: 150 });
    const cacheDir = join(root, 'prep/run');
    const first = await prepareShard(src, tok, { cacheDir });
    expect(first.rebuilt).toBe(true);
    expect(first.header.docCount).toBe(SENTENCES.length);
    const s = Shard.open(first.path);
    expect(await tok.decode(s.document(2))).toBe(SENTENCES[2]);
    s.close();

    const again = await prepareShard(src, tok, { cacheDir });
    expect(again).toEqual({ ...first, rebuilt: false });

    writeFileSync(src, `${SENTENCES.slice(0, 2).join('\n')}\n`);
    utimesSync(src, new Date(), new Date(Date.now() + 5000));
    const stale = await prepareShard(src, tok, { cacheDir });
    expect(stale.rebuilt).toBe(true);
    expect(stale.header.docCount).toBe(2);
    expect(stale.header.hash).not.toBe(first.header.hash);
    expect(readdirSync(cacheDir)).toEqual(['corpus.shard']);

    const bad = file('prep/bad.jsonl', '{"text": "fine"}\nnot json\n');
    await expect(prepareShard(bad, tok, { cacheDir, name: 'bad' })).rejects.toThrow(`Expected a JSON object for ${bad}:2 but received 'not json'`);
    expect(readdirSync(cacheDir)).toEqual(['corpus.shard']);
  });
});

describe('packing', () => {
  const special = { clsId: 2, sepId: 3, padId: 0 };
  // Documents of lengths 5, 3, 1, 7 with distinct ids 10..25: stream length 16 + 3 separators = 19.
  const docs = [[10, 11, 12, 13, 14], [15, 16, 17], [18], [19, 20, 21, 22, 23, 24, 25]];
  let shard: Shard;

  beforeAll(() => {
    const p = join(root, 'pack.shard');
    writeShard(p, docs);
    shard = Shard.open(p);
  });
  afterAll(() => shard.close());

  it('packs [CLS] chunk [SEP] with [SEP] between documents and pads only the last sequence', () => {
    const packed = new PackedCorpus(shard, special, { maxLength: 6, evalFraction: 0 });
    expect(packed.numSequences).toBe(5); // ceil(19 / 4)
    const seqs = Array.from({ length: 5 }, (_, i) => {
      const out = new Int32Array(6);
      const n = packed.sequence(i, out);
      return [n, Array.from(out)];
    });
    expect(seqs).toEqual([
      [6, [2, 10, 11, 12, 13, 3]],
      [6, [2, 14, 3, 15, 16, 3]],
      [6, [2, 17, 3, 18, 3, 3]],
      [6, [2, 19, 20, 21, 22, 3]],
      [5, [2, 23, 24, 25, 3, 0]],
    ]);
  });

  it('holds out an eval split and batches int32 ids with an attention mask', () => {
    const packed = new PackedCorpus(shard, special, { maxLength: 4, evalFraction: 0.2, seed: 7 });
    expect(packed.numSequences).toBe(10); // ceil(19 / 2)
    expect(packed.evalIndices.length).toBe(2);
    expect(packed.trainIndices.length).toBe(8);
    const all = [...packed.evalIndices, ...packed.trainIndices].sort((a, b) => a - b);
    expect(all).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);

    const batches = [...packed.batches('train', 3)];
    expect(batches.map((b) => b.shape)).toEqual([[3, 4], [3, 4], [2, 4]]);
    expect([...packed.batches('train', 3, { dropLast: true })].length).toBe(2);
    const b0 = batches[0]!;
    expect(b0.ids).toBeInstanceOf(Int32Array);
    for (let r = 0; r < 3; r++) {
      const row = Array.from(b0.ids.subarray(r * 4, r * 4 + 4));
      const expectRow = new Int32Array(4);
      packed.sequence(b0.indices[r]!, expectRow);
      expect(row).toEqual(Array.from(expectRow));
      expect(row[0]).toBe(2);
    }
    const last = packed.sequence(9, new Int32Array(4));
    expect(last).toBe(3); // [CLS] 25 [SEP] [PAD]
    const evalRows = [...packed.batches('eval', 10)][0]!;
    expect(Array.from(evalRows.indices)).toEqual(Array.from(packed.evalIndices));
    const withPad = [...packed.batches('train', 10), evalRows].flatMap((b) => Array.from(b.indices).map((idx, r) => [idx, b.attentionMask.subarray(r * 4, r * 4 + 4)] as const));
    for (const [idx, mask] of withPad) expect(Array.from(mask)).toEqual(idx === 9 ? [1, 1, 1, 0] : [1, 1, 1, 1]);
  });

  it('shuffles deterministically per seed and epoch', () => {
    const a = new PackedCorpus(shard, special, { maxLength: 3, evalFraction: 0.1, seed: 3 });
    const b = new PackedCorpus(shard, special, { maxLength: 3, evalFraction: 0.1, seed: 3 });
    const c = new PackedCorpus(shard, special, { maxLength: 3, evalFraction: 0.1, seed: 4 });
    expect(a.numSequences).toBe(19);
    expect(Array.from(a.evalIndices)).toEqual(Array.from(b.evalIndices));
    expect(Array.from(a.trainOrder(0))).toEqual(Array.from(b.trainOrder(0)));
    expect(Array.from(a.trainOrder(1))).not.toEqual(Array.from(a.trainOrder(0)));
    expect(Array.from(c.trainOrder(0))).not.toEqual(Array.from(a.trainOrder(0)));
    expect(Array.from(a.trainOrder(1)).sort((x, y) => x - y)).toEqual(Array.from(a.trainIndices));
  });

  it('validates its options', () => {
    expect(() => new PackedCorpus(shard, special, { maxLength: 2 })).toThrow('Expected an integer in [3, 2147483647] for maxLength but received 2');
    expect(() => new PackedCorpus(shard, special, { maxLength: 8, evalFraction: 0.9 })).toThrow('Expected a number in [0, 0.5] for evalFraction but received 0.9');
  });
});

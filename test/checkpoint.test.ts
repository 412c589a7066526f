/** safetensors files and checkpoint directories: format, validation, atomicity, exact resume. */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  AdamW, backward, latestCheckpoint, linear, listCheckpoints, loadCheckpoint, loadSafetensors, mul, Parameter,
  readSafetensorsHeader, Rng, saveCheckpoint, saveSafetensors, sum, tensor, Tensor, truncNormal, type DType,
} from '../src/index.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'cloze-ckpt-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
let counter = 0;
const fresh = (): string => fs.mkdtempSync(path.join(root, `t${counter++}-`));

const bytesOf = (t: Tensor): Uint8Array => {
  const a = t.toArray();
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
};

/** A safetensors file assembled by hand: 8-byte LE length, the header text as given, then the data bytes. */
function rawFile(file: string, header: string | object, data: Uint8Array = new Uint8Array(0), lengthOverride?: bigint): string {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(lengthOverride ?? BigInt(json.length));
  fs.writeFileSync(file, Buffer.concat([len, json, data]));
  return file;
}

describe('safetensors', () => {
  it('round-trips every dtype and odd shapes, including 0-d and empty tensors, bit for bit', () => {
    const rng = new Rng(5);
    const make = (shape: number[], dtype: DType): Tensor => {
      const n = shape.reduce((a, b) => a * b, 1);
      const vals = Array.from({ length: n }, () => (dtype === 'uint8' ? rng.int(256) : dtype === 'int32' ? rng.int(2 ** 31) - 2 ** 30 : rng.normal() * 1e3));
      return tensor(vals, shape, dtype);
    };
    const special = tensor([NaN, Infinity, -Infinity, -0, 1e-45, 3.4e38], [2, 3], 'float32');
    const tensors: Record<string, Tensor> = {
      'bert.encoder.layer.0.attention.self.query.weight': make([3, 5, 7], 'float32'),
      scalar64: make([], 'float64'),
      empty_i32: make([0, 4], 'int32'),
      bytes_odd: make([13], 'uint8'),
      deep: make([1, 1, 1, 1, 2], 'float32'),
      i32: make([2, 3], 'int32'),
      f64: make([5], 'float64'),
      '7': make([3], 'uint8'), // an integer-like name: JSON.stringify would reorder it
      special,
    };
    const file = path.join(fresh(), 'all.safetensors');
    saveSafetensors(file, tensors, { format: 'pt', note: 'ünïcode' });

    const header = readSafetensorsHeader(file);
    expect(header.metadata).toEqual({ format: 'pt', note: 'ünïcode' });
    expect(header.headerLength % 8).toBe(0);
    expect(fs.statSync(file).size).toBe(header.dataStart + header.tensors.at(-1)!.dataOffsets[1]);
    // Laid out by item size, then name; the header lists them in file order and each is aligned.
    expect(header.tensors.map((e) => e.name)).toEqual([
      'f64', 'scalar64', 'bert.encoder.layer.0.attention.self.query.weight', 'deep', 'empty_i32', 'i32', 'special', '7', 'bytes_odd',
    ]);
    for (let i = 1; i < header.tensors.length; i++) expect(header.tensors[i]!.dataOffsets[0]).toBe(header.tensors[i - 1]!.dataOffsets[1]);
    for (const e of header.tensors) expect((header.dataStart + e.dataOffsets[0]) % ({ F64: 8, F32: 4, I32: 4, U8: 1 } as Record<string, number>)[e.dtype]!).toBe(0);

    const back = loadSafetensors(file);
    expect(Object.keys(back).sort()).toEqual(Object.keys(tensors).sort());
    for (const [name, t] of Object.entries(tensors)) {
      expect(back[name]!.dtype, name).toBe(t.dtype);
      expect(back[name]!.shape, name).toEqual(t.shape);
      expect(bytesOf(back[name]!), name).toEqual(bytesOf(t));
    }
    expect(back.scalar64!.shape).toEqual([]);
    expect(back.empty_i32!.size).toBe(0);
    expect(Object.is(back.special!.toArray()[3], -0)).toBe(true);
  });

  it('writes exactly the bytes of a reference file built from the format description', () => {
    const file = path.join(fresh(), 'tiny.safetensors');
    saveSafetensors(file, { b: tensor([1, 2, 255], [3], 'uint8'), a: tensor([1.5, -2], [2], 'float32') }, { format: 'pt' });

    // Independently: JSON header (F32 before U8), space padding to a multiple of 8, u64 LE length, LE data.
    const json = '{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[3],"data_offsets":[8,11]}}';
    const n = Math.ceil(json.length / 8) * 8;
    const expectedBytes = new Uint8Array(8 + n + 11);
    const dv = new DataView(expectedBytes.buffer);
    dv.setUint32(0, n, true); // high 32 bits stay 0
    for (let i = 0; i < n; i++) expectedBytes[8 + i] = i < json.length ? json.charCodeAt(i) : 0x20;
    dv.setFloat32(8 + n, 1.5, true);
    dv.setFloat32(8 + n + 4, -2, true);
    expectedBytes.set([1, 2, 255], 8 + n + 8);
    expect([json.length, n]).toEqual([138, 144]); // 6 bytes of padding
    expect(new Uint8Array(fs.readFileSync(file))).toEqual(expectedBytes);
  });

  it('reads hand-made files: unpadded header, header order unlike data order, F16/BF16 widened, I64 narrowed, BOOL as uint8', () => {
    const data = new Uint8Array(6 * 2 + 2 * 2 + 3 * 8 + 2);
    const dv = new DataView(data.buffer);
    [0x3c00, 0xc000, 0x7bff, 0x0001, 0x7c00, 0x8000].forEach((h, i) => dv.setUint16(i * 2, h, true)); // f16
    [0x3f80, 0xc040].forEach((h, i) => dv.setUint16(12 + i * 2, h, true)); // bf16
    [0n, 511n, -7n].forEach((v, i) => dv.setBigInt64(16 + i * 8, v, true)); // i64
    data.set([1, 0], 40); // bool
    const file = rawFile(path.join(fresh(), 'hf.safetensors'), {
      'bert.embeddings.position_ids': { dtype: 'I64', shape: [1, 3], data_offsets: [16, 40] },
      mask: { dtype: 'BOOL', shape: [2], data_offsets: [40, 42] },
      half: { dtype: 'F16', shape: [2, 3], data_offsets: [0, 12] },
      brain: { dtype: 'BF16', shape: [2], data_offsets: [12, 16] },
    }, data);
    const t = loadSafetensors(file);
    expect(t.half!.dtype).toBe('float32');
    expect(Array.from(t.half!.toArray())).toEqual([1, -2, 65504, 2 ** -24, Infinity, -0]);
    expect(Array.from(t.brain!.toArray())).toEqual([1, -3]);
    expect(t['bert.embeddings.position_ids']!.dtype).toBe('int32');
    expect(t['bert.embeddings.position_ids']!.shape).toEqual([1, 3]);
    expect(Array.from(t['bert.embeddings.position_ids']!.toArray())).toEqual([0, 511, -7]);
    expect(t.mask!.dtype).toBe('uint8');
    expect(Array.from(t.mask!.toArray())).toEqual([1, 0]);
  });

  describe('rejects malformed files with the file and the field named', () => {
    const dir = fresh();
    const f = (name: string): string => path.join(dir, name);
    const four = new Uint8Array(4);
    const entry = (o: object): object => ({ w: { dtype: 'F32', shape: [1], data_offsets: [0, 4], ...o } });
    // The last field says whether readSafetensorsHeader sees it too (it reads no tensor data).
    const cases: Array<[string, () => string, string | RegExp, boolean?]> = [
      ['shorter than 8 bytes', () => (fs.writeFileSync(f('short'), Buffer.from([1, 2, 3])), f('short')),
        `Expected a file of at least 8 bytes for the header length in ${f('short')} but received a file of 3 bytes`],
      ['header length past the end', () => rawFile(f('long'), entry({}), four, 1000n),
        `Expected a header length of at most 58 (the file size less 8) for the header length in ${f('long')} but received 1000 (file truncated?)`],
      ['header length above the limit', () => rawFile(f('huge'), entry({}), four, 2n ** 40n),
        `Expected a header length in [2, 100000000] for the header length in ${f('huge')} but received 1099511627776`],
      ['header not JSON', () => rawFile(f('notjson'), '{"w": {', four),
        /^Expected a UTF-8 JSON object for the header in .*notjson but received text that does not parse/],
      ['header not UTF-8', () => rawFile(f('latin1'), Buffer.from([0x7b, 0xff, 0x7d]).toString('latin1'), four),
        /^Expected a UTF-8 JSON object for the header in .*latin1 but received text that does not parse/],
      ['header an array', () => rawFile(f('array'), '[1, 2]', four), `Expected a JSON object for the header in ${f('array')} but received an array`],
      ['unsupported dtype', () => rawFile(f('dtype'), entry({ dtype: 'F8_E4M3', shape: [4] }), four),
        `Expected one of F32, F64, I32, U8, BOOL, F16, BF16, I64 for tensor 'w' dtype in ${f('dtype')} but received 'F8_E4M3'`],
      ['negative shape', () => rawFile(f('shape'), entry({ shape: [-1] }), four),
        `Expected an array of non-negative integers for tensor 'w' shape in ${f('shape')} but received [-1]`],
      ['offsets reversed', () => rawFile(f('rev'), entry({ data_offsets: [4, 0] }), four),
        `Expected [begin, end] with 0 ≤ begin ≤ end for tensor 'w' data_offsets in ${f('rev')} but received [4,0]`],
      ['size ≠ shape × itemsize', () => rawFile(f('size'), entry({ shape: [2] }), four),
        `Expected 8 bytes (shape [2] × 4-byte F32) for tensor 'w' in ${f('size')} but received data_offsets [0, 4] (4 bytes)`],
      ['offsets past the buffer', () => rawFile(f('range'), entry({ shape: [2], data_offsets: [0, 8] }), four),
        `Expected data_offsets within the 4-byte data buffer for tensor 'w' in ${f('range')} but received [0, 8] (file truncated?)`],
      ['overlapping tensors', () => rawFile(f('overlap'), {
        a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] },
      }, new Uint8Array(8)), `Expected data_offsets beginning at byte 8, where the previous tensor ends for tensor 'b' in ${f('overlap')} but received [4, 8] (overlapping)`],
      ['a gap between tensors', () => rawFile(f('gap'), {
        a: { dtype: 'U8', shape: [1], data_offsets: [0, 1] }, b: { dtype: 'U8', shape: [1], data_offsets: [2, 3] },
      }, new Uint8Array(3)), `Expected data_offsets beginning at byte 1, where the previous tensor ends for tensor 'b' in ${f('gap')} but received [2, 3] (leaving a gap)`],
      ['trailing bytes', () => rawFile(f('trail'), entry({}), new Uint8Array(6)),
        `Expected tensors covering the whole 6-byte data buffer for the header in ${f('trail')} but received tensors covering 4 bytes (2 trailing bytes)`],
      ['metadata not strings', () => rawFile(f('meta'), { __metadata__: { step: 3 }, ...entry({}) }, four),
        `Expected a string for __metadata__ 'step' in ${f('meta')} but received 3`],
      ['I64 outside int32', () => {
        const d = new Uint8Array(8);
        new DataView(d.buffer).setBigInt64(0, 2n ** 40n, true);
        return rawFile(f('i64'), { w: { dtype: 'I64', shape: [1], data_offsets: [0, 8] } }, d);
      }, `Expected I64 values within the int32 range for tensor 'w' in ${f('i64')} but received 1099511627776 at element 0`, false],
      ['a truncated file', () => {
        saveSafetensors(f('trunc'), { a: tensor([1, 2, 3, 4], [4]), b: tensor([5, 6], [2]) });
        fs.truncateSync(f('trunc'), fs.statSync(f('trunc')).size - 3);
        return f('trunc');
      }, `Expected data_offsets within the 21-byte data buffer for tensor 'b' in ${f('trunc')} but received [16, 24] (file truncated?)`],
    ];
    for (const [what, build, message, inHeader = true] of cases) {
      it(what, () => {
        const file = build();
        if (inHeader) expect(() => readSafetensorsHeader(file)).toThrow(message);
        else expect(readSafetensorsHeader(file).tensors).toHaveLength(1);
        expect(() => loadSafetensors(file)).toThrow(message);
      });
    }
  });

  it('a write that fails after the first tensor leaves the previous file intact and no temp file', () => {
    const dir = fresh();
    const file = path.join(dir, 'model.safetensors');
    saveSafetensors(file, { w: tensor([1, 2, 3], [3]) });
    const before = fs.readFileSync(file);
    const seen: string[] = [];
    expect(() =>
      saveSafetensors(file, { w: tensor([9, 9, 9], [3]), x: tensor([4], [1]) }, undefined, {
        afterTensor: (name) => {
          seen.push(name);
          throw new Error('simulated crash');
        },
      }),
    ).toThrow('simulated crash');
    expect(seen).toEqual(['w']);
    expect(fs.readFileSync(file)).toEqual(before);
    expect(Array.from(loadSafetensors(file).w!.toArray())).toEqual([1, 2, 3]);
    expect(fs.readdirSync(dir)).toEqual(['model.safetensors']);
  });
});

/** A tiny model: y = x·wᵀ + b, loss = ½ Σ y²: deterministic, and its gradient depends on the parameters. */
function problem(seed: number): { w: Parameter; b: Parameter; loss: () => Tensor } {
  const rng = new Rng(seed);
  const w = truncNormal([3, 4], 0.5, rng, 'float32');
  const b = Parameter.from(tensor([0.1, -0.2, 0.3], [3]), { decay: false });
  const x = tensor(Array.from({ length: 20 }, (_, i) => Math.sin(i)), [5, 4]);
  const half = tensor(new Array(15).fill(0.5), [5, 3]);
  return {
    w, b,
    loss: () => {
      const y = linear(x, w, b);
      return sum(mul(mul(y, y), half));
    },
  };
}

function trainSteps(p: ReturnType<typeof problem>, opt: AdamW, from: number, to: number): void {
  for (let step = from; step < to; step++) {
    opt.lr = 0.05 * (1 - step / 10); // a schedule, so the resumed step index matters
    opt.zeroGrad();
    backward(p.loss());
    opt.clipGradNorm(1.0);
    opt.step();
  }
}

describe('checkpoints', () => {
  const model = (): Record<string, Tensor> => ({
    'bert.embeddings.word_embeddings.weight': tensor([1, 2, 3, 4, 5, 6], [3, 2]),
    'cls.predictions.bias': tensor([0.5, -0.5, 0], [3]),
  });
  const config = { model_type: 'bert', architectures: ['BertForMaskedLM'], hidden_size: 2, vocab_size: 3 };

  it('resuming after step 3 reproduces a continuous 6-step run bit for bit (weights, AdamW moments and step, RNG)', () => {
    const a = problem(11);
    const optA = new AdamW([a.w, a.b], { lr: 0.05, weightDecay: 0.1 });
    trainSteps(a, optA, 0, 6);

    const out = fresh();
    const b = problem(11);
    const optB = new AdamW([b.w, b.b], { lr: 0.05, weightDecay: 0.1 });
    trainSteps(b, optB, 0, 3);
    const rng = new Rng(3);
    rng.normal(); // leaves a spare normal in the state
    const dir = saveCheckpoint(out, {
      step: 3, model: { weight: b.w, bias: b.b }, config, optimizer: optB, rng: { masking: rng },
      dataPosition: { epoch: 0, batch: 3 }, dropoutCounters: { 'encoder.layer.0.dropout': 7 }, extra: { lrPeak: 0.05 },
    });
    const rngNext = [rng.normal(), rng.uniform()];

    // A fresh process: different initial weights, a new optimizer, everything from the checkpoint.
    const c = problem(99);
    const optC = new AdamW([c.w, c.b], { lr: 1, weightDecay: 0.1 });
    const ck = loadCheckpoint(latestCheckpoint(out)!);
    expect(ck.dir).toBe(dir);
    c.w.native.copyFrom(ck.model.weight!.native);
    c.b.native.copyFrom(ck.model.bias!.native);
    optC.loadState(ck.optimizer!);
    expect(optC.stepCount).toBe(3);
    expect(ck.step).toBe(3);
    expect(ck.optimizer!.groups.map((g) => [g.size, g.weightDecay])).toEqual([[12, 0.1], [3, 0]]);
    const rngC = new Rng(0);
    rngC.setState(ck.rng.masking!);
    expect([rngC.normal(), rngC.uniform()]).toEqual(rngNext);
    expect(ck.dataPosition).toEqual({ epoch: 0, batch: 3 });
    expect(ck.dropoutCounters).toEqual({ 'encoder.layer.0.dropout': 7 });
    expect(ck.extra).toEqual({ lrPeak: 0.05 });
    ck.dispose();
    trainSteps(c, optC, 3, 6);

    expect(bytesOf(c.w)).toEqual(bytesOf(a.w));
    expect(bytesOf(c.b)).toEqual(bytesOf(a.b));
    expect(bytesOf(c.w)).not.toEqual(bytesOf(b.w)); // and it did train on after the save
  });

  it('AdamW.loadState rejects moments of the wrong size or group count', () => {
    const p = problem(1);
    const opt = new AdamW([p.w, p.b], { lr: 0.1 });
    const m = tensor(new Array(12).fill(0), [12]);
    const wrong = tensor(new Array(5).fill(0), [5]);
    expect(() => opt.loadState({ step: 1, groups: [{ m, v: m }] })).toThrow('Expected 2 parameter groups for state.groups but received 1');
    expect(() => opt.loadState({ step: 1, groups: [{ m, v: m }, { m: wrong, v: wrong }] })).toThrow(
      'Expected a float32 tensor of shape [3] for state.groups[1].m but received float32 tensor [5]',
    );
    expect(opt.stepCount).toBe(0);
  });

  it('writes an HF-loadable layout: model.safetensors with format pt, config.json, tokenizer files; keeps the last K', () => {
    const out = fresh();
    const src = fresh();
    fs.writeFileSync(path.join(src, 'vocab.txt'), '[PAD]\n[UNK]\n[CLS]\n');
    fs.writeFileSync(path.join(src, 'tokenizer.json'), '{"version":"1.0"}');
    for (const step of [10, 20, 30, 40]) {
      saveCheckpoint(out, { step, model: model(), config, tokenizerFiles: [path.join(src, 'vocab.txt'), path.join(src, 'tokenizer.json')] }, { keepLast: 2 });
    }
    expect(fs.readdirSync(out).sort()).toEqual(['checkpoint-30', 'checkpoint-40']);
    const dir = latestCheckpoint(out)!;
    expect(path.basename(dir)).toBe('checkpoint-40');
    expect(fs.readdirSync(dir).sort()).toEqual(['complete', 'config.json', 'model.safetensors', 'tokenizer.json', 'trainer_state.json', 'vocab.txt']);
    expect(readSafetensorsHeader(path.join(dir, 'model.safetensors')).metadata).toEqual({ format: 'pt' });
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'))).toEqual(config);
    expect(fs.readFileSync(path.join(dir, 'vocab.txt'), 'utf8')).toBe('[PAD]\n[UNK]\n[CLS]\n');
    const ck = loadCheckpoint(dir);
    expect(ck.optimizer).toBeNull();
    expect(ck.tokenizerFiles.map((f) => path.basename(f))).toEqual(['tokenizer.json', 'vocab.txt']);
    expect(Array.from(ck.model['cls.predictions.bias']!.toArray())).toEqual([0.5, -0.5, 0]);
    // Saving the same step again replaces it whole.
    saveCheckpoint(out, { step: 40, model: { 'cls.predictions.bias': tensor([7], [1]) }, config }, { keepLast: 2 });
    expect(Object.keys(loadCheckpoint(dir).model)).toEqual(['cls.predictions.bias']);
    expect(fs.readdirSync(out).sort()).toEqual(['checkpoint-30', 'checkpoint-40']);
  });

  it('a save that fails midway, or a process killed midway, leaves the previous checkpoint the latest and loadable', () => {
    const out = fresh();
    const p = problem(2);
    const opt = new AdamW([p.w, p.b], { lr: 0.1 });
    trainSteps(p, opt, 0, 1);
    saveCheckpoint(out, { step: 1, model: model(), config, optimizer: opt });

    // An exception after the model and optimizer files are written: the temp directory is removed.
    expect(() =>
      saveCheckpoint(out, { step: 2, model: model(), config, optimizer: opt }, {
        afterFile: (name) => {
          if (name === 'optimizer.safetensors') throw new Error('disk full');
        },
      }),
    ).toThrow('disk full');
    expect(fs.readdirSync(out)).toEqual(['checkpoint-1']);

    // What a kill -9 leaves: a temp directory of a dead process with a torn file, and a copied
    // checkpoint directory that never got its marker.
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    const torn = path.join(out, `checkpoint-3.tmp-${dead}-0badcafe`);
    fs.mkdirSync(torn);
    fs.writeFileSync(path.join(torn, 'model.safetensors'), Buffer.from([8, 0, 0, 0, 0, 0, 0, 0, 0x7b]));
    const unmarked = path.join(out, 'checkpoint-5');
    fs.cpSync(path.join(out, 'checkpoint-1'), unmarked, { recursive: true });
    fs.rmSync(path.join(unmarked, 'complete'));

    expect(listCheckpoints(out).map((c) => c.step)).toEqual([1]);
    const ck = loadCheckpoint(latestCheckpoint(out)!);
    expect(ck.step).toBe(1);
    expect(ck.optimizer!.step).toBe(1);
    expect(() => loadCheckpoint(unmarked)).toThrow(`Expected a 'complete' marker (the save did not finish) for checkpoint but received '${unmarked}'`);

    // A file damaged after the save is caught by the marker's sizes.
    const damaged = path.join(out, 'checkpoint-1', 'optimizer.safetensors');
    const size = fs.statSync(damaged).size;
    fs.copyFileSync(damaged, `${damaged}.bak`);
    fs.truncateSync(damaged, size - 4);
    expect(() => loadCheckpoint(path.join(out, 'checkpoint-1'))).toThrow(`Expected optimizer.safetensors of ${size} bytes for checkpoint but received '${size - 4} bytes in`);
    fs.renameSync(`${damaged}.bak`, damaged);

    // The next save cleans up the dead process's temp directory (and leaves the unmarked one alone).
    saveCheckpoint(out, { step: 4, model: model(), config });
    expect(fs.readdirSync(out).sort()).toEqual(['checkpoint-1', 'checkpoint-4', 'checkpoint-5']);
    expect(path.basename(latestCheckpoint(out)!)).toBe('checkpoint-4');
  });

  it('imports a Hugging Face model directory (F16 weights, I64 position_ids, tokenizer) to continue pre-training', () => {
    const dir = fresh();
    const data = new Uint8Array(2 * 2 + 2 * 8);
    const dv = new DataView(data.buffer);
    dv.setUint16(0, 0x3c00, true);
    dv.setUint16(2, 0xbc00, true);
    dv.setBigInt64(4, 0n, true);
    dv.setBigInt64(12, 1n, true);
    rawFile(path.join(dir, 'model.safetensors'), {
      __metadata__: { format: 'pt' },
      'bert.embeddings.LayerNorm.weight': { dtype: 'F16', shape: [2], data_offsets: [0, 4] },
      'bert.embeddings.position_ids': { dtype: 'I64', shape: [1, 2], data_offsets: [4, 20] },
    }, data);
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
    fs.writeFileSync(path.join(dir, 'vocab.txt'), '[PAD]\n');
    const ck = loadCheckpoint(dir);
    expect(ck.step).toBeNull();
    expect(ck.optimizer).toBeNull();
    expect(ck.config).toEqual(config);
    expect(ck.tokenizerFiles).toEqual([path.join(dir, 'vocab.txt')]);
    expect(Array.from(ck.model['bert.embeddings.LayerNorm.weight']!.toArray())).toEqual([1, -1]);
    expect(Array.from(ck.model['bert.embeddings.position_ids']!.toArray())).toEqual([0, 1]);
    fs.rmSync(path.join(dir, 'model.safetensors'));
    fs.writeFileSync(path.join(dir, 'pytorch_model.bin'), '');
    expect(() => loadCheckpoint(dir)).toThrow('Expected a directory with model.safetensors (convert pytorch_model.bin to safetensors first) for checkpoint');
  });

  it('rejects trainer state that JSON would not keep exactly', () => {
    expect(() => saveCheckpoint(fresh(), { step: 1, model: model(), config, extra: { loss: NaN } })).toThrow(
      'Expected a finite number (JSON) for extra.loss but received NaN',
    );
    expect(() => saveCheckpoint(fresh(), { step: 1, model: model(), config, dataPosition: { at: new Map() } as never })).toThrow(
      'Expected a JSON value for dataPosition.at but received object',
    );
  });
});

/**
 * SparK's densify and light decoder against the official code (keyu-tian/SparK,
 * pretrain/decoder.py and pretrain/spark.py): every parameter's name and shape
 * from the official halving rule, recomputed here from the rule alone; the
 * initialisation's distributions; and checkpoints of the earlier decoder
 * layout refused for resume but still evaluable.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { SparkConfig } from '../src/models/spark/config.js';
import { SparkDecoder } from '../src/models/spark/decoder.js';
import { sparkConfigFor } from '../src/tasks/spark/data.js';

/**
 * The official parameter shapes for encoder widths `widths` (finest first),
 * decoder width W and `channels` output channels. LightDecoder: channels
 * [W/2^i, i = 0..n] with n = log2(downsample); UNetBlock(cin, cout) =
 * ConvTranspose2d(cin, cin, 4) with bias, Conv2d(cin, cin, 3) no bias, BN(cin),
 * Conv2d(cin, cout, 3) no bias, BN(cout); proj = Conv2d(W/2^n, channels, 1) with
 * bias. SparK.__init__: per densified scale i (coarsest first) a mask token of
 * the encoder width e, the norm over e and Conv2d(e, W/2^i, k = 1 if i = 0 else 3)
 * with bias, or nn.Identity when i = 0 and e = W. Our decoder densifies the
 * n coarsest stages (the finest, full-resolution stage has no block input).
 */
function officialShapes(widths: number[], W: number, channels: number, arch: 'resnet' | 'convnext'): Map<string, number[]> {
  const n = Math.log2(2 ** (widths.length - 1));
  const ch = Array.from({ length: n + 1 }, (_, i) => Math.floor(W / 2 ** i));
  const m = new Map<string, number[]>();
  for (let i = 0; i < n; i++) {
    const [cin, cout] = [ch[i]!, ch[i + 1]!];
    m.set(`blocks.${i}.up.weight`, [cin, cin, 4, 4]);
    m.set(`blocks.${i}.up.bias`, [cin]);
    m.set(`blocks.${i}.conv1.weight`, [cin, cin, 3, 3]);
    m.set(`blocks.${i}.bn1.weight`, [cin]);
    m.set(`blocks.${i}.bn1.bias`, [cin]);
    m.set(`blocks.${i}.conv2.weight`, [cout, cin, 3, 3]);
    m.set(`blocks.${i}.bn2.weight`, [cout]);
    m.set(`blocks.${i}.bn2.bias`, [cout]);
    const e = widths[widths.length - 1 - i]!;
    const norm = arch === 'resnet' ? 'norm' : 'norm.norm';
    m.set(`densify.${i}.${norm}.weight`, [e]);
    m.set(`densify.${i}.${norm}.bias`, [e]);
    m.set(`densify.${i}.mask_token`, [e]);
    if (!(i === 0 && e === W)) {
      const k = i === 0 ? 1 : 3;
      m.set(`densify.${i}.proj.weight`, [ch[i]!, e, k, k]);
      m.set(`densify.${i}.proj.bias`, [ch[i]!]);
    }
  }
  m.set('proj.weight', [channels, ch[n]!, 1, 1]);
  m.set('proj.bias', [channels]);
  return m;
}

function config(widths: number[], decoderWidth: number, arch: 'resnet' | 'convnext' = 'resnet'): SparkConfig {
  return { arch, imageSize: 2 ** (widths.length - 1) * 4, channels: 1, widths, depths: widths.map(() => 1), decoderWidth };
}

function params(d: SparkDecoder): Map<string, Float32Array> {
  return new Map(d.namedParameters().map(([n, p]) => [n, Float32Array.from(p.toArray())]));
}

/** Sample mean and standard deviation. */
function moments(v: ArrayLike<number>): { mean: number; std: number } {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i]!;
  const mean = s / v.length;
  let q = 0;
  for (let i = 0; i < v.length; i++) q += (v[i]! - mean) ** 2;
  return { mean, std: Math.sqrt(q / v.length) };
}

function fractionBeyond(v: ArrayLike<number>, t: number): number {
  let c = 0;
  for (let i = 0; i < v.length; i++) if (Math.abs(v[i]!) > t) c++;
  return c / v.length;
}

describe('SparK decoder: the official structure', () => {
  const cases: Array<[string, SparkConfig]> = [
    ['the ResNet preset shape', config([32, 64, 128, 256], 128)],
    ['ConvNeXt, five stages', config([8, 16, 24, 32, 40], 64, 'convnext')],
    ['the coarsest encoder width equal to the decoder width (identity densify proj)', config([8, 12, 16], 16)],
  ];
  for (const [what, c] of cases) {
    it(`every parameter's name and shape follow the official rule: ${what}`, () => {
      const d = new SparkDecoder(c, 1);
      try {
        const got = new Map(d.namedParameters().map(([n, p]) => [n, [...p.shape]]));
        const want = officialShapes(c.widths, c.decoderWidth, c.channels, c.arch);
        expect(Object.fromEntries(got)).toEqual(Object.fromEntries(want));
        // Running statistics per BatchNorm, of its width.
        for (const [n, b] of d.namedBuffers()) {
          const w = want.get(n.replace(/running_(mean|var)$/, 'weight'));
          expect(w, `buffer ${n}`).toBeTruthy();
          expect([...b.shape]).toEqual(w);
        }
      } finally {
        d.dispose();
      }
    });
  }
});

describe('SparK decoder: the official initialisation', () => {
  // Wide enough that each tensor holds thousands of draws: a sample std within 4% is ≥ 5 standard errors.
  const c = config([16, 64, 128, 256], 128);
  const d = new SparkDecoder(c, 7);
  const p = params(d);

  it("decoder Conv2d weights: timm's trunc_normal_(std=.02), whose absolute bounds ±2 leave N(0, 0.02²) untruncated", () => {
    for (const [n, v] of p) {
      if (!/^(blocks\.\d+\.conv[12]|proj)\.weight$/.test(n)) continue;
      const { mean, std } = moments(v);
      expect(Math.abs(mean), n).toBeLessThan(4 * 0.02 / Math.sqrt(v.length) + 1e-7);
      if (v.length < 1000) continue;
      expect(std / 0.02, n).toBeGreaterThan(0.96);
      expect(std / 0.02, n).toBeLessThan(1.04);
      // A ±2σ truncation (BERT's) would leave none beyond 0.04; a normal has 4.55% there.
      const beyond = fractionBeyond(v, 0.04);
      expect(beyond, n).toBeGreaterThan(0.03);
      expect(beyond, n).toBeLessThan(0.06);
    }
  });

  it("ConvTranspose2d weights: kaiming_normal_(fan_out, relu) with torch's fan_out = in·16, untruncated; biases 0", () => {
    for (let i = 0; i < 3; i++) {
      const v = p.get(`blocks.${i}.up.weight`)!;
      const cin = c.decoderWidth / 2 ** i;
      const want = Math.sqrt(2 / (cin * 16));
      const { std } = moments(v);
      expect(std / want).toBeGreaterThan(0.96);
      expect(std / want).toBeLessThan(1.04);
      expect(fractionBeyond(v, 2 * want)).toBeGreaterThan(0.03);
      expect(Array.from(p.get(`blocks.${i}.up.bias`)!).every((x) => x === 0)).toBe(true);
    }
    expect(Array.from(p.get('proj.bias')!).every((x) => x === 0)).toBe(true);
  });

  it('BatchNorms: weight 1, bias 0', () => {
    for (const [n, v] of p) {
      if (/\.bn[12]\.weight$|densify\.\d+\.norm\.weight$/.test(n)) expect(Array.from(v).every((x) => x === 1), n).toBe(true);
      if (/\.bn[12]\.bias$|densify\.\d+\.norm\.bias$/.test(n)) expect(Array.from(v).every((x) => x === 0), n).toBe(true);
    }
  });

  it('mask tokens: trunc_normal_(std=.02, a=−.02, b=.02), i.e. truncated at ±1σ', () => {
    const all = [0, 1, 2].flatMap((i) => Array.from(p.get(`densify.${i}.mask_token`)!));
    expect(all.every((x) => Math.abs(x) <= 0.02)).toBe(true);
    // A normal truncated at ±1σ has std σ·√(1 − 2φ(1)/(2Φ(1) − 1)) = 0.5396σ.
    const { std } = moments(all);
    expect(std / (0.02 * 0.5396)).toBeGreaterThan(0.85);
    expect(std / (0.02 * 0.5396)).toBeLessThan(1.15);
  });

  it("densify projections: torch's Conv2d default, weight and bias U(±1/√(in·k²))", () => {
    for (let i = 0; i < 3; i++) {
      const w = p.get(`densify.${i}.proj.weight`)!;
      const b = p.get(`densify.${i}.proj.bias`)!;
      const [, cin, k] = d.densify.items[i]!.proj!.shape as [number, number, number];
      const bound = 1 / Math.sqrt(cin * k * k);
      for (const v of [w, b]) expect(Array.from(v).every((x) => Math.abs(x) <= bound)).toBe(true);
      const { std } = moments(w);
      expect(std / (bound / Math.sqrt(3))).toBeGreaterThan(0.95);
      expect(std / (bound / Math.sqrt(3))).toBeLessThan(1.05);
    }
  });
});

describe('SparK checkpoints of the earlier decoder layout', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cloze-spark-layout-'));
  const spark = config([8, 12, 16, 20], 16);
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ model_type: 'cloze-spark', spark, mode: 'sparse' }));

  it('are refused where the decoder would be loaded (resume, init-from), naming the field and the reason', () => {
    expect(() => sparkConfigFor({ preset: 'spark-resnet-mini', initFrom: null }, dir, { decoder: true })).toThrow(
      /Expected decoder_layout "official-unet" .* but received "none": the checkpoint holds the earlier SparK decoder/,
    );
    expect(() => sparkConfigFor({ preset: 'spark-resnet-mini', initFrom: dir }, null, { decoder: true })).toThrow(/decoder_layout/);
  });

  it('still give their encoder config where only the encoder is read (eval)', () => {
    expect(sparkConfigFor({ preset: 'spark-resnet-mini', initFrom: dir }, null, { decoder: false })).toEqual(spark);
  });
});

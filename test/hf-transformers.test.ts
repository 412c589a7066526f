/**
 * Hugging Face interop. Always: the verdict rules of `npm run
 * check:hf-transformers` (bench/lib/hf-report.ts) and the ELECTRA generator's
 * export (`cloze export --generator`: ElectraForMaskedLM's names, the shared
 * embeddings copied in). With CLOZE_HF_PYTHON naming a python with torch and
 * transformers: the whole check, real runs loaded by the real library.
 */
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  ALLOWED_MISSING, buildReport, compareValues, formatCheck, HF_ATOL, loadProblems, verdict,
} from '../bench/lib/hf-report.js';
import { exportCheckpoint } from '../src/commands/export.js';
import { hfBertConfig } from '../src/models/bert/hf-config.js';
import { BertForMaskedLM } from '../src/models/bert/model.js';
import { generatorExportName, generatorExportTensors, hfElectraGeneratorConfig } from '../src/models/electra/generator-export.js';
import { hfElectraConfig } from '../src/models/electra/hf-config.js';
import { electraConfig, ElectraForPreTraining } from '../src/models/electra/model.js';
import { loadSafetensors, readSafetensorsHeader, saveCheckpoint, tensor } from '../src/index.js';

const root = mkdtempSync(join(tmpdir(), 'cloze-hf-transformers-'));

describe('check:hf-transformers verdicts', () => {
  it('compares within 1e-4 absolute, counting NaN as outside and refusing unequal lengths', () => {
    expect(HF_ATOL).toBe(1e-4);
    const c = compareValues([1, 2, 3], [1 + 5e-5, 2, 3 - 2e-4]);
    expect(c.count).toBe(3);
    expect(c.outside).toBe(1);
    expect(c.maxAbsDiff).toBeCloseTo(2e-4, 10);
    expect(c.maxAbsRef).toBeCloseTo(3 - 2e-4, 10);
    const n = compareValues([0, NaN], [0, 1]);
    expect(n.outside).toBe(1);
    expect(n.maxAbsDiff).toBe(Infinity);
    expect(() => compareValues([1, 2], [1])).toThrow('Expected as many values from transformers as ours (2) but received 1');
  });

  it('allows only the tied output embeddings to be missing, and nothing unexpected or mismatched', () => {
    expect(ALLOWED_MISSING.BertForMaskedLM).toEqual(['cls.predictions.decoder.bias', 'cls.predictions.decoder.weight']);
    expect(loadProblems('BertForMaskedLM', { missing: ['cls.predictions.decoder.weight', 'cls.predictions.decoder.bias'], unexpected: [], mismatched: [] })).toEqual([]);
    expect(loadProblems('ElectraForMaskedLM', { missing: ['generator_lm_head.weight'], unexpected: [], mismatched: [] })).toEqual([]);
    expect(loadProblems('BertForSequenceClassification', { missing: ['bert.pooler.dense.weight'], unexpected: ['cls.predictions.bias'], mismatched: ['classifier.weight'] }))
      .toEqual(['missing bert.pooler.dense.weight', 'unexpected cls.predictions.bias', 'mismatched classifier.weight']);
    expect(loadProblems('ElectraForPreTraining', { missing: ['generator_lm_head.weight'], unexpected: [], mismatched: [] })).toEqual(['missing generator_lm_head.weight']);
    expect(loadProblems('RobertaForMaskedLM', { missing: [], unexpected: [], mismatched: [] })[0]).toMatch(/^no rule for RobertaForMaskedLM: expected one of BertForMaskedLM/);
  });

  it('passes a check only when its numbers agree and nothing else is wrong; the report passes only when every check does', () => {
    const good = verdict('a', 'BertForMaskedLM', compareValues([1, 2], [1, 2 + 1e-6]), []);
    expect(good.pass).toBe(true);
    expect(formatCheck(good)).toMatch(/^PASS a \[BertForMaskedLM\]: max abs diff 1\.00e-6 over 2 values/);
    const far = verdict('b', 'BertForMaskedLM', compareValues([1, 2], [1, 3]), []);
    expect(far.pass).toBe(false);
    expect(formatCheck(far)).toMatch(/^FAIL b .*1 of 2 values differ by more than 0\.0001$/);
    const badConfig = verdict('c', 'BertForSequenceClassification', compareValues([1], [1]), ['num_labels 2, expected 3']);
    expect(badConfig.pass).toBe(false);
    expect(verdict('d', 'BertForMaskedLM', null, []).problems).toEqual(['nothing was compared']);
    const v = { transformers: '5.0.0', torch: '2.0', python: 'python3' };
    expect(buildReport(v, [good], []).pass).toBe(true);
    expect(buildReport(v, [good, far], ['x']).pass).toBe(false);
    expect(buildReport(v, [], []).pass).toBe(false);
  });
});

describe('cloze export --generator', () => {
  const tiny = { discriminator: { vocabSize: 40, hidden: 32, layers: 2, heads: 2, intermediate: 64, maxPosition: 16 } };

  it("names each tensor as HF's ElectraForMaskedLM does, and leaves the discriminator out", () => {
    expect(generatorExportName('electra.embeddings.word_embeddings.weight')).toBe('electra.embeddings.word_embeddings.weight');
    expect(generatorExportName('generator.electra.embeddings_project.weight')).toBe('electra.embeddings_project.weight');
    expect(generatorExportName('generator.electra.encoder.layer.1.output.dense.bias')).toBe('electra.encoder.layer.1.output.dense.bias');
    expect(generatorExportName('generator.generator_predictions.LayerNorm.weight')).toBe('generator_predictions.LayerNorm.weight');
    expect(generatorExportName('generator.generator_lm_head.bias')).toBe('generator_lm_head.bias');
    expect(generatorExportName('electra.encoder.layer.0.attention.self.query.weight')).toBeNull();
    expect(generatorExportName('discriminator_predictions.dense.weight')).toBeNull();
    const t = tensor([0], [1]);
    expect(() => generatorExportTensors({ 'electra.embeddings.word_embeddings.weight': t }, 'f.safetensors'))
      .toThrow('Expected the generator tensor generator.electra.embeddings_project.weight in f.safetensors but received none');
    t.dispose();
  });

  it('writes an ElectraConfig G wide over E-wide embeddings, and refuses a generator as wide as its embeddings', () => {
    const c = electraConfig(tiny);
    const j = hfElectraGeneratorConfig(c, 'run');
    expect(j).toMatchObject({ architectures: ['ElectraForMaskedLM'], model_type: 'electra', hidden_size: 8, embedding_size: 32, num_attention_heads: 1, intermediate_size: 32, vocab_size: 40, tie_word_embeddings: true });
    expect(() => hfElectraGeneratorConfig(electraConfig({ ...tiny, generatorFraction: 1 }), 'run'))
      .toThrow('Expected a generator narrower than its embeddings (hidden 32) for the ElectraForMaskedLM export of run but received a generator 32 wide');
  });

  it('exports a checkpoint\'s generator with the shared embeddings, every tensor unchanged, and refuses a non-ELECTRA checkpoint', () => {
    const m = new ElectraForPreTraining(tiny, { seed: 4 });
    const ck = saveCheckpoint(join(root, 'electra'), { step: 1, model: m.stateDict(), config: hfElectraConfig(m.config) });
    const out = join(root, 'generator');
    const files = exportCheckpoint(ck, out, { generator: true });
    expect(files).toEqual([join(out, 'model.safetensors'), join(out, 'config.json')]);
    const names = readSafetensorsHeader(join(out, 'model.safetensors')).tensors.map((t) => t.name).sort();
    const want = Object.keys(m.stateDict()).map(generatorExportName).filter((k): k is string => k !== null).sort();
    expect(names).toEqual(want);
    expect(names).toContain('electra.embeddings.position_embeddings.weight');
    expect(names).toContain('electra.encoder.layer.1.attention.self.query.weight');
    expect(names.some((k) => k.startsWith('discriminator_predictions.') || k.startsWith('generator.'))).toBe(false);
    const got = loadSafetensors(join(out, 'model.safetensors'));
    const sd = m.stateDict();
    expect(Array.from(got['electra.embeddings_project.weight']!.toArray() as Float32Array)).toEqual(Array.from(sd['generator.electra.embeddings_project.weight']!.toArray() as Float32Array));
    expect(Array.from(got['electra.embeddings.word_embeddings.weight']!.toArray() as Float32Array)).toEqual(Array.from(sd['electra.embeddings.word_embeddings.weight']!.toArray() as Float32Array));
    for (const t of Object.values(got)) t.dispose();
    expect(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).architectures).toEqual(['ElectraForMaskedLM']);
    m.dispose();

    const bert = new BertForMaskedLM({ vocabSize: 40, hidden: 16, layers: 1, heads: 2, intermediate: 32, maxPosition: 16 });
    const bck = saveCheckpoint(join(root, 'bert'), { step: 1, model: bert.stateDict(), config: hfBertConfig(bert.config) });
    bert.dispose();
    expect(() => exportCheckpoint(bck, join(root, 'no-gen'), { generator: true }))
      .toThrow('Expected an ELECTRA checkpoint (model_type "electra") in');
    expect(existsSync(join(root, 'no-gen'))).toBe(false);
    expect(() => exportCheckpoint(bck, join(root, 'both'), { generator: true, maskOnly: true }))
      .toThrow('Expected one of maskOnly (a mask-tune run) or generator (an ELECTRA run) for export but received both');
  });
});

const python = process.env.CLOZE_HF_PYTHON;
describe('transformers loads our exports, and we load its', () => {
  it.skipIf(!python)(
    python ? `every check passes with ${python}` : 'skipped: CLOZE_HF_PYTHON is not set (a python with torch and transformers 4.40+ or 5.x)',
    async () => {
      const { runHfTransformersCheck } = await import('../bench/lib/hf-transformers-check.js');
      const lines: string[] = [];
      const report = await runHfTransformersCheck({ python: python!, log: (l) => lines.push(l) });
      expect(report.checks.map((c) => c.name)).toEqual(['a mlm-pretrain', 'b mlp-ft', 'b mvp', 'c electra-discriminator', 'c electra-generator', 'd hf-saved-bert']);
      for (const c of report.checks) expect(c.problems, lines.join('\n')).toEqual([]);
      expect(report.pass).toBe(true);
      expect(report.transformers).toMatch(/^\d+\.\d+/);
    },
    300_000,
  );
});

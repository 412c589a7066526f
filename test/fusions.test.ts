/**
 * setFusions: BERT's stacked QKV projection and its fused dropout + residual add switched off give the unfused
 * chains' results (a whole MLM loss and every parameter's gradient, dropout on), and the switch reaches every layer.
 */
import { describe, expect, it } from 'vitest';
import { backward, BertForMaskedLM, scope, setFusions, type BertConfigInput, type DType } from '../src/index.js';
import { mlmBatch } from '../bench/lib/mlm_batch.js';
import { assertClose } from './helpers/tolerance.js';

const cfg: BertConfigInput = { vocabSize: 50, hidden: 24, layers: 2, heads: 3, intermediate: 48, maxPosition: 16, hiddenDropout: 0.1, initializerRange: 0.2 };

describe('setFusions', () => {
  for (const dtype of ['float32', 'float64'] as DType[])
    it(`off gives the unfused chains' loss and gradients (${dtype}, dropout 0.1)`, () => {
      const run = (fused: boolean): { loss: number; grads: number[][] } =>
        scope(() => {
          const m = new BertForMaskedLM(cfg, { seed: 4, dtype });
          m.train();
          setFusions(m, { qkv: fused, residual: fused });
          const b = mlmBatch(3, 16, cfg.vocabSize, 0.3, 7);
          const loss = m.loss(b);
          backward(loss);
          const out = { loss: loss.item(), grads: m.parameters().map((p) => Array.from(p.grad!.toArray())) };
          m.dispose();
          return out;
        });
      const a = run(true);
      const b = run(false);
      // The residual path is the same bits; the stacked projection sums its products in another order.
      const tol = dtype === 'float64' ? { atol: 1e-12, rtol: 1e-10 } : { atol: 2e-5, rtol: 2e-4 };
      assertClose([a.loss], [b.loss], tol, 'loss');
      a.grads.forEach((g, i) => assertClose(g, b.grads[i]!, tol, `gradient ${i}`));
    });

  it('reaches every self-attention and projection layer, and back', () => {
    const m = new BertForMaskedLM(cfg, { seed: 1 });
    const flags = (): boolean[] =>
      m.namedModules().flatMap(([, x]) => {
        const l = x as Partial<{ fuseQkv: boolean; fuseResidual: boolean }>;
        return [l.fuseQkv, l.fuseResidual].filter((v): v is boolean => v !== undefined);
      });
    // 2 layers × (one self-attention, two projections)
    expect(flags()).toHaveLength(6);
    expect(flags().every((v) => v)).toBe(true);
    setFusions(m, { qkv: false, residual: false });
    expect(flags().every((v) => !v)).toBe(true);
    setFusions(m, { qkv: true });
    expect(flags().filter((v) => v)).toHaveLength(2);
    m.dispose();
  });
});

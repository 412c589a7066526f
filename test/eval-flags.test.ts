/** `cloze eval` refuses fine-tuning recipe flags it would otherwise ignore without a word. */
import { describe, expect, it } from 'vitest';
import { checkFinetuneFlags } from '../src/commands/eval.js';

describe('cloze eval: fine-tuning recipe flags', () => {
  it('are refused without --finetune-epochs, naming every flag given', () => {
    expect(() => checkFinetuneFlags({ blr: 1e-3, 'drop-path': 0.2 }, true)).toThrow(/--finetune-epochs > 0 .* for --blr, --drop-path .* --finetune-epochs 0/);
    expect(() => checkFinetuneFlags({ 'layer-decay': 0.65, 'finetune-epochs': 0 }, true)).toThrow(/--layer-decay/);
  });

  it('are refused on a checkpoint that is not an image one', () => {
    expect(() => checkFinetuneFlags({ 'label-smoothing': 0.1, 'finetune-epochs': 3 }, false)).toThrow(/not an image one/);
  });

  it('refuse --blr with --lr (the peak lr would be --lr)', () => {
    expect(() => checkFinetuneFlags({ blr: 1e-3, lr: 1e-3, 'finetune-epochs': 3 }, true)).toThrow(/received both \(--lr 0\.001, --blr 0\.001\)/);
  });

  it('pass when fine-tuning reads them, and when none is given', () => {
    expect(() => checkFinetuneFlags({ blr: 1e-3, 'warmup-epochs': 2, 'finetune-epochs': 3 }, true)).not.toThrow();
    expect(() => checkFinetuneFlags({ lr: 3e-2 }, true)).not.toThrow();
    expect(() => checkFinetuneFlags({}, false)).not.toThrow();
  });
});

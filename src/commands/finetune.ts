/** `cloze finetune`: flags from the fine-tuning settings' sections, or --config settings.json. */
import type { Argv } from 'yargs';
import { FINETUNE_FIELDS, FINETUNE_RUN_FIELDS, FINETUNE_SECTIONS, readFinetuneFile } from '../tasks/finetune/config.js';
import { finetune } from '../tasks/run-finetune.js';
import { givenFlags, sectionFlags } from './flags.js';
import { untilInterrupted } from './interrupt.js';

export function finetuneOptions(y: Argv): Argv {
  y.option('config', { type: 'string', describe: 'settings.json with any of the settings below (flags override it)' });
  y.option('json', { type: 'boolean', default: false, describe: 'Print one final JSON line: {"accuracy", "macroF1", "examples", "method", …}' });
  return sectionFlags(y, FINETUNE_SECTIONS);
}

export async function runFinetune(args: Record<string, unknown>): Promise<void> {
  const flags = givenFlags(args, [...Object.keys(FINETUNE_FIELDS), ...Object.keys(FINETUNE_RUN_FIELDS)]);
  const cfg = typeof args.config === 'string' ? { ...readFinetuneFile(args.config), ...flags } : flags;
  const where = typeof args.config === 'string' ? args.config : 'command line';
  const r = await untilInterrupted((signal) => finetune(cfg, { signal }, where));
  const e = r.eval;
  if (args.json) {
    console.log(JSON.stringify({
      accuracy: e?.accuracy ?? null, macroF1: e?.macroF1 ?? null, examples: e?.examples ?? 0, method: r.method,
      loss: e?.loss ?? null, step: r.step, stopped: r.stopped, checkpoint: r.checkpoint,
    }));
    return;
  }
  const evalText = e ? `, test accuracy ${(100 * e.accuracy).toFixed(2)}%, macro-F1 ${(100 * e.macroF1).toFixed(2)}% (${e.examples} examples)` : '';
  if (r.checkpoint === null || !Number.isFinite(r.lastLoss)) {
    // No step ran: stopped during setup, or resumed a run already at its last step.
    const what = r.stopped === 'done' ? `done: the run was already at step ${r.step}` : `stopped before the first step${r.checkpoint ? ` (the run stays at step ${r.step})` : ''}`;
    console.log(`${what}\ncheckpoint: ${r.checkpoint ?? 'none saved'}`);
    return;
  }
  console.log(`${r.stopped === 'aborted' ? 'stopped' : 'done'}: ${r.method}, step ${r.step}, last loss ${r.lastLoss.toFixed(4)}${evalText}\ncheckpoint: ${r.checkpoint}`);
}

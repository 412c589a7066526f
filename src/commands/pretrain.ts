/** `cloze pretrain`: flags generated from the run settings' sections, grouped by task in --help, or --config run.json. */
import type { Argv } from 'yargs';
import { readRunFile, RUN_FIELDS, RUN_SECTIONS } from '../tasks/config.js';
import { pretrain } from '../tasks/pretrain.js';
import { givenFlags, sectionFlags } from './flags.js';
import { untilInterrupted } from './interrupt.js';

export function pretrainOptions(y: Argv): Argv {
  y.option('config', { type: 'string', describe: 'run.json with any of the settings below (flags override it)' });
  return sectionFlags(y, RUN_SECTIONS);
}

export async function runPretrain(args: Record<string, unknown>): Promise<void> {
  const flags = givenFlags(args, Object.keys(RUN_FIELDS));
  // Raw settings: the preset's recipe fills what neither the file nor a flag set.
  const cfg = typeof args.config === 'string' ? { ...readRunFile(args.config), ...flags } : flags;
  const where = typeof args.config === 'string' ? args.config : 'command line';
  const r = await untilInterrupted((signal) => pretrain(cfg, { signal }, where));
  // Data parallel, rank 0 reports for the job.
  if (r.rank !== undefined && r.rank !== 0) return;
  const e = r.eval;
  const evalText = !e
    ? ''
    : 'perplexity' in e
      ? `, eval loss ${e.loss.toFixed(4)}, accuracy ${(100 * e.accuracy).toFixed(2)}%, perplexity ${e.perplexity.toFixed(2)}`
      : `, linear probe top-1 ${(100 * e.accuracy).toFixed(2)}% at epoch ${e.epoch}`;
  if (r.checkpoint === null || !Number.isFinite(r.lastLoss)) {
    // No step ran: stopped during setup, or resumed a run already at its last step.
    const what = r.stopped === 'done' ? `done: the run was already at step ${r.step}` : `stopped before the first step${r.checkpoint ? ` (the run stays at step ${r.step})` : ''}`;
    console.log(`${what}\ncheckpoint: ${r.checkpoint ?? 'none saved'}`);
    return;
  }
  console.log(`${r.stopped === 'aborted' ? 'stopped' : 'done'}: step ${r.step}, last loss ${r.lastLoss.toFixed(4)}${evalText}\ncheckpoint: ${r.checkpoint}`);
}

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
  const e = r.eval;
  const evalText = !e
    ? ''
    : 'perplexity' in e
      ? `, eval loss ${e.loss.toFixed(4)}, accuracy ${(100 * e.accuracy).toFixed(2)}%, perplexity ${e.perplexity.toFixed(2)}`
      : `, linear probe top-1 ${(100 * e.accuracy).toFixed(2)}% at epoch ${e.epoch}`;
  console.log(`${r.stopped === 'aborted' ? 'stopped' : 'done'}: step ${r.step}, last loss ${r.lastLoss.toFixed(4)}${evalText}\ncheckpoint: ${r.checkpoint}`);
}

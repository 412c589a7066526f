/** `cloze pretrain`: flags generated from the run settings' sections, grouped by task in --help, or --config run.json. */
import type { Argv } from 'yargs';
import { readRunFile, RUN_FIELDS, RUN_SECTIONS } from '../tasks/config.js';
import { pretrain } from '../tasks/pretrain.js';
import type { FieldSpec } from '../train/config.js';

function flagName(field: string): string {
  return field.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

export function pretrainOptions(y: Argv): Argv {
  y.option('config', { type: 'string', describe: 'run.json with any of the settings below (flags override it)' });
  for (const section of RUN_SECTIONS) {
    for (const [name, s] of Object.entries(section.fields) as Array<[string, FieldSpec]>) {
      const type = s.kind === 'boolean' ? 'boolean' : s.kind === 'number' || s.kind === 'integer' || s.kind === 'number[2]' ? 'number' : 'string';
      // No yargs default: a flag the user did not give must not override run.json.
      y.option(flagName(name), {
        type,
        array: s.kind === 'number[2]',
        choices: s.choices as string[] | undefined,
        describe: s.default === null ? s.describe : `${s.describe} (default: ${JSON.stringify(s.default)})`,
      });
    }
    y.group(Object.keys(section.fields).map(flagName), `${section.title}:`);
  }
  return y;
}

/** The settings given as flags, by field name. */
function givenFlags(args: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const name of Object.keys(RUN_FIELDS)) {
    const v = args[flagName(name)];
    if (v !== undefined) out[name] = v;
  }
  return out;
}

export async function runPretrain(args: Record<string, unknown>): Promise<void> {
  const flags = givenFlags(args);
  // Raw settings: the preset's recipe fills what neither the file nor a flag set.
  const cfg = typeof args.config === 'string' ? { ...readRunFile(args.config), ...flags } : flags;
  const where = typeof args.config === 'string' ? args.config : 'command line';
  const ac = new AbortController();
  const onSigint = (): void => {
    process.stderr.write('\ninterrupted: saving a checkpoint…\n');
    ac.abort();
  };
  process.once('SIGINT', onSigint);
  try {
    const r = await pretrain(cfg, { signal: ac.signal }, where);
    const e = r.eval;
    const evalText = !e
      ? ''
      : 'perplexity' in e
        ? `, eval loss ${e.loss.toFixed(4)}, accuracy ${(100 * e.accuracy).toFixed(2)}%, perplexity ${e.perplexity.toFixed(2)}`
        : `, linear probe top-1 ${(100 * e.accuracy).toFixed(2)}% at epoch ${e.epoch}`;
    console.log(`${r.stopped === 'aborted' ? 'stopped' : 'done'}: step ${r.step}, last loss ${r.lastLoss.toFixed(4)}${evalText}\ncheckpoint: ${r.checkpoint}`);
  } finally {
    process.removeListener('SIGINT', onSigint);
  }
}

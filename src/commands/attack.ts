/**
 * `cloze attack`: PWWS or a BERT-Attack style attack on a fine-tuned
 * checkpoint; a table (or --json, one line with every metric) on stdout,
 * progress on stderr, and with --out the perturbed examples.
 */
import type { Argv } from 'yargs';
import { attack, ATTACK_DEFAULTS, ATTACKS, attackSummary, formatAttackReport, type AttackName } from '../tasks/finetune/attack.js';

export function attackOptions(y: Argv) {
  return y
    .option('checkpoint', { type: 'string', demandOption: true, describe: 'A fine-tuned run (its latest checkpoint) or checkpoint directory' })
    .option('attack', { type: 'string', choices: ATTACKS, demandOption: true, describe: 'pwws: WordNet synonyms by weighted saliency; bert-attack: an MLM\'s single-token candidates by deletion importance' })
    .option('examples', { type: 'number', default: ATTACK_DEFAULTS.examples, describe: 'Attack the first N test examples of a fixed seeded order' })
    .option('seed', { type: 'number', default: 0, describe: 'Seeds the order of the test examples (a fixed shuffle)' })
    .option('max-perturb', { type: 'number', describe: 'Largest fraction of an input\'s words that may change (default 0.3 for wordnet-topics, else 0.1)' })
    .option('max-queries', { type: 'number', default: ATTACK_DEFAULTS.maxQueries, describe: 'Query budget per example' })
    .option('mlm', { type: 'string', describe: "bert-attack: the pre-trained MLM proposing candidates (default: the checkpoint's --init-from)" })
    .option('candidates', { type: 'number', default: ATTACK_DEFAULTS.candidates, describe: "bert-attack: the MLM's top-k" })
    .option('batch-size', { type: 'number', default: ATTACK_DEFAULTS.batchSize, describe: 'Queries per forward pass (1: unbatched)' })
    .option('task-data', { type: 'string', describe: "Attack a labelled .jsonl/.csv/.tsv file instead of the run's test split" })
    .option('wordnet', { type: 'string', describe: 'pwws: the WordNet directory (default /usr/share/wordnet, Debian\'s wordnet-base)' })
    .option('out', { type: 'string', describe: 'Write adversarial.jsonl and metrics.json here' })
    .option('json', { type: 'boolean', default: false, describe: 'Print one JSON line with every metric' })
    .option('quiet', { type: 'boolean', default: false, describe: 'No progress on stderr' });
}

type AttackArgs = Awaited<ReturnType<typeof attackOptions>['argv']>;

export async function runAttack(args: AttackArgs): Promise<void> {
  const ac = new AbortController();
  // Ctrl-C stops after the current example and reports the examples done.
  const onSigint = (): void => {
    process.stderr.write('\ninterrupted: reporting the examples attacked so far…\n');
    process.exitCode = 130; // as the training commands (interrupt.ts) and npx
    ac.abort();
  };
  process.once('SIGINT', onSigint);
  let last = 0;
  try {
    const r = await attack({
      checkpoint: args.checkpoint, attack: args.attack as AttackName, examples: args.examples, seed: args.seed, maxPerturb: args['max-perturb'],
      maxQueries: args['max-queries'], mlm: args.mlm, candidates: args.candidates, batchSize: args['batch-size'], taskData: args['task-data'],
      wordnetDir: args.wordnet, out: args.out, signal: ac.signal,
      onExample: args.quiet ? undefined : (done, total, o) => {
        const now = Date.now();
        if (now - last > 2000 || done === total) {
          last = now;
          process.stderr.write(`attack: ${done}/${total} examples (last: ${o.status}, ${o.queries} queries)\n`);
        }
      },
    });
    if (args.json) console.log(JSON.stringify(attackSummary(r)));
    else {
      console.log(formatAttackReport(r));
      for (const f of r.files) console.log(f);
    }
  } finally {
    process.removeListener('SIGINT', onSigint);
  }
}

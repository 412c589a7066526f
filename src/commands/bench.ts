/** `cloze bench <suite>`: the method-comparison suites, mim and robust, with their options. */
import type { Argv } from 'yargs';
import { runMimSuite, SUITE_DEFAULTS, SUITE_METHODS } from './bench-mim.js';
import { ROBUST_DEFAULTS, ROBUST_METHODS, runRobustSuite } from './bench-robust.js';
import { ATTACKS, type AttackName } from '../tasks/finetune/attack.js';

export function benchOptions(y: Argv) {
  return y
    .positional('suite', { type: 'string', choices: ['mim', 'robust'], demandOption: true, describe: 'Which suite' })
    .option('out', { type: 'string', describe: 'Directory for runs and reports (default bench/results/<suite>)' })
    .option('epochs', { type: 'number', describe: `Epochs of every method (mim: pre-training, default ${SUITE_DEFAULTS.epochs}; robust: fine-tuning, default ${ROBUST_DEFAULTS.epochs})` })
    .option('methods', { type: 'string', array: true, choices: [...SUITE_METHODS.map((m) => m.name), ...ROBUST_METHODS.map((m) => m.name)], describe: 'Run only these methods' })
    .option('scale', { type: 'number', default: 1, describe: 'Multiply epochs and training (and attacked) examples, e.g. on a GPU' })
    .option('threads', { type: 'number', default: 0, describe: 'Native threads (0: all cores)' })
    // mim
    .option('preset', { type: 'string', default: SUITE_DEFAULTS.preset, describe: 'ViT preset' })
    .option('batch-size', { type: 'number', default: SUITE_DEFAULTS.batchSize, describe: 'Images per step' })
    .option('train-images', { type: 'number', default: SUITE_DEFAULTS.trainImages, describe: 'Pre-training images (a seeded subset; 0: all)' })
    .option('probe-every', { type: 'number', default: SUITE_DEFAULTS.probeEvery, describe: 'Probe every N epochs' })
    .option('probe-images', { type: 'number', default: SUITE_DEFAULTS.probeImages, describe: 'Training images of each probe' })
    .option('probe-epochs', { type: 'number', default: SUITE_DEFAULTS.probeEpochs, describe: 'Epochs of each probe classifier' })
    .option('finetune-epochs', { type: 'number', default: SUITE_DEFAULTS.finetuneEpochs, describe: 'Fine-tune every final encoder (and the untrained one) for this many epochs; 0: skip' })
    .option('finetune-images', { type: 'number', default: SUITE_DEFAULTS.finetuneImages, describe: 'Training images of each fine-tuning' })
    .option('seed', { type: 'number', default: SUITE_DEFAULTS.seed })
    .option('data', { type: 'string', describe: 'Image directory (default: Fashion-MNIST)' })
    // robust
    .option('init-from', { type: 'string', describe: 'A pre-trained run or checkpoint (default runs/bert-tiny, pre-trained first when absent)' })
    .option('tasks', { type: 'string', array: true, choices: ROBUST_DEFAULTS.tasks, describe: 'Built-in tasks (default: all)' })
    .option('attacks', { type: 'string', array: true, choices: ATTACKS, describe: 'Attacks (default: both)' })
    .option('seeds', { type: 'number', array: true, describe: `Fine-tuning seeds (default ${ROBUST_DEFAULTS.seeds.join(' ')})` })
    .option('max-train', { type: 'number', default: ROBUST_DEFAULTS.maxTrain, describe: 'Training examples per task (a per-class subset; 0: all)' })
    .option('examples', { type: 'number', default: ROBUST_DEFAULTS.examples, describe: 'Test examples attacked per model (the first N)' })
    .option('max-length', { type: 'number', default: ROBUST_DEFAULTS.maxLength, describe: 'Tokens per input' })
    .option('max-queries', { type: 'number', default: ROBUST_DEFAULTS.maxQueries, describe: 'Query budget per attacked example' })
    .group(['preset', 'batch-size', 'train-images', 'probe-every', 'probe-images', 'probe-epochs', 'finetune-epochs', 'finetune-images', 'seed', 'data'], 'mim:')
    .group(['init-from', 'tasks', 'attacks', 'seeds', 'max-train', 'examples', 'max-length', 'max-queries'], 'robust:');
}

type BenchArgs = Awaited<ReturnType<typeof benchOptions>['argv']>;

export async function runBench(args: BenchArgs): Promise<void> {
  const r = args.suite === 'robust'
    ? await runRobustSuite({
        out: args.out ?? 'bench/results/robust', initFrom: args['init-from'] ?? null, tasks: args.tasks as string[] | undefined,
        methods: args.methods as string[] | undefined, attacks: args.attacks as AttackName[] | undefined, seeds: args.seeds as number[] | undefined,
        epochs: args.epochs, maxTrain: args['max-train'], examples: args.examples, maxLength: args['max-length'], maxQueries: args['max-queries'],
        scale: args.scale, threads: args.threads,
      }).then((x) => ({ table: x.summary, files: x.files }))
    : await runMimSuite({
        out: args.out ?? 'bench/results/mim', preset: args.preset, epochs: args.epochs ?? SUITE_DEFAULTS.epochs, batchSize: args['batch-size'],
        trainImages: args['train-images'], probeEvery: args['probe-every'], probeImages: args['probe-images'], probeEpochs: args['probe-epochs'],
        scale: args.scale, finetuneEpochs: args['finetune-epochs'], finetuneImages: args['finetune-images'],
        methods: args.methods as string[] | undefined, seed: args.seed, threads: args.threads, data: args.data ?? null,
      });
  console.log(r.table);
  for (const f of r.files) console.log(f);
}

/**
 * `cloze bench <suite>`: the method-comparison suites, mim, robust and text, with their options. Options two suites
 * share (preset, batch size, seed, …) have no yargs default: each suite fills its own in runBench.
 */
import type { Argv } from 'yargs';
import { FINETUNE_CURVE_METHODS, runMimSuite, SUITE_DEFAULTS, SUITE_METHODS } from './bench-mim.js';
import { ROBUST_DEFAULTS, ROBUST_METHODS, runRobustSuite } from './bench-robust.js';
import { ClozeError } from '../errors.js';
import { runTextSuite, TEXT_DEFAULTS, TEXT_OBJECTIVES } from './bench-text.js';
import { ATTACKS, type AttackName } from '../tasks/finetune/attack.js';

export function benchOptions(y: Argv) {
  return y
    .positional('suite', { type: 'string', choices: ['mim', 'robust', 'text'], demandOption: true, describe: 'Which suite' })
    .option('out', { type: 'string', describe: 'Directory for runs and reports (default bench/results/<suite>)' })
    .option('epochs', { type: 'number', describe: `Epochs of every method (mim: pre-training, default ${SUITE_DEFAULTS.epochs}; robust: fine-tuning, default ${ROBUST_DEFAULTS.epochs})` })
    .option('methods', { type: 'string', array: true, choices: [...SUITE_METHODS.map((m) => m.name), ...ROBUST_METHODS.map((m) => m.name)], describe: 'Run only these methods' })
    .option('scale', { type: 'number', default: 1, describe: 'Multiply epochs and training (and attacked) examples, and text\'s FLOP budget, e.g. on a GPU' })
    .option('threads', { type: 'number', default: 0, describe: 'Native threads (0: all cores)' })
    // mim
    .option('preset', { type: 'string', describe: `mim: ViT preset (default ${SUITE_DEFAULTS.preset}); text: bert-* preset (default ${TEXT_DEFAULTS.preset})` })
    .option('batch-size', { type: 'number', describe: `mim: images per step (default ${SUITE_DEFAULTS.batchSize}); text: sequences per pre-training step (default ${TEXT_DEFAULTS.batchSize})` })
    .option('train-images', { type: 'number', default: SUITE_DEFAULTS.trainImages, describe: 'Pre-training images (a seeded subset; 0: all)' })
    .option('probe-every', { type: 'number', default: SUITE_DEFAULTS.probeEvery, describe: 'mim: evaluate (probe, and fine-tune the --finetune-curves methods) every N pre-training epochs' })
    .option('probe-images', { type: 'number', default: SUITE_DEFAULTS.probeImages, describe: 'Training images of each probe' })
    .option('probe-epochs', { type: 'number', default: SUITE_DEFAULTS.probeEpochs, describe: 'Epochs of each probe classifier' })
    .option('finetune-epochs', { type: 'number', describe: `mim: epochs of each fine-tuning (every point of --finetune-curves, the final encoder of the others, the untrained one), 0: skip (default ${SUITE_DEFAULTS.finetuneEpochs}); text: epochs of each mlp-ft fine-tuning (default ${TEXT_DEFAULTS.finetuneEpochs})` })
    .option('finetune-images', { type: 'number', default: SUITE_DEFAULTS.finetuneImages, describe: 'Training images of each fine-tuning' })
    .option('seed', { type: 'number', describe: 'text: pre-training seed (mim takes --seeds)' })
    .option('val-images', { type: 'number', default: SUITE_DEFAULTS.valImages, describe: 'mim: validation images held out of the training set (class-stratified, per seed) to choose each curve\'s best point' })
    .option('finetune-curves', { type: 'string', array: true, choices: SUITE_METHODS.map((m) => m.name), describe: `mim: methods fine-tuned at every evaluation point (default ${FINETUNE_CURVE_METHODS.join(' ')}); the others only at the end` })
    .option('finetune-blrs', { type: 'number', array: true, describe: `mim: fine-tuning base lrs (× batch / 256), one chosen per method on the validation images from the first seed's final encoder (default ${SUITE_DEFAULTS.finetuneBlrs!.join(' ')}; one rate: no choice)` })
    .option('data', { type: 'string', describe: 'mim: image directory (default: Fashion-MNIST); text: pre-training corpus (default: the bundled one)' })
    // robust
    .option('init-from', { type: 'string', describe: 'A pre-trained run or checkpoint (default runs/bert-tiny, pre-trained first when absent)' })
    .option('tasks', { type: 'string', array: true, choices: ROBUST_DEFAULTS.tasks, describe: 'robust, text: built-in tasks (default: all)' })
    .option('attacks', { type: 'string', array: true, choices: ATTACKS, describe: 'Attacks (default: both)' })
    .option('seeds', { type: 'number', array: true, describe: `robust, text: fine-tuning seeds (default ${ROBUST_DEFAULTS.seeds.join(' ')}); mim: seeds of pre-training, probe and fine-tuning (default ${SUITE_DEFAULTS.seeds.join(' ')})` })
    .option('max-train', { type: 'number', describe: `robust, text: training examples per task (a per-class subset; 0: all; default robust ${ROBUST_DEFAULTS.maxTrain}, text ${TEXT_DEFAULTS.maxTrain})` })
    .option('examples', { type: 'number', default: ROBUST_DEFAULTS.examples, describe: 'Test examples attacked per model (the first N)' })
    .option('max-length', { type: 'number', describe: `robust, text: tokens per fine-tuning input (default ${ROBUST_DEFAULTS.maxLength})` })
    .option('max-queries', { type: 'number', default: ROBUST_DEFAULTS.maxQueries, describe: 'Query budget per attacked example' })
    // text
    .option('objectives', { type: 'string', array: true, choices: TEXT_OBJECTIVES, describe: 'Pre-training objectives (default: all)' })
    .option('budget-steps', { type: 'number', default: TEXT_DEFAULTS.budgetSteps, describe: 'The FLOP budget as steps of the mlm objective (× scale)' })
    .option('budget-flops', { type: 'number', describe: 'The FLOP budget itself (× scale; overrides --budget-steps)' })
    .option('seq-length', { type: 'number', default: TEXT_DEFAULTS.seqLength, describe: 'Pre-training sequence length' })
    .option('vocab-size', { type: 'number', default: TEXT_DEFAULTS.vocabSize, describe: 'Size of the shared WordPiece tokenizer' })
    .option('points', { type: 'number', default: TEXT_DEFAULTS.points, describe: 'Checkpoints fine-tuned per objective, spread over the budget (1: the final one)' })
    .option('lrs', { type: 'number', array: true, describe: `Fine-tuning learning rates, one chosen per objective and task on a validation split held out of the training split (default ${TEXT_DEFAULTS.lrs.join(' ')}; one rate: no selection)` })
    .option('val-fraction', { type: 'number', default: TEXT_DEFAULTS.valFraction, describe: `Share of each task's training split held out for validation (at most ${TEXT_DEFAULTS.valMax} of it scored)` })
    .group(['preset', 'batch-size', 'train-images', 'probe-every', 'probe-images', 'probe-epochs', 'finetune-epochs', 'finetune-images', 'finetune-curves', 'finetune-blrs', 'val-images', 'data'], 'mim:')
    .group(['init-from', 'tasks', 'attacks', 'seeds', 'max-train', 'examples', 'max-length', 'max-queries'], 'robust:')
    .group(['objectives', 'budget-steps', 'budget-flops', 'seq-length', 'vocab-size', 'points', 'lrs', 'val-fraction'], 'text:');
}

type BenchArgs = Awaited<ReturnType<typeof benchOptions>['argv']>;

export async function runBench(args: BenchArgs): Promise<void> {
  if (args.suite === 'text') {
    if (args.epochs !== undefined) throw new ClozeError('E_VALUE', 'Expected --finetune-epochs for suite text (its fine-tuning epochs; pre-training length is the FLOP budget) but received --epochs');
    if (args.methods !== undefined) throw new ClozeError('E_VALUE', 'Expected --objectives for suite text but received --methods');
    const t = await runTextSuite({
      out: args.out ?? 'bench/results/text', preset: args.preset, objectives: args.objectives as string[] | undefined,
      budgetSteps: args['budget-steps'], budgetFlops: args['budget-flops'], batchSize: args['batch-size'], seqLength: args['seq-length'],
      vocabSize: args['vocab-size'], data: args.data ?? null, points: args.points, tasks: args.tasks as string[] | undefined,
      seeds: args.seeds as number[] | undefined, finetuneEpochs: args['finetune-epochs'], maxTrain: args['max-train'], maxLength: args['max-length'],
      lrs: args.lrs as number[] | undefined, valFraction: args['val-fraction'], scale: args.scale, seed: args.seed, threads: args.threads,
    });
    console.log(t.summary);
    for (const f of t.files) console.log(f);
    return;
  }
  if (args.suite === 'mim' && args.seed !== undefined) throw new ClozeError('E_VALUE', 'Expected --seeds for suite mim (each seed drives pre-training, probe and fine-tuning) but received --seed');
  const r = args.suite === 'robust'
    ? await runRobustSuite({
        out: args.out ?? 'bench/results/robust', initFrom: args['init-from'] ?? null, tasks: args.tasks as string[] | undefined,
        methods: args.methods as string[] | undefined, attacks: args.attacks as AttackName[] | undefined, seeds: args.seeds as number[] | undefined,
        epochs: args.epochs, maxTrain: args['max-train'] ?? ROBUST_DEFAULTS.maxTrain, examples: args.examples, maxLength: args['max-length'] ?? ROBUST_DEFAULTS.maxLength, maxQueries: args['max-queries'],
        scale: args.scale, threads: args.threads,
      }).then((x) => ({ table: x.summary, files: x.files }))
    : await runMimSuite({
        out: args.out ?? 'bench/results/mim', preset: args.preset ?? SUITE_DEFAULTS.preset, epochs: args.epochs ?? SUITE_DEFAULTS.epochs, batchSize: args['batch-size'] ?? SUITE_DEFAULTS.batchSize,
        trainImages: args['train-images'], probeEvery: args['probe-every'], probeImages: args['probe-images'], probeEpochs: args['probe-epochs'],
        scale: args.scale, finetuneEpochs: args['finetune-epochs'] ?? SUITE_DEFAULTS.finetuneEpochs, finetuneImages: args['finetune-images'],
        finetuneCurves: args['finetune-curves'] as string[] | undefined, valImages: args['val-images'], finetuneBlrs: args['finetune-blrs'] as number[] | undefined,
        methods: args.methods as string[] | undefined, seeds: (args.seeds as number[] | undefined) ?? SUITE_DEFAULTS.seeds, threads: args.threads, data: args.data ?? null,
      });
  console.log(r.table);
  for (const f of r.files) console.log(f);
}

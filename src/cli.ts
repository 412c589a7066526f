/** The `cloze` command line. */
import { cudaUnavailableReason, describeDevice } from './device.js';
import yargs from 'yargs';
import { runMimSuite, SUITE_DEFAULTS, SUITE_METHODS } from './commands/bench-mim.js';
import { attackOptions, runAttack } from './commands/attack.js';
import { evalOptions, runEval } from './commands/eval.js';
import { finetuneOptions, runFinetune } from './commands/finetune.js';
import { predictOptions, runPredict } from './commands/predict.js';
import { exportCheckpoint } from './commands/export.js';
import { pretrainOptions, runPretrain } from './commands/pretrain.js';
import { runtimeInfo, setNumThreads } from './runtime.js';
import { TASKS } from './tasks/registry.js';

export async function main(argv: string[]): Promise<void> {
  await yargs(argv)
    .scriptName('cloze')
    .usage('$0 <command> [options]')
    .command('pretrain', `Pre-train an encoder with masked modeling; --task ${Object.entries(TASKS).map(([n, t]) => `${n}: ${t.describe}`).join('; ')}`, pretrainOptions, (args) =>
      runPretrain(args as Record<string, unknown>),
    )
    .command(
      'finetune',
      'Fine-tune a pre-trained encoder on a labelled text task: mlp-ft (a classification head) or mvp (prompts scored by the MLM head), optionally on PGD perturbations (--adv)',
      finetuneOptions,
      (args) => runFinetune(args as Record<string, unknown>),
    )
    .command(
      'predict [text..]',
      'Label texts with a fine-tuned checkpoint: the label and the class probabilities of each',
      predictOptions,
      (args) => runPredict(args),
    )
    .command(
      'attack',
      'Attack a fine-tuned text classifier with word substitutions (PWWS, or BERT-Attack with single-token MLM candidates) and report accuracy under attack with TextAttack\'s metrics',
      attackOptions,
      (args) => runAttack(args),
    )
    .command(
      'eval',
      'Score a checkpoint: MLM checkpoints by masked-token loss, accuracy and perplexity on a corpus; image checkpoints (mim, spark) by linear-probe (or fine-tuned) top-1 on the test images',
      evalOptions,
      (args) => runEval(args),
    )
    .command(
      'bench <suite>',
      'Run a benchmark suite: mim (MAE, SimMIM, MTO, SBAM, HPM and no pre-training under one budget; table and plot)',
      (y) =>
        y
          .positional('suite', { type: 'string', choices: ['mim'], describe: 'Which suite' })
          .option('out', { type: 'string', default: 'bench/results/mim', describe: 'Directory for runs, summary.md, probe-accuracy.svg and curves.json' })
          .option('preset', { type: 'string', default: SUITE_DEFAULTS.preset, describe: 'ViT preset' })
          .option('epochs', { type: 'number', default: SUITE_DEFAULTS.epochs, describe: 'Pre-training epochs of every method' })
          .option('batch-size', { type: 'number', default: SUITE_DEFAULTS.batchSize, describe: 'Images per step' })
          .option('train-images', { type: 'number', default: SUITE_DEFAULTS.trainImages, describe: 'Pre-training images (a seeded subset; 0: all)' })
          .option('probe-every', { type: 'number', default: SUITE_DEFAULTS.probeEvery, describe: 'Probe every N epochs' })
          .option('probe-images', { type: 'number', default: SUITE_DEFAULTS.probeImages, describe: 'Training images of each probe' })
          .option('probe-epochs', { type: 'number', default: SUITE_DEFAULTS.probeEpochs, describe: 'Epochs of each probe classifier' })
          .option('finetune-epochs', { type: 'number', default: SUITE_DEFAULTS.finetuneEpochs, describe: 'Fine-tune every final encoder (and the untrained one) for this many epochs; 0: skip' })
          .option('finetune-images', { type: 'number', default: SUITE_DEFAULTS.finetuneImages, describe: 'Training images of each fine-tuning' })
          .option('scale', { type: 'number', default: SUITE_DEFAULTS.scale, describe: 'Multiply epochs and training images (e.g. 6 on a GPU)' })
          .option('methods', { type: 'string', array: true, choices: SUITE_METHODS.map((m) => m.name), describe: 'Run only these methods' })
          .option('seed', { type: 'number', default: SUITE_DEFAULTS.seed })
          .option('threads', { type: 'number', default: 0, describe: 'Native threads (0: all cores)' })
          .option('data', { type: 'string', describe: 'Image directory (default: Fashion-MNIST)' }),
      async (args) => {
        const r = await runMimSuite({
          out: args.out, preset: args.preset, epochs: args.epochs, batchSize: args['batch-size'], trainImages: args['train-images'],
          probeEvery: args['probe-every'], probeImages: args['probe-images'], probeEpochs: args['probe-epochs'], scale: args.scale,
          finetuneEpochs: args['finetune-epochs'], finetuneImages: args['finetune-images'],
          methods: args.methods as string[] | undefined, seed: args.seed, threads: args.threads, data: args.data ?? null,
        });
        console.log(r.table);
        for (const f of r.files) console.log(f);
      },
    )
    .command(
      'export',
      "Copy a checkpoint's Hugging Face files (weights, config, tokenizer) into a directory",
      (y) =>
        y
          .option('checkpoint', { type: 'string', demandOption: true, describe: 'A checkpoint directory, or a run directory (its latest checkpoint)' })
          .option('out', { type: 'string', demandOption: true, describe: 'Destination directory' }),
      (args) => {
        for (const f of exportCheckpoint(args.checkpoint, args.out)) console.log(f);
      },
    )
    .command(
      'info',
      'Print the device (cuda or cpu, and why not cuda), the BLAS library and thread counts in use',
      (y) => y.option('threads', { type: 'number', describe: 'Native thread-pool size (default: all cores)' }),
      (args) => {
        if (args.threads !== undefined) setNumThreads(args.threads);
        const i = runtimeInfo();
        const why = cudaUnavailableReason();
        console.log(`device: ${why ? 'cpu' : describeDevice('cuda')}`);
        if (why) console.log(`cuda: not used: ${why}`);
        console.log(`addon build: ${i.backend}`);
        console.log(`blas: ${i.blas}, ${i.blasCore} kernels (${i.blasThreads} threads)`);
        console.log(`gemm: ${i.gemm}`);
        console.log(`threads: ${i.threads}`);
        console.log(`simd: ${i.simdBytes * 8}-bit vectors`);
        console.log(`addon: ${i.addon}`);
      },
    )
    .demandCommand(1, 'Name a command; see --help.')
    // A failing run prints its own message (bin/cloze.js), not the whole usage text and a stack.
    .fail((msg, err, y) => {
      if (err) throw err;
      y.showHelp();
      throw new Error(msg);
    })
    .strict()
    .help()
    .parseAsync();
}

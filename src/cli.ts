/** The `cloze` command line. */
import { cudaUnavailableReason, describeDevice } from './device.js';
import yargs from 'yargs';
import { benchOptions, runBench } from './commands/bench.js';
import { boardOptions, runBoard } from './commands/board.js';
import { attackOptions, runAttack } from './commands/attack.js';
import { evalOptions, runEval } from './commands/eval.js';
import { finetuneOptions, runFinetune } from './commands/finetune.js';
import { predictOptions, runPredict } from './commands/predict.js';
import { exportCheckpoint } from './commands/export.js';
import { pretrainOptions, runPretrain } from './commands/pretrain.js';
import { distributedSupport } from './distributed/index.js';
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
      'Fine-tune a pre-trained encoder on a labelled text task: mlp-ft (a classification head), mvp (prompts scored by the MLM head), asa (adversarial self-attention) or mask-tune (a learned binary mask over frozen weights), optionally on PGD perturbations (--adv)',
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
      'Run a benchmark suite: mim (MAE, SimMIM, MTO, SBAM, HPM and no pre-training under one budget; table and plot); robust (mlp-ft, mvp, their PGD variants, ASA and weight-mask tuning under PWWS and BERT-Attack; table and chart); text (mlm, MosaicBERT, EMD, DrBERT and ELECTRA pre-training under one FLOP budget, fine-tuned downstream; table and plot)',
      benchOptions,
      (args) => runBench(args),
    )
    .command(
      'export',
      "Copy a checkpoint's Hugging Face files (weights, config, tokenizer) into a directory",
      (y) =>
        y
          .option('checkpoint', { type: 'string', demandOption: true, describe: 'A checkpoint directory, or a run directory (its latest checkpoint)' })
          .option('out', { type: 'string', demandOption: true, describe: 'Destination directory (with --mask-only: the mask file)' })
          .option('mask-only', { type: 'boolean', default: false, describe: 'A mask-tune run: write only its task, a weight-mask file over the base (one bit per masked weight, plus the pooler and classifier)' })
          .option('generator', { type: 'boolean', default: false, describe: 'An ELECTRA run: export its generator as an ElectraForMaskedLM directory (the shared embeddings copied in) instead of the discriminator' }),
      (args) => {
        for (const f of exportCheckpoint(args.checkpoint, args.out, { maskOnly: args['mask-only'], generator: args.generator })) console.log(f);
      },
    )
    .command(
      'board [dir]',
      'Serve a live dashboard of the runs and suite outputs under DIR (default runs/) on 127.0.0.1: their list, loss, learning rate, gradient norm, throughput and evaluation curves, updated as runs train; --export writes it as one HTML file',
      boardOptions,
      (args) => runBoard(args as { dir?: string; port?: number; export?: string }),
    )
    .command(
      'info',
      'Print the device (cuda or cpu, and why not cuda), the BLAS library and thread counts in use, and whether MPI and NCCL data parallelism are available',
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
        const d = distributedSupport();
        console.log(`mpi: ${d.mpi}`);
        console.log(`nccl: ${d.nccl}`);
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

/** The `cloze` command line. */
import yargs from 'yargs';
import { evaluateCheckpoint, formatEval } from './commands/eval.js';
import { exportCheckpoint } from './commands/export.js';
import { pretrainOptions, runPretrain } from './commands/pretrain.js';
import { runtimeInfo, setNumThreads } from './runtime.js';

export async function main(argv: string[]): Promise<void> {
  await yargs(argv)
    .scriptName('cloze')
    .usage('$0 <command> [options]')
    .command('pretrain', 'Pre-train a BERT-style encoder with masked language modeling', pretrainOptions, (args) =>
      runPretrain(args as Record<string, unknown>),
    )
    .command(
      'eval',
      'Masked-token loss, accuracy and perplexity of a checkpoint on a corpus',
      (y) =>
        y
          .option('checkpoint', { type: 'string', demandOption: true, describe: 'A checkpoint directory, or a run directory (its latest checkpoint)' })
          .option('data', { type: 'string', describe: "Corpus to score (default: the run's own, whose held-out split is used)" })
          .option('batch-size', { type: 'number', describe: 'Sequences per batch (default: the run\'s)' })
          .option('max-batches', { type: 'number', describe: 'Stop after this many batches (default: all)' })
          .option('mask-ratio', { type: 'number', describe: "Share of tokens masked (default: the run's)" })
          .option('json', { type: 'boolean', default: false, describe: 'Print one JSON line' }),
      async (args) => {
        const r = await evaluateCheckpoint({
          checkpoint: args.checkpoint, data: args.data, batchSize: args['batch-size'], maxBatches: args['max-batches'], maskRatio: args['mask-ratio'],
        });
        console.log(formatEval(r, args.json));
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
      'Print the backend, BLAS library and thread counts in use',
      (y) => y.option('threads', { type: 'number', describe: 'Native thread-pool size (default: all cores)' }),
      (args) => {
        if (args.threads !== undefined) setNumThreads(args.threads);
        const i = runtimeInfo();
        console.log(`device: ${i.backend}`);
        console.log(`blas: ${i.blas}, ${i.blasCore} kernels (${i.blasThreads} threads)`);
        console.log(`gemm: ${i.gemm}`);
        console.log(`threads: ${i.threads}`);
        console.log(`simd: ${i.simdBytes * 8}-bit vectors`);
        console.log(`addon: ${i.addon}`);
      },
    )
    .demandCommand(1, 'Name a command; see --help.')
    .strict()
    .help()
    .parseAsync();
}

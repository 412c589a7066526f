/**
 * `cloze eval`: scores a checkpoint with its task's evaluation. MLM
 * checkpoints: masked-token loss, accuracy and perplexity on a corpus. Image
 * checkpoints (mim, spark): linear-probe (or fine-tuned) top-1 on the test
 * images. Fine-tuned text classifiers: accuracy, macro-F1 and loss on the
 * run's test split or on a labelled file.
 */
import type { Argv } from 'yargs';
import { ClozeError } from '../errors.js';
import { FINETUNE_RECIPE } from '../eval/probe.js';
import { checkpointDir, evaluateImageCheckpoint, isImageCheckpoint, type ImageEvalResult } from '../tasks/evaluate.js';
import { evaluateFinetunedCheckpoint, formatFinetunedEval } from '../tasks/finetune/evaluate-checkpoint.js';
import { finetuneRecord } from '../tasks/finetune/predict.js';
import { evaluateMlmCheckpoint, formatMlmEval } from '../tasks/mlm/evaluate-checkpoint.js';

export function evalOptions(y: Argv) {
  return y
    .option('checkpoint', { type: 'string', demandOption: true, describe: 'A checkpoint directory, or a run directory (its latest checkpoint)' })
    .option('data', { type: 'string', describe: "Corpus or image directory to score (default: the run's own: for MLM its cached corpus.shard, or the bundled corpus / Fashion-MNIST when the run used it; a path the checkpoint names outside its run directory is not followed, so give it here)" })
    .option('json', { type: 'boolean', default: false, describe: 'Print one JSON line' })
    .option('batch-size', { type: 'number', describe: 'MLM: sequences per batch (default: the run\'s)' })
    .option('max-batches', { type: 'number', describe: 'MLM: stop after this many batches (default: all)' })
    .option('eval-mask-ratio', { type: 'number', alias: 'mask-ratio', describe: "MLM: share of tokens masked, in (0, 1) (default: the run's evalMaskRatio, e.g. 0.15 for mosaic-bert-*, else its maskRatio)" })
    .option('probe-epochs', { type: 'number', describe: "Images: epochs of the linear classifier (default: the run's probeEpochs)" })
    .option('probe-images', { type: 'number', describe: "Images: training images of the probe (default: the run's probeImages)" })
    .option('finetune-epochs', { type: 'number', default: 0, describe: 'Images: fine-tune the whole encoder with a linear head for this many epochs instead of a linear probe' })
    .option('finetune-images', { type: 'number', default: 0, describe: 'Images: training images for fine-tuning (0: all)' })
    .option('lr', { type: 'number', describe: 'Images: learning rate of the probe (default 3e-2), or fine-tuning\'s peak lr (default: --blr × batch / 256)' })
    .option('blr', { type: 'number', describe: `Images, fine-tuning: base lr, scaled by batch/256 as in MAE (default ${FINETUNE_RECIPE.blr})` })
    .option('layer-decay', { type: 'number', describe: `Images, fine-tuning: layer-wise lr decay per ViT block (default ${FINETUNE_RECIPE.layerDecay}; 1: off)` })
    .option('warmup-epochs', { type: 'number', describe: `Images, fine-tuning: linear warmup before the cosine (default ${FINETUNE_RECIPE.warmupEpochs})` })
    .option('label-smoothing', { type: 'number', describe: `Images, fine-tuning: label smoothing (default ${FINETUNE_RECIPE.labelSmoothing})` })
    .option('drop-path', { type: 'number', describe: `Images, fine-tuning: drop-path rate of the last ViT block (default ${FINETUNE_RECIPE.dropPath})` })
    .option('task-data', { type: 'string', describe: "Fine-tuned checkpoints: a labelled .jsonl/.csv/.tsv file to score (default: the run's test split, test-split.jsonl in its run directory)" })
    .group(['batch-size', 'max-batches', 'eval-mask-ratio'], 'MLM checkpoints:')
    .group(['probe-epochs', 'probe-images', 'finetune-epochs', 'finetune-images', 'lr', 'blr', 'layer-decay', 'warmup-epochs', 'label-smoothing', 'drop-path'], 'Image checkpoints (mim, spark):')
    .group(['task-data'], 'Fine-tuned text classifiers:');
}

type EvalArgs = Awaited<ReturnType<typeof evalOptions>['argv']>;

/** The fine-tuning recipe's flags, which only an image checkpoint's fine-tuning (--finetune-epochs > 0) reads. */
const RECIPE_FLAGS = ['blr', 'layer-decay', 'warmup-epochs', 'label-smoothing', 'drop-path'] as const;

/**
 * Refuses recipe flags that would be ignored: without --finetune-epochs (a probe or a text checkpoint reads none of
 * them), and --blr together with --lr (the peak lr is --lr then, so --blr would change nothing).
 */
export function checkFinetuneFlags(args: Partial<Record<(typeof RECIPE_FLAGS)[number] | 'lr' | 'finetune-epochs', number>>, image: boolean): void {
  const given = RECIPE_FLAGS.filter((f) => args[f] !== undefined);
  if (given.length === 0) return;
  if (!image || !(args['finetune-epochs']! > 0)) {
    throw new ClozeError('E_VALUE', `Expected --finetune-epochs > 0 on an image checkpoint for --${given.join(', --')} (fine-tuning's recipe) but received ${image ? `--finetune-epochs ${args['finetune-epochs'] ?? 0}` : 'a checkpoint that is not an image one'}`);
  }
  if (args.blr !== undefined && args.lr !== undefined) {
    throw new ClozeError('E_VALUE', `Expected one of --lr (the peak lr) and --blr (the base lr, scaled by batch/256) but received both (--lr ${args.lr}, --blr ${args.blr})`);
  }
}

export async function runEval(args: EvalArgs): Promise<void> {
  const dir = checkpointDir(args.checkpoint);
  checkFinetuneFlags(args, !finetuneRecord(dir) && isImageCheckpoint(dir));
  if (finetuneRecord(dir)) {
    const r = await evaluateFinetunedCheckpoint({ checkpoint: dir, taskData: args['task-data'], batchSize: args['batch-size'] });
    console.log(formatFinetunedEval(r, args.json));
    return;
  }
  if (isImageCheckpoint(dir)) {
    const r = await evaluateImageCheckpoint({
      checkpoint: dir, data: args.data, probeEpochs: args['probe-epochs'], probeImages: args['probe-images'],
      finetuneEpochs: args['finetune-epochs'], finetuneImages: args['finetune-images'], lr: args.lr,
      finetune: { blr: args.blr, layerDecay: args['layer-decay'], warmupEpochs: args['warmup-epochs'], labelSmoothing: args['label-smoothing'], dropPath: args['drop-path'] },
      onEpoch: args.json ? undefined : (e, loss) => process.stderr.write(`fine-tune epoch ${e}: loss ${loss.toFixed(4)}\n`),
    });
    console.log(formatImageEval(r, args.json));
    return;
  }
  const r = await evaluateMlmCheckpoint({
    checkpoint: args.checkpoint, data: args.data, batchSize: args['batch-size'], maxBatches: args['max-batches'], evalMaskRatio: args['eval-mask-ratio'],
  });
  console.log(formatMlmEval(r, args.json));
}

export function formatImageEval(r: ImageEvalResult, json: boolean): string {
  if (json) return JSON.stringify(r);
  return `${r.checkpoint} (step ${r.step}), ${r.mode} on ${r.trainImages} images: test top-1 ${(100 * r.accuracy).toFixed(2)}% ` +
    `(loss ${r.loss.toFixed(4)}, train top-1 ${(100 * r.trainAccuracy).toFixed(2)}%) over ${r.testImages} test images`;
}

/**
 * `cloze eval` on an MLM checkpoint: masked-token loss, accuracy and
 * perplexity on a corpus. With the run's own corpus it scores the run's
 * held-out split; with another corpus, all of it.
 *
 * The checkpoint's saved settings name the run's corpus, but that path is not
 * followed (src/checkpoint/named-paths.ts): without --data the run's own
 * tokenized shard (corpus.shard in the run directory) is scored, or the
 * bundled corpus when the run used it; otherwise --data is required.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { latestCheckpoint, loadCheckpoint } from '../../checkpoint/checkpoint.js';
import { PackedCorpus } from '../../data/packing.js';
import { openShard, prepareShard } from '../../data/prepare.js';
import { loadTokenizer } from '../../data/tokenizer.js';
import type { EncodingErrors } from '../../data/lines.js';
import { ClozeError } from '../../errors.js';
import { bertConfigFromHf, HF_EXTRA_KEYS } from '../../models/bert/hf-config.js';
import { BertForMaskedLM, isDecoderKey } from '../../models/bert/model.js';
import { checkField, resolveSection, SHARED_FIELDS } from '../../train/config.js';
import { BERT_PRESETS, type BertPresetName } from '../../models/bert/presets.js';
import { checkpointDataPath, runDirOf } from '../../checkpoint/named-paths.js';
import type { Shard } from '../../data/shard.js';
import { evalMaskRatioOf, MLM_FIELDS } from './config.js';
import { defaultCorpus } from './data.js';
import { evaluateMlm, type EvalResult } from './evaluate.js';
import { MaskingPlan } from './masking-plan.js';

export interface MlmEvalOptions {
  /** A checkpoint directory, or a run directory (its latest checkpoint). */
  checkpoint: string;
  data?: string;
  batchSize?: number;
  maxBatches?: number;
  /** Share of tokens masked, in (0, 1); default the run's evalMaskRatio (its preset's for runs that predate it), else its maskRatio. */
  evalMaskRatio?: number;
}

export async function evaluateMlmCheckpoint(o: MlmEvalOptions): Promise<EvalResult & { split: 'eval' | 'all'; checkpoint: string }> {
  const dir = existsSync(join(o.checkpoint, 'model.safetensors')) ? o.checkpoint : latestCheckpoint(o.checkpoint);
  if (!dir) throw new ClozeError('E_IO', `Expected a checkpoint directory or a run directory with checkpoints for checkpoint but received ${o.checkpoint}`);
  const ck = loadCheckpoint(dir);
  if (ck.config.model_type === 'electra') {
    ck.dispose();
    throw new ClozeError('E_VALUE', `Expected an MLM checkpoint in ${dir} but received an ELECTRA one (model_type "electra"), which cloze eval does not score yet; its held-out evaluation is in the run's metrics.jsonl`);
  }
  const cache = mkdtempSync(join(tmpdir(), 'cloze-eval-'));
  try {
    const model = new BertForMaskedLM(bertConfigFromHf(ck.config, join(dir, 'config.json')));
    // A decoder run (--decoder emd|drbert) is scored as the plain BertForMaskedLM its export is: cls.drbert.* is left out.
    model.loadStateDict(Object.fromEntries(Object.entries(ck.model).filter(([k]) => !HF_EXTRA_KEYS.has(k) && !isDecoderKey(k))));
    const tokFile = ['tokenizer.json', 'vocab.txt'].map((f) => join(dir, f)).find((f) => existsSync(f));
    if (!tokFile) throw new ClozeError('E_IO', `Expected tokenizer.json or vocab.txt in ${dir} for checkpoint but received neither`);
    const tok = await loadTokenizer(tokFile);
    // The run's settings, when the checkpoint is one of ours.
    const run = (ck.extra.run ?? {}) as Record<string, unknown>;
    // The run's own shard, inside its run directory, stands for the corpus the checkpoint names.
    const runShard = join(runDirOf(dir), 'corpus.shard');
    const useRunShard = o.data === undefined && typeof run.data === 'string' && existsSync(runShard);
    const named = useRunShard ? { path: null, same: true } : checkpointDataPath(dir, run.data, o.data, '--data');
    const data = named.path ?? defaultCorpus();
    const split = named.same || (typeof run.data !== 'string' && resolve(data) === defaultCorpus()) ? 'eval' : 'all';
    const given = {
      ...Object.fromEntries(Object.entries(run).filter(([k]) => ['textMode', 'jsonlField', 'encodingErrors', 'recordSeparator', 'maxLength', 'evalFraction', 'seed', 'masking', 'maskRatio', 'evalMaskRatio', 'randomTokens', 'batchSize'].includes(k))),
      ...(o.batchSize !== undefined ? { batchSize: o.batchSize } : {}),
    };
    const where = `${dir} (trainer_state.json)`;
    const cfg = { ...resolveSection(SHARED_FIELDS, given, where), ...resolveSection(MLM_FIELDS, given, where) };
    // A run saved before evalMaskRatio existed evaluates at its preset's recipe ratio, as a new run of it would.
    const recipe = BERT_PRESETS[run.preset as BertPresetName]?.recipe;
    if (!('evalMaskRatio' in run) && recipe) cfg.evalMaskRatio = recipe.evalMaskRatio;
    // A run of ours saved before randomTokens existed drew its replacements from [5, V): evaluate it as it trained.
    if (Object.keys(run).length > 0 && !('randomTokens' in run)) cfg.randomTokens = MLM_FIELDS.randomTokens.before;
    if (o.evalMaskRatio !== undefined) cfg.evalMaskRatio = checkField('evalMaskRatio', MLM_FIELDS.evalMaskRatio, o.evalMaskRatio, 'options') as number;
    if (split === 'eval' && cfg.evalFraction === 0) {
      throw new ClozeError('E_VALUE', `Expected a run with a held-out split for checkpoint ${dir} but received one trained with evalFraction 0; pass --data to score a corpus whole`);
    }
    let opened: Shard;
    if (useRunShard) {
      opened = openShard(runShard, { vocabSize: tok.vocabSize });
    } else {
      const shard = await prepareShard(data, tok, {
        cacheDir: cache, mode: cfg.textMode as 'line' | 'paragraph', field: cfg.jsonlField,
        encodingErrors: cfg.encodingErrors as EncodingErrors, recordSeparator: cfg.recordSeparator,
      });
      opened = openShard(shard.path, { vocabSize: tok.vocabSize });
    }
    const corpus = new PackedCorpus(opened, { clsId: tok.clsId, sepId: tok.sepId, padId: tok.padId }, {
      maxLength: cfg.maxLength,
      evalFraction: split === 'eval' ? cfg.evalFraction : 0,
      seed: cfg.seed,
    });
    const plan = new MaskingPlan(cfg, tok, corpus, false);
    const r = evaluateMlm(model, corpus, plan, {
      seed: cfg.seed, batchSize: cfg.batchSize, maxBatches: o.maxBatches ?? Number.MAX_SAFE_INTEGER, step: ck.step ?? 0, maskRatio: evalMaskRatioOf(cfg),
      split: split === 'eval' ? 'eval' : 'train',
    });
    model.dispose();
    return { ...r, split, checkpoint: dir };
  } finally {
    ck.dispose();
    rmSync(cache, { recursive: true, force: true });
  }
}

/** For `cloze eval --json`: the result as one JSON line. */
export function formatMlmEval(r: Awaited<ReturnType<typeof evaluateMlmCheckpoint>>, json: boolean): string {
  if (json) return JSON.stringify(r);
  return `${r.checkpoint} (step ${r.step}), ${r.split === 'eval' ? 'held-out split' : 'whole corpus'}: ` +
    `loss ${r.loss.toFixed(4)}, accuracy ${(100 * r.accuracy).toFixed(2)}%, perplexity ${r.perplexity.toFixed(2)}, ${r.maskedTokens} masked tokens (mask ratio ${r.maskRatio})`;
}

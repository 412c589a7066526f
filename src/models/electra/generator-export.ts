/**
 * An ELECTRA run's generator as a Hugging Face ElectraForMaskedLM directory
 * (`cloze export --generator`). In our checkpoint the generator shares the
 * discriminator's embeddings (stored once, under electra.embeddings.*); HF's
 * ElectraForMaskedLM has its own copy, so the export writes the shared tables
 * under its names, next to the generator's own tensors:
 *
 *   electra.embeddings.*                    → electra.embeddings.*   (E wide)
 *   generator.electra.embeddings_project.*  → electra.embeddings_project.* (E → G)
 *   generator.electra.encoder.*             → electra.encoder.*
 *   generator.generator_predictions.*       → generator_predictions.* (G → E)
 *   generator.generator_lm_head.bias        → generator_lm_head.bias
 *
 * generator_lm_head.weight is not written: HF ties it to the word embeddings
 * (tie_word_embeddings), as our generator's decoder is. HF builds
 * embeddings_project only when embedding_size ≠ hidden_size, so a generator
 * as wide as its embeddings (ours always has the projection) is refused.
 */
import { ClozeError } from '../../errors.js';
import type { Tensor } from '../../tensor.js';
import { hfBertConfig } from '../bert/hf-config.js';
import type { ElectraConfig } from './model.js';

/** HF's name for one of our ELECTRA checkpoint's tensors in the generator's export, or null when the generator does not use it. */
export function generatorExportName(k: string): string | null {
  if (k.startsWith('electra.embeddings.')) return k;
  if (k.startsWith('generator.')) return k.slice('generator.'.length);
  return null;
}

/** The generator's tensors under ElectraForMaskedLM's names (the same tensors, not copies); `where` names the file in errors. */
export function generatorExportTensors(sd: Record<string, Tensor>, where: string): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  for (const [k, t] of Object.entries(sd)) {
    const name = generatorExportName(k);
    if (name !== null) out[name] = t;
  }
  for (const need of ['electra.embeddings.word_embeddings.weight', 'electra.embeddings_project.weight', 'generator_lm_head.bias']) {
    if (!(need in out)) throw new ClozeError('E_VALUE', `Expected the generator tensor ${need === 'electra.embeddings.word_embeddings.weight' ? need : `generator.${need}`} in ${where} but received none`);
  }
  return out;
}

/** config.json of the generator's export: HF ElectraConfig keys for an ElectraForMaskedLM G wide over E-wide embeddings. */
export function hfElectraGeneratorConfig(c: ElectraConfig, where: string): { [key: string]: string | number | boolean | string[] } {
  const g = c.generator;
  const e = c.discriminator.hidden;
  if (g.hidden === e) {
    throw new ClozeError('E_VALUE', `Expected a generator narrower than its embeddings (hidden ${e}) for the ElectraForMaskedLM export of ${where} but received a generator ${g.hidden} wide (HF has no embeddings_project then)`);
  }
  const base = hfBertConfig(g);
  // The cloze_* variant keys stay (hfBertConfig writes them); ELECTRA's generator is always post-LN, GELU, absolute.
  return {
    ...base,
    architectures: ['ElectraForMaskedLM'],
    model_type: 'electra',
    embedding_size: e,
    tie_word_embeddings: true,
  };
}

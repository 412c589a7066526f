/**
 * config.json of an ELECTRA checkpoint, in Hugging Face's ElectraConfig keys
 * for the discriminator (model_type "electra", ElectraForPreTraining), with the
 * generator's sizes and the loss weight under cloze_* keys.
 */
import { ClozeError } from '../../errors.js';
import { bertConfigFromHf, hfBertConfig } from '../bert/hf-config.js';
import { electraConfig, type ElectraConfig } from './model.js';

export function hfElectraConfig(c: ElectraConfig): { [key: string]: string | number | boolean | string[] } {
  const d = hfBertConfig(c.discriminator);
  return {
    ...d,
    architectures: ['ElectraForPreTraining'],
    model_type: 'electra',
    embedding_size: c.discriminator.hidden,
    summary_type: 'first',
    summary_use_proj: true,
    summary_activation: 'gelu',
    summary_last_dropout: 0.1,
    cloze_generator_hidden_size: c.generator.hidden,
    cloze_generator_num_attention_heads: c.generator.heads,
    cloze_generator_intermediate_size: c.generator.intermediate,
    cloze_disc_weight: c.discWeight,
  };
}

/** An ElectraConfig from a config.json written by hfElectraConfig. */
export function electraConfigFromHf(j: { [key: string]: unknown }, where: string): ElectraConfig {
  if (j.model_type !== 'electra') throw new ClozeError('E_VALUE', `Expected model_type "electra" in ${where} but received ${JSON.stringify(j.model_type)}`);
  const d = bertConfigFromHf(j, where);
  const e = j.embedding_size ?? d.hidden;
  if (e !== d.hidden) throw new ClozeError('E_VALUE', `Expected embedding_size equal to hidden_size (${d.hidden}) in ${where} but received ${JSON.stringify(e)}`);
  const num = (k: string): number | undefined => {
    const v = j[k];
    if (v === undefined) return undefined;
    if (typeof v !== 'number') throw new ClozeError('E_VALUE', `Expected a number for ${k} in ${where} but received ${JSON.stringify(v)}`);
    return v;
  };
  return electraConfig({
    discriminator: d,
    generator: { hidden: num('cloze_generator_hidden_size'), heads: num('cloze_generator_num_attention_heads'), intermediate: num('cloze_generator_intermediate_size') },
    discWeight: num('cloze_disc_weight'),
  });
}

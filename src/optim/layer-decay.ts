/**
 * Layer-wise lr decay for fine-tuning (BEiT, MAE's util/lr_decay.py): layer id 0
 * is the embedding (patch embedding, CLS token, positions), block i is layer
 * i + 1, and everything after the blocks (final norm, the new head) is layer
 * depth + 1. A parameter of layer id steps with lr × decay^(depth + 1 − id), so
 * the head trains at the full lr and each step down the stack at `decay` times
 * the one above. Weight decay follows the parameter's `decay` flag (MAE:
 * no decay for 1-D parameters, the CLS token and positions).
 */
import { expected } from '../errors.js';
import type { Parameter } from '../nn/parameter.js';
import { checkNumber } from '../validate.js';
import type { ParamGroup } from './adamw.js';

/** A parameter with its layer id, in 0 … layers (layers = depth + 1). */
export interface LayeredParams {
  layers: number;
  ids: Array<[Parameter, number]>;
}

/** MAE's get_layer_id_for_vit on our ViT's parameter names. */
export function vitLayerId(name: string, depth: number): number {
  if (name === 'cls_token' || name === 'pos_embed' || name.startsWith('patch_embed.')) return 0;
  const m = /^blocks\.(\d+)\./.exec(name);
  if (m) return Number(m[1]) + 1;
  return depth + 1;
}

/** lr scale of layer `id` of `layers`: decay^(layers − id). */
export function layerScale(id: number, layers: number, decay: number): number {
  return decay ** (layers - id);
}

/**
 * AdamW groups, one per (layer, decayed or not), with MAE's lr scales; `extra`
 * (the new head) sits at the top layer. decay = 1: every scale is 1.
 */
export function layerDecayGroups(p: LayeredParams, extra: Parameter[], o: { layerDecay: number; weightDecay: number }): ParamGroup[] {
  checkNumber(o.layerDecay, 'layerDecay', Number.MIN_VALUE, 1);
  checkNumber(o.weightDecay, 'weightDecay', 0);
  const groups = new Map<string, ParamGroup>();
  const put = (param: Parameter, id: number): void => {
    if (!Number.isInteger(id) || id < 0 || id > p.layers) throw expected(`a layer id in 0 … ${p.layers}`, 'layer id', id);
    const key = `${id}:${param.decay}`;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { params: [], weightDecay: param.decay ? o.weightDecay : 0, lrScale: layerScale(id, p.layers, o.layerDecay) }));
    g.params.push(param);
  };
  for (const [param, id] of p.ids) put(param, id);
  for (const param of extra) put(param, p.layers);
  return [...groups.values()];
}

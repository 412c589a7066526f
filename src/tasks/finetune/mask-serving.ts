/**
 * Serving several weight-mask tasks over one base: every task is a
 * BertForSequenceClassification whose embeddings and encoder weights are
 * views of the one loaded base (shared storage, no copy), whose masked
 * linear layers apply the task's packed bits in the forward pass
 * (masked_linear_packed: W ⊙ bits is built per call, never kept), and whose
 * pooler and classifier are the few float tensors its mask file carries. So
 * N tasks cost one base plus N × (one bit per masked weight + a head).
 */
import { join } from 'node:path';
import { loadCheckpoint } from '../../checkpoint/checkpoint.js';
import { fileSha256, readMaskFile, type MaskFile } from '../../checkpoint/mask-file.js';
import { ClozeError } from '../../errors.js';
import { BertForSequenceClassification } from '../../models/bert/classification.js';
import { bertConfigFromHf } from '../../models/bert/hf-config.js';
import { releaseCache } from '../../runtime.js';
import { fromTypedArray } from '../../tensor.js';
import { keep } from '../../autograd/mode.js';
import { checkHeadTensors, HEAD_TENSOR, maskedLayers } from './mask-tune.js';

const TRUNK = /^bert\.(embeddings|encoder)\./;

/**
 * One model per mask file over the base checkpoint `baseDir`, in the files'
 * order. Each file must name this base's model.safetensors sha256 and match
 * its layers and shapes; errors name the file and the layer.
 */
export function maskedTaskModels(baseDir: string, maskFiles: readonly string[]): Array<{ file: string; mask: MaskFile; model: BertForSequenceClassification }> {
  const sha = fileSha256(join(baseDir, 'model.safetensors'));
  const masks = maskFiles.map((f) => {
    const mf = readMaskFile(f);
    if (mf.header.base_sha256 !== sha) {
      throw new ClozeError('E_VALUE', `${f}: Expected a mask over the base ${baseDir} (model.safetensors sha256 ${sha}) but received one over the base with sha256 ${mf.header.base_sha256}`);
    }
    return { file: f, mask: mf };
  });
  const ck = loadCheckpoint(baseDir);
  const out: Array<{ file: string; mask: MaskFile; model: BertForSequenceClassification }> = [];
  try {
    const config = bertConfigFromHf(ck.config, join(baseDir, 'config.json'));
    // The base's names as ours: a bare BertModel's lack the `bert.` prefix.
    const bare = !Object.keys(ck.model).some((k) => k.startsWith('bert.'));
    const base = (name: string) => ck.model[bare ? name.slice('bert.'.length) : name];
    for (const { file, mask } of masks) {
      const model = new BertForSequenceClassification(config, { numLabels: mask.header.labels.length });
      out.push({ file, mask, model });
      model.eval();
      for (const [name, p] of model.namedParameters()) {
        p.requiresGrad = false;
        if (!TRUNK.test(name)) continue;
        const t = base(name);
        if (!t || t.shape.join() !== p.shape.join() || t.dtype !== p.dtype) {
          throw new ClozeError('E_SHAPE', `${join(baseDir, 'model.safetensors')}: Expected a ${p.dtype} tensor of shape [${p.shape.join(', ')}] for ${name} but received ${t ? `${t.dtype} [${t.shape.join(', ')}]` : 'none'}`);
        }
        p.moveHandle(t.native.reshape(p.shape));
      }
      const params = new Map(model.namedParameters());
      checkHeadTensors(model, mask, file);
      for (const { name, shape } of mask.header.tensors) {
        const p = params.get(name);
        if (!p || !HEAD_TENSOR.test(name)) throw new ClozeError('E_VALUE', `${file}: Expected only pooler and classifier tensors of this model but received tensor ${name}`);
        if (p.shape.join() !== shape.join()) throw new ClozeError('E_SHAPE', `${file}: Expected shape [${p.shape.join(', ')}] for tensor ${name} (the model's) but received [${shape.join(', ')}]`);
        p.native.write(mask.tensors.get(name)!);
      }
      const layers = new Map(maskedLayers(model));
      for (const l of mask.header.layers) {
        const lin = layers.get(l.name);
        if (!lin) throw new ClozeError('E_VALUE', `${file}: Expected only masked layers of this model but received layer ${l.name}`);
        if (lin.weight.shape.join() !== l.shape.join()) throw new ClozeError('E_SHAPE', `${file}: Expected shape [${lin.weight.shape.join(', ')}] for layer ${l.name} (the base's weight) but received [${l.shape.join(', ')}]`);
        lin.attachPackedMask(keep(fromTypedArray(mask.bits.get(l.name)!)));
        layers.delete(l.name);
      }
      if (layers.size > 0) throw new ClozeError('E_VALUE', `${file}: Expected a mask for every masked layer of the model but received none for ${[...layers.keys()].join(', ')}`);
    }
  } catch (e) {
    for (const o of out) o.model.dispose();
    throw e;
  } finally {
    // The models hold views of the base's storage: dropping the loaded handles frees nothing they use.
    ck.dispose();
    // The trunk weights each model was built with are freed: hand their cached blocks back.
    releaseCache();
  }
  return out;
}

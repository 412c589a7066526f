/** Embedding lookup with a scatter-add backward. */
import { native } from '../native/loader.js';
import { record, type Tensor } from '../tensor.js';
import { checkDtype, checkFloat, checkRank, checkTensor } from '../validate.js';

/** Gathers rows of table [V, D] at int32 ids [...]: [..., D]. Backward scatter-adds. */
export function embedding(table: Tensor, ids: Tensor): Tensor {
  checkFloat(table, 'table');
  checkRank(table, 2, 2, 'table');
  checkTensor(ids, 'ids');
  checkDtype(ids, 'int32', 'ids');
  const V = table.shape[0]!;
  const sid = ids.share();
  return record(
    'embedding',
    [native().embedding(table.native, ids.native)],
    [table],
    ([g]) => [native().embeddingBackward(g!, sid, V)],
    [sid],
  )[0]!;
}

/**
 * The victim model as an attack queries it: class probabilities of attacked
 * texts, with TextAttack's bookkeeping. One query is one text scored (for
 * MVP, one text is T templated sequences: still one query). A text scored
 * before for the same example comes from the cache and costs no query, as
 * TextAttack's goal-function cache does. Past the budget nothing is scored:
 * the texts beyond it come back null and the attack must stop.
 *
 * Batching: the uncached texts of one call go to the victim `batchSize` at a
 * time, each call one forward pass; with batchSize 1 every query is its own
 * pass (the unbatched baseline of the attack benchmark).
 */
import { ClozeError } from '../../errors.js';

/** Class probabilities [n·C] of n attacked texts (the example's fixed context, such as the first text of a pair, is the victim's business). */
export type Victim = (texts: readonly string[]) => Promise<Float32Array>;

export interface ScoredText {
  text: string;
  probs: Float32Array;
  /** argmax, the first class on ties. */
  predicted: number;
}

export function argmaxOf(p: ArrayLike<number>): number {
  let best = 0;
  for (let k = 1; k < p.length; k++) if (p[k]! > p[best]!) best = k;
  return best;
}

export class ExampleQueries {
  queries = 0;
  /** Forward passes made. */
  passes = 0;
  private readonly cache = new Map<string, ScoredText>();

  constructor(
    private readonly victim: Victim,
    readonly numClasses: number,
    readonly maxQueries: number,
    readonly batchSize: number,
  ) {
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new ClozeError('E_VALUE', `Expected an integer ≥ 1 for batchSize but received ${batchSize}`);
    if (!Number.isInteger(maxQueries) || maxQueries < 1) throw new ClozeError('E_VALUE', `Expected an integer ≥ 1 for maxQueries but received ${maxQueries}`);
  }

  get exhausted(): boolean {
    return this.queries >= this.maxQueries;
  }

  /** Scores texts (cached ones free); a text past the query budget is null. */
  async score(texts: readonly string[]): Promise<Array<ScoredText | null>> {
    const todo: string[] = [];
    const seen = new Set<string>();
    for (const t of texts) {
      if (this.cache.has(t) || seen.has(t)) continue;
      if (this.queries + todo.length >= this.maxQueries) break;
      seen.add(t);
      todo.push(t);
    }
    const C = this.numClasses;
    for (let i = 0; i < todo.length; i += this.batchSize) {
      const chunk = todo.slice(i, i + this.batchSize);
      const probs = await this.victim(chunk);
      if (probs.length !== chunk.length * C) {
        throw new ClozeError('E_SHAPE', `Expected ${chunk.length}×${C} probabilities from the victim for attack queries but received ${probs.length}`);
      }
      this.passes++;
      chunk.forEach((text, k) => {
        const p = probs.slice(k * C, (k + 1) * C);
        this.cache.set(text, { text, probs: p, predicted: argmaxOf(p) });
      });
    }
    this.queries += todo.length;
    return texts.map((t) => this.cache.get(t) ?? null);
  }

  /** Scores a text afresh, past the cache and outside the budget: the check that a success really flips the prediction. */
  async rescore(text: string): Promise<ScoredText> {
    const probs = await this.victim([text]);
    return { text, probs, predicted: argmaxOf(probs) };
  }
}

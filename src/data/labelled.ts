/**
 * Labelled text for fine-tuning: JSONL rows `{"text", "label", "text_pair"?}`
 * or a CSV/TSV file whose header names `text`, `label` and optionally
 * `text_pair`. Labels may be strings or integers and are kept as strings, so
 * `1` and `"1"` are the same class. Every malformed input is an error naming
 * the file, the 1-based line and the field.
 */
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { extname } from 'node:path';
import { ClozeError, describe } from '../errors.js';
import { Rng } from '../rng.js';
import { checkInt, checkNumber } from '../validate.js';
import { at } from './lines.js';

export interface LabelledExample {
  text: string;
  /** The second text of a sentence-pair task (BERT's segment B). */
  textPair?: string;
  label: string;
}

export interface LabelledFile {
  examples: LabelledExample[];
  /** True when every row has a text_pair. */
  pair: boolean;
}

export const LABELLED_EXTENSIONS: readonly string[] = ['.jsonl', '.csv', '.tsv'];

/**
 * Reads a labelled file by its extension. `minPerClass` (default 2) is the
 * smallest class size accepted: a stratified split or a classifier cannot
 * learn a class from one example; a test file may pass 1.
 */
export function readLabelledFile(path: string, opts: { minPerClass?: number } = {}): LabelledFile {
  const ext = extname(path).toLowerCase();
  if (!LABELLED_EXTENSIONS.includes(ext)) {
    throw new ClozeError('E_VALUE', `Expected a ${LABELLED_EXTENSIONS.join(', ')} file for labelled data but received '${path}'`);
  }
  let bytes: Buffer;
  try {
    // A device (/dev/zero) or FIFO would be read without end.
    if (!statSync(path).isFile()) throw new ClozeError('E_IO', `Expected a regular file for labelled data but received '${path}', which is not one`);
    bytes = readFileSync(path);
  } catch (e) {
    if (e instanceof ClozeError) throw e;
    const err = e as NodeJS.ErrnoException;
    throw new ClozeError('E_IO', `Expected a readable file for labelled data but received '${path}' (${err.code ?? err.message})`);
  }
  const text = decodeUtf8(bytes, path);
  const rows = ext === '.jsonl' ? parseJsonl(text, path) : parseDelimited(text, path, ext === '.tsv' ? '\t' : ',');
  const pair = checkLabelled(rows, path, opts.minPerClass ?? 2);
  return { examples: rows.map(({ line: _line, ...ex }) => ex), pair };
}

/** A parsed row and the line it starts on, for error messages. */
export interface LabelledRow extends LabelledExample {
  line: number;
}

/**
 * Checks parsed rows: at least one; every class with at least `minPerClass`
 * examples; either every row or none with a text_pair. Returns whether the
 * rows are pairs. (Missing fields and invalid UTF-8 are caught while
 * parsing, where the line is known.)
 */
export function checkLabelled(rows: readonly LabelledRow[], file: string, minPerClass = 2): boolean {
  checkInt(minPerClass, 'minPerClass', 1);
  if (rows.length === 0) throw new ClozeError('E_VALUE', `Expected at least one labelled row for ${file} but received an empty file`);
  const withPair = rows.filter((r) => r.textPair !== undefined).length;
  if (withPair > 0 && withPair < rows.length) {
    const first = rows.find((r) => r.textPair === undefined)!;
    throw new ClozeError(
      'E_VALUE',
      `Expected a text_pair on every row of a sentence-pair file for ${at(file, first.line)} field "text_pair" but received none ` +
        `(${withPair} of ${rows.length} rows have one)`,
    );
  }
  const byClass = new Map<string, LabelledRow[]>();
  for (const r of rows) {
    const list = byClass.get(r.label);
    if (list) list.push(r);
    else byClass.set(r.label, [r]);
  }
  for (const [label, list] of byClass) {
    if (list.length < minPerClass) {
      throw new ClozeError(
        'E_VALUE',
        `Expected at least ${minPerClass} examples of each class for ${at(file, list[0]!.line)} field "label" but received ` +
          `${list.length} of class '${label}'`,
      );
    }
  }
  return withPair > 0;
}

/** The sorted distinct labels: numeric order when every label is an integer, else code-point order. Label id = index. */
export function labelNames(examples: readonly { label: string }[]): string[] {
  const distinct = [...new Set(examples.map((e) => e.label))];
  if (distinct.length > 0 && distinct.every((l) => INTEGER.test(l))) {
    return distinct.sort((a, b) => {
      const d = BigInt(a) - BigInt(b);
      return d < 0n ? -1 : d > 0n ? 1 : 0;
    });
  }
  return distinct.sort(compareCodePoints);
}

const INTEGER = /^-?\d+$/;

/** Code-point order (JS's default sort compares UTF-16 units, which differs above U+FFFF). */
export function compareCodePoints(a: string, b: string): number {
  const ia = a[Symbol.iterator]();
  const ib = b[Symbol.iterator]();
  for (;;) {
    const x = ia.next();
    const y = ib.next();
    if (x.done || y.done) return x.done && y.done ? 0 : x.done ? -1 : 1;
    const d = x.value.codePointAt(0)! - y.value.codePointAt(0)!;
    if (d !== 0) return d;
  }
}

/**
 * A seeded split, per class: each class's examples are shuffled and
 * round(n · testFraction) of them, at least 1 and at most n − 1, go to the
 * test split (so every class is both trained on and scored, as scikit-learn's
 * stratified split guarantees for n ≥ 2). Both splits keep the input order.
 */
export function stratifiedSplit<T extends { label: string }>(
  examples: readonly T[],
  testFraction: number,
  seed: number,
): { train: T[]; test: T[] } {
  checkNumber(testFraction, 'testFraction', 0, 1);
  if (testFraction <= 0 || testFraction >= 1) throw new ClozeError('E_VALUE', `Expected a number in (0, 1) for testFraction but received ${testFraction}`);
  const rng = new Rng(seed);
  const byClass = new Map<string, number[]>();
  examples.forEach((e, i) => {
    const list = byClass.get(e.label);
    if (list) list.push(i);
    else byClass.set(e.label, [i]);
  });
  const inTest = new Uint8Array(examples.length);
  for (const label of labelNames(examples)) {
    const idx = byClass.get(label)!;
    if (idx.length < 2) {
      throw new ClozeError('E_VALUE', `Expected at least 2 examples of each class for a stratified split but received ${idx.length} of class ${describe(label)}`);
    }
    const nTest = Math.min(idx.length - 1, Math.max(1, Math.round(idx.length * testFraction)));
    rng.shuffle(idx);
    for (let k = 0; k < nTest; k++) inTest[idx[k]!] = 1;
  }
  const train: T[] = [];
  const test: T[] = [];
  examples.forEach((e, i) => (inTest[i] ? test : train).push(e));
  return { train, test };
}

function decodeUtf8(bytes: Buffer, file: string): string {
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });
  try {
    return decoder.decode(bytes);
  } catch {
    // Find the line: decode line by line (a UTF-8 sequence never contains '\n').
    let line = 1;
    let start = 0;
    for (;;) {
      const nl = bytes.indexOf(10, start);
      const end = nl === -1 ? bytes.length : nl;
      try {
        new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(start, end));
      } catch {
        break;
      }
      if (nl === -1) break;
      start = nl + 1;
      line++;
    }
    throw new ClozeError('E_VALUE', `Expected valid UTF-8 for ${at(file, line)} but received invalid bytes`);
  }
}

function field(file: string, line: number, name: string, what: string, got: unknown): ClozeError {
  return new ClozeError('E_VALUE', `Expected ${what} for ${at(file, line)} field "${name}" but received ${describe(got)}`);
}

/** A label as its string form: a non-empty string, or an integer (kept as its decimal digits). */
function labelOf(v: unknown, file: string, line: number): string {
  if (typeof v === 'string' && v.length > 0) return v;
  if (typeof v === 'number' && Number.isSafeInteger(v)) return String(v);
  throw field(file, line, 'label', 'a non-empty string or an integer', v);
}

function parseJsonl(text: string, file: string): LabelledRow[] {
  const rows: LabelledRow[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = i + 1;
    const raw = lines[i]!.replace(/\r$/, '');
    if (raw.trim() === '') continue;
    let obj: unknown;
    try {
      obj = JSON.parse(raw);
    } catch (e) {
      throw new ClozeError('E_VALUE', `Expected a JSON object for ${at(file, line)} but received invalid JSON (${(e as Error).message})`);
    }
    if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) {
      throw new ClozeError('E_VALUE', `Expected a JSON object for ${at(file, line)} but received ${Array.isArray(obj) ? 'an array' : describe(obj)}`);
    }
    const o = obj as Record<string, unknown>;
    if (typeof o.text !== 'string' || o.text.trim() === '') throw field(file, line, 'text', 'a non-empty string', o.text);
    const label = labelOf(o.label, file, line);
    const row: LabelledRow = { text: o.text, label, line };
    // null means absent, as in a table exported with an empty column.
    if (o.text_pair !== undefined && o.text_pair !== null) {
      if (typeof o.text_pair !== 'string' || o.text_pair.trim() === '') throw field(file, line, 'text_pair', 'a non-empty string', o.text_pair);
      row.textPair = o.text_pair;
    }
    rows.push(row);
  }
  return rows;
}

/**
 * CSV/TSV with RFC 4180 quoting: a field that starts with `"` runs to the
 * next lone `"` (a doubled `""` is a quote) and may span lines. A `"` inside
 * an unquoted field is an ordinary character, as pandas and Python's csv
 * read it (GLUE's TSVs have them).
 */
function parseDelimited(text: string, file: string, sep: string): LabelledRow[] {
  const records = splitRecords(text, file, sep);
  if (records.length === 0) throw new ClozeError('E_VALUE', `Expected a header naming text and label for ${at(file, 1)} but received an empty file`);
  const [header, ...body] = records;
  const names = header!.fields.map((f) => f.trim());
  const col = (name: string): number => names.indexOf(name);
  for (const name of names) {
    if (name !== '' && names.indexOf(name) !== names.lastIndexOf(name)) {
      throw new ClozeError('E_VALUE', `Expected distinct column names for ${at(file, header!.line)} (header) but received "${name}" twice`);
    }
  }
  const iText = col('text');
  const iLabel = col('label');
  const iPair = col('text_pair');
  for (const [name, i] of [['text', iText], ['label', iLabel]] as const) {
    if (i < 0) throw new ClozeError('E_VALUE', `Expected a column "${name}" for ${at(file, header!.line)} (header) but received columns ${describe(names)}`);
  }
  const rows: LabelledRow[] = [];
  for (const rec of body) {
    if (rec.fields.length === 1 && rec.fields[0]!.trim() === '') continue; // a blank line
    if (rec.fields.length !== names.length) {
      throw new ClozeError('E_VALUE', `Expected ${names.length} fields (as in the header) for ${at(file, rec.line)} but received ${rec.fields.length}`);
    }
    const t = rec.fields[iText]!;
    if (t.trim() === '') throw field(file, rec.line, 'text', 'a non-empty string', t);
    const l = rec.fields[iLabel]!;
    if (l.trim() === '') throw field(file, rec.line, 'label', 'a non-empty string or an integer', l);
    const row: LabelledRow = { text: t, label: l, line: rec.line };
    if (iPair >= 0 && rec.fields[iPair]!.trim() !== '') row.textPair = rec.fields[iPair]!;
    rows.push(row);
  }
  return rows;
}

interface DelimitedRecord {
  fields: string[];
  /** The line the record starts on. */
  line: number;
}

function splitRecords(text: string, file: string, sep: string): DelimitedRecord[] {
  const out: DelimitedRecord[] = [];
  let fields: string[] = [];
  let cur = '';
  let line = 1;
  let recLine = 1;
  let i = 0;
  const n = text.length;
  const endRecord = (): void => {
    fields.push(cur);
    out.push({ fields, line: recLine });
    fields = [];
    cur = '';
  };
  while (i < n) {
    if (cur === '' && text[i] === '"') {
      // A quoted field.
      const quoteLine = line;
      i++;
      for (;;) {
        if (i >= n) throw new ClozeError('E_VALUE', `Expected a closing quote for ${at(file, quoteLine)} but received the end of the file`);
        const c = text[i]!;
        if (c === '"') {
          if (text[i + 1] === '"') {
            cur += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        if (c === '\n') line++;
        cur += c;
        i++;
      }
      const next = text[i];
      if (next === '\r' && text[i + 1] === '\n') i++;
      if (next !== undefined && next !== sep && text[i] !== '\n') {
        throw new ClozeError('E_VALUE', `Expected a separator or the end of the line after a closing quote for ${at(file, line)} but received ${describe(next)}`);
      }
      if (next === undefined) break;
      if (text[i] === '\n') {
        endRecord();
        line++;
        recLine = line;
      } else {
        // A separator: the next field starts, empty until a character comes.
        fields.push(cur);
        cur = '';
      }
      i++;
      continue;
    }
    const c = text[i]!;
    if (c === sep) {
      fields.push(cur);
      cur = '';
    } else if (c === '\n') {
      if (cur.endsWith('\r')) cur = cur.slice(0, -1);
      endRecord();
      line++;
      recLine = line;
    } else {
      cur += c;
    }
    i++;
  }
  if (cur !== '' || fields.length > 0) {
    if (cur.endsWith('\r')) cur = cur.slice(0, -1);
    endRecord();
  }
  return out;
}

/** A seeded subset of `train` with about n examples, each class in proportion (at least one each), in the split's order. */
export function perClassSubset(train: readonly LabelledExample[], n: number, seed: number): LabelledExample[] {
  if (n <= 0 || n >= train.length) return [...train];
  const byClass = new Map<string, number[]>();
  train.forEach((e, i) => byClass.set(e.label, [...(byClass.get(e.label) ?? []), i]));
  const rng = new Rng(seed);
  const keep: number[] = [];
  for (const [, ids] of [...byClass].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const take = Math.max(1, Math.round((n * ids.length) / train.length));
    for (let i = ids.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [ids[i], ids[j]] = [ids[j]!, ids[i]!];
    }
    keep.push(...ids.slice(0, take));
  }
  return keep.sort((a, b) => a - b).map((i) => train[i]!);
}

/** Writes examples as the JSONL that --task-data reads (text, text_pair, label). */
export function writeLabelledJsonl(path: string, examples: readonly LabelledExample[]): void {
  writeFileSync(path, examples.map((e) => JSON.stringify(e.textPair !== undefined ? { text: e.text, text_pair: e.textPair, label: e.label } : { text: e.text, label: e.label })).join('\n') + '\n');
}

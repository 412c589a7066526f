/**
 * Documents from text and JSONL files, streamed line by line.
 *
 * - text, mode 'line': every non-blank line is a document;
 * - text, mode 'paragraph': runs of non-blank lines separated by blank lines,
 *   joined with single spaces;
 * - text with a record separator (fortune files' `%`): the lines between two
 *   separator lines (a line equal to the separator, trailing spaces ignored),
 *   joined with single spaces; blank records are skipped;
 * - JSONL: one JSON object per non-blank line, the document is its string `field`.
 *
 * Invalid UTF-8 follows `encodingErrors` (see lines.ts); the lines replaced
 * or skipped are counted in `stats` when one is given.
 *
 * Errors name the file and the 1-based line.
 */
import { extname } from 'node:path';
import { ClozeError, describe } from '../errors.js';
import { at, ENCODING_ERRORS, readLines, type EncodingErrors, type EncodingStats } from './lines.js';
import { listCorpusFiles, DEFAULT_EXTENSIONS } from './sources.js';

export type TextMode = 'line' | 'paragraph';
export type CorpusFormat = 'text' | 'jsonl' | 'auto';

export interface CorpusOptions {
  /** 'auto' (default): .jsonl and .ndjson files are JSONL, everything else text. */
  format?: CorpusFormat;
  /** How text files split into documents; default 'line'. */
  mode?: TextMode;
  /** JSONL field holding the document text; default 'text'. */
  field?: string;
  /** Extensions picked up inside directories; default ['.txt', '.jsonl']. */
  extensions?: readonly string[];
  /** Lines of invalid UTF-8: 'strict' (default) refuses the file, 'replace' uses U+FFFD, 'skip' drops the line. */
  encodingErrors?: EncodingErrors;
  /** Text files: a line equal to this string ends a document (e.g. '%' for fortune files); null/absent: use `mode`. */
  recordSeparator?: string | null;
  /** Counts of the lines replaced or skipped (filled while reading). */
  stats?: EncodingStats;
}

export interface Document {
  text: string;
  file: string;
  /** Line where the document starts. */
  line: number;
}

export function formatOf(file: string, format: CorpusFormat = 'auto'): 'text' | 'jsonl' {
  if (format !== 'auto') return format;
  const ext = extname(file).toLowerCase();
  return ext === '.jsonl' || ext === '.ndjson' ? 'jsonl' : 'text';
}

export function checkCorpusOptions(opts: CorpusOptions): void {
  const { format = 'auto', mode = 'line', field = 'text' } = opts;
  if (!['text', 'jsonl', 'auto'].includes(format)) {
    throw new ClozeError('E_VALUE', `Expected 'text', 'jsonl' or 'auto' for format but received ${describe(format)}`);
  }
  if (mode !== 'line' && mode !== 'paragraph') {
    throw new ClozeError('E_VALUE', `Expected 'line' or 'paragraph' for mode but received ${describe(mode)}`);
  }
  if (typeof field !== 'string' || field === '') {
    throw new ClozeError('E_VALUE', `Expected a non-empty string for field but received ${describe(field)}`);
  }
  const { encodingErrors = 'strict', recordSeparator = null } = opts;
  if (!ENCODING_ERRORS.includes(encodingErrors)) {
    throw new ClozeError('E_VALUE', `Expected one of ${ENCODING_ERRORS.join(', ')} for encodingErrors but received ${describe(encodingErrors)}`);
  }
  if (recordSeparator !== null && (typeof recordSeparator !== 'string' || recordSeparator.trim() === '' || /[\r\n]/.test(recordSeparator))) {
    throw new ClozeError('E_VALUE', `Expected a non-blank single-line string for recordSeparator but received ${describe(recordSeparator)}`);
  }
}

const lineOptions = (opts: CorpusOptions) => ({ encodingErrors: opts.encodingErrors ?? 'strict', stats: opts.stats });

/** Documents of one file. */
export async function* readFileDocuments(file: string, opts: CorpusOptions = {}): AsyncGenerator<Document> {
  if (formatOf(file, opts.format) === 'jsonl') yield* readJsonl(file, opts.field ?? 'text', opts);
  else if (opts.recordSeparator) yield* readRecords(file, opts.recordSeparator, opts);
  else if ((opts.mode ?? 'line') === 'paragraph') yield* readParagraphs(file, opts);
  else {
    for await (const { text, line } of readLines(file, lineOptions(opts))) {
      if (text.trim() !== '') yield { text, file, line };
    }
  }
}

/**
 * Documents of every file under `paths` (see listCorpusFiles), in order.
 * Throws once the stream ends if it held no non-empty document.
 */
export async function* readDocuments(paths: string | readonly string[], opts: CorpusOptions = {}): AsyncGenerator<Document> {
  checkCorpusOptions(opts);
  const files = listCorpusFiles(paths, opts.extensions ?? DEFAULT_EXTENSIONS);
  let count = 0;
  for (const file of files) {
    for await (const doc of readFileDocuments(file, opts)) {
      count++;
      yield doc;
    }
  }
  if (count === 0) {
    throw new ClozeError('E_VALUE', `Expected at least one non-empty document for corpus but received none in ${files.map((f) => `'${f}'`).join(', ')}`);
  }
}

async function* readRecords(file: string, separator: string, opts: CorpusOptions): AsyncGenerator<Document> {
  let parts: string[] = [];
  let start = 0;
  const sep = separator.trimEnd();
  const flush = function* (): Generator<Document> {
    if (parts.length > 0) yield { text: parts.join(' '), file, line: start };
    parts = [];
  };
  for await (const { text, line } of readLines(file, lineOptions(opts))) {
    if (text.trimEnd() === sep) {
      yield* flush();
      continue;
    }
    const t = text.trim();
    if (t === '') continue;
    if (parts.length === 0) start = line;
    parts.push(t);
  }
  yield* flush();
}

async function* readParagraphs(file: string, opts: CorpusOptions): AsyncGenerator<Document> {
  let parts: string[] = [];
  let start = 0;
  for await (const { text, line } of readLines(file, lineOptions(opts))) {
    const t = text.trim();
    if (t === '') {
      if (parts.length > 0) yield { text: parts.join(' '), file, line: start };
      parts = [];
    } else {
      if (parts.length === 0) start = line;
      parts.push(t);
    }
  }
  if (parts.length > 0) yield { text: parts.join(' '), file, line: start };
}

async function* readJsonl(file: string, field: string, opts: CorpusOptions): AsyncGenerator<Document> {
  for await (const { text, line } of readLines(file, lineOptions(opts))) {
    if (text.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw new ClozeError('E_VALUE', `Expected a JSON object for ${at(file, line)} but received ${describe(excerpt(text))}`);
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new ClozeError('E_VALUE', `Expected a JSON object for ${at(file, line)} but received ${describe(excerpt(text))}`);
    }
    const v = (value as Record<string, unknown>)[field];
    if (typeof v !== 'string') {
      const got = v === undefined ? `an object without '${field}'`
        : Array.isArray(v) ? 'an array' : typeof v === 'object' && v !== null ? 'an object' : describe(v);
      throw new ClozeError('E_VALUE', `Expected a string field '${field}' for ${at(file, line)} but received ${got}`);
    }
    if (v.trim() !== '') yield { text: v, file, line };
  }
}

function excerpt(s: string, n = 40): string {
  return s.length > n ? `${s.slice(0, n)}…` : s;
}

/**
 * metrics.jsonl read the way `cloze board` needs: from a byte offset to the end (a live run's new lines only,
 * never the whole file again), complete lines only (a line still being written waits for its newline), and a
 * line that is not a metrics record (malformed JSON, no kind or step) skipped with its number and the reason.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

export interface MetricRecord {
  kind: string;
  step: number;
  [key: string]: unknown;
}

export interface SkippedLine {
  /** 1-based line number in the file. */
  line: number;
  reason: string;
}

export interface MetricsChunk {
  records: MetricRecord[];
  skipped: SkippedLine[];
  /** Where the next read starts: after the last complete line. */
  offset: number;
  /** Lines read before `offset`, for the next chunk's numbering. */
  lines: number;
}

/** Parses one line; a reason string when it is not a metrics record. */
export function parseMetricsLine(text: string): MetricRecord | string {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    return `not JSON (${(e as Error).message})`;
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) return 'not a JSON object';
  const r = v as Record<string, unknown>;
  if (typeof r.kind !== 'string') return 'no "kind" string';
  if (typeof r.step !== 'number' || !Number.isFinite(r.step)) return 'no finite "step" number';
  return r as MetricRecord;
}

/**
 * Reads `path` from `offset` (after `lines` lines) to its end. `final`: the file is finished (no run writes it), so a
 * last line without its newline is reported as truncated instead of left for later. Offsets count bytes of the file
 * (lines are cut at newline bytes before decoding, so invalid UTF-8 cannot shift them), and the file is read in
 * chunks, whatever its size.
 */
export function readMetrics(path: string, offset = 0, lines = 0, final = false, chunkBytes = 16 << 20): MetricsChunk {
  const records: MetricRecord[] = [];
  const skipped: SkippedLine[] = [];
  const take = (bytes: Buffer, last: boolean): void => {
    lines++;
    const text = bytes.toString('utf8');
    if (text.trim() === '') return;
    const r = parseMetricsLine(text);
    if (typeof r === 'string') skipped.push({ line: lines, reason: last ? `truncated last line: ${r}` : r });
    else records.push(r);
  };
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    if (size < offset) {
      // The file was cut back (a resumed run truncates the lines after its checkpoint): read it again whole.
      offset = 0;
      lines = 0;
    }
    let pos = offset;
    let carry = Buffer.alloc(0);
    while (pos < size) {
      const buf = Buffer.alloc(Math.min(chunkBytes, size - pos));
      const got = readSync(fd, buf, 0, buf.length, pos);
      if (got === 0) break;
      pos += got;
      const data = carry.length ? Buffer.concat([carry, buf.subarray(0, got)]) : buf.subarray(0, got);
      let at = 0;
      for (let nl = data.indexOf(0x0a, at); nl >= 0; nl = data.indexOf(0x0a, at)) {
        take(data.subarray(at, nl), false);
        at = nl + 1;
      }
      carry = Buffer.from(data.subarray(at));
    }
    // Complete lines end at pos − carry; the carry is a line still being written, unless the file is finished.
    offset = pos - carry.length;
    if (final && carry.length > 0 && carry.toString('utf8').trim() !== '') {
      take(carry, true);
      offset = pos;
    }
  } finally {
    closeSync(fd);
  }
  return { records, skipped, offset, lines };
}

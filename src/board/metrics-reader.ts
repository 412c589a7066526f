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
 * Reads `path` from `offset` (after `lines` lines). `final`: the file is finished (no run writes it), so a last
 * line without its newline is reported as truncated instead of left for later.
 */
export function readMetrics(path: string, offset = 0, lines = 0, final = false, maxBytes = 64 << 20): MetricsChunk {
  const fd = openSync(path, 'r');
  let text: string;
  let size: number;
  try {
    size = fstatSync(fd).size;
    if (size < offset) {
      // The file was cut back (a resumed run truncates the lines after its checkpoint): read it again whole.
      offset = 0;
      lines = 0;
    }
    const n = Math.min(size - offset, maxBytes);
    const buf = Buffer.alloc(n);
    let got = 0;
    while (got < n) {
      const k = readSync(fd, buf, got, n - got, offset + got);
      if (k === 0) break;
      got += k;
    }
    text = buf.subarray(0, got).toString('utf8');
  } finally {
    closeSync(fd);
  }
  const records: MetricRecord[] = [];
  const skipped: SkippedLine[] = [];
  let at = 0;
  let consumed = 0;
  for (;;) {
    const nl = text.indexOf('\n', at);
    if (nl < 0) break;
    const line = text.slice(at, nl);
    lines++;
    consumed = nl + 1;
    at = nl + 1;
    if (line.trim() === '') continue;
    const r = parseMetricsLine(line);
    if (typeof r === 'string') skipped.push({ line: lines, reason: r });
    else records.push(r);
  }
  const rest = text.slice(consumed);
  if (final && rest.trim() !== '') {
    lines++;
    const r = parseMetricsLine(rest);
    if (typeof r === 'string') skipped.push({ line: lines, reason: `truncated last line: ${r}` });
    else records.push(r);
    consumed = text.length;
  }
  return { records, skipped, offset: offset + Buffer.byteLength(text.slice(0, consumed), 'utf8'), lines };
}

/**
 * Streams a UTF-8 text file line by line. Lines are split on raw bytes and
 * each is decoded with a fatal TextDecoder, so invalid UTF-8 is reported with
 * the file and the 1-based line number instead of turning into U+FFFD.
 *
 * `encodingErrors` chooses what a line of invalid UTF-8 does: 'strict' (the
 * default) refuses the file naming the line; 'replace' decodes it with U+FFFD
 * for each bad sequence; 'skip' drops the line. The lines replaced or skipped
 * are counted in `stats`. A line longer than MAX_LINE_BYTES is refused (a file
 * without newlines, such as /dev/zero, would otherwise grow without bound).
 */
import { createReadStream } from 'node:fs';
import { ClozeError } from '../errors.js';

export type EncodingErrors = 'strict' | 'replace' | 'skip';
export const ENCODING_ERRORS: readonly EncodingErrors[] = ['strict', 'replace', 'skip'];

/** The longest line (record) read: 64 MiB. */
export const MAX_LINE_BYTES = 64 * 1024 * 1024;

/** Lines with invalid UTF-8 that were replaced or skipped, and the first few of them (file:line). */
export interface EncodingStats {
  replaced: number;
  skipped: number;
  examples: string[];
}

export function newEncodingStats(): EncodingStats {
  return { replaced: 0, skipped: 0, examples: [] };
}

export interface ReadLinesOptions {
  chunkBytes?: number;
  encodingErrors?: EncodingErrors;
  stats?: EncodingStats;
  maxLineBytes?: number;
}

export interface Line {
  /** The line without its terminator ("\n" or "\r\n"). */
  text: string;
  /** 1-based line number. */
  line: number;
}

/** "file:line", the location every data error names. */
export function at(file: string, line: number): string {
  return `${file}:${line}`;
}

export async function* readLines(file: string, opts: number | ReadLinesOptions = {}): AsyncGenerator<Line> {
  const o: ReadLinesOptions = typeof opts === 'number' ? { chunkBytes: opts } : opts;
  const { chunkBytes = 1 << 16, encodingErrors = 'strict', stats, maxLineBytes = MAX_LINE_BYTES } = o;
  if (!ENCODING_ERRORS.includes(encodingErrors)) {
    throw new ClozeError('E_VALUE', `Expected one of ${ENCODING_ERRORS.join(', ')} for encodingErrors but received ${JSON.stringify(encodingErrors)}`);
  }
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const lenient = new TextDecoder('utf-8');
  let lineNo = 0;
  // The unfinished line so far, as pieces (concatenated once its newline arrives: linear in its length).
  let parts: Buffer[] = [];
  let partBytes = 0;
  /** The line's text, or null when it is skipped. */
  const decode = (bytes: Buffer): string | null => {
    lineNo++;
    let end = bytes.length;
    if (end > 0 && bytes[end - 1] === 13) end--;
    try {
      // The decoder drops a leading BOM, which only matters on line 1.
      return decoder.decode(bytes.subarray(0, end));
    } catch {
      if (encodingErrors === 'strict') {
        throw new ClozeError('E_VALUE', `Expected valid UTF-8 for ${at(file, lineNo)} but received invalid bytes (--encoding-errors replace or skip reads such lines)`);
      }
      if (stats) {
        if (encodingErrors === 'replace') stats.replaced++;
        else stats.skipped++;
        if (stats.examples.length < 3) stats.examples.push(at(file, lineNo));
      }
      return encodingErrors === 'replace' ? lenient.decode(bytes.subarray(0, end)) : null;
    }
  };
  const tooLong = (): never => {
    throw new ClozeError('E_VALUE', `Expected lines of at most ${maxLineBytes} bytes for ${at(file, lineNo + 1)} but received a longer one (not a text file?)`);
  };
  const stream = createReadStream(file, { highWaterMark: chunkBytes });
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      let start = 0;
      for (let nl = chunk.indexOf(10, start); nl !== -1; nl = chunk.indexOf(10, start)) {
        if (partBytes + nl - start > maxLineBytes) tooLong();
        const bytes = parts.length > 0 ? Buffer.concat([...parts, chunk.subarray(start, nl)]) : chunk.subarray(start, nl);
        parts = [];
        partBytes = 0;
        const text = decode(bytes);
        if (text !== null) yield { text, line: lineNo };
        start = nl + 1;
      }
      if (start < chunk.length) {
        partBytes += chunk.length - start;
        if (partBytes > maxLineBytes) tooLong();
        parts.push(Buffer.from(chunk.subarray(start)));
      }
    }
  } catch (e) {
    if (e instanceof ClozeError) throw e;
    const err = e as NodeJS.ErrnoException;
    throw new ClozeError('E_IO', `Expected a readable file for corpus but received '${file}' (${err.code ?? err.message})`);
  } finally {
    stream.destroy();
  }
  if (parts.length > 0) {
    const text = decode(Buffer.concat(parts));
    if (text !== null) yield { text, line: lineNo };
  }
}

/**
 * Streams a UTF-8 text file line by line. Lines are split on raw bytes and
 * each is decoded with a fatal TextDecoder, so invalid UTF-8 is reported with
 * the file and the 1-based line number instead of turning into U+FFFD.
 */
import { createReadStream } from 'node:fs';
import { ClozeError } from '../errors.js';

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

export async function* readLines(file: string, chunkBytes = 1 << 16): AsyncGenerator<Line> {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let lineNo = 0;
  let carry: Buffer | null = null;
  const decode = (bytes: Buffer): string => {
    lineNo++;
    let end = bytes.length;
    if (end > 0 && bytes[end - 1] === 13) end--;
    try {
      // The decoder drops a leading BOM, which only matters on line 1.
      return decoder.decode(bytes.subarray(0, end));
    } catch {
      throw new ClozeError('E_VALUE', `Expected valid UTF-8 for ${at(file, lineNo)} but received invalid bytes`);
    }
  };
  const stream = createReadStream(file, { highWaterMark: chunkBytes });
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      let buf: Buffer = carry ? Buffer.concat([carry, chunk]) : chunk;
      let start = 0;
      for (let nl = buf.indexOf(10, start); nl !== -1; nl = buf.indexOf(10, start)) {
        yield { text: decode(buf.subarray(start, nl)), line: lineNo };
        start = nl + 1;
      }
      carry = start < buf.length ? Buffer.from(buf.subarray(start)) : null;
      buf = Buffer.alloc(0);
    }
  } catch (e) {
    if (e instanceof ClozeError) throw e;
    const err = e as NodeJS.ErrnoException;
    throw new ClozeError('E_IO', `Expected a readable file for corpus but received '${file}' (${err.code ?? err.message})`);
  } finally {
    stream.destroy();
  }
  if (carry) yield { text: decode(carry), line: lineNo };
}

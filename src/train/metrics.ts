/** Metrics as JSON lines, appended and flushed one record at a time so a crash loses at most the last line. */
import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

export class MetricsLog {
  constructor(readonly path: string) {
    mkdirSync(dirname(path), { recursive: true });
  }
  write(record: Record<string, unknown>): void {
    appendFileSync(this.path, `${JSON.stringify({ time: new Date().toISOString(), ...record })}\n`);
  }
}

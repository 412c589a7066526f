/**
 * Training progress: a one-line bar redrawn in place on a TTY, plain lines
 * otherwise (CI logs, pipes), showing step, loss, tokens/s and ETA.
 */
export interface ProgressState {
  step: number;
  totalSteps: number;
  loss: number;
  tokensPerSec: number;
  lr: number;
  /** Throughput unit: 'tok' (default) or 'img'. */
  unit?: string;
}

function eta(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : `${m}m${String(s % 60).padStart(2, '0')}s`;
}

export function formatProgress(p: ProgressState, secondsPerStep: number): string {
  const remaining = (p.totalSteps - p.step) * secondsPerStep;
  return (
    `step ${p.step}/${p.totalSteps}  loss ${p.loss.toFixed(4)}  lr ${p.lr.toExponential(2)}  ` +
    `${Math.round(p.tokensPerSec)} ${p.unit ?? 'tok'}/s  eta ${eta(remaining)}`
  );
}

export class Progress {
  private lastPlain = 0;
  constructor(
    private readonly stream: NodeJS.WriteStream | { write(s: string): unknown; isTTY?: boolean },
    private readonly plainEverySteps = 10,
  ) {}

  update(p: ProgressState, secondsPerStep: number): void {
    const line = formatProgress(p, secondsPerStep);
    if (this.stream.isTTY) {
      const width = 30;
      const filled = Math.round((width * p.step) / Math.max(1, p.totalSteps));
      this.stream.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${line}\x1b[K`);
    } else if (p.step - this.lastPlain >= this.plainEverySteps || p.step === p.totalSteps) {
      this.lastPlain = p.step;
      this.stream.write(`${line}\n`);
    }
  }

  /** A message on its own line (evaluation results, checkpoints), not overwritten by the bar. */
  note(message: string): void {
    this.stream.write(this.stream.isTTY ? `\r\x1b[K${message}\n` : `${message}\n`);
  }

  end(): void {
    if (this.stream.isTTY) this.stream.write('\n');
  }
}

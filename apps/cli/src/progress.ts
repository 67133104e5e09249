/**
 * A job's progress on stderr (stdout carries the result: a file written, an answer): a bar redrawn in place on a
 * terminal, one line per change otherwise (logs, CI, pipes).
 */

export interface ProgressOutput {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export class Progress {
  private step = -1;
  private steps = 0;
  private drawn = false;

  constructor(
    private readonly out: ProgressOutput,
    private readonly label: string,
  ) {}

  private get tty(): boolean {
    return this.out.isTTY === true;
  }

  /** A line of news (queued, started, a preview saved); on a terminal the bar is redrawn below it. */
  note(text: string): void {
    this.clear();
    this.out.write(`${this.label} ${text}\n`);
    if (this.tty && this.step >= 0) this.draw();
  }

  update(step: number, steps: number): void {
    if (step === this.step && steps === this.steps) return;
    this.step = step;
    this.steps = steps;
    if (this.tty) this.draw();
    else this.out.write(`${this.label} progress ${step}/${steps}\n`);
  }

  /** Leaves the bar's line (a terminal) for good: later notes are plain lines. */
  done(): void {
    if (this.drawn) this.out.write('\n');
    this.drawn = false;
    this.step = -1;
  }

  private clear(): void {
    if (this.drawn) this.out.write('\r\x1b[2K');
    this.drawn = false;
  }

  private draw(): void {
    const width = Math.max(10, Math.min(40, (this.out.columns ?? 80) - 40));
    const fraction = this.steps > 0 ? Math.min(1, this.step / this.steps) : 0;
    const filled = Math.round(fraction * width);
    const bar = `${'█'.repeat(filled)}${'░'.repeat(width - filled)}`;
    this.out.write(`\r\x1b[2K${this.label} ${bar} ${this.step}/${this.steps} ${String(Math.round(fraction * 100)).padStart(3)}%`);
    this.drawn = true;
  }
}

// A progress bar on stderr: redrawn in place on a terminal (at most 10 times a second), a plain line
// every 10 seconds otherwise (logs, CI, tests), and a final line when done.

export interface ProgressOptions {
  /** unit of `total` / `add`: 'bytes' shows MB/s, 'items' shows items/s */
  unit?: 'bytes' | 'items';
  stream?: NodeJS.WriteStream;
  quiet?: boolean;
  /** units already done before this process started (a resumed run): counted as done, not in the rate */
  startAt?: number;
}

function fmtTime(s: number): string {
  if (!Number.isFinite(s)) return '?';
  s = Math.max(0, Math.round(s));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${String(sec).padStart(2, '0')}` : `${m}:${String(sec).padStart(2, '0')}`;
}

/** A duration in words for estimates: 95 -> "1 min 35 s", 5700 -> "1 h 35 min". */
export function humanDuration(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  const m = Math.round(s / 60);
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

function fmtCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}K`;
  return String(Math.round(n));
}

export class Progress {
  private done = 0;
  private readonly t0 = Date.now();
  private lastDraw = 0;
  private readonly tty: boolean;
  private readonly stream: NodeJS.WriteStream;
  private extra = '';
  private finished = false;

  constructor(private readonly label: string, private total: number, private readonly opts: ProgressOptions = {}) {
    this.stream = opts.stream ?? process.stderr;
    this.tty = this.stream.isTTY === true;
    this.lastDraw = this.t0; // first line after 100 ms on a terminal, after 10 s in a log
    this.done = opts.startAt ?? 0;
  }

  setTotal(total: number): void {
    this.total = total;
  }

  /** set the amount done so far */
  update(done: number, extra?: string): void {
    this.add(done - this.done, extra);
  }

  /** advance by n units; `extra` is shown after the rate (e.g. "1.2M tokens") */
  add(n: number, extra?: string): void {
    this.done += n;
    if (extra !== undefined) this.extra = extra;
    const now = Date.now();
    if (this.opts.quiet) return;
    if (this.tty ? now - this.lastDraw >= 100 : now - this.lastDraw >= 10_000) {
      this.lastDraw = now;
      this.draw(false);
    }
  }

  finish(extra?: string): void {
    if (this.finished) return;
    this.finished = true;
    if (extra !== undefined) this.extra = extra;
    if (!this.opts.quiet) this.draw(true);
  }

  private draw(final: boolean): void {
    const el = (Date.now() - this.t0) / 1000;
    const rate = el > 0 ? (this.done - (this.opts.startAt ?? 0)) / el : 0;
    const frac = this.total > 0 ? Math.min(1, this.done / this.total) : 0;
    const width = 24;
    const fill = Math.round(frac * width);
    const bar = `[${'#'.repeat(fill)}${'.'.repeat(width - fill)}]`;
    const rateS = this.opts.unit === 'bytes' ? `${(rate / 1e6).toFixed(2)} MB/s` : `${fmtCount(rate)}/s`;
    const doneS = this.opts.unit === 'bytes' ? `${(this.done / 1e6).toFixed(1)}/${(this.total / 1e6).toFixed(1)} MB` : `${fmtCount(this.done)}/${fmtCount(this.total)}`;
    const tail = final ? `in ${fmtTime(el)}` : `ETA ${fmtTime(rate > 0 ? (this.total - this.done) / rate : Infinity)}`;
    const line = `${this.label} ${bar} ${(100 * frac).toFixed(0).padStart(3)}% ${doneS} ${rateS} ${tail}${this.extra ? `  ${this.extra}` : ''}`;
    if (this.tty) this.stream.write(`\r\x1b[2K${line}${final ? '\n' : ''}`);
    else this.stream.write(`${line}\n`);
  }
}

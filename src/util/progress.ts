// A progress bar for long work, on stderr: done/total, rate, ETA and a few live fields. On a
// terminal it redraws one line; otherwise (CI, pipes) it prints a line every `logEvery` seconds,
// so logs stay readable. Results never go here: they go to stdout or files.

export interface ProgressOptions {
  label: string;
  total: number;
  unit?: string; // what `done` counts, e.g. "tok"
  stream?: NodeJS.WriteStream;
  logEvery?: number; // seconds between lines when not a TTY
  quiet?: boolean;
  startAt?: number; // work already done before this process (a resumed run): excluded from the rate
}

export interface Progress {
  update(done: number, fields?: Record<string, string | number>): void;
  finish(fields?: Record<string, string | number>): void;
}

function fmtDuration(s: number): string {
  if (!Number.isFinite(s)) return '--';
  if (s < 60) return `${s.toFixed(0)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.floor(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

function fmtCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}G`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return n.toFixed(0);
}

export function progress(o: ProgressOptions): Progress {
  const stream = o.stream ?? process.stderr;
  const tty = stream.isTTY === true;
  const start = Date.now();
  let lastLog = 0;
  const done0 = o.startAt ?? 0;
  const line = (done: number, fields: Record<string, string | number>, final: boolean): string => {
    const elapsed = (Date.now() - start) / 1000;
    const rate = elapsed > 0 ? (done - done0) / elapsed : 0;
    const frac = o.total > 0 ? Math.min(1, done / o.total) : 0;
    const eta = rate > 0 ? (o.total - done) / rate : Infinity;
    const width = 24;
    const bar = '#'.repeat(Math.round(frac * width)).padEnd(width, '.');
    const extra = Object.entries(fields).map(([k, v]) => `${k} ${typeof v === 'number' ? (Number.isInteger(v) ? v : v.toPrecision(4)) : v}`).join('  ');
    const unit = o.unit ? ` ${o.unit}` : '';
    return `${o.label} [${bar}] ${(100 * frac).toFixed(1)}% ${fmtCount(done)}/${fmtCount(o.total)}${unit}  ${fmtCount(rate)}${unit}/s  ${final ? `took ${fmtDuration(elapsed)}` : `ETA ${fmtDuration(eta)}`}${extra ? '  ' + extra : ''}`;
  };
  return {
    update(done, fields = {}) {
      if (o.quiet) return;
      if (tty) {
        stream.write(`\r\x1b[2K${line(done, fields, false)}`);
      } else {
        const now = Date.now();
        if (now - lastLog >= (o.logEvery ?? 10) * 1000) {
          lastLog = now;
          stream.write(line(done, fields, false) + '\n');
        }
      }
    },
    finish(fields = {}) {
      if (o.quiet) return;
      stream.write(`${tty ? '\r\x1b[2K' : ''}${line(o.total, fields, true)}\n`);
    },
  };
}

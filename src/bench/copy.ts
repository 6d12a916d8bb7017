// Memory copy bandwidth with N threads (worker_threads over one SharedArrayBuffer, each copying its
// own half / third / ... of a buffer far larger than the caches), STREAM's "copy" count: read +
// write bytes. The one-thread figure is in decode.ts (copyBandwidth); decoding runs on the native
// pool's threads, so both are the yardsticks for a decode step's bytes per second.

import { Worker } from 'node:worker_threads';
import { median } from './median.js';

const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const { src, dst, from, to } = workerData;
const s = new Float32Array(src, from * 4, to - from), d = new Float32Array(dst, from * 4, to - from);
parentPort.on('message', () => { d.set(s); parentPort.postMessage(0); });
`;

/** GB/s (read + write bytes) of `threads` threads copying `bytes` in parallel; median of `reps`. */
export async function copyBandwidthThreads(threads: number, bytes = 256 * 2 ** 20, reps = 5): Promise<number> {
  const n = bytes / 4;
  const src = new SharedArrayBuffer(bytes), dst = new SharedArrayBuffer(bytes);
  new Float32Array(src).fill(1); // touched, so pages exist
  new Float32Array(dst).fill(0);
  const workers = Array.from({ length: threads }, (_, i) => new Worker(WORKER, {
    eval: true, workerData: { src, dst, from: Math.floor((i * n) / threads), to: Math.floor(((i + 1) * n) / threads) },
  }));
  try {
    const round = (): Promise<number> => {
      const t0 = process.hrtime.bigint();
      return Promise.all(workers.map((w) => new Promise<void>((resolve) => { w.once('message', () => resolve()); w.postMessage(0); })))
        .then(() => Number(process.hrtime.bigint() - t0) / 1e9);
    };
    await round(); // warm-up (the workers' first touch of their slices)
    const times: number[] = [];
    for (let r = 0; r < reps; r++) times.push(await round());
    const med = median(times);
    return (2 * bytes) / med / 1e9;
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

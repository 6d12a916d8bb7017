// `bench train --precision bf16` and `bench decode`: the figures come out, consistent with each other (bytes per token x tokens/s =
// GB/s; the fraction is their ratio to the copy bandwidth measured in the same run).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { assertOneLineError, longctx, longctxEnv } from './bin.js';
import { kernelsUnavailable } from '../src/kernels/native.js';

test('bench decode prints prefill and decode rates, the bytes read per token against memory read and copy rates, and llama.cpp beside (--peer)', (t) => {
  const r = longctx('bench', 'decode', '--config', 'small', '--prompt', '32', '--new', '8', '--json', '--peer');
  if (r.code !== 0 && /node-llama-cpp|llama\.cpp/.test(r.stderr) && process.env.LONGCTX_ALLOW_NO_LLAMACPP === '1') {
    t.skip(`llama.cpp unavailable: ${r.stderr.trim()}`);
    return;
  }
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.ok(j.read_gb_per_second > 0 && j.copy_threads_gb_per_second > 0);
  assert.ok(Math.abs(j.fraction_of_read - j.decode_gb_per_second / j.read_gb_per_second) < 1e-12);
  // llama.cpp on the same model as F32 and F16 files: F16 weights are half the F32 file
  assert.deepEqual(j.peer.map((p: { type: string }) => p.type), ['F32', 'F16']);
  for (const p of j.peer) assert.ok(p.prefill_tokens_per_second > 0 && p.decode_tokens_per_second > 0 && p.threads === j.threads, JSON.stringify(p));
  assert.ok(j.peer[1].file_bytes < 0.6 * j.peer[0].file_bytes && j.peer[0].file_bytes > 4 * j.parameters);
  assert.equal(j.config, 'small');
  assert.equal(j.decode_step_seconds.length, 8);
  assert.ok(j.prefill_tokens_per_second > 0 && j.decode_tokens_per_second > 0 && j.copy_gb_per_second > 0);
  // 4 bytes per weight + K and V of 6 layers x 8 heads x 32 at a context of 32 + 4
  assert.equal(j.bytes_per_token, 4 * j.parameters + 2 * 6 * 36 * 8 * 32 * 4);
  assert.ok(Math.abs(j.decode_gb_per_second - (j.bytes_per_token * j.decode_tokens_per_second) / 1e9) < 1e-9 * j.decode_gb_per_second);
  assert.ok(Math.abs(j.fraction_of_copy - j.decode_gb_per_second / j.copy_gb_per_second) < 1e-12);
  const bad = longctx('bench', 'decode', '--config', 'small', '--new', '1');
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^longctx: --new must be an integer >= 2/);
});

test('bench train --precision bf16: fp32 and bf16 timed in one run on the same kernels, weights and batches; their losses agree', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'longctx-bench-'));
  try {
    const cfg = path.join(dir, 'tiny.json');
    writeFileSync(cfg, JSON.stringify({
      model: { vocab_size: 512, hidden_size: 64, intermediate_size: 176, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, rms_norm_eps: 1e-5, rope_theta: 10000, max_position_embeddings: 128, tie_word_embeddings: false },
      seq_len: 128, batch_size: 2,
    }));
    const r = longctx('bench', 'train', '--config', cfg, '--steps', '2', '--warmup', '1', '--precision', 'bf16', '--json');
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.equal(j.precision, 'bf16');
    assert.equal(j.fp32.precision, 'fp32');
    assert.equal(j.isa, j.fp32.isa);
    assert.ok(j.tokens_per_second > 0 && j.fp32.tokens_per_second > 0);
    assert.ok(Math.abs(j.speedup_vs_fp32 - j.tokens_per_second / j.fp32.tokens_per_second) < 1e-12);
    // 3 steps from the same initial weights on the same random batches: the losses differ by bfloat16's rounding only
    assert.notEqual(j.loss, j.fp32.loss);
    assert.ok(Math.abs(j.loss - j.fp32.loss) < 0.01 * j.fp32.loss, `bf16 loss ${j.loss} vs fp32 ${j.fp32.loss}`);
    const plain = JSON.parse(longctx('bench', 'train', '--config', cfg, '--steps', '1', '--warmup', '0', '--json').stdout);
    assert.equal(plain.precision, 'fp32');
    assert.equal(plain.fp32, undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bench gemm --precision bf16: our bf16 and fp32 products timed in one run, the markdown table says which is which', () => {
  const r = longctx('bench', 'gemm', '--shape', '96,80,200', '--shape', '64,48,130,TN', '--precision', 'bf16', '--no-peer', '--repeats', '2', '--rounds', '1', '--json');
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.precision, 'bf16');
  assert.deepEqual(j.rows.map((x: { shape: string; trans: string }) => `${x.shape} ${x.trans}`), ['96,80,200 NN', '64,48,130 TN']);
  for (const x of j.rows) assert.ok(x.ours > 0 && x.oursFp32 > 0 && x.peer === null, JSON.stringify(x));
  const md = longctx('bench', 'gemm', '--shape', '64,64,64', '--precision', 'bf16', '--no-peer', '--repeats', '1', '--rounds', '1');
  assert.equal(md.code, 0, md.stderr);
  assert.match(md.stdout, /\| ours bf16 GFLOPS \| ours fp32 GFLOPS \| bf16 \/ fp32 \|/);
  const fp32 = JSON.parse(longctx('bench', 'gemm', '--shape', '64,64,64', '--no-peer', '--repeats', '1', '--rounds', '1', '--json').stdout);
  assert.equal(fp32.precision, 'fp32');
  assert.equal(fp32.rows[0].oursFp32, null);
  const bad = longctx('bench', 'gemm', '--shape', '64,64,64', '--precision', 'fp16');
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^longctx: --precision must be one of fp32, bf16, got "fp16"/);
});

test('LONGCTX_ISA picks the build for bench gemm and for what info reports; one this install cannot use is named', () => {
  const gemm = (isa: string) => longctxEnv({ LONGCTX_ISA: isa }, 'bench', 'gemm', '--shape', '32,32,32', '--no-peer', '--repeats', '1', '--rounds', '1', '--json');
  const r = gemm('scalar');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).kernel, 'scalar');
  assert.notEqual(JSON.parse(gemm('native').stdout).kernel, undefined);
  assertOneLineError(gemm('ref'), /LONGCTX_ISA=ref: bench gemm times a native build; unset LONGCTX_ISA or give --isa/);
  assert.notEqual(JSON.parse(gemm('auto').stdout).kernel, undefined);
  const viaBackend = longctxEnv({ LONGCTX_ISA: '', LONGCTX_BACKEND: 'scalar' }, 'bench', 'gemm', '--shape', '32,32,32', '--no-peer', '--repeats', '1', '--rounds', '1', '--json');
  assert.equal(JSON.parse(viaBackend.stdout).kernel, 'scalar', viaBackend.stderr);
  const info = (isa: string) => JSON.parse(longctxEnv({ LONGCTX_ISA: isa }, 'info', '--preset', 'tiny', '--seq-lens', '256', '--json').stdout).kernels;
  assert.deepEqual([info('scalar').backend, info('scalar').isa], ['native', 'scalar']);
  assert.equal(info('ref').backend, 'ref');
  // info is where one looks to find out why: it reports the bad choice rather than failing
  const bad = info('avx9');
  assert.equal(bad.backend, undefined);
  assert.match(bad.error, /LONGCTX_ISA must be "native", "ref" or an instruction set .*got "avx9"/);
  assert.ok(bad.supported.includes('scalar'), JSON.stringify(bad));
  // a build this CPU cannot run (checked for real under qemu's AVX2-only EPYC-Milan: scripts/test-emulated-cpu.sh) wants another build, not a rebuild
  assert.match(kernelsUnavailable('avx512', 'this CPU cannot run the avx512 kernels (it supports avx2, scalar)', true, ['avx2', 'scalar']),
    /^the avx512 kernels are unavailable: this CPU cannot run .*; use native \(the fastest build this CPU runs\) or one of avx2, scalar$/);
  assert.match(kernelsUnavailable('avx512', 'longctx_avx512.node was not built', false, ['avx2', 'scalar']), /; run `npm run build:native`, or use --kernels ref$/);
});

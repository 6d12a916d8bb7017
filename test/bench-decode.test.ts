// `bench decode`: the figures come out, consistent with each other (bytes per token x tokens/s =
// GB/s; the fraction is their ratio to the copy bandwidth measured in the same run).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { longctx } from './bin.js';

test('bench decode prints prefill and decode rates and the bytes read per token against a memory copy', () => {
  const r = longctx('bench', 'decode', '--config', 'small', '--prompt', '32', '--new', '8', '--json');
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
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

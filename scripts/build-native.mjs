// Builds the native addon (node-gyp, per-ISA (scalar, AVX2, AVX-512, AVX-512 + BF16)) during `npm ci`. A failed build is not a failed
// install: longctx then says so once at run time and uses the reference backend. Set
// LONGCTX_REQUIRE_NATIVE=1 to make a failed build fail the install instead.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';

function nodeGypCommand() {
  // npm runs install scripts with its bundled node-gyp; outside npm, use the one shipped beside npm.
  const fromNpm = process.env.npm_config_node_gyp;
  if (fromNpm && existsSync(fromNpm)) return [process.execPath, [fromNpm]];
  const besideNpm = path.join(path.dirname(process.execPath), '../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js');
  if (existsSync(besideNpm)) return [process.execPath, [besideNpm]];
  return ['node-gyp', []];
}

const [cmd, pre] = nodeGypCommand();
const started = Date.now();
process.stderr.write('longctx: building the native addon (C++17, per-ISA (scalar, AVX2, AVX-512, AVX-512 + BF16))...\n');
const r = spawnSync(cmd, [...pre, 'rebuild', '--release'], { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
if (r.status === 0) {
  process.stderr.write(`longctx: native addon built in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
} else {
  const tail = `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}`.trim().split('\n').slice(-15).join('\n');
  process.stderr.write(`${tail}\nlongctx: WARNING: the native addon did not build; longctx will run on the (much slower) reference backend.\n`);
  if (process.env.LONGCTX_REQUIRE_NATIVE === '1') process.exit(1);
}

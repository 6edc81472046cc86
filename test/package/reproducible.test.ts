// Two clean builds of the single executables give identical bytes, and SHA256SUMS vouches for them.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { binaryName, buildSea, SEA_ARCHES } from '../../scripts/build-sea.ts';
import { sha256Sums } from './artifacts.ts';

test('two clean builds are byte-for-byte identical', async (t) => {
  const first = mkdtempSync(join(tmpdir(), 'kubenode-sea-a-'));
  const second = mkdtempSync(join(tmpdir(), 'kubenode-sea-b-'));
  t.after(() => {
    rmSync(first, { recursive: true, force: true });
    rmSync(second, { recursive: true, force: true });
  });
  await buildSea(first);
  await buildSea(second);

  assert.deepEqual(readFileSync(join(second, 'SHA256SUMS'), 'utf8'), readFileSync(join(first, 'SHA256SUMS'), 'utf8'));
  const sums = sha256Sums(first);
  assert.deepEqual([...sums.keys()].sort(), SEA_ARCHES.map(binaryName).sort());
  for (const arch of SEA_ARCHES) {
    const a = readFileSync(join(first, binaryName(arch)));
    assert.ok(a.equals(readFileSync(join(second, binaryName(arch)))), `${binaryName(arch)} differs between builds`);
    assert.equal(createHash('sha256').update(a).digest('hex'), sums.get(binaryName(arch)));
  }
});

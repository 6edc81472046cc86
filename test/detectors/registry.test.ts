import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { detectors } from '../../src/detectors/index.ts';

test('every detector file is registered under its file name, and nothing else is', () => {
  const dir = fileURLToPath(new URL('../../src/detectors/', import.meta.url));
  const files = readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts') && e.name !== 'index.ts')
    .map((e) => e.name.replace(/\.ts$/, ''))
    .sort();
  assert.deepEqual(Object.keys(detectors).sort(), files);
});

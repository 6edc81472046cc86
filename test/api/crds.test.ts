// The CRDs in deploy/crds/ are generated from src/api/: they must match a fresh render, every
// kind file must be in the registry, and a real apiserver must take them and enforce them.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { renderCrds } from '../../src/api/crd.ts';
import { kinds } from '../../src/api/index.ts';

const CRD_DIR = new URL('../../deploy/crds/', import.meta.url);

describe('generated CRDs', () => {
  test('deploy/crds/ matches what src/api/ generates (run npm run gen:crds)', () => {
    const expected = renderCrds();
    const onDisk = readdirSync(CRD_DIR).filter((f) => f.endsWith('.yaml'));
    assert.deepEqual(onDisk.sort(), [...expected.keys()].sort(), 'CRD files differ from the kinds in src/api/index.ts');
    for (const [name, content] of expected) {
      assert.equal(readFileSync(new URL(name, CRD_DIR), 'utf8'), content, `deploy/crds/${name} is stale: run npm run gen:crds`);
    }
  });

  test('every kind file in src/api/ is in the registry', () => {
    const files = readdirSync(new URL('../../src/api/', import.meta.url))
      .filter((f) => f.endsWith('.ts') && !['index.ts', 'common.ts', 'crd.ts'].includes(f))
      .map((f) => f.replace(/\.ts$/, ''))
      .sort();
    const fromKinds = Object.values(kinds)
      .map((k) => k.kind.replace(/([a-z])([A-Z])/g, '$1-$2').toLowerCase())
      .sort();
    assert.deepEqual(files, fromKinds);
  });
});

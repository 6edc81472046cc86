// What scripts/build.ts puts in the bundle in place of a package's index: prom-client's parts,
// without its Pushgateway and cluster aggregator. A name src/ took from prom-client that the parts
// do not export would be undefined in the bundle and only there, so every import is held to them.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { test } from 'node:test';
import * as promClient from 'prom-client';
import { PROM_CLIENT_PARTS } from '../../scripts/build.ts';
import { AGENT, REPO } from '../helpers/cli.ts';

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

test("src/ takes from prom-client only what the bundle's parts export, and each part is prom-client's own", () => {
  const taken = new Set<string>();
  for (const file of sources(join(REPO, 'src'))) {
    for (const m of readFileSync(file, 'utf8').matchAll(/^import (type )?\{([^}]*)\} from 'prom-client';$/gm)) {
      if (m[1] !== undefined) continue;
      for (const name of (m[2] as string).split(',').map((n) => n.trim())) if (name !== '' && !name.startsWith('type ')) taken.add(name);
    }
    assert.doesNotMatch(readFileSync(file, 'utf8'), /from 'prom-client\/|import \* as \w+ from 'prom-client'|require\('prom-client/, `${file}: prom-client by name only`);
  }
  assert.ok(taken.has('Registry') && taken.has('Counter'), `the scan found the imports (${[...taken].join(', ')})`);
  for (const name of taken) assert.ok(name in PROM_CLIENT_PARTS, `${name} is imported from prom-client but not in PROM_CLIENT_PARTS`);
  const require = createRequire(join(REPO, 'package.json'));
  for (const [name, file] of Object.entries(PROM_CLIENT_PARTS)) assert.equal(require(`prom-client/lib/${file}`), (promClient as Record<string, unknown>)[name], `${name} is prom-client/lib/${file}`);
});

test('the bundle holds prom-client without its Pushgateway and cluster aggregator', () => {
  const bundle = readFileSync(AGENT, 'utf8');
  assert.match(bundle, /prom-client\/lib\/registry\.js/);
  assert.doesNotMatch(bundle, /prom-client\/lib\/pushgateway\.js/);
  assert.doesNotMatch(bundle, /prom-client\/lib\/cluster\.js/);
});

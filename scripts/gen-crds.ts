// Writes deploy/crds/<plural>.kubenode.io.yaml from the TypeBox schemas in src/api/ and removes
// CRD files no kind produces any more. test/api/crds.test.ts fails when they are stale.
import { mkdirSync, readdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderCrds } from '../src/api/crd.ts';

const dir = fileURLToPath(new URL('../deploy/crds/', import.meta.url));
mkdirSync(dir, { recursive: true });
const files = renderCrds();
for (const [name, content] of files) {
  const path = join(dir, name);
  let old: string | undefined;
  try {
    old = readFileSync(path, 'utf8');
  } catch {
    old = undefined;
  }
  if (old === content) continue;
  writeFileSync(path, content);
  process.stdout.write(`wrote ${path}\n`);
}
for (const name of readdirSync(dir)) {
  if (name.endsWith('.kubenode.io.yaml') && !files.has(name)) {
    unlinkSync(join(dir, name));
    process.stdout.write(`removed ${join(dir, name)}\n`);
  }
}

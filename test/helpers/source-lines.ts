// Drift tests: rules the code base keeps that a type checker cannot see, checked line by line.
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));

async function sources(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await sources(full)));
    else if (entry.name.endsWith('.ts')) out.push(full);
  }
  return out;
}

/**
 * Every line of src/**\/*.ts that matches `pattern`, as `src/<file>:<line>: <text>`, outside the
 * files `except` names (paths under src/). Throws when it finds no sources, so a wrong path cannot
 * pass for a clean tree.
 */
export async function srcLinesMatching(pattern: RegExp, except: readonly string[] = []): Promise<string[]> {
  const files = await sources(SRC);
  if (files.length === 0) throw new Error(`no .ts files under ${SRC}`);
  const offenders: string[] = [];
  for (const file of files) {
    const relative = path.relative(SRC, file);
    if (except.includes(relative)) continue;
    (await readFile(file, 'utf8')).split('\n').forEach((line, i) => {
      if (pattern.test(line)) offenders.push(`src/${relative}:${i + 1}: ${line.trim()}`);
    });
  }
  return offenders;
}

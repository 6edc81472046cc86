// House rules the type checker cannot see (STYLE.md): only src/host/ touches the machine,
// and only src/main.ts ends the process.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

const MACHINE_IMPORTS = /from ['"](node:)?(fs|fs\/promises|child_process)['"]|from ['"]execa['"]/;

function* files(dir: string): Generator<string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) yield* files(full);
    else if (entry.name.endsWith('.ts')) yield full;
  }
}

const problems: string[] = [];
for (const file of files('src')) {
  const text = readFileSync(file, 'utf8');
  text.split('\n').forEach((line, i) => {
    if (!file.startsWith('src/host/') && MACHINE_IMPORTS.test(line)) {
      problems.push(`${file}:${i + 1}: only src/host/ may import fs, child_process or execa`);
    }
    if (file !== 'src/main.ts' && /\bprocess\.exit\(/.test(line)) {
      problems.push(`${file}:${i + 1}: only src/main.ts may call process.exit`);
    }
  });
}
if (problems.length > 0) {
  process.stderr.write(`${problems.join('\n')}\n`);
  process.exitCode = 1;
}

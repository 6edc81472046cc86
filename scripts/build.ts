// Bundles the agent into one CommonJS file, dist/kubenode-agent.cjs: no node_modules at run time.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { build, type BuildOptions } from 'esbuild';

function gitCommit(): string {
  try {
    return execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return 'unknown';
  }
}

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

export const bundleOptions: BuildOptions = {
  entryPoints: ['src/main.ts'],
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node26',
  legalComments: 'none',
  // esbuild's CommonJS output has no import.meta; the few libraries that read import.meta.url get the bundle's own URL.
  banner: { js: "const __import_meta_url = require('node:url').pathToFileURL(__filename).href;" },
  define: {
    'import.meta.url': '__import_meta_url',
    __KUBENODE_VERSION__: JSON.stringify(pkg.version),
    __KUBENODE_COMMIT__: JSON.stringify(process.env.KUBENODE_COMMIT ?? gitCommit()),
  },
  alias: { punycode: 'punycode/' },
  logLevel: 'warning',
};

if (import.meta.main) {
  await build({ ...bundleOptions, outfile: 'dist/kubenode-agent.cjs' });
}

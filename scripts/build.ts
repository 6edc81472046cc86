// Bundles the agent into CommonJS files with no node_modules at run time: dist/kubenode-agent.cjs,
// and next to it dist/kubenode-agent-kube.cjs, @kubernetes/client-node on its own (three quarters
// of the agent's code), which src/kube/client.ts loads only when a command talks to an apiserver.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { build, type BuildOptions, type Plugin } from 'esbuild';

function gitCommit(): string {
  try {
    return execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return 'unknown';
  }
}

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

export const BUNDLE = 'kubenode-agent.cjs';
/** The Kubernetes client's file name: next to the bundle, and the SEA asset's key in the executables. */
export const KUBE_CHUNK = 'kubenode-agent-kube.cjs';

const common: BuildOptions = {
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node26',
  legalComments: 'none',
  // esbuild's CommonJS output has no import.meta; the few libraries that read import.meta.url get the bundle's own URL.
  banner: { js: "const __import_meta_url = require('node:url').pathToFileURL(__filename).href;" },
  define: { 'import.meta.url': '__import_meta_url' },
  alias: { punycode: 'punycode/' },
  logLevel: 'warning',
  // Whitespace and syntax minified (the client 14.6 MB to 5.4 MB, the agent 3.4 to 2.3 MB: less to
  // read, hold and compile); names are kept, so stack traces stay readable. ASCII only: V8 holds a
  // script with one character beyond Latin-1 at two bytes per character (4.5 MB more for `version`).
  minifyWhitespace: true,
  minifySyntax: true,
  charset: 'ascii',
};

/** What the agent takes from prom-client (src/ imports nothing else from it; test/build/bundle.test.ts holds it to that). */
export const PROM_CLIENT_PARTS = { Registry: 'registry', Counter: 'counter', Gauge: 'gauge', Histogram: 'histogram', collectDefaultMetrics: 'defaultMetrics' } as const;

/**
 * prom-client's index also loads its Pushgateway and its cluster aggregator, which the agent never
 * uses, and with them node:https and node:cluster: 5.5 ms of every start. The bundle takes the
 * parts it uses from their own files instead.
 */
const promClientParts: Plugin = {
  name: 'prom-client-parts',
  setup(b) {
    b.onResolve({ filter: /^prom-client$/ }, () => ({ path: 'prom-client', namespace: 'prom-client-parts' }));
    b.onLoad({ filter: /.*/, namespace: 'prom-client-parts' }, () => ({
      contents: Object.entries(PROM_CLIENT_PARTS)
        .map(([name, file]) => `exports.${name} = require('prom-client/lib/${file}');`)
        .join('\n'),
      resolveDir: b.initialOptions.absWorkingDir ?? process.cwd(),
      loader: 'js',
    }));
  },
};

export const bundleOptions: BuildOptions = {
  ...common,
  entryPoints: ['src/main.ts'],
  external: ['@kubernetes/client-node'],
  plugins: [promClientParts],
  define: {
    ...common.define,
    __KUBENODE_VERSION__: JSON.stringify(pkg.version),
    __KUBENODE_COMMIT__: JSON.stringify(process.env.KUBENODE_COMMIT ?? gitCommit()),
    __KUBENODE_KUBE_CHUNK__: JSON.stringify(KUBE_CHUNK),
  },
};

export const kubeChunkOptions: BuildOptions = { ...common, entryPoints: ['@kubernetes/client-node'] };

// esbuild's `charset: 'ascii'` escapes strings but leaves regexp literals as written.
function assertAscii(file: string): void {
  const text = readFileSync(file, 'latin1');
  const at = text.search(/[^\x00-\x7f]/);
  if (at >= 0) {
    const line = text.slice(0, at).split('\n').length;
    throw new Error(`${file}:${line}: a character beyond ASCII (${JSON.stringify(text.slice(Math.max(0, at - 40), at + 10))}); write it as a \\u escape in the source`);
  }
}

/** Writes the bundle and the Kubernetes client next to it into `dir`; `define` adds to the bundle's. */
export async function buildBundle(dir: string, options: { absWorkingDir?: string; define?: Record<string, string> } = {}): Promise<void> {
  const cwd = options.absWorkingDir === undefined ? {} : { absWorkingDir: options.absWorkingDir };
  await Promise.all([
    build({ ...bundleOptions, ...cwd, define: { ...bundleOptions.define, ...options.define }, outfile: join(dir, BUNDLE) }),
    build({ ...kubeChunkOptions, ...cwd, outfile: join(dir, KUBE_CHUNK) }),
  ]);
  for (const file of [BUNDLE, KUBE_CHUNK]) assertAscii(join(dir, file));
}

if (import.meta.main) {
  await buildBundle('dist');
}

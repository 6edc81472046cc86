// The Kubernetes client (@kubernetes/client-node, three quarters of the agent's code) ships as its
// own file next to the bundle and is loaded only by a command that talks to an apiserver.
// Observables: NODE_DEBUG=kubenode, where src/kube/client.ts reports every load, and a bundle
// copied without the client, which can only run what never reaches for it. Within the bundle,
// `run` leaves the risk gate, the installers' engine, manifests and schema and the self-upgrade unloaded
// until a node needs them; the bundle initialises a module where the source imports it, so that is
// observed on the source, run with test/helpers/record-loads.ts preloaded.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import { KUBE_CHUNK } from '../../scripts/build.ts';
import { AGENT, FIXTURES, REPO, unreachableKubeconfig } from '../helpers/cli.ts';
import { agentRoot } from '../helpers/daemon.ts';
import type { TempRoot } from '../helpers/host-root.ts';

const LOADED = 'loading the Kubernetes client';
const started = (stdout: string): boolean => stdout.includes('"msg":"Agent started"');

const scratch = mkdtempSync(join(tmpdir(), 'kubenode-lazy-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
const alone = join(scratch, 'kubenode-agent.cjs');
copyFileSync(AGENT, alone);

const kubeconfig = unreachableKubeconfig(scratch);

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `node [NODEARGS] BUNDLE ARGS` with NODE_DEBUG=kubenode; `until`, when given, is asked of
 * the output so far as it comes, and once it holds the process is sent SIGTERM.
 */
function agent(bundle: string, args: readonly string[], o: { until?: (out: Omit<Ran, 'code'>) => boolean; nodeArgs?: readonly string[] } = {}): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...(o.nodeArgs ?? []), bundle, ...args], { cwd: REPO, env: { ...process.env, NODE_DEBUG: 'kubenode', NO_COLOR: '1' } });
    const out = { stdout: '', stderr: '' };
    let stopped = false;
    const seen = (): void => {
      if (!stopped && o.until?.(out) === true) stopped = child.kill('SIGTERM');
    };
    child.stdout.on('data', (d: Buffer) => {
      out.stdout += d.toString();
      seen();
    });
    child.stderr.on('data', (d: Buffer) => {
      out.stderr += d.toString();
      seen();
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${args.join(' ')} did not finish\n${out.stdout}${out.stderr}`));
    }, 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, ...out });
    });
  });
}

test('the build puts the Kubernetes client next to the bundle, and the bundle does not carry it', () => {
  assert.ok(existsSync(join(dirname(AGENT), KUBE_CHUNK)), `${KUBE_CHUNK} is missing: run \`npm run build\``);
  assert.ok(!existsSync(join(scratch, KUBE_CHUNK)));
});

for (const [where, bundle] of [['the bundle in dist/', AGENT], ['the bundle without the client next to it', alone]] as const) {
  describe(`${where}: commands without a kubeconfig never load the client`, () => {
    test('version', async () => {
      const r = await agent(bundle, ['version']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^kubenode-agent \S+ \(commit /);
      assert.equal(r.stderr, '');
    });

    test('check --json --root <npd-kernel-5.x>', async () => {
      const r = await agent(bundle, ['check', '--json', '--root', join(FIXTURES, 'hosts', 'npd-kernel-5.x')]);
      assert.ok(r.code === 0 || r.code === 1 || r.code === 2, `exit ${r.code}: ${r.stderr}`);
      assert.ok((JSON.parse(r.stdout) as { results: unknown[] }).results.length > 0);
      assert.doesNotMatch(r.stderr, new RegExp(LOADED));
    });

    test('run, up to "Agent started" and a clean stop', async () => {
      const root = agentRoot('node-lazy');
      const r = await agent(bundle, ['run', '--root', root.dir, '--listen', '127.0.0.1:0', '--log-format', 'json'], { until: (out) => started(out.stdout) });
      assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
      assert.match(r.stdout, /"msg":"Agent stopped"/);
      assert.doesNotMatch(r.stderr, new RegExp(LOADED));
    });
  });
}

test('a command with a kubeconfig loads the client from the file next to the bundle, and uses it', async () => {
  const r = await agent(AGENT, ['rollout', 'status', 'x', '--kubeconfig', kubeconfig]);
  assert.match(r.stderr, new RegExp(`${LOADED} from ${KUBE_CHUNK.replaceAll('.', '\\.')}\\n`));
  assert.match(r.stderr, /kubenode-agent: GET \/apis\/kubenode\.io\/v1alpha1\/machinecomponentsets\/x: connect ECONNREFUSED 127\.0\.0\.1:9\n$/);
  assert.equal(r.code, 1);
});

test('without the client next to it, such a command says which file is missing (one line, exit 74)', async () => {
  const r = await agent(alone, ['rollout', 'status', 'x', '--kubeconfig', kubeconfig]);
  assert.match(r.stderr, new RegExp(`kubenode-agent: cannot load the Kubernetes client \\(${KUBE_CHUNK.replaceAll('.', '\\.')}, shipped next to the agent's bundle\\): Cannot find module`));
  assert.equal(r.stderr.trimEnd().split('\n').filter((l) => l.startsWith('kubenode-agent:')).length, 1);
  assert.equal(r.code, 74);
});

/** What test/helpers/record-loads.ts starts each of its lines with (imported, it would hook this process). */
const LOADED_PREFIX = 'kubenode-loaded: ';

/** The modules (repository paths) a run under test/helpers/record-loads.ts reported loading so far. */
function loadsIn(stderr: string): string[] {
  return stderr.split('\n').flatMap((l) => (l.startsWith(LOADED_PREFIX) ? [relative(REPO, fileURLToPath(l.slice(LOADED_PREFIX.length)))] : []));
}

/**
 * `node src/main.ts run` on a scratch root, the modules it loads recorded; stopped with SIGTERM
 * once `ready` holds of what it has logged and loaded, and the modules returned after a clean
 * exit, by when every pass and check it had started has finished.
 */
async function runFromSource(root: TempRoot, args: readonly string[], ready: (stdout: string, loaded: readonly string[]) => boolean): Promise<Set<string>> {
  const r = await agent(join(REPO, 'src/main.ts'), ['run', '--root', root.dir, '--listen', '127.0.0.1:0', '--log-format', 'json', ...args], {
    nodeArgs: ['--import', join(REPO, 'test/helpers/record-loads.ts')],
    until: (out) => ready(out.stdout, loadsIn(out.stderr)),
  });
  assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
  return new Set(loadsIn(r.stderr));
}

describe('run loads the risk gate, the installers\' engine and the self-upgrade only when the node needs them', () => {
  const ENGINE = ['src/installers/engine.ts', 'src/installers/manifests.ts', 'src/api/machine-component.ts', 'src/host/lock.ts'];
  const RISK = ['src/risk/index.ts', 'src/risk/gate.ts'];
  const SELF_UPGRADE = 'src/installers/self-upgrade.ts';

  test('no manifest directory, remedies off, no upgrade in flight: none of them', async () => {
    const loaded = await runFromSource(agentRoot('node-lean'), [], started);
    // What it did load: the daemon and the reconciler that watches for a manifest directory.
    for (const m of ['src/daemon.ts', 'src/installers/reconciler.ts']) assert.ok(loaded.has(m), `${m} not loaded`);
    for (const m of [...ENGINE, ...RISK, SELF_UPGRADE]) assert.ok(!loaded.has(m), `${m} loaded`);
  });

  test('remedies on: the risk gate, at start', async () => {
    const root = agentRoot('node-remedies');
    const config = root.write('/etc/kubenode/agent.yaml', 'remedies:\n  enabled: true\n');
    const loaded = await runFromSource(root, ['--config', config], started);
    for (const m of RISK) assert.ok(loaded.has(m), `${m} not loaded`);
    assert.ok(!loaded.has('src/installers/engine.ts'));
  });

  test('a manifest directory, even an empty one: the engine, on the first pass; the gate still waits for a restart to ask about', async () => {
    const root = agentRoot('node-manifests');
    root.write('/etc/kubenode/components/.keep', '');
    const loaded = await runFromSource(root, [], (stdout, l) => started(stdout) && l.includes('src/installers/status.ts'));
    for (const m of ENGINE) assert.ok(loaded.has(m), `${m} not loaded`);
    for (const m of RISK) assert.ok(!loaded.has(m), `${m} loaded`);
  });

  test('an armed self-upgrade: the self-upgrade, to confirm this agent', async () => {
    const root = agentRoot('node-upgrading');
    root.write('/var/lib/kubenode/installers/self-upgrade/armed.json', '{}\n');
    const loaded = await runFromSource(root, [], (stdout, l) => started(stdout) && l.includes(SELF_UPGRADE));
    assert.ok(loaded.has(SELF_UPGRADE));
  });
});

// The Kubernetes client (@kubernetes/client-node, three quarters of the agent's code) ships as its
// own file next to the bundle and is loaded only by a command that talks to an apiserver.
// Observables: NODE_DEBUG=kubenode, where src/kube/client.ts reports every load, and a bundle
// copied without the client, which can only run what never reaches for it. Within the bundle,
// `run` leaves the risk gate, the installers' engine, manifests and schema and the self-upgrade unloaded
// until a node needs them; the bundle initialises a module where the source imports it, so that is
// observed on the source, run with test/helpers/record-loads.ts preloaded.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import { KUBE_CHUNK } from '../../scripts/build.ts';
import { AGENT, FIXTURES, REPO, unreachableKubeconfig } from '../helpers/cli.ts';
import { agentRoot } from '../helpers/daemon.ts';
import type { TempRoot } from '../helpers/host-root.ts';

const LOADED = 'loading the Kubernetes client';

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
 * Runs `node BUNDLE ARGS` with NODE_DEBUG=kubenode; `until`, when given, is awaited on the
 * output so far and then the process is sent SIGTERM.
 */
function agent(bundle: string, args: readonly string[], until?: RegExp): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bundle, ...args], { cwd: REPO, env: { ...process.env, NODE_DEBUG: 'kubenode', NO_COLOR: '1' } });
    let stdout = '';
    let stderr = '';
    let stopped = false;
    const seen = (): void => {
      if (!stopped && until !== undefined && until.test(stdout)) stopped = child.kill('SIGTERM');
    };
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      seen();
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${args.join(' ')} did not finish\n${stdout}${stderr}`));
    }, 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
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
      const r = await agent(bundle, ['run', '--root', root.dir, '--listen', '127.0.0.1:0', '--log-format', 'json'], /"msg":"Agent started"/);
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

/**
 * `node src/main.ts run` on a scratch root, the modules it loads recorded; stopped with SIGTERM
 * once `ready` holds of what it has logged and loaded, and the modules (repository paths) returned
 * after a clean exit, by when every pass and check it had started has finished.
 */
async function runFromSource(root: TempRoot, args: readonly string[], ready: (stdout: string, loaded: readonly string[]) => boolean): Promise<Set<string>> {
  const out = join(mkdtempSync(join(scratch, 'loads-')), 'loads');
  writeFileSync(out, '');
  const read = (): string[] => readFileSync(out, 'utf8').split('\n').filter((l) => l !== '').map((url) => relative(REPO, fileURLToPath(url)));
  const child = spawn(process.execPath, ['--import', join(REPO, 'test/helpers/record-loads.ts'), join(REPO, 'src/main.ts'), 'run', '--root', root.dir, '--listen', '127.0.0.1:0', '--log-format', 'json', ...args], { cwd: REPO, env: { ...process.env, KUBENODE_LOADS: out } });
  let stdout = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  const deadline = Date.now() + 60_000;
  while (!ready(stdout, read())) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`run did not get there (exit ${String(child.exitCode)})\n${stdout}${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill('SIGTERM');
  assert.equal(await exited, 0, `${stdout}${stderr}`);
  return new Set(read());
}

describe('run loads the risk gate, the installers\' engine and the self-upgrade only when the node needs them', () => {
  const started = (stdout: string): boolean => stdout.includes('"msg":"Agent started"');
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

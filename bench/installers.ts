// Installer figures for BENCHMARKS.md: `plan` on a converged node with 15 components, and one
// component upgrade end to end (artifact already in the cache: download excluded).
// Run: node bench/installers.ts   (after `node scripts/build.ts` for the process figure)
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { validateConfig } from '../src/config/load.ts';
import { createHost } from '../src/host/host.ts';
import { createInstallContext } from '../src/installers/context.ts';
import { ensureArtifact } from '../src/installers/download.ts';
import { Engine } from '../src/installers/engine.ts';
import { parseManifestText } from '../src/installers/manifests.ts';
import { allowAll } from '../src/risk/gate.ts';
import type { Target } from '../src/installers/types.ts';
import { createLogger } from '../src/log.ts';
import { demoRelease, makeSandbox, sha256, tempDir } from '../test/installers/helpers.ts';

const repo = fileURLToPath(new URL('../', import.meta.url));
const stats = (xs: number[]): { median: number; p90: number } => {
  const s = [...xs].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)] as number, p90: s[Math.floor(s.length * 0.9)] as number };
};
const fmt = (n: number): string => n.toFixed(1);

function manifest(i: number, version: string, root: string): string {
  const type = i < 8 ? 'tarball' : i < 12 ? 'binary' : 'none';
  const name = `comp-${String(i).padStart(2, '0')}`;
  const unit = { name: `${name}.service`, content: `[Unit]\nDescription=${name}\n[Service]\nExecStart=/usr/local/bin/${name}\n[Install]\nWantedBy=multi-user.target\n` };
  const files = [
    { path: `/etc/${name}/config.yaml`, template: `node: {{nodeName}}\nversion: {{version}}\nlisten: 127.0.0.1:${9100 + i}\n`, mode: '0640' },
    { path: `/etc/default/${name}`, content: `OPTS=--log-level=info\n` },
  ];
  let source: Record<string, unknown> = { type: 'none' };
  let extra: Record<string, unknown> = {};
  if (type !== 'none') {
    const body = type === 'tarball' ? demoRelease(version) : Buffer.from(`#!/bin/sh\necho "demo version ${version}"\n`);
    const artifact = `/srv/artifacts/${name}-${version}`;
    mkdirSync(path.join(root, 'srv/artifacts'), { recursive: true });
    writeFileSync(path.join(root, artifact), body);
    source = { type, url: `file://${artifact}`, sha256: sha256(body), ...(type === 'tarball' ? { stripComponents: 1 } : { binaryName: 'demo' }) };
    extra = {
      install: { links: [{ path: `/usr/local/bin/${name}`, target: type === 'tarball' ? 'bin/demo' : 'demo' }] },
      versionProbe: { argv: [`/usr/local/bin/${name}`, '--version'], regex: 'demo version (\\S+)' },
      healthCheck: { unitActive: true, retries: 0 },
    };
  }
  return stringify({ apiVersion: 'kubenode.io/v1alpha1', kind: 'MachineComponent', metadata: { name }, spec: { component: name, version, source, files, unit, ...extra } });
}

const root = makeSandbox();
const manifests = tempDir('bench-manifests');
const targets: Target[] = [];
for (let i = 0; i < 15; i++) {
  const text = manifest(i, '1.0.0', root);
  writeFileSync(path.join(manifests, `c${i}.yaml`), text);
  targets.push(...parseManifestText(`c${i}.yaml`, text));
}
const config = validateConfig('bench', { nodeName: 'bench-node', installers: { risk: { maxDisruptive: 1000 } } });
const ctx = createInstallContext(createHost({ root }), { installers: config.installers, stateDir: config.stateDir, nodeName: 'bench-node' }, createLogger('silent'), { risk: allowAll });
const engine = new Engine(ctx);
const first = await engine.apply(targets);
if (first.some((o) => o.result !== 'installed')) throw new Error(`setup failed: ${JSON.stringify(first.filter((o) => o.result !== 'installed'))}`);

// plan on the converged node, in process.
const planTimes: number[] = [];
for (let i = 0; i < 60; i++) {
  const t0 = performance.now();
  const plans = await engine.plan(targets);
  planTimes.push(performance.now() - t0);
  if (plans.some((p) => p.actions.length > 0)) throw new Error('not converged');
}
const plan = stats(planTimes.slice(10));
console.log('## Installers');
console.log(`plan, converged node, 15 components (8 tarball, 4 binary, 3 files+unit; 30 files, 15 units), in process: median ${fmt(plan.median)} ms, p90 ${fmt(plan.p90)} ms (50 runs)`);

// The same as a command, process start included.
const cfgDir = tempDir('cfg');
writeFileSync(path.join(cfgDir, 'agent.yaml'), 'nodeName: bench-node\n');
const cliTimes: number[] = [];
for (let i = 0; i < 10; i++) {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, ['dist/kubenode-agent.cjs', 'plan', '--manifests', manifests, '--root', root, '--config', path.join(cfgDir, 'agent.yaml')], { cwd: repo, encoding: 'utf8' });
  cliTimes.push(performance.now() - t0);
  if (!r.stdout.startsWith('Nothing to do')) throw new Error(`plan: ${r.stdout}${r.stderr}`);
}
const cliStats = stats(cliTimes);
console.log(`\`kubenode-agent plan\` as a process (start included), same node: median ${fmt(cliStats.median)} ms, p90 ${fmt(cliStats.p90)} ms (10 runs)`);

// One tarball component upgraded end to end, artifact already verified in the cache:
// unpack, switch current, 2 files, restart, version probe + unit-active check, status, journal.
const upgrades: number[] = [];
for (let v = 2; v < 22; v++) {
  const version = `1.${v}.0`;
  const next = parseManifestText('c0.yaml', manifest(0, version, root))[0] as Target;
  const { url, sha256: sum } = next.spec.source as { url: string; sha256: string };
  await ensureArtifact(ctx, next.spec.component, url, sum);
  targets[0] = next;
  const t0 = performance.now();
  const out = await engine.apply(targets);
  upgrades.push(performance.now() - t0);
  if (out[0]?.result !== 'installed') throw new Error(JSON.stringify(out[0]));
}
const up = stats(upgrades);
console.log(`one tarball component upgrade end to end (download excluded), with the other 14 checked in the same pass: median ${fmt(up.median)} ms, p90 ${fmt(up.p90)} ms (20 upgrades)`);

// `remedy` and `apply` typed by a person and the daemon's installers, as separate processes of
// the built agent: one budget. (Needs `npm run build`.)
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { stringify } from 'yaml';
import { AGENT, REPO, runAgent } from '../helpers/cli.ts';
import { makeSandbox, systemctlCalls } from '../installers/helpers.ts';

test('a remedy by hand and an apply by hand spend the same local budget', async () => {
  const root = makeSandbox();
  const config = path.join(root, 'agent.yaml');
  writeFileSync(config, `${JSON.stringify({ nodeName: 'node-a', listen: '127.0.0.1:0', monitors: { systemLog: [], customPlugin: [] }, risk: { local: { maxDisruptive: 1 } } })}\n`);
  // The daemon's manifest directory (a host path), which apply is also pointed at.
  const manifests = path.join(root, 'etc/kubenode/components');
  mkdirSync(manifests, { recursive: true });
  mkdirSync(path.join(root, 'proc/sys/kernel/random'), { recursive: true });
  writeFileSync(path.join(root, 'proc/sys/kernel/random/boot_id'), 'boot-1\n');
  writeFileSync(
    path.join(manifests, 'runtime.yaml'),
    stringify({
      apiVersion: 'kubenode.io/v1alpha1',
      kind: 'MachineComponent',
      metadata: { name: 'runtime' },
      spec: {
        component: 'runtime',
        version: '1.0.0',
        disruptive: true,
        source: { type: 'none' },
        unit: { name: 'runtime.service', content: '[Unit]\nDescription=runtime\n[Service]\nExecStart=/usr/local/bin/runtime\n[Install]\nWantedBy=multi-user.target\n' },
      },
    }),
  );
  const remedy = await runAgent(['remedy', 'restart-runtime', '--root', root, '--config', config, '--reason', 'test']);
  assert.equal(remedy.code, 0, remedy.stdout + remedy.stderr);
  assert.match(remedy.stdout, /ALLOW local   local budget: 0 of 1 used/);
  const apply = await runAgent(['apply', '--root', root, '--config', config, '--manifests', manifests]);
  assert.equal(apply.code, 1, apply.stdout + apply.stderr);
  assert.match(apply.stdout, /runtime 1\.0\.0: deferred/);
  assert.match(apply.stdout + apply.stderr, /local: local budget spent: 1 of 1/);
  assert.deepEqual(systemctlCalls(root).filter((c) => c.startsWith('restart')), ['restart containerd.service'], 'only the remedy restarted anything');
  const budget = JSON.parse(readFileSync(path.join(root, 'var/lib/kubenode/risk/budget.json'), 'utf8')) as { grants: { action: string }[] };
  assert.deepEqual(budget.grants.map((g) => g.action), ['restart-runtime']);

  // The daemon, remedies off: its installer restart asks the same budget and is deferred too.
  const daemon = spawn(process.execPath, [AGENT, 'run', '--root', root, '--config', config], { cwd: REPO });
  let out = '';
  daemon.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => daemon.on('exit', resolve));
  try {
    const until = Date.now() + 60_000;
    while (!out.includes('Disruptive step deferred by the risk gate')) {
      if (Date.now() > until) throw new Error(`the daemon never asked the gate:\n${out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const line = out.split('\n').find((l) => l.includes('Disruptive step deferred')) ?? '';
    assert.match(line, /local budget spent: 1 of 1/);
  } finally {
    daemon.kill('SIGTERM');
  }
  assert.equal(await exited, 0);
  assert.deepEqual(systemctlCalls(root).filter((c) => c.startsWith('restart')), ['restart containerd.service']);
});

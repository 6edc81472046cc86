import assert from 'node:assert/strict';
import { readdirSync, writeFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { Command } from 'commander';
import { printManualResult, remedyCommand } from '../../src/cli/remedy.ts';
import { actions } from '../../src/remedies/actions/index.ts';
import { runManualRemedy } from '../../src/remedies/manual.ts';
import { bootstrap } from '../../src/bootstrap.ts';
import { remedySlice } from '../../src/cli/common.ts';
import { recordingRoot, silent } from './helpers.ts';

async function run(action: string, options: Record<string, unknown>): Promise<{ code: number; out: string }> {
  let out = '';
  const boot = { ...remedySlice(await bootstrap(options)), log: silent };
  const code = printManualResult(await runManualRemedy(action, options, boot), options.json === true, (t) => (out += t));
  return { code, out };
}

describe('kubenode-agent remedy (standalone)', () => {
  test('--dry-run prints the plan and every gate asked, and does nothing', async () => {
    const root = recordingRoot();
    try {
      const { code, out } = await run('restart-kubelet', { root: root.dir, dryRun: true, reason: 'PLEG not healthy' });
      assert.equal(code, 0);
      assert.match(out, /action   restart-kubelet \(disruptive\) on .* \[standalone\]/);
      assert.match(out, /  - systemctl restart kubelet\.service/);
      assert.match(out, /ALLOW local   local budget: 0 of 3 used/);
      assert.match(out, /decision ALLOWED by local/);
      assert.deepEqual(root.calls().filter((c) => !c.includes(' show ')), []);
    } finally {
      root.remove();
    }
  });

  test('a real run acts through the Host, records the operation in the state dir, and spends the budget', async () => {
    const root = recordingRoot();
    try {
      // The default local budget: 3 disruptive actions per hour.
      for (let i = 0; i < 3; i++) {
        const r = await run('restart-runtime', { root: root.dir, reason: 'runtime hung', json: true });
        assert.equal(r.code, 0, r.out);
        const report = JSON.parse(r.out) as { result: { ok: boolean }; gate: { allowed: boolean } };
        assert.equal(report.result.ok, true);
      }
      assert.equal(root.calls().filter((c) => c === 'systemctl restart containerd.service').length, 3);
      assert.equal(readdirSync(root.path('/var/lib/kubenode/remedies/operations')).length, 3);
      const fourth = await run('restart-runtime', { root: root.dir, dryRun: true });
      assert.equal(fourth.code, 1);
      assert.match(fourth.out, /DENY  local   local budget spent: 3 of 3/);
      // Safe actions do not ask for a permit.
      const safe = await run('drop-caches', { root: root.dir });
      assert.equal(safe.code, 0, safe.out);
      assert.match(safe.out, /ALLOW none    safe action: no permit needed/);
    } finally {
      root.remove();
    }
  });

  test('usage errors name the problem', async () => {
    const root = recordingRoot();
    try {
      await assert.rejects(run('fix-everything', { root: root.dir }), /unknown action "fix-everything"; one of: restart-unit/);
      await assert.rejects(run('restart-unit', { root: root.dir, param: ['unit'] }), /--param: expected KEY=VALUE/);
      await assert.rejects(run('cordon', { root: root.dir }), /cordon: needs cluster access/);
      await assert.rejects(run('taint', { root: root.dir, kubeconfig: undefined, param: ['key=example.com/x'] }), /params\.key: must be kubenode\.io/);
    } finally {
      root.remove();
    }
  });

  test('help lists every action of the registry with its risk and description', () => {
    let out = '';
    const cmd = remedyCommand(() => undefined).configureOutput({ writeOut: (t) => (out += t) });
    cmd.outputHelp();
    for (const a of Object.values(actions)) assert.match(out, new RegExp(`^  ${a.name} +${a.risk} +${a.description.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'));
  });

  test('the commander command passes the action, repeated --param and flags through, and exits with the code', async () => {
    const root = recordingRoot();
    try {
      const cfg = root.path('/agent.yaml');
      writeFileSync(cfg, 'nodeName: n1\n');
      let code: number | undefined;
      const program = new Command('kubenode-agent').exitOverride();
      let out = '';
      program.addCommand(remedyCommand((c) => (code = c), (t) => (out += t)));
      await program.parseAsync(['node', 'kubenode-agent', 'remedy', 'restart-unit', '--root', root.dir, '--config', cfg, '--param', 'unit=chronyd', '--dry-run']);
      assert.equal(code, 0, out);
      assert.match(out, /restart-unit \(safe\) on n1/);
      assert.match(out, /systemctl restart chronyd\.service/);
    } finally {
      root.remove();
    }
  });
});

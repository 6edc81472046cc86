// An agent.yaml of an earlier release, as a node keeps it across an upgrade: `config validate`
// (and so `run`) reads the old risk keys with one warning, and refuses only a contradiction.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runAgent } from '../helpers/cli.ts';
import { TempRoot } from '../helpers/host-root.ts';

test('config validate reads installers.risk and remedies.gate with one warning naming risk.*, and refuses old and new keys that disagree (exit 64)', async (t) => {
  const root = new TempRoot();
  t.after(() => root.remove());
  const old = root.write('/old.yaml', 'installers:\n  risk:\n    maxDisruptive: 2\nremedies:\n  gate:\n    webhook:\n      url: https://gate.example\n');
  const ok = await runAgent(['config', 'validate', '--root', root.dir, '--config', old]);
  assert.equal(ok.code, 0, ok.stderr);
  const warnings = ok.stderr.split('\n').filter((l) => l.includes('deprecated keys'));
  assert.equal(warnings.length, 1, ok.stderr);
  assert.match(warnings[0] as string, /installers\.risk → risk\.local, remedies\.gate\.webhook → risk\.webhook/);
  const both = root.write('/both.yaml', 'installers:\n  risk:\n    maxDisruptive: 2\nrisk:\n  local:\n    maxDisruptive: 4\n');
  const refused = await runAgent(['config', 'validate', '--root', root.dir, '--config', both]);
  assert.equal(refused.code, 64, refused.stderr);
  assert.equal(refused.stderr, `kubenode-agent: ${both}: installers.risk.maxDisruptive: deprecated key for risk.local.maxDisruptive, and risk.local.maxDisruptive says otherwise (4 against 2): keep only risk.local.maxDisruptive\n`);
});

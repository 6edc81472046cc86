import assert from 'node:assert/strict';
import { readdirSync, readFileSync, utimesSync } from 'node:fs';
import { describe, test } from 'node:test';
import { RemedyActions } from '../../src/api/node-remedier.ts';
import { actions } from '../../src/remedies/actions/index.ts';
import { afterBoot, readIntent } from '../../src/remedies/actions/reboot.ts';
import { actionContext, recordingRoot } from './helpers.ts';

describe('remedy actions (host side, through the Host seam)', () => {
  test('the registry names every file in src/remedies/actions/', () => {
    const files = readdirSync(new URL('../../src/remedies/actions/', import.meta.url))
      .filter((f) => f.endsWith('.ts') && f !== 'index.ts')
      .map((f) => f.replace(/\.ts$/, ''))
      .sort();
    assert.deepEqual(files, Object.keys(actions).sort());
    for (const [name, action] of Object.entries(actions)) assert.equal(action.name, name);
  });

  test("the registry holds exactly the custom resources' action enum (NodeRemedier, RemedyOperation, RiskPolicy)", () => {
    assert.deepEqual(Object.keys(actions).sort(), [...RemedyActions].sort());
  });

  const restarts = [
    { action: actions['restart-runtime'], params: {}, expect: ['systemctl restart containerd.service', 'systemctl is-active containerd.service'] },
    { action: actions['restart-runtime'], params: { unit: 'crio' }, expect: ['systemctl restart crio.service', 'systemctl is-active crio.service'] },
    { action: actions['restart-kubelet'], params: {}, expect: ['systemctl restart kubelet.service', 'systemctl is-active kubelet.service'] },
    { action: actions['restart-unit'], params: { unit: 'chronyd.service' }, expect: ['systemctl restart chronyd.service', 'systemctl is-active chronyd.service'] },
  ];
  for (const c of restarts) {
    test(`${c.action.name} ${JSON.stringify(c.params)} runs systemctl through the root`, async () => {
      const root = recordingRoot();
      try {
        const ctx = actionContext(root);
        assert.equal(c.action.risk, c.action.name === 'restart-unit' ? 'safe' : 'disruptive');
        const plan = await c.action.plan(ctx, c.params);
        assert.equal(plan.blocked, undefined);
        assert.equal(plan.steps[0], c.expect[0]);
        const r = await c.action.execute(ctx, c.params);
        assert.equal(r.ok, true, r.message);
        assert.deepEqual(root.calls(), c.expect);
      } finally {
        root.remove();
      }
    });
  }

  test('a restart whose unit does not come back active fails', async () => {
    const root = recordingRoot({ unitState: 'failed' });
    try {
      const r = await actions['restart-kubelet'].execute(actionContext(root), {});
      assert.equal(r.ok, false);
      assert.match(r.message, /kubelet\.service restarted but is failed/);
    } finally {
      root.remove();
    }
  });

  test('bad unit names are refused before anything runs', async () => {
    const root = recordingRoot();
    try {
      const plan = await actions['restart-unit'].plan(actionContext(root), { unit: '--force; reboot' });
      assert.match(plan.blocked ?? '', /params\.unit: not a systemd unit name/);
      await assert.rejects(actions['restart-unit'].execute(actionContext(root), {}), /params\.unit: expected a non-empty string/);
      assert.deepEqual(root.calls(), []);
    } finally {
      root.remove();
    }
  });

  test('drop-caches writes 3 to /proc/sys/vm/drop_caches under the root', async () => {
    const root = recordingRoot();
    try {
      const r = await actions['drop-caches'].execute(actionContext(root), {});
      assert.equal(r.ok, true);
      assert.equal(readFileSync(root.path('/proc/sys/vm/drop_caches'), 'utf8'), '3\n');
      assert.deepEqual(root.calls(), ['sync']);
    } finally {
      root.remove();
    }
  });

  test('clean-disk prunes images, vacuums the journal and removes only old files under configured paths', async () => {
    const root = recordingRoot();
    try {
      const old = root.write('/var/tmp/scratch/a/old.bin', 'x'.repeat(100));
      root.write('/var/tmp/scratch/new.bin', 'y');
      const past = (Date.now() - 10 * 86_400_000) / 1000;
      utimesSync(old, past, past);
      const ctx = actionContext(root);
      const params = { paths: [{ path: '/var/tmp/scratch', olderThan: '72h' }], journalMaxSize: '200M' };
      const r = await actions['clean-disk'].execute(ctx, params);
      assert.equal(r.ok, true, r.message);
      assert.match(r.message, /\/var\/tmp\/scratch: 1 files, 100 bytes/);
      assert.deepEqual(root.calls(), ['crictl rmi --prune', 'journalctl --vacuum-size=200M']);
      assert.deepEqual(readdirSync(root.path('/var/tmp/scratch')).sort(), ['a', 'new.bin']);
      assert.deepEqual(readdirSync(root.path('/var/tmp/scratch/a')), []);
      const bad = await actions['clean-disk'].plan(ctx, { paths: [{ path: '/', olderThan: '1h' }] });
      assert.match(bad.blocked ?? '', /params\.paths\[0\]\.path/);
    } finally {
      root.remove();
    }
  });

  test('node-object actions refuse without cluster access', async () => {
    const root = recordingRoot();
    try {
      for (const name of ['cordon', 'uncordon', 'taint', 'drain'] as const) {
        const plan = await actions[name].plan(actionContext(root), { key: 'kubenode.io/x' });
        assert.match(plan.blocked ?? '', /needs cluster access/, name);
      }
    } finally {
      root.remove();
    }
  });

  test('standalone reboot records its intent, calls systemctl reboot, and settles after a new boot_id', async () => {
    const root = recordingRoot();
    try {
      const ctx = { ...actionContext(root), operation: 'op-1' };
      assert.deepEqual(await actions.reboot.stillNeeded(ctx, {}), { needed: true, why: 'no reboot pending' });
      const r = await actions.reboot.execute(ctx, {});
      assert.deepEqual(r, { ok: true, rebooting: true, message: 'reboot requested' });
      assert.deepEqual(root.calls(), ['systemctl reboot']);
      const intent = await readIntent(ctx);
      assert.equal(intent?.operation, 'op-1');
      assert.equal(intent?.bootId, 'boot-1');
      assert.equal((await actions.reboot.stillNeeded(ctx, {})).needed, false);
      assert.equal((await afterBoot(ctx)).state, 'pending');
      const after = await afterBoot({ ...ctx, bootId: 'boot-2' });
      assert.equal(after.state, 'rebooted');
    } finally {
      root.remove();
    }
  });

  test('a corrupt reboot intent is set aside and reads as no pending reboot', async () => {
    const root = recordingRoot();
    try {
      root.write('/var/lib/kubenode/remedies/reboot-intent.json', '{"operation":"op-1","bootId":');
      const ctx = actionContext(root);
      assert.equal(await readIntent(ctx), undefined);
      assert.equal(readdirSync(root.path('/var/lib/kubenode/remedies')).filter((f) => f.startsWith('reboot-intent.json.corrupt-')).length, 1);
      assert.deepEqual(await actions.reboot.stillNeeded(ctx, {}), { needed: true, why: 'no reboot pending' });
    } finally {
      root.remove();
    }
  });
});

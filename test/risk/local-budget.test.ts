// The one local budget under a fake clock: the clock rule (grants from the future are discarded),
// a corrupt state file (set aside, counted as spent for one window, never an abort), the files of
// earlier releases (merged once), and callers in different processes sharing it.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { validateConfig } from '../../src/config/load.ts';
import { createHost } from '../../src/host/host.ts';
import { createInstallContext } from '../../src/installers/context.ts';
import { LocalBudget } from '../../src/risk/local-budget.ts';
import { ConfigError } from '../../src/errors.ts';
import { FakeClock } from '../helpers/fake-clock.ts';
import { TempRoot } from '../helpers/host-root.ts';
import { riskGate, silent } from '../remedies/helpers.ts';

const HOUR = 3_600_000;
const FILE = '/var/lib/kubenode/risk/budget.json';

function fixture(max = 3) {
  const root = new TempRoot();
  const clock = new FakeClock();
  const host = createHost({ root: root.dir, clock });
  const budget = () => new LocalBudget(host, '/var/lib/kubenode', { maxDisruptive: max, windowMs: HOUR }, silent);
  const grants = () => (JSON.parse(readFileSync(root.path(FILE), 'utf8')) as { grants: { at: number }[] }).grants;
  return { root, clock, host, budget, grants };
}

describe('local budget: the clock rule', () => {
  test('grants from the future are discarded after the clock was stepped back, and the file no longer holds them', async () => {
    const { root, clock, budget, grants } = fixture(2);
    try {
      const b = budget();
      assert.equal((await b.take('reboot', 'op-1')).allowed, true);
      assert.equal((await b.take('reboot', 'op-2')).allowed, true);
      assert.match((await b.check()).reason, /spent: 2 of 2/);
      // NTP corrects a clock that ran a day ahead: both grants now lie in the future.
      await clock.advance(-24 * HOUR);
      const v = await budget().check();
      assert.deepEqual([v.allowed, v.reason], [true, 'local budget: 0 of 2 used in the last 60m']);
      assert.deepEqual(grants(), []);
      assert.equal((await budget().take('reboot', 'op-3')).allowed, true);
      assert.deepEqual(grants().map((g) => g.at), [clock.now()]);
    } finally {
      root.remove();
    }
  });

  test('a grant a minute in the future is discarded too; one from the past window still counts', async () => {
    const { root, clock, host, budget } = fixture(2);
    try {
      const now = clock.now();
      await host.writeFileAtomic(FILE, JSON.stringify({ version: 1, grants: [{ at: now - 30 * 60_000, action: 'drain', operation: 'past' }, { at: now + 60_000, action: 'reboot', operation: 'future' }] }));
      assert.match((await budget().check()).reason, /1 of 2 used/);
    } finally {
      root.remove();
    }
  });
});

describe('local budget: a corrupt state file', () => {
  const cases = [
    { name: 'not JSON', text: '{"version":1,"grants":[{"at":17', why: /not JSON/ },
    { name: 'wrong shape', text: '{"version":1,"grants":[{"at":"yesterday","action":"reboot","operation":"x"}]}', why: /\/grants\/0\/at/ },
    { name: 'an old array where the object belongs', text: '[]', why: /top level/ },
  ];
  for (const c of cases) {
    test(`${c.name}: set aside with a clear reason, counted as spent for one window, never thrown`, async () => {
      const { root, clock, host, budget } = fixture(3);
      try {
        await host.writeFileAtomic(FILE, c.text);
        const v = await budget().check();
        assert.equal(v.allowed, false);
        assert.match(v.reason, /local budget spent: 3 of 3/);
        assert.match(v.reason, c.why);
        assert.match(v.reason, /set aside as .*budget\.json\.corrupt-20260101T000000Z/);
        const aside = readdirSync(root.path('/var/lib/kubenode/risk')).filter((f) => f.includes('.corrupt-'));
        assert.equal(aside.length, 1);
        assert.equal(readFileSync(root.path(`/var/lib/kubenode/risk/${aside[0]}`), 'utf8'), c.text, 'the copy is what was found');
        // Asked again, it is not set aside again: the counted-as-spent state was written.
        assert.match((await budget().check()).reason, /spent: 3 of 3 disruptive actions in the last 60m$/);
        await clock.advance(HOUR);
        assert.equal((await budget().take('reboot', 'op')).allowed, true, 'one window later the budget is back');
      } finally {
        root.remove();
      }
    });
  }
});

describe('local budget: earlier releases', () => {
  test("the remedies' and the installers' old grant files are merged once into the one budget", async () => {
    const { root, clock, host, budget, grants } = fixture(3);
    try {
      const now = clock.now();
      await host.writeFileAtomic('/var/lib/kubenode/remedies/budget.json', JSON.stringify([{ at: now - 10 * 60_000, action: 'reboot', operation: 'op-r' }, { at: now - 2 * HOUR, action: 'drain', operation: 'old' }]));
      await host.writeFileAtomic('/var/lib/kubenode/installers/risk-grants.json', JSON.stringify([{ at: now - 5 * 60_000, component: 'containerd', step: 'restart' }]));
      assert.match((await budget().check()).reason, /2 of 3 used/);
      assert.deepEqual(grants().map((g) => g.at), [now - 10 * 60_000, now - 5 * 60_000]);
      // Read once: what the old files say later does not count again.
      await host.writeFileAtomic('/var/lib/kubenode/installers/risk-grants.json', JSON.stringify([{ at: now, component: 'kubelet', step: 'restart' }]));
      assert.match((await budget().check()).reason, /2 of 3 used/);
    } finally {
      root.remove();
    }
  });

  test('an unreadable old file is not merged and stops nothing', async () => {
    const { root, host, budget } = fixture(3);
    try {
      await host.writeFileAtomic('/var/lib/kubenode/remedies/budget.json', 'garbage');
      assert.match((await budget().check()).reason, /0 of 3 used/);
    } finally {
      root.remove();
    }
  });

  test('the old config keys are read as their risk.* replacements with one warning; refused only where old and new disagree', () => {
    const warnings: string[] = [];
    const config = validateConfig('agent.yaml', { installers: { risk: { maxDisruptive: 2 } }, remedies: { gate: { local: { window: '30m' }, webhook: { url: 'https://x', failOpen: true } } } }, warnings);
    assert.deepEqual([config.risk.local.maxDisruptive, config.risk.local.window, config.risk.webhook.url, config.risk.webhook.failOpen], [2, 30 * 60_000, 'https://x', true]);
    assert.deepEqual(warnings, [
      'agent.yaml: deprecated keys read as their replacements (installers.risk → risk.local, remedies.gate.local → risk.local, remedies.gate.webhook → risk.webhook); move them there — installers and remedies now spend one budget (README, "The risk gate")',
    ]);
    // Old and new saying the same (a duration written another way included) is no conflict.
    const same: string[] = [];
    assert.equal(validateConfig('agent.yaml', { installers: { risk: { window: '60m' } }, risk: { local: { window: '1h', maxDisruptive: 4 } } }, same).risk.local.maxDisruptive, 4);
    assert.equal(same.length, 1);
    const none: string[] = [];
    assert.equal(validateConfig('agent.yaml', { risk: { local: { maxDisruptive: 5 } } }, none).risk.local.maxDisruptive, 5);
    assert.deepEqual(none, []);
    for (const [doc, field, message] of [
      [{ installers: { risk: { maxDisruptive: 2 } }, risk: { local: { maxDisruptive: 5 } } }, 'installers.risk.maxDisruptive', 'deprecated key for risk.local.maxDisruptive, and risk.local.maxDisruptive says otherwise (5 against 2): keep only risk.local.maxDisruptive'],
      [{ installers: { risk: { maxDisruptive: 2 } }, remedies: { gate: { local: { maxDisruptive: 3 } } } }, 'remedies.gate.local.maxDisruptive', 'deprecated key for risk.local.maxDisruptive, and installers.risk.maxDisruptive says otherwise (2 against 3): keep only risk.local.maxDisruptive'],
      [{ remedies: { gate: { webhook: { url: 'https://a' } } }, risk: { webhook: { url: 'https://b' } } }, 'remedies.gate.webhook.url', 'deprecated key for risk.webhook.url, and risk.webhook.url says otherwise ("https://b" against "https://a"): keep only risk.webhook.url'],
      [{ installers: { risk: { maxDisruptive: -1 } } }, 'installers.risk.maxDisruptive', 'expected a whole number at least 0 and at most 1000, got -1'],
      [{ remedies: { gate: { budget: 3 } } }, 'remedies.gate.budget', 'unknown key'],
    ] as const) {
      assert.throws(() => validateConfig('agent.yaml', doc), (err: unknown) => err instanceof ConfigError && err.field === field && err.message === `agent.yaml: ${field}: ${message}`, field);
    }
  });
});

describe('local budget: one budget for every caller', () => {
  test('ten callers with their own gates (as separate processes have) racing for 3 slots: exactly 3 win', async () => {
    const { root, grants } = fixture(3);
    try {
      // Separate hosts and budgets: nothing in memory is shared, only the state dir.
      const budgets = Array.from({ length: 10 }, () => new LocalBudget(createHost({ root: root.dir }), '/var/lib/kubenode', { maxDisruptive: 3, windowMs: HOUR }, silent));
      const results = await Promise.all(budgets.map((b, i) => b.take('reboot', `op-${i}`)));
      assert.equal(results.filter((r) => r.allowed).length, 3);
      assert.equal(grants().length, 3);
      assert.equal(existsSync(root.path(`${FILE}.lock`)), false, 'the lock is given back');
    } finally {
      root.remove();
    }
  });

  test("apply's installer restarts (its own gate's installer face) and remedies spend the same budget", async () => {
    const { root, host } = fixture();
    try {
      const config = validateConfig('test', { nodeName: 'n' });
      const ctx = createInstallContext(host, { installers: config.installers, stateDir: config.stateDir, nodeName: 'n' }, silent, { risk: riskGate(host, { local: { maxDisruptive: 2 } }).forInstallers('n') });
      const restart = await ctx.risk.ask({ component: 'containerd', step: 'restart', action: 'systemctl restart containerd.service' });
      assert.equal(restart.allowed, true, restart.reason);
      const gate = riskGate(host, { local: { maxDisruptive: 2 } });
      const d = await gate.decide({ node: 'n', action: 'reboot', risk: 'disruptive', reason: 'test', operation: 'op' });
      assert.match(d.path[0]?.reason ?? '', /1 of 2 used/);
      assert.equal(d.allowed, true);
      const third = await ctx.risk.ask({ component: 'kubelet', step: 'restart', action: 'systemctl restart kubelet.service' });
      assert.equal(third.allowed, false);
      assert.match(third.reason, /local: local budget spent: 2 of 2/);
    } finally {
      root.remove();
    }
  });
});

// RiskPolicy budgets by schedule (limitsOf): fewer permits while a scheduled budget is active,
// the most restrictive active one wins, an unreadable schedule counts as a freeze.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Value } from '@sinclair/typebox/value';
import { RiskPolicySpec } from '../../src/api/risk-policy.ts';
import { limitsOf } from '../../src/risk/policy.ts';

const spec = (budgets: unknown[]): RiskPolicySpec => Value.Default(RiskPolicySpec, { maxInFlight: 10, budgets }) as RiskPolicySpec;
// Wednesday 2026-12-02.
const at = (hhmm: string, zone = 'Z'): number => Date.parse(`2026-12-02T${hhmm}:00${zone}`);

test('a weekday peak-hours budget lowers maxInFlight only while it is active', () => {
  const s = spec([{ cron: '0 9 * * 1-5', duration: '8h', maxInFlight: 2 }]);
  assert.equal(limitsOf(s, at('08:59')).maxInFlight, 10);
  assert.equal(limitsOf(s, at('09:00')).maxInFlight, 2);
  assert.match(limitsOf(s, at('12:00')).budget ?? '', /budget 0 \("0 9 \* \* 1-5" UTC for 8h\)/);
  assert.equal(limitsOf(s, at('17:00')).maxInFlight, 10);
  assert.equal(limitsOf(s, Date.parse('2026-12-05T12:00:00Z')).maxInFlight, 10, 'Saturday');
});

test('the most restrictive active budget wins; a time zone moves the window', () => {
  const s = spec([
    { cron: '0 9 * * *', duration: '8h', maxInFlight: 3, timeZone: 'Asia/Shanghai' },
    { cron: '0 3 * * *', duration: '2h', maxInFlight: 0 },
  ]);
  assert.equal(limitsOf(s, at('02:00')).maxInFlight, 3, '10:00 in Shanghai');
  assert.equal(limitsOf(s, at('04:00')).maxInFlight, 0, 'the freeze wins');
  assert.equal(limitsOf(s, at('10:00')).maxInFlight, 10, '18:00 in Shanghai: neither');
});

test('a budget whose schedule cannot be read counts as 0 (fail closed)', () => {
  const l = limitsOf(spec([{ cron: '0 9 * * 1-5', duration: '8h', maxInFlight: 5, timeZone: 'Mars/Olympus_Mons' }]), at('12:00'));
  assert.equal(l.maxInFlight, 0);
  assert.match(l.budget ?? '', /budget 0 unreadable/);
});

test('no budgets: maxInFlight as written', () => {
  assert.deepEqual(limitsOf(spec([]), at('12:00')), { maxInFlight: 10 });
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LogRuleEngine } from '../../../src/detectors/npd/log-rules.ts';
import { at, capturedKernelLines, referenceMonitor } from './helpers.ts';

const noRecovery = { expiryMs: {}, patterns: [] };
const kernelMonitor = referenceMonitor('kernel-monitor.json');
const readonlyMonitor = referenceMonitor('readonly-monitor.json');

function reasonsFor(message: string): string[] {
  const reasons: string[] = [];
  for (const monitor of [kernelMonitor, readonlyMonitor]) {
    const engine = new LogRuleEngine(monitor, noRecovery, [], 0);
    reasons.push(...engine.process([at(1, message)]).map((e) => e.reason));
  }
  return reasons;
}

test('every rule of kernel-monitor.json and readonly-monitor.json has a captured line', () => {
  const covered = new Set(capturedKernelLines.map((l) => l.reason));
  for (const rule of [...kernelMonitor.config.rules, ...readonlyMonitor.config.rules]) {
    assert.ok(covered.has(rule.reason), `no captured line for ${rule.reason}`);
  }
});

for (const line of capturedKernelLines) {
  const label = line.reason === null ? `stays quiet (near ${line.near})` : `raises ${line.reason}`;
  test(`${label}: ${line.message.slice(0, 70)} [${line.kernel}]`, () => {
    const reasons = reasonsFor(line.message);
    if (line.reason === null) assert.deepEqual(reasons, []);
    else assert.ok(reasons.includes(line.reason), `got ${JSON.stringify(reasons)}`);
    if (line.near !== undefined && line.reason !== null) assert.ok(!reasons.includes(line.near), `also raised ${line.near}`);
  });
}

test('a docker hang is both a TaskHung event and the KernelDeadlock condition', () => {
  const engine = new LogRuleEngine(kernelMonitor, noRecovery, [], 0);
  const events = engine.process([at(5, 'INFO: task docker:71063 blocked for more than 120 seconds.')]);
  assert.deepEqual(events.map((e) => [e.severity, e.reason]), [['warn', 'TaskHung'], ['warn', 'DockerHung']]);
  const deadlock = engine.conditions.find((c) => c.type === 'KernelDeadlock');
  assert.deepEqual([deadlock?.status, deadlock?.reason, deadlock?.transitionTime], ['True', 'DockerHung', 5]);
});

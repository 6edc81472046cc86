import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createHost } from '../../src/host/host.ts';
import { CertificateRotator } from '../../src/join/rotate.ts';
import { writeMetrics } from '../../src/report/kube/index.ts';
import { AgentMetrics } from '../../src/report/metrics.ts';
import type { Condition } from '../../src/types.ts';
import { quietLog } from './kube/helpers.ts';
import { NPD_NAME_PROBLEMS, parseScrape, promtool, valueOf } from './scrape.ts';

const condition = (status: Condition['status'], reason: string): Condition => ({ type: 'KernelDeadlock', status, reason, message: '', transitionTime: 0 });

test('an Unknown condition reads apart from a healthy one; problem_gauge stays as NPD has it', async () => {
  const cases: { status: Condition['status']; reason: string; gauge: number }[] = [
    { status: 'False', reason: 'KernelHasNoDeadlock', gauge: 0 },
    { status: 'Unknown', reason: 'KernelDeadlockUnknown', gauge: 0 },
    { status: 'True', reason: 'DockerHung', gauge: 1 },
  ];
  const m = new AgentMetrics();
  m.loadNpdMonitors([{ detector: 'kernel-monitor', problems: [{ reason: 'DockerHung', condition: 'KernelDeadlock' }] }]);
  let before: Condition | undefined;
  for (const c of cases) {
    const after = condition(c.status, c.reason);
    m.observeCondition({ detector: 'kernel-monitor', before, after });
    before = after;
    const text = await m.registry.metrics();
    for (const s of ['True', 'False', 'Unknown']) {
      assert.equal(valueOf(text, 'kubenode_condition_status', { detector: 'kernel-monitor', type: 'KernelDeadlock', status: s }), s === c.status ? 1 : 0, `${c.status}: series ${s}`);
    }
    assert.equal(valueOf(text, 'problem_gauge', { type: 'KernelDeadlock', reason: c.reason }), c.gauge, c.status);
  }
});

test("NPD's series exist at 0 for every reason a loaded monitor can raise, and a reload keeps their values", async () => {
  const m = new AgentMetrics();
  const problems = [{ reason: 'OOMKilling' }, { reason: 'DockerHung', condition: 'KernelDeadlock' }, { reason: 'AUFSUmountHung', condition: 'KernelDeadlock' }];
  m.loadNpdMonitors([{ detector: 'kernel-monitor', problems }]);
  let text = await m.registry.metrics();
  assert.equal(valueOf(text, 'problem_counter', { reason: 'OOMKilling' }), 0);
  assert.equal(valueOf(text, 'problem_counter', { reason: 'DockerHung' }), 0);
  assert.equal(valueOf(text, 'problem_gauge', { type: 'KernelDeadlock', reason: 'DockerHung' }), 0);
  assert.equal(valueOf(text, 'problem_gauge', { type: 'KernelDeadlock', reason: 'AUFSUmountHung' }), 0);
  assert.equal(valueOf(text, 'problem_gauge', { reason: 'OOMKilling' }), undefined, 'a temporary rule has no gauge');
  m.observeEvents('kernel-monitor', [{ severity: 'warn', reason: 'OOMKilling', message: '', timestamp: 0 }]);
  m.observeCondition({ detector: 'kernel-monitor', before: undefined, after: condition('True', 'DockerHung') });
  m.loadNpdMonitors([{ detector: 'kernel-monitor', problems }]);
  text = await m.registry.metrics();
  assert.equal(valueOf(text, 'problem_counter', { reason: 'OOMKilling' }), 1);
  assert.equal(valueOf(text, 'problem_gauge', { type: 'KernelDeadlock', reason: 'DockerHung' }), 1);
});

test('two detectors reporting the same condition type keep a series each', async () => {
  const m = new AgentMetrics();
  m.observeCondition({ detector: 'kernel', before: undefined, after: condition('True', 'TaskHung') });
  m.observeCondition({ detector: 'kernel-monitor', before: undefined, after: condition('False', 'KernelHasNoDeadlock') });
  const text = await m.registry.metrics();
  assert.equal(valueOf(text, 'kubenode_condition_status', { detector: 'kernel', status: 'True' }), 1);
  assert.equal(valueOf(text, 'kubenode_condition_status', { detector: 'kernel-monitor', status: 'True' }), 0);
});

test('last success: absent before the first probe completes, moved by a success, kept by a failure', async () => {
  const m = new AgentMetrics();
  m.observeProbe('disk', 5, true);
  let text = await m.registry.metrics();
  assert.equal(valueOf(text, 'kubenode_detector_last_success_timestamp_seconds', { detector: 'disk' }), undefined);
  assert.equal(valueOf(text, 'kubenode_detector_errors_total', { detector: 'disk' }), 1);

  const from = Date.now() / 1000;
  m.observeProbe('disk', 5, false);
  const to = Date.now() / 1000;
  text = await m.registry.metrics();
  const at = valueOf(text, 'kubenode_detector_last_success_timestamp_seconds', { detector: 'disk' }) ?? 0;
  assert.ok(at >= from && at <= to, `${at} not in [${from}, ${to}]`);

  m.observeProbe('disk', 5, true);
  text = await m.registry.metrics();
  assert.equal(valueOf(text, 'kubenode_detector_last_success_timestamp_seconds', { detector: 'disk' }), at);
  assert.equal(valueOf(text, 'kubenode_detector_errors_total', { detector: 'disk' }), 2);
});

test('one kernel line seen by the built-in kernel detector and an NPD kernel monitor: told apart by detector', async () => {
  const m = new AgentMetrics();
  m.loadNpdMonitors([{ detector: 'kernel-monitor', problems: [{ reason: 'OOMKilling' }] }]);
  const oom = { severity: 'warn' as const, reason: 'OOMKilling', message: 'Killed process 27438 (R)', timestamp: 1 };
  m.observeEvents('kernel', [oom]);
  m.observeEvents('kernel-monitor', [oom]);
  m.observeEvents('kernel', [{ ...oom, severity: 'info', reason: 'MachineCheckEvent' }]);
  const text = await m.registry.metrics();
  assert.equal(valueOf(text, 'kubenode_problem_events_total', { detector: 'kernel', reason: 'OOMKilling' }), 1);
  assert.equal(valueOf(text, 'kubenode_problem_events_total', { detector: 'kernel-monitor', reason: 'OOMKilling' }), 1);
  // NPD's counter has no detector label: it counts the line once per detector that reported it.
  assert.equal(valueOf(text, 'problem_counter', { reason: 'OOMKilling' }), 2);
  assert.equal(valueOf(text, 'problem_counter', { reason: 'MachineCheckEvent' }), undefined, 'info events are not problems');
});

test("process and Node.js metrics from prom-client's collectors, without its misnamed *_total gauges", async () => {
  const { samples, types } = parseScrape(await new AgentMetrics().registry.metrics());
  const names = new Set(samples.map((s) => s.name));
  for (const name of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'process_start_time_seconds', 'process_open_fds', 'nodejs_heap_size_used_bytes', 'nodejs_eventloop_lag_seconds', 'nodejs_version_info']) {
    assert.ok(names.has(name), name);
  }
  for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) assert.equal(types.get(name), undefined, name);
  // The delay histogram's sampler is a timer that would wake an idle agent: its series are left out.
  for (const name of ['nodejs_eventloop_lag_p99_seconds', 'nodejs_eventloop_lag_max_seconds']) assert.equal(types.get(name), undefined, name);
  assert.equal(types.get('nodejs_active_handles'), 'gauge');
});

test('component metrics: installed version on an info gauge, one phase set, applies and downloads counted', async () => {
  const m = new AgentMetrics();
  m.components.passDone(
    [
      { component: 'node-exporter', result: 'installed', durationMs: 2500 },
      { component: 'containerd', result: 'failed', durationMs: 800 },
      { component: 'kubelet', result: 'rolled-back', durationMs: 900 },
    ],
    [
      { component: 'node-exporter', status: { phase: 'Installed', installedVersion: '1.8.2' } },
      { component: 'containerd', status: { phase: 'Failed' } },
    ],
  );
  m.components.downloaded('node-exporter', 'ok', 1500, 10_485_760);
  m.components.downloaded('containerd', 'checksum_mismatch', 300, 0);
  let text = await m.registry.metrics();
  assert.equal(valueOf(text, 'kubenode_component_info', { component: 'node-exporter', version: '1.8.2' }), 1);
  assert.equal(valueOf(text, 'kubenode_component_info', { component: 'containerd' }), undefined, 'nothing installed, no version');
  assert.equal(valueOf(text, 'kubenode_component_phase', { component: 'containerd', phase: 'Failed' }), 1);
  assert.equal(valueOf(text, 'kubenode_component_phase', { component: 'containerd', phase: 'Installed' }), 0);
  assert.equal(valueOf(text, 'kubenode_component_applies_total', { component: 'containerd', result: 'failed' }), 1);
  assert.equal(valueOf(text, 'kubenode_component_applies_total', { component: 'kubelet', result: 'rolled_back' }), 1, 'label values are snake_case');
  assert.equal(parseScrape(text).samples.filter((x) => /-/.test(x.labels.result ?? '')).length, 0, 'no hyphenated result');
  // Every result starts at 0, so increase() sees a node's first failure.
  for (const result of ['unchanged', 'installed', 'rolled_back', 'failed', 'deferred', 'held', 'removed', 'orphaned', 'handed_off']) {
    assert.notEqual(valueOf(text, 'kubenode_component_applies_total', { component: 'node-exporter', result }), undefined, result);
  }
  assert.equal(valueOf(text, 'kubenode_component_applies_total', { component: 'node-exporter', result: 'failed' }), 0);
  assert.equal(valueOf(text, 'kubenode_component_downloads_total', { component: 'node-exporter', result: 'failed' }), 0);
  assert.equal(valueOf(text, 'kubenode_component_apply_duration_seconds_sum', { component: 'node-exporter' }), 2.5);
  assert.equal(valueOf(text, 'kubenode_component_downloads_total', { component: 'containerd', result: 'checksum_mismatch' }), 1);
  assert.equal(valueOf(text, 'kubenode_component_download_bytes_total', { component: 'node-exporter' }), 10_485_760);

  // An upgrade and a removal leave no stale series behind.
  m.components.passDone([{ component: 'node-exporter', result: 'installed', durationMs: 1000 }], [{ component: 'node-exporter', status: { phase: 'Installed', installedVersion: '1.9.0' } }]);
  text = await m.registry.metrics();
  assert.equal(valueOf(text, 'kubenode_component_info', { component: 'node-exporter', version: '1.8.2' }), undefined);
  assert.equal(valueOf(text, 'kubenode_component_info', { component: 'node-exporter', version: '1.9.0' }), 1);
  assert.equal(valueOf(text, 'kubenode_component_phase', { component: 'containerd', phase: 'Failed' }), undefined);
  assert.equal(valueOf(text, 'kubenode_component_applies_total', { component: 'node-exporter', result: 'installed' }), 2);
});

test("promtool check metrics: nothing with built-in detectors alone; with an NPD monitor loaded, NPD's names and nothing else", async () => {
  const m = new AgentMetrics();
  m.loadNpdMonitors([]);
  m.observeProbe('disk', 5, false);
  m.observeEvents('kernel', [{ severity: 'warn', reason: 'OOMKilling', message: '', timestamp: 1 }]);
  m.observeCondition({ detector: 'kernel', before: undefined, after: condition('Unknown', 'KernelDeadlockUnknown') });
  m.components.passDone([{ component: 'a', result: 'installed', durationMs: 1 }], [{ component: 'a', status: { phase: 'Installed', installedVersion: '1.0.0' } }]);
  m.components.downloaded('a', 'ok', 1, 1);
  m.remedies.started('restart-runtime');
  m.remedies.ended('restart-runtime', 'not_fixed', 1000);
  m.risk.decision('local', true);
  // What a daemon with a kubeconfig adds to the same registry (the full scrape in daemon-metrics.test.ts has none).
  writeMetrics(m.registry)('lease', true);
  // Never started: only its series are wanted.
  new CertificateRotator({ host: createHost({ root: '/nonexistent' }), kubeconfig: '/etc/kubenode/kubeconfig', nodeName: 'n', log: quietLog, registry: m.registry });
  let text = await m.registry.metrics();
  for (const family of ['kubenode_remedy_operation_duration_seconds', 'kubenode_risk_gate_decisions_total', 'kubenode_apiserver_writes_total', 'kubenode_client_certificate_expired']) {
    assert.ok(parseScrape(text).types.has(family), family);
  }
  assert.deepEqual(promtool(text).problems, []);
  assert.deepEqual([...parseScrape(text).types.keys()].filter((f) => f.startsWith('problem_')), [], 'no NPD series without an NPD monitor');

  m.loadNpdMonitors([{ detector: 'kernel-monitor', problems: [{ reason: 'OOMKilling' }] }]);
  text = await m.registry.metrics();
  assert.deepEqual(promtool(text).problems.sort(), [...NPD_NAME_PROBLEMS].sort());
  // Counted from the start, before the monitor was loaded.
  assert.equal(valueOf(text, 'problem_counter', { reason: 'OOMKilling' }), 1);
  assert.equal(valueOf(text, 'problem_gauge', { type: 'KernelDeadlock', reason: 'KernelDeadlockUnknown' }), 0);

  m.loadNpdMonitors([]);
  assert.deepEqual(promtool(await m.registry.metrics()).problems, [], 'a reload that drops the last NPD monitor drops its series');
});

test("a reload that drops an NPD monitor drops the problem_counter and problem_gauge series only it had, and keeps shared ones with their values", async () => {
  const m = new AgentMetrics();
  const kernelMonitor = { detector: 'kernel-monitor', problems: [{ reason: 'OOMKilling' }, { reason: 'DockerHung', condition: 'KernelDeadlock' }] };
  const readonlyMonitor = { detector: 'readonly-monitor', problems: [{ reason: 'FilesystemIsReadOnly', condition: 'ReadonlyFilesystem' }] };
  m.loadNpdMonitors([kernelMonitor, readonlyMonitor]);
  const oom = { severity: 'warn' as const, reason: 'OOMKilling', message: '', timestamp: 1 };
  m.observeEvents('kernel-monitor', [oom, { ...oom, reason: 'KernelOops' }]);
  m.observeEvents('kernel', [oom]);
  m.observeCondition({ detector: 'kernel-monitor', before: undefined, after: condition('True', 'DockerHung') });
  m.observeCondition({ detector: 'readonly-monitor', before: undefined, after: { ...condition('True', 'FilesystemIsReadOnly'), type: 'ReadonlyFilesystem' } });

  // As the daemon reloads: the new set's monitors loaded, then the detectors that are left retained.
  m.loadNpdMonitors([readonlyMonitor]);
  m.retainDetectors(['kernel', 'readonly-monitor']);
  const text = await m.registry.metrics();
  assert.equal(valueOf(text, 'problem_gauge', { type: 'KernelDeadlock', reason: 'DockerHung' }), undefined, 'pre-created and set by the dropped monitor alone');
  assert.equal(valueOf(text, 'problem_counter', { reason: 'KernelOops' }), undefined, 'raised by the dropped monitor alone');
  assert.equal(valueOf(text, 'problem_counter', { reason: 'OOMKilling' }), 2, 'the built-in kernel detector raised it too: kept, with its count');
  assert.equal(valueOf(text, 'problem_gauge', { type: 'ReadonlyFilesystem', reason: 'FilesystemIsReadOnly' }), 1, 'the monitor that stays keeps its value');
  assert.equal(valueOf(text, 'problem_counter', { reason: 'FilesystemIsReadOnly' }), 0);

  // Loaded again later, the dropped monitor's series come back at 0.
  m.loadNpdMonitors([kernelMonitor, readonlyMonitor]);
  assert.equal(valueOf(await m.registry.metrics(), 'problem_gauge', { type: 'KernelDeadlock', reason: 'DockerHung' }), 0);
});

test('a reload that drops a detector drops its condition and last-success series, and keeps the others', async () => {
  const m = new AgentMetrics();
  for (const detector of ['kernel-monitor', 'ntp-check']) {
    m.observeProbe(detector, 5, false);
    m.observeCondition({ detector, before: undefined, after: condition('False', 'Fine') });
  }
  m.retainDetectors(['kernel-monitor']);
  const text = await m.registry.metrics();
  assert.equal(parseScrape(text).samples.filter((s) => s.labels.detector === 'ntp-check' && /condition_status|last_success/.test(s.name)).length, 0);
  assert.equal(valueOf(text, 'kubenode_condition_status', { detector: 'kernel-monitor', status: 'False' }), 1);
  assert.notEqual(valueOf(text, 'kubenode_detector_last_success_timestamp_seconds', { detector: 'kernel-monitor' }), undefined);
});

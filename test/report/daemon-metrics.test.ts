// The running daemon (the bundle `npm run build` makes) as Prometheus sees it: a full scrape
// with every part that registers metrics at work (every detector, NPD monitors, installers,
// remedies and the risk gate), checked by promtool and read series by series,
// and a real Prometheus (Debian's package) answering the queries the README gives.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { appendFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, test } from 'node:test';
import { detectors } from '../../src/detectors/index.ts';
import { startPrometheus, type Prometheus } from '../harness/prometheus.ts';
import { agentRoot, startAgent, waitFor } from '../helpers/daemon.ts';
import { NPD_NAME_PROBLEMS, parseScrape, promtool, valueOf } from './scrape.ts';

let prometheus: Prometheus | undefined;
after(() => prometheus?.stop());

// Captured by genular/pandora#49 (4.x kernel); the same line is in test/detectors/kernel.test.ts.
const OOM_LINE = 'Killed process 27438 (R) total-vm:38349780kB, anon-rss:1041924kB, file-rss:4kB, shmem-rss:0kB';
const TOOL = '#!/bin/sh\necho tool 1.0.0\n';

// Captured in kubernetes/kubernetes#12905 (4.x kernel); also in test/fixtures/npd/kernel-lines.json.
const READONLY_LINE = 'EXT4-fs (dm-4): Remounting filesystem read-only';

test('a full scrape: every family present; promtool clean with the built-in detectors alone, and after NPD monitors are loaded NPD\'s names are its only findings', async () => {
  const root = agentRoot('node-metrics');
  root.write('/srv/artifacts/tool-1.0.0', TOOL);
  root.write(
    '/etc/kubenode/components/tool.yaml',
    [
      'apiVersion: kubenode.io/v1alpha1',
      'kind: MachineComponent',
      'metadata: { name: tool }',
      'spec:',
      '  component: tool',
      '  version: "1.0.0"',
      `  source: { type: binary, url: "file:///srv/artifacts/tool-1.0.0", sha256: "${createHash('sha256').update(TOOL).digest('hex')}" }`,
      '',
    ].join('\n'),
  );
  // The runtime the remedy restarts, as this host's systemctl sees it (the systemd detector asks it too).
  root.script('/usr/bin/systemctl', 'case "$*" in *LoadState*) echo loaded;; *is-active*) echo active;; esac\nexit 0');
  // The kubelet detector's /healthz, so that its probe asks this test and nothing else on the machine.
  const kubelet = createServer((_req, res) => res.end('ok'));
  await new Promise<void>((r) => kubelet.listen(0, '127.0.0.1', r));
  after(() => kubelet.close());
  const healthz = `http://127.0.0.1:${(kubelet.address() as AddressInfo).port}/healthz`;
  const configLines = (monitor?: string): string =>
    [
      'listen: 127.0.0.1:0',
      // With NPD's kernel monitor the built-in kernel detector and it read the same kmsg, on purpose.
      ...(monitor === undefined ? [] : ['monitors:', `  systemLog: [builtin:${monitor}]`]),
      'detectors:',
      '  kernel: { enabled: true, interval: 1s }',
      `  kubelet: { enabled: true, healthzUrl: "${healthz}" }`,
      'installers:',
      '  reconcileDebounce: 200ms',
      'remedies:',
      '  enabled: true',
      '  interval: 1s',
      '  rules:',
      '    - name: readonly',
      '      condition: { type: ReadonlyFilesystem, reasons: [FilesystemIsReadOnly] }',
      '      steps: [{ action: restart-runtime, params: { unit: containerd.service }, verifyAfter: 1s, cooldown: 1h }]',
      '',
    ].join('\n');
  const config = root.write('/agent.yaml', configLines());
  const { child, base, output, exited } = await startAgent(root, config);
  const scrape = async (): Promise<string> => (await fetch(`${base}/metrics`)).text();

  // Every built-in detector is on (their default); the read-only line starts the remedy, through the risk gate.
  appendFileSync(root.path('/dev/kmsg'), `3,5,99500000,-;${READONLY_LINE}\n`);
  const builtIn = await waitFor(async () => {
    const t = await scrape();
    const ready =
      Object.keys(detectors).every((detector) => (valueOf(t, 'kubenode_detector_duration_seconds_count', { detector }) ?? 0) >= 1) &&
      valueOf(t, 'kubenode_component_info', { component: 'tool' }) === 1 &&
      valueOf(t, 'kubenode_risk_gate_decisions_total', { gate: 'local', decision: 'allowed' }) === 1 &&
      valueOf(t, 'kubenode_remedy_operations_total', { action: 'restart-runtime', result: 'not_fixed' }) === 1;
    return ready ? t : undefined;
  }, () => `metrics never settled:\n${output()}`);

  assert.equal(valueOf(builtIn, 'kubenode_problem_events_total', { detector: 'kernel', reason: 'FilesystemIsReadOnly' }), 1);
  assert.equal(valueOf(builtIn, 'kubenode_remedy_actions_started_total', { action: 'restart-runtime' }), 1);
  assert.equal(valueOf(builtIn, 'kubenode_component_info', { component: 'tool', version: '1.0.0' }), 1);
  assert.equal(valueOf(builtIn, 'kubenode_component_phase', { component: 'tool', phase: 'Installed' }), 1);
  assert.equal(valueOf(builtIn, 'kubenode_component_applies_total', { component: 'tool', result: 'installed' }), 1);
  assert.equal(valueOf(builtIn, 'kubenode_component_downloads_total', { component: 'tool', result: 'ok' }), 1);
  assert.equal(valueOf(builtIn, 'kubenode_component_download_bytes_total', { component: 'tool' }), TOOL.length);

  const { samples, types } = parseScrape(builtIn);
  const withSamples = new Set(samples.map((s) => s.name.replace(/_(bucket|sum|count)$/, '')));
  const families = [
    'kubenode_build_info',
    'kubenode_problem_events_total',
    'kubenode_condition_status',
    'kubenode_detector_duration_seconds',
    'kubenode_detector_errors_total',
    'kubenode_detector_last_success_timestamp_seconds',
    'kubenode_component_info',
    'kubenode_component_phase',
    'kubenode_component_applies_total',
    'kubenode_component_apply_duration_seconds',
    'kubenode_component_downloads_total',
    'kubenode_component_download_duration_seconds',
    'kubenode_component_download_bytes_total',
    'kubenode_remedy_actions_started_total',
    'kubenode_remedy_operations_total',
    'kubenode_remedy_operation_duration_seconds',
    'kubenode_risk_gate_decisions_total',
    'kubenode_risk_permits_held',
    'process_cpu_seconds_total',
    'process_resident_memory_bytes',
    'nodejs_heap_size_used_bytes',
    'nodejs_eventloop_lag_seconds',
    'nodejs_gc_duration_seconds',
  ];
  for (const f of families) {
    assert.ok(types.has(f), `${f} is not in the scrape`);
    if (f !== 'nodejs_gc_duration_seconds') assert.ok(withSamples.has(f), `${f} has no sample`);
  }
  assert.deepEqual([...types.keys()].filter((f) => f.startsWith('problem_')), [], "NPD's series only come with an NPD monitor");
  assert.deepEqual(promtool(builtIn).problems, [], 'promtool check metrics, built-in detectors alone');

  let reloads = 0;
  const reload = async (monitor: string): Promise<void> => {
    writeFileSync(config, configLines(monitor));
    child.kill('SIGHUP');
    const want = ++reloads;
    await waitFor(async () => (output().split('"Configuration reloaded"').length - 1 >= want ? true : undefined), () => `no reload ${want}:\n${output()}`);
  };
  await reload('kernel-monitor.json');
  appendFileSync(root.path('/dev/kmsg'), `3,6,99600000,-;${OOM_LINE}\n`);
  const withNpd = await waitFor(async () => {
    const t = await scrape();
    const ready =
      valueOf(t, 'kubenode_problem_events_total', { detector: 'kernel', reason: 'OOMKilling' }) === 1 &&
      valueOf(t, 'kubenode_problem_events_total', { detector: 'kernel-monitor', reason: 'OOMKilling' }) === 1;
    return ready ? t : undefined;
  }, () => `the NPD monitor never counted the line:\n${output()}`);
  // The documented rule: NPD's counter counts the line once per detector that reported it.
  assert.equal(valueOf(withNpd, 'problem_counter', { reason: 'OOMKilling' }), 2);
  // As NPD at start: every reason kernel-monitor.json can raise has its series, at 0 until it happens.
  assert.equal(valueOf(withNpd, 'problem_counter', { reason: 'KernelOops' }), 0);
  assert.equal(valueOf(withNpd, 'problem_gauge', { type: 'KernelDeadlock', reason: 'DockerHung' }), 0);
  assert.equal(valueOf(withNpd, 'kubenode_condition_status', { detector: 'kernel-monitor', type: 'KernelDeadlock', status: 'False' }), 1);
  assert.deepEqual(promtool(withNpd).problems.sort(), [...NPD_NAME_PROBLEMS].sort(), 'promtool check metrics, NPD monitors loaded');

  // A reload that swaps kernel-monitor for readonly-monitor: the series only kernel-monitor had go;
  // the OOMKilling count stays, the built-in kernel detector raised it too.
  await reload('readonly-monitor.json');
  const swapped = await waitFor(async () => {
    const t = await scrape();
    return valueOf(t, 'problem_gauge', { type: 'ReadonlyFilesystem', reason: 'FilesystemIsReadOnly' }) !== undefined ? t : undefined;
  }, () => `readonly-monitor's series never came:\n${output()}`);
  assert.equal(valueOf(swapped, 'problem_gauge', { type: 'KernelDeadlock', reason: 'DockerHung' }), undefined);
  assert.equal(valueOf(swapped, 'problem_counter', { reason: 'KernelOops' }), undefined);
  assert.equal(valueOf(swapped, 'problem_counter', { reason: 'OOMKilling' }), 2);
  assert.equal(valueOf(swapped, 'kubenode_condition_status', { detector: 'kernel-monitor', type: 'KernelDeadlock', status: 'False' }), undefined);

  child.kill('SIGTERM');
  await exited;
});

test('a real Prometheus tells True, False and Unknown conditions apart, where problem_gauge reads 0 for both of the last two', async () => {
  const root = agentRoot('node-metrics');
  // NPD custom plugins: exit 0 is OK, 1 a problem, anything else unknown.
  const checks = [
    { type: 'NTPProblem', exit: 0 },
    { type: 'DiskProblem', exit: 1 },
    { type: 'RaidProblem', exit: 3 },
  ];
  for (const c of checks) root.script(`/opt/checks/${c.type}.sh`, `echo "${c.type} exit ${c.exit}"; exit ${c.exit}`);
  const monitor = root.write(
    '/etc/kubenode/checks.json',
    JSON.stringify({
      plugin: 'custom',
      pluginConfig: { invoke_interval: '1s' },
      source: 'checks',
      conditions: checks.map((c) => ({ type: c.type, reason: `${c.type}Clear`, message: 'ok' })),
      rules: checks.map((c) => ({ type: 'permanent', condition: c.type, reason: `${c.type}Found`, path: `/opt/checks/${c.type}.sh` })),
    }),
  );
  const config = root.write(
    '/agent.yaml',
    ['listen: 127.0.0.1:0', 'monitors:', `  customPlugin: [${monitor}]`, 'detectors:', ...Object.keys(detectors).map((name) => `  ${name}: { enabled: false }`), ''].join('\n'),
  );
  const { child, base, output, exited } = await startAgent(root, config);
  const prom = await startPrometheus({ scrapeTargets: [`${base}/metrics`] });
  prometheus = prom;
  const types = async (expr: string): Promise<string[]> => (await prom.query(expr)).map((r) => r.metric.type ?? '').sort();
  await waitFor(async () => ((await types('kubenode_condition_status{status="Unknown"} == 1')).length === 1 ? true : undefined), () => `Unknown never reached Prometheus:\n${output()}`);
  assert.deepEqual(await types('kubenode_condition_status{status="Unknown"} == 1'), ['RaidProblem']);
  assert.deepEqual(await types('kubenode_condition_status{status="True"} == 1'), ['DiskProblem']);
  assert.deepEqual(await types('kubenode_condition_status{status="False"} == 1'), ['NTPProblem']);
  assert.deepEqual(await types('max by (type) (problem_gauge) == 0'), ['NTPProblem', 'RaidProblem'], "NPD's gauge alone cannot tell them apart");
  child.kill('SIGTERM');
  await exited;
});

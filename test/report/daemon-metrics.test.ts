// A full scrape of a running daemon (the bundle `npm run build` makes) with every part that
// registers metrics at work, checked by promtool and read series by series.
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import { after, test } from 'node:test';
import { detectors } from '../../src/detectors/index.ts';
import { AGENT, REPO } from '../helpers/cli.ts';
import { TempRoot } from '../helpers/host-root.ts';
import { NPD_NAME_PROBLEMS, parseScrape, promtool, valueOf } from './scrape.ts';

const root = new TempRoot();
let child: ChildProcessWithoutNullStreams | undefined;
after(() => {
  child?.kill('SIGKILL');
  root.remove();
});

// Captured by genular/pandora#49 (4.x kernel); the same line is in test/detectors/kernel.test.ts.
const OOM_LINE = 'Killed process 27438 (R) total-vm:38349780kB, anon-rss:1041924kB, file-rss:4kB, shmem-rss:0kB';
const TOOL = '#!/bin/sh\necho tool 1.0.0\n';

async function waitFor<T>(probe: () => Promise<T | undefined>, why: () => string, ms = 60_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error(`timed out waiting: ${why()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('a full scrape: every family present, promtool clean but for NPD names, one kernel line told apart by detector', async () => {
  root.write('/proc/uptime', '100.00 100.00\n');
  root.write('/proc/sys/kernel/random/boot_id', 'boot-1\n');
  root.write('/proc/sys/kernel/hostname', 'node-metrics\n');
  root.write('/dev/kmsg', '6,1,1000,-;Linux version 6.1.0\n');
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
  const config = root.write(
    '/agent.yaml',
    [
      'listen: 127.0.0.1:0',
      // Both on purpose: the built-in kernel detector and NPD's kernel monitor read the same kmsg.
      'monitors:',
      '  systemLog: [builtin:kernel-monitor.json]',
      'detectors:',
      ...Object.keys(detectors).map((name) => (name === 'kernel' ? '  kernel: { enabled: true, interval: 1s }' : `  ${name}: { enabled: false }`)),
      'installers:',
      '  reconcileDebounce: 200ms',
      'remedies:',
      '  enabled: true',
      '  interval: 1s',
      '  rules:',
      '    - name: never',
      '      condition: { type: XfsShutdown }',
      '      steps: [{ action: drop-caches }]',
      '',
    ].join('\n'),
  );
  child = spawn(process.execPath, [AGENT, 'run', '--root', root.dir, '--config', config], { cwd: REPO });
  let out = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const listen = await waitFor(async () => /"msg":"Agent started".*?"listen":"([^"]+)"/.exec(out)?.[1] ?? /"listen":"([^"]+)".*?"msg":"Agent started"/.exec(out)?.[1], () => `no start: ${stderr}${out}`);
  const scrape = async (): Promise<string> => (await fetch(`http://${listen}/metrics`)).text();

  appendFileSync(root.path('/dev/kmsg'), `3,5,99500000,-;${OOM_LINE}\n`);
  const text = await waitFor(async () => {
    const t = await scrape();
    const ready =
      valueOf(t, 'kubenode_problem_events_total', { detector: 'kernel', reason: 'OOMKilling' }) === 1 &&
      valueOf(t, 'kubenode_problem_events_total', { detector: 'kernel-monitor', reason: 'OOMKilling' }) === 1 &&
      valueOf(t, 'kubenode_component_info', { component: 'tool' }) === 1 &&
      valueOf(t, 'kubenode_detector_last_success_timestamp_seconds', { detector: 'kernel' }) !== undefined;
    return ready ? t : undefined;
  }, () => `metrics never settled:\n${out}`);

  // The documented rule: NPD's counter counts the line once per detector that reported it.
  assert.equal(valueOf(text, 'problem_counter', { reason: 'OOMKilling' }), 2);
  assert.equal(valueOf(text, 'kubenode_component_info', { component: 'tool', version: '1.0.0' }), 1);
  assert.equal(valueOf(text, 'kubenode_component_phase', { component: 'tool', phase: 'Installed' }), 1);
  assert.equal(valueOf(text, 'kubenode_component_applies_total', { component: 'tool', result: 'installed' }), 1);
  assert.equal(valueOf(text, 'kubenode_component_downloads_total', { component: 'tool', result: 'ok' }), 1);
  assert.equal(valueOf(text, 'kubenode_component_download_bytes_total', { component: 'tool' }), TOOL.length);
  assert.equal(valueOf(text, 'kubenode_condition_status', { detector: 'kernel-monitor', type: 'KernelDeadlock', status: 'False' }), 1);

  const { samples, types } = parseScrape(text);
  const withSamples = new Set(samples.map((s) => s.name.replace(/_(bucket|sum|count)$/, '')));
  const families = [
    'problem_counter',
    'problem_gauge',
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
    'process_cpu_seconds_total',
    'process_resident_memory_bytes',
    'nodejs_heap_size_used_bytes',
    'nodejs_eventloop_lag_p99_seconds',
    'nodejs_gc_duration_seconds',
  ];
  for (const f of families) {
    assert.ok(types.has(f), `${f} is not in the scrape`);
    if (f !== 'nodejs_gc_duration_seconds') assert.ok(withSamples.has(f), `${f} has no sample`);
  }
  for (const prefix of ['kubenode_remedy_', 'kubenode_risk_']) assert.ok([...types.keys()].some((f) => f.startsWith(prefix)), `${prefix}* metrics are registered on the same registry`);

  const checked = promtool(text);
  assert.deepEqual(checked.problems.sort(), [...NPD_NAME_PROBLEMS].sort(), 'promtool check metrics');

  child.kill('SIGTERM');
  await new Promise((r) => child?.once('exit', r));
});

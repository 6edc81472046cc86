import assert from 'node:assert/strict';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { detectors } from '../../src/detectors/index.ts';
import { REPO } from '../helpers/cli.ts';
import { agentRoot, spawnAgent, startAgent, waitFor, type Agent } from '../helpers/daemon.ts';
import { syslogStamp } from '../helpers/syslog.ts';


// Only the embedded NPD monitors, so that the daemon's behaviour, not the detectors', is under test.
const configWith = (monitors: string): string =>
  [
    'listen: 127.0.0.1:0',
    'monitors:',
    `  systemLog: [${monitors}]`,
    'detectors:',
    ...Object.keys(detectors).map((name) => `  ${name}: { enabled: false }`),
    '',
  ].join('\n');
const CONFIG = configWith('builtin:kernel-monitor.json, builtin:readonly-monitor.json');

const metrics = async (agent: Agent): Promise<string> => (await fetch(`${agent.base}/metrics`)).text();


test('the daemon serves health and metrics, turns a new kernel fault into a condition, and stops cleanly', async () => {
  const root = agentRoot('node-run');
  const config = root.write('/agent.yaml', CONFIG);
  const agent = await startAgent(root, config);

  const health = await fetch(`${agent.base}/healthz`);
  assert.equal(health.status, 200);
  assert.equal(((await health.json()) as { status: string }).status, 'ok');
  // The Node the executable ships with is the one package.json pins.
  const shipped = (JSON.parse(readFileSync(`${REPO}/package.json`, 'utf8')) as { engines: { node: string } }).engines.node;
  assert.match(await metrics(agent), new RegExp(`^kubenode_build_info\\{version="[^"]+",commit="[^"]+",node_version="${shipped.replaceAll('.', '\\.')}"\\} 1$`, 'm'));
  await waitFor(async () => /^problem_gauge\{type="ReadonlyFilesystem",reason="FilesystemIsNotReadOnly"\} 0$/m.test(await metrics(agent)), () => 'initial gauge');

  appendFileSync(root.path('/dev/kmsg'), '3,2,99000000,-;EXT4-fs (dm-4): Remounting filesystem read-only\n');
  const text = await waitFor(async () => {
    const m = await metrics(agent);
    return /^problem_gauge\{type="ReadonlyFilesystem",reason="FilesystemIsReadOnly"\} 1$/m.test(m) ? m : undefined;
  }, () => 'condition never turned');
  assert.match(text, /^problem_gauge\{type="ReadonlyFilesystem",reason="FilesystemIsNotReadOnly"\} 0$/m);
  assert.match(text, /^problem_counter\{reason="FilesystemIsReadOnly"\} 1$/m);
  assert.ok(agent.logs.some((l) => l.msg === 'Condition' && l.type === 'ReadonlyFilesystem' && l.status === 'True' && l.level === 'warn'));

  const state = JSON.parse(await waitFor(() => {
    const text = readFileSync(root.path('/var/lib/kubenode/conditions.json'), 'utf8');
    return text.includes('FilesystemIsReadOnly') ? text : undefined;
  }, () => 'state never written')) as { detectors: Record<string, { conditions: { status: string }[] }> };
  assert.equal(state.detectors['readonly-monitor']?.conditions[0]?.status, 'True');

  agent.child.kill('SIGTERM');
  assert.equal(await agent.exited, 0);
  assert.ok(agent.logs.some((l) => l.msg === 'Agent stopped'));
});

test('SIGTERMs repeated while the daemon stops find the stop under way: it still exits 0', async () => {
  const root = agentRoot('node-sigterms');
  const agent = await startAgent(root, root.write('/agent.yaml', CONFIG));
  let exited = false;
  void agent.exited.then(() => (exited = true));
  // Signals every few ms until the process is gone, so one lands in every phase of the stop,
  // Node's own tear-down at the end included (a cleanly stopped agent died of one there, 143).
  while (!exited && agent.child.kill('SIGTERM')) await sleep(3);
  assert.equal(await agent.exited, 0);
  assert.ok(agent.logs.some((l) => l.msg === 'Agent stopped'));
});

test('a condition whose message alone moves (fresh PSI figures) is logged once, not at every probe', async () => {
  const root = agentRoot('node-psi');
  const psi = (avg: string): string => `some avg10=52.31 avg60=${avg} avg300=20.11 total=41234567\nfull avg10=30.02 avg60=24.51 avg300=9.87 total=19876543\n`;
  // Figures of test/fixtures/hosts/pressure-memory.
  root.write('/proc/pressure/memory', psi('45.30'));
  root.write('/proc/meminfo', readFileSync(fileURLToPath(new URL('../fixtures/hosts/pressure-memory/proc/meminfo', import.meta.url)), 'utf8'));
  const config = root.write(
    '/agent.yaml',
    ['listen: 127.0.0.1:0', 'monitors:', '  systemLog: []', 'detectors:', ...Object.keys(detectors).map((name) => (name === 'pressure' ? '  pressure: { interval: 1s }' : `  ${name}: { enabled: false }`)), ''].join('\n'),
  );
  const agent = await startAgent(root, config);
  const announced = (): Record<string, unknown>[] => agent.logs.filter((l) => l.msg === 'Condition' && l.type === 'HighMemoryPressure' && l.status === 'True');
  await waitFor(() => announced().length > 0 || undefined, () => `never True: ${agent.output()}`);
  const probes = async (): Promise<number> => Number(/^kubenode_detector_duration_seconds_count\{detector="pressure"\} (\d+)$/m.exec(await metrics(agent))?.[1] ?? 0);
  for (const avg of ['45.90', '46.70', '47.10']) {
    const before = await probes();
    root.write('/proc/pressure/memory', psi(avg));
    await waitFor(async () => (await probes()) > before || undefined, () => 'no further probe');
  }
  assert.equal(announced().length, 1, JSON.stringify(announced()));
  agent.child.kill('SIGTERM');
  assert.equal(await agent.exited, 0);
});

test('a restart keeps the condition without announcing it again; a new boot clears it', async () => {
  const root = agentRoot('node-run');
  const config = root.write('/agent.yaml', CONFIG);
  appendFileSync(root.path('/dev/kmsg'), '3,2,99000000,-;EXT4-fs (dm-4): Remounting filesystem read-only\n');
  const first = await startAgent(root, config);
  await waitFor(async () => /problem_counter\{reason="FilesystemIsReadOnly"\} 1/.test(await metrics(first)), () => 'first run');
  first.child.kill('SIGTERM');
  assert.equal(await first.exited, 0);

  const second = await startAgent(root, config);
  await waitFor(async () => /^problem_gauge\{type="ReadonlyFilesystem",reason="FilesystemIsReadOnly"\} 1$/m.test(await metrics(second)), () => 'restored condition');
  // Pre-created at 0 as NPD does; a restored condition is not a new problem.
  assert.match(await metrics(second), /^problem_counter\{reason="FilesystemIsReadOnly"\} 0$/m, 'no new problem was counted');
  second.child.kill('SIGTERM');
  assert.equal(await second.exited, 0);

  writeFileSync(root.path('/proc/sys/kernel/random/boot_id'), 'boot-2\n');
  writeFileSync(root.path('/dev/kmsg'), '6,1,1000,-;Linux version 6.1.0\n');
  const third = await startAgent(root, config);
  await waitFor(async () => /^problem_gauge\{type="ReadonlyFilesystem",reason="FilesystemIsNotReadOnly"\} 0$/m.test(await metrics(third)), () => 'cleared after reboot');
  assert.doesNotMatch(await metrics(third), /reason="FilesystemIsReadOnly"\} 1/);
  third.child.kill('SIGTERM');
  await third.exited;
});

test('SIGHUP reloads a good configuration and refuses a bad one, keeping the running one', async () => {
  const root = agentRoot('node-run');
  const config = root.write('/agent.yaml', CONFIG);
  const agent = await startAgent(root, config);

  writeFileSync(config, `${CONFIG}bogus: true\n`);
  agent.child.kill('SIGHUP');
  const refused = await waitFor(() => agent.logs.find((l) => l.msg === 'Configuration reload refused; keeping the running configuration'), () => 'no refusal');
  assert.match(String(refused.err), /bogus: unknown key/);
  assert.equal((await fetch(`${agent.base}/healthz`)).status, 200);

  writeFileSync(config, configWith('builtin:readonly-monitor.json'));
  agent.child.kill('SIGHUP');
  const reloaded = await waitFor(() => agent.logs.find((l) => l.msg === 'Configuration reloaded'), () => 'no reload');
  assert.deepEqual(reloaded.detectors, ['readonly-monitor']);

  agent.child.kill('SIGTERM');
  assert.equal(await agent.exited, 0);
});

test('the daemon installs a component dropped into its manifest directory', async () => {
  const root = agentRoot('node-run');
  const config = root.write('/agent.yaml', `${CONFIG}installers:\n  reconcileDebounce: 200ms\n`);
  const agent = await startAgent(root, config);
  root.write('/etc/kubenode/components/sysctls.yaml', readFileSync(new URL('../../examples/manifests/node-basics.yaml', import.meta.url), 'utf8'));
  const installed = (file: string): string | undefined => {
    try {
      return readFileSync(root.path(file), 'utf8');
    } catch {
      return undefined;
    }
  };
  const sysctls = await waitFor(() => installed('/etc/sysctl.d/90-kubelet.conf'), () => 'the first component was never installed');
  assert.match(sysctls, /^kernel\.panic = 10$/m);
  const labels = await waitFor(() => installed('/etc/kubenode/node-labeller/labels.env'), () => 'the second component was never installed');
  assert.match(labels, /^NODE_NAME=node-run$/m);
  agent.child.kill('SIGTERM');
  assert.equal(await agent.exited, 0);
});

test("a monitor with NPD's metricsReporting false stays out of problem metrics", async () => {
  const root = agentRoot('node-run');
  root.script('/opt/ntp.sh', 'echo "ntp is down"; exit 1');
  const monitor = (name: string, metricsReporting: boolean): string =>
    root.write(`/etc/kubenode/${name}.json`, JSON.stringify({
      plugin: 'custom', pluginConfig: { invoke_interval: '1s' }, source: name, metricsReporting,
      conditions: [{ type: `${name}Problem`, reason: `${name}IsUp`, message: 'up' }],
      rules: [{ type: 'permanent', condition: `${name}Problem`, reason: `${name}IsDown`, path: '/opt/ntp.sh' }],
    }));
  monitor('Quiet', false);
  monitor('Loud', true);
  // A --config file names monitor files where the operator is, so the scratch root's paths are given whole.
  const config = root.write('/agent.yaml', CONFIG.replace('monitors:', `monitors:\n  customPlugin: [${root.path('/etc/kubenode/Quiet.json')}, ${root.path('/etc/kubenode/Loud.json')}]`));
  const agent = await startAgent(root, config);
  await waitFor(() => agent.logs.some((l) => l.msg === 'Condition' && l.type === 'QuietProblem' && l.status === 'True'), () => 'Quiet never turned');
  const text = await waitFor(async () => {
    const m = await metrics(agent);
    return /^problem_gauge\{type="LoudProblem",reason="LoudIsDown"\} 1$/m.test(m) ? m : undefined;
  }, () => 'Loud never reached the metrics');
  assert.doesNotMatch(text, /QuietProblem|QuietIsDown/);
  agent.child.kill('SIGTERM');
  assert.equal(await agent.exited, 0);
});

test('the daemon runs a remedy rule on a condition, through the local risk gate, and records it', async () => {
  const root = agentRoot('node-run');
  // The runtime the remedy restarts, as this host's systemctl sees it: calls are recorded at the Host seam.
  root.script('/usr/bin/systemctl', 'echo "$*" >> "$(dirname "$0")/systemctl.calls"\ncase "$*" in *LoadState*) echo loaded;; *is-active*) echo active;; esac\nexit 0');
  const config = root.write('/agent.yaml', [
    CONFIG.trimEnd(),
    'remedies:',
    '  enabled: true',
    '  interval: 1s',
    '  rules:',
    '    - name: readonly',
    '      condition: { type: ReadonlyFilesystem, reasons: [FilesystemIsReadOnly] }',
    '      steps: [{ action: restart-runtime, params: { unit: containerd.service }, verifyAfter: 1h, cooldown: 1h }]',
    '',
  ].join('\n'));
  const agent = await startAgent(root, config);
  appendFileSync(root.path('/dev/kmsg'), '3,2,99000000,-;EXT4-fs (dm-4): Remounting filesystem read-only\n');
  const calls = await waitFor(() => {
    try {
      const text = readFileSync(root.path('/usr/bin/systemctl.calls'), 'utf8');
      return text.includes('restart containerd.service') ? text : undefined;
    } catch {
      return undefined;
    }
  }, () => 'the remedy never restarted the runtime');
  assert.equal(calls.split('\n').filter((l) => l === 'restart containerd.service').length, 1);
  const m = await metrics(agent);
  assert.match(m, /^kubenode_risk_gate_decisions_total\{gate="local",decision="allowed"\} 1$/m);
  assert.match(m, /^kubenode_remedy_actions_started_total\{action="restart-runtime"\} 1$/m);
  agent.child.kill('SIGTERM');
  assert.equal(await agent.exited, 0);
});

test('a bad configuration at start is refused with exit 64', async () => {
  const root = agentRoot('node-run');
  const config = root.write('/agent.yaml', 'listen: everywhere\n');
  const child = spawnAgent(['run', '--root', root.dir, '--config', config]);
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise((resolve) => child.on('exit', resolve));
  assert.equal(code, 64);
  assert.match(stderr, /^kubenode-agent: [^\n]*agent\.yaml: listen: expected an address like 127\.0\.0\.1:9746 or \[::1\]:9746, got "everywhere"\n$/);
});

test('SIGHUP applies a remedies change (a section reload used to ignore)', async () => {
  const root = agentRoot('node-run');
  const config = root.write('/agent.yaml', CONFIG);
  const agent = await startAgent(root, config);
  appendFileSync(root.path('/dev/kmsg'), '3,2,99000000,-;EXT4-fs (dm-4): Remounting filesystem read-only\n');
  await waitFor(async () => /^problem_counter\{reason="FilesystemIsReadOnly"\} 1$/m.test(await metrics(agent)), () => 'event never counted');
  writeFileSync(config, `${CONFIG}remedies:\n  enabled: true\n`);
  agent.child.kill('SIGHUP');
  const reloaded = await waitFor(() => agent.logs.find((l) => l.msg === 'Configuration reloaded'), () => 'no reload');
  assert.equal(reloaded.remedies, true, 'the remedies section was applied');
  agent.child.kill('SIGTERM');
  assert.equal(await agent.exited, 0);
});

test('SIGHUP never reports again an event the start-up lookback already reported', async () => {
  const root = agentRoot('node-run');
  const config = root.write('/agent.yaml', CONFIG);
  // The kernel's OOM-killer line as 3.10–5.0 kernels print it.
  appendFileSync(root.path('/dev/kmsg'), '3,2,95000000,-;Killed process 2592 (stress) total-vm:1060908kB, anon-rss:1037216kB, file-rss:0kB\n');
  const agent = await startAgent(root, config);
  await waitFor(async () => /^problem_counter\{reason="OOMKilling"\} 1$/m.test(await metrics(agent)), () => 'the lookback event was never counted');
  for (const n of [1, 2]) {
    agent.child.kill('SIGHUP');
    await waitFor(() => agent.logs.filter((l) => l.msg === 'Configuration reloaded').length === n || undefined, () => `reload ${n} never finished`);
  }
  // A line written after both reloads: once it is counted, the restarted monitor has read its lookback again.
  appendFileSync(root.path('/dev/kmsg'), '3,3,99000000,-;task jbd2/sda1-8:311 blocked for more than 120 seconds.\n');
  const text = await waitFor(async () => {
    const m = await metrics(agent);
    return /^problem_counter\{reason="TaskHung"\} 1$/m.test(m) ? m : undefined;
  }, () => 'the new event was never counted');
  assert.match(text, /^problem_counter\{reason="OOMKilling"\} 1$/m);
  assert.equal(agent.logs.filter((l) => l.msg === 'Event' && l.reason === 'OOMKilling').length, 1, 'the event was logged once');
  agent.child.kill('SIGTERM');
  assert.equal(await agent.exited, 0);
});

test("two faults logged in the same second, even with the same text, and read in two batches are two events (syslog stamps have one-second resolution)", async () => {
  const root = agentRoot('node-run');
  // NPD's shipped monitor, reading /var/log/kern.log under the root.
  root.write('/var/log/kern.log', '');
  const agent = await startAgent(root, root.write('/agent.yaml', configWith(fileURLToPath(new URL('../fixtures/npd/config/kernel-monitor-filelog.json', import.meta.url)))));
  // One stamp for both lines, as rsyslog writes kern.log ("Jan _2 15:04:05", local time).
  const stamp = syslogStamp(Date.now());
  // The OOM killer's line as 3.10-5.0 kernels print it (also in the lookback test above).
  const oom = `${stamp} node-1 kernel: [ 95.000000] Killed process 2592 (stress) total-vm:1060908kB, anon-rss:1037216kB, file-rss:0kB\n`;
  for (const n of [1, 2]) {
    appendFileSync(root.path('/var/log/kern.log'), oom);
    await waitFor(async () => new RegExp(`^problem_counter\\{reason="OOMKilling"\\} ${n}$`, 'm').test(await metrics(agent)), () => `OOM kill ${n} was never counted:\n${agent.output()}`, 15_000);
  }
  agent.child.kill('SIGTERM');
  assert.equal(await agent.exited, 0);
});

/** Whether the process catches SIGHUP (bit 0 of SigCgt in /proc/PID/status). */
function catchesSighup(pid: number): boolean {
  const mask = /^SigCgt:\s*([0-9a-f]+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return mask !== undefined && (BigInt(`0x${mask}`) & 1n) === 1n;
}

test('SIGHUP at any moment once the agent catches it (as the unit\'s ExecReload waits for) is applied after start-up, leaving the daemon healthy', async () => {
  const root = agentRoot('node-run');
  const config = root.write('/agent.yaml', CONFIG);
  // Moments from the first one /proc shows SIGHUP caught (most fall inside start-up, before the
  // daemon exists, where a reload must be kept for later), and one after /healthz answered.
  for (const moment of [0, 20, 50, 100, 200, 'healthz'] as const) {
    const child = spawnAgent(['run', '--root', root.dir, '--config', config, '--listen', '127.0.0.1:0']);
    const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const pid = child.pid as number;
    await waitFor(() => catchesSighup(pid) || undefined, () => `moment ${moment}: no SIGHUP listener`);
    const started = (): Record<string, unknown> | undefined => out.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'Agent started');
    if (moment === 'healthz') {
      const line = await waitFor(started, () => 'no start');
      await waitFor(async () => (await fetch(`http://${line.listen as string}/healthz`)).status === 200 || undefined, () => 'no health');
    } else await sleep(moment);
    child.kill('SIGHUP');
    const line = await waitFor(started, () => `moment ${moment}: no start`);
    await waitFor(() => out.includes('"msg":"Configuration reloaded"') || undefined, () => `moment ${moment}: the SIGHUP was not applied`);
    assert.equal((await fetch(`http://${line.listen as string}/healthz`)).status, 200, `moment ${moment}`);
    assert.equal(child.exitCode, null, `moment ${moment}: still running`);
    child.kill('SIGTERM');
    assert.deepEqual(await exited, { code: 0, signal: null }, `moment ${moment}`);
  }
});

test("SIGHUP while the agent's modules are still loading is kept and applied after start-up", async () => {
  const root = agentRoot('node-run');
  const config = root.write('/agent.yaml', CONFIG);
  const hook = fileURLToPath(new URL('../helpers/sighup-while-loading.cjs', import.meta.url));
  const child = spawnAgent(['run', '--root', root.dir, '--config', config, '--listen', '127.0.0.1:0'], { nodeArgs: ['--require', hook] });
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const done = await Promise.race([exited, waitFor(() => out.includes('"msg":"Configuration reloaded"') || undefined, () => `not reloaded: ${err}`)]);
  assert.equal(done, true, `the SIGHUP ended the agent: ${JSON.stringify(done)}`);
  assert.match(err, /sighup-while-loading: sent/);
  child.kill('SIGTERM');
  assert.deepEqual(await exited, { code: 0, signal: null });
});

test('SIGHUP refuses a change of each restart-only field (stateDir, nodeName, cluster.kubeconfig), saying so, and keeps the running configuration', async () => {
  const root = agentRoot('node-run');
  const config = root.write('/agent.yaml', CONFIG);
  const agent = await startAgent(root, config);
  const cases = [
    ['stateDir: /var/lib/elsewhere\n', 'stateDir changed from "/var/lib/kubenode" to "/var/lib/elsewhere": that takes a restart'],
    ['nodeName: node-other\n', 'nodeName changed from "node-run" to "node-other": that takes a restart'],
    ['cluster: { kubeconfig: /etc/kubenode/kubeconfig }\n', 'cluster.kubeconfig changed from "" to "/etc/kubenode/kubeconfig": that takes a restart'],
  ] as const;
  for (const [i, [extra, why]] of cases.entries()) {
    // Each with a section that would apply, which must not be applied either.
    writeFileSync(config, `${configWith('builtin:readonly-monitor.json')}${extra}`);
    agent.child.kill('SIGHUP');
    const refusals = await waitFor(() => {
      const r = agent.logs.filter((l) => l.msg === 'Configuration reload refused; keeping the running configuration');
      return r.length === i + 1 ? r : undefined;
    }, () => `no refusal for ${extra}`);
    assert.equal(refusals[i]?.err, why);
  }
  assert.equal(agent.logs.filter((l) => l.msg === 'Configuration reloaded').length, 0);
  const health = (await (await fetch(`${agent.base}/healthz`)).json()) as { status: string; node: string; detectors: Record<string, unknown> };
  assert.deepEqual([health.status, health.node, Object.keys(health.detectors).sort()], ['ok', 'node-run', ['kernel-monitor', 'readonly-monitor']]);
  agent.child.kill('SIGTERM');
  assert.equal(await agent.exited, 0);
});

/** A port free on 127.0.0.1 a moment ago. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const answers = async (port: number): Promise<boolean> => {
  try {
    return (await fetch(`http://127.0.0.1:${port}/healthz`)).status === 200;
  } catch {
    return false;
  }
};

test('SIGHUP applies each section: listen, detectors, installers, risk, detection, logLevel (remedies and monitors: above)', async () => {
  const root = agentRoot('node-run');
  root.script('/usr/bin/systemctl', 'echo "$*" >> "$(dirname "$0")/systemctl.calls"\ncase "$*" in *LoadState*) echo loaded;; *is-active*) echo active;; esac\nexit 0');
  root.write('/etc/kubenode/other/sysctls.yaml', readFileSync(new URL('../../examples/manifests/node-basics.yaml', import.meta.url), 'utf8'));
  const remedies = ['remedies:', '  enabled: true', '  interval: 1s', '  rules:', '    - name: readonly', '      condition: { type: ReadonlyFilesystem, reasons: [FilesystemIsReadOnly] }', '      steps: [{ action: restart-runtime, params: { unit: containerd.service }, verifyAfter: 1h, cooldown: 1h }]', ''].join('\n');
  const write = (port: number, extra: string): void => writeFileSync(config, `${CONFIG.replace('listen: 127.0.0.1:0', `listen: 127.0.0.1:${port}`)}${remedies}${extra}`);
  const ports = [await freePort(), await freePort(), await freePort()] as const;
  const config = root.write('/agent.yaml', '');
  write(ports[0], 'installers: { reconcileDebounce: 200ms }\nrisk: { local: { maxDisruptive: 5 } }\n');
  const agent = await startAgent(root, config);
  const reloaded = (n: number) => waitFor(() => agent.logs.filter((l) => l.msg === 'Configuration reloaded')[n - 1], () => `reload ${n} never finished`);

  // listen, detectors, installers.manifestDir and risk at once.
  write(ports[1], 'installers: { reconcileDebounce: 200ms, manifestDir: /etc/kubenode/other }\nrisk: { local: { maxDisruptive: 0 } }\n');
  writeFileSync(config, readFileSync(config, 'utf8').replace('  pressure: { enabled: false }', '  pressure: { enabled: true }'));
  agent.child.kill('SIGHUP');
  const first = await reloaded(1);
  assert.ok((first.detectors as string[]).includes('pressure'), `detectors: ${JSON.stringify(first.detectors)}`);
  assert.equal(first.listen, `127.0.0.1:${ports[1]}`);
  assert.equal(await answers(ports[1]), true, 'the new listen address answers');
  assert.equal(await answers(ports[0]), false, 'the old one was let go');
  await waitFor(() => {
    try {
      return readFileSync(root.path('/etc/sysctl.d/90-kubelet.conf'), 'utf8');
    } catch {
      return undefined;
    }
  }, () => 'the new installers.manifestDir was never applied');
  const base = `http://127.0.0.1:${ports[1]}`;
  const metricsAt = async (): Promise<string> => (await fetch(`${base}/metrics`)).text();
  appendFileSync(root.path('/dev/kmsg'), '3,2,99000000,-;EXT4-fs (dm-4): Remounting filesystem read-only\n');
  await waitFor(async () => /^kubenode_risk_gate_decisions_total\{gate="local",decision="denied"\} [1-9]/m.test(await metricsAt()) || undefined, () => 'risk.local.maxDisruptive: 0 never denied the remedy');
  const calls = (): string => {
    try {
      return readFileSync(root.path('/usr/bin/systemctl.calls'), 'utf8');
    } catch {
      return '';
    }
  };
  assert.doesNotMatch(calls(), /^restart containerd/m, 'nothing restarted past a budget of 0');

  // detection.silencedReasons.
  write(ports[1], 'installers: { reconcileDebounce: 200ms, manifestDir: /etc/kubenode/other }\nrisk: { local: { maxDisruptive: 0 } }\ndetection: { silencedReasons: [TaskHung] }\n');
  agent.child.kill('SIGHUP');
  await reloaded(2);
  appendFileSync(root.path('/dev/kmsg'), '3,3,99100000,-;task jbd2/sda1-8:311 blocked for more than 120 seconds.\n');
  appendFileSync(root.path('/dev/kmsg'), '3,4,99200000,-;Killed process 2592 (stress) total-vm:1060908kB, anon-rss:1037216kB, file-rss:0kB\n');
  const counted = await waitFor(async () => {
    const m = await metricsAt();
    return /^problem_counter\{reason="OOMKilling"\} 1$/m.test(m) ? m : undefined;
  }, () => 'the OOM line was never counted');
  assert.doesNotMatch(counted, /^problem_counter\{reason="TaskHung"\} [1-9]/m, 'detection.silencedReasons applied');

  // logLevel, with a new listen address that says when the reload is done.
  const before = agent.logs.length;
  writeFileSync(config, `${CONFIG.replace('listen: 127.0.0.1:0', `listen: 127.0.0.1:${ports[2]}`)}logLevel: error\n`);
  agent.child.kill('SIGHUP');
  await waitFor(() => answers(ports[2]).then((ok) => ok || undefined), () => 'the last reload never finished');
  assert.deepEqual(agent.logs.slice(before).filter((l) => (l.level as number) < 50).map((l) => l.msg), [], 'logLevel: error applied');
  agent.child.kill('SIGTERM');
  assert.equal(await agent.exited, 0);
});

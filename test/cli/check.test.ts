import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { FIXTURES, runAgent } from '../helpers/cli.ts';
import { TempRoot } from '../helpers/host-root.ts';

const hosts = `${FIXTURES}hosts/`;
// NPD's two embedded monitors alone, so that the built-in detectors do not change these cases.
const ONLY_NPD = ['--only', 'kernel-monitor,readonly-monitor'];
const NPD = ['--config.system-log-monitor=builtin:kernel-monitor.json,builtin:readonly-monitor.json', ...ONLY_NPD];
const npdConfigs = `${FIXTURES}npd/config/`;
const roots: TempRoot[] = [];
after(() => roots.forEach((r) => r.remove()));
const newRoot = (): TempRoot => {
  const r = new TempRoot();
  roots.push(r);
  return r;
};

interface Report {
  node: string;
  startedAt: string;
  results: { detector: string; status: string; conditions: { type: string; status: string; reason: string; message: string }[]; events: { reason: string; message: string }[]; durationMs: number; error?: string }[];
}

test('a healthy host: exit 0 and the JSON shape', async () => {
  const { code, stdout } = await runAgent(['check', '--json', '--root', `${hosts}npd-healthy-6.18`, ...NPD]);
  assert.equal(code, 0);
  const report = JSON.parse(stdout) as Report;
  assert.deepEqual(Object.keys(report), ['node', 'startedAt', 'results']);
  assert.equal(report.node, 'node-healthy');
  assert.ok(!Number.isNaN(Date.parse(report.startedAt)));
  assert.deepEqual(report.results.map((r) => [r.detector, r.status]), [['kernel-monitor', 'ok'], ['readonly-monitor', 'ok']]);
  for (const r of report.results) {
    assert.deepEqual(Object.keys(r), ['detector', 'status', 'conditions', 'events', 'durationMs']);
    assert.equal(typeof r.durationMs, 'number');
    for (const c of r.conditions) assert.deepEqual(Object.keys(c), ['type', 'status', 'reason', 'message']);
  }
});

for (const generation of ['3.x', '4.x', '5.x']) {
  test(`kernel ${generation} faults: exit 1 with the reasons NPD would report`, async () => {
    const { code, stdout } = await runAgent(['check', '--json', '--root', `${hosts}npd-kernel-${generation}`, ...NPD]);
    assert.equal(code, 1);
    const report = JSON.parse(stdout) as Report;
    const kernel = report.results.find((r) => r.detector === 'kernel-monitor');
    assert.equal(kernel?.status, 'problem');
    assert.ok(kernel?.events.some((e) => e.reason === 'TaskHung'));
  });
}

test('records older than the lookback window do not fire', async () => {
  const { code, stdout } = await runAgent(['check', '--json', '--root', `${hosts}npd-out-of-lookback`, ...NPD]);
  assert.equal(code, 0, stdout);
});

test('the table names each detector, its status, reason and time, without colour off a TTY', async () => {
  const { code, stdout } = await runAgent(['check', '--root', `${hosts}npd-kernel-4.x`, ...NPD]);
  assert.equal(code, 1);
  const [header, ...rows] = stdout.trimEnd().split('\n');
  assert.match(header ?? '', /^DETECTOR\s+STATUS\s+REASON\s+MESSAGE\s+TOOK$/);
  assert.match(rows.find((r) => r.startsWith('readonly-monitor')) ?? '', /^readonly-monitor\s+problem\s+FilesystemIsReadOnly\s+EXT4-fs \(dm-4\): Remounting filesystem read-only\s+\d+ms$/);
  assert.doesNotMatch(stdout, /\u001b\[/);
});

test('--only runs the named detectors; an unknown name is a usage error', async () => {
  const only = await runAgent(['check', '--json', '--root', `${hosts}npd-kernel-4.x`, '--only', 'kernel,storage']);
  assert.deepEqual((JSON.parse(only.stdout) as Report).results.map((r) => r.detector), ['kernel', 'storage']);
  const bad = await runAgent(['check', '--root', `${hosts}npd-kernel-4.x`, '--only', 'kernel,nope']);
  assert.equal(bad.code, 64);
  assert.match(bad.stderr, /--only: no detector named nope; configured: (.*, )?kernel, /);
});

test("NPD's own flags select monitor files as they are", async () => {
  const { code, stdout } = await runAgent([
    'check', '--json', '--root', `${hosts}npd-kernel-4.x`,
    `--config.system-log-monitor=${npdConfigs}kernel-monitor.json,${npdConfigs}readonly-monitor.json`, ...ONLY_NPD,
  ]);
  assert.equal(code, 1);
  assert.deepEqual((JSON.parse(stdout) as Report).results.map((r) => r.status), ['problem', 'problem']);
});

test('a bad agent.yaml: exit 64 and a message naming the file and field', async () => {
  const root = newRoot();
  const file = root.write('/agent.yaml', 'detection:\n  maxConcurent: 3\n');
  const { code, stdout, stderr } = await runAgent(['check', '--config', file]);
  assert.equal(code, 64);
  assert.equal(stdout, '');
  assert.equal(stderr, `kubenode-agent: ${file}: detection.maxConcurent: unknown key\n`);
});

test("agent.yaml under --root is the node's own, and its monitor paths are host paths", async () => {
  const root = newRoot();
  root.write('/etc/kubenode/agent.yaml', 'monitors:\n  systemLog: [npd/readonly-monitor.json]\n');
  root.write('/etc/kubenode/npd/readonly-monitor.json', JSON.stringify({ plugin: 'kmsg', lookback: '5m', source: 'ro', conditions: [], rules: [{ type: 'temporary', reason: 'Ro', pattern: 'Remounting filesystem read-only' }] }));
  root.write('/proc/uptime', '100.0 100.0\n');
  root.write('/dev/kmsg', '3,1,99000000,-;EXT4-fs (dm-4): Remounting filesystem read-only\n');
  const { code, stdout } = await runAgent(['check', '--json', '--root', root.dir, '--only', 'readonly-monitor']);
  assert.equal(code, 1, stdout);
  assert.deepEqual((JSON.parse(stdout) as Report).results.map((r) => [r.detector, r.events[0]?.reason]), [['readonly-monitor', 'Ro']]);
});

test('a malformed monitor file: exit 64 naming the file and rule', async () => {
  const root = newRoot();
  const file = root.write('/m.json', JSON.stringify({ plugin: 'kmsg', source: 's', rules: [{ type: 'temporary', reason: 'R', pattern: '(unclosed' }] }));
  const { code, stderr } = await runAgent(['check', `--config.system-log-monitor=${file}`]);
  assert.equal(code, 64);
  assert.match(stderr, new RegExp(`${file}: rules\\[0\\]\\.pattern: unbalanced \\(`));
});

test('an unreadable log is unknown (exit 2), never a crash', async () => {
  const root = newRoot();
  root.write('/dev/kmsg/not-a-log', '');
  const { code, stdout } = await runAgent(['check', '--json', '--root', root.dir, ...NPD]);
  assert.equal(code, 2);
  const report = JSON.parse(stdout) as Report;
  assert.ok(report.results.every((r) => r.status === 'unknown' && /EISDIR|illegal operation on a directory/.test(r.error ?? '')), stdout);
});

test('a detector that hangs is cut off at its timeout and reported unknown; the others still report', async () => {
  const root = newRoot();
  root.script('/opt/hang.sh', 'sleep 60');
  root.script('/opt/fine.sh', 'echo fine; exit 0');
  const hang = root.write('/hang.json', JSON.stringify({ plugin: 'custom', pluginConfig: { timeout: '1s' }, source: 'h', conditions: [{ type: 'Hang', reason: 'NoHang', message: 'ok' }], rules: [{ type: 'permanent', condition: 'Hang', reason: 'Hung', path: '/opt/hang.sh' }] }));
  const fine = root.write('/fine.json', JSON.stringify({ plugin: 'custom', source: 'f', conditions: [{ type: 'Fine', reason: 'IsFine', message: 'ok' }], rules: [{ type: 'permanent', condition: 'Fine', reason: 'NotFine', path: '/opt/fine.sh' }] }));
  const started = Date.now();
  const { code, stdout } = await runAgent(['check', '--json', '--root', root.dir, `--config.custom-plugin-monitor=${hang},${fine}`, '--only', 'hang,fine']);
  const report = JSON.parse(stdout) as Report;
  assert.equal(code, 2);
  assert.deepEqual(report.results.map((r) => [r.detector, r.status]), [['hang', 'unknown'], ['fine', 'ok']]);
  assert.match(report.results[0]?.conditions[0]?.message ?? '', /Timeout when running plugin/);
  assert.ok(Date.now() - started < 30_000, 'the hung plugin (sleep 60) did not hold the check');
});

test('--timeout bounds the whole check: a detector still running then is unknown', async () => {
  const root = newRoot();
  root.script('/opt/hang.sh', 'sleep 60');
  const hang = root.write('/hang.json', JSON.stringify({ plugin: 'custom', pluginConfig: { timeout: '50s' }, source: 'h', rules: [{ type: 'temporary', reason: 'Hung', path: '/opt/hang.sh' }] }));
  const { code, stdout } = await runAgent(['check', '--json', '--timeout', '1s', '--root', root.dir, `--config.custom-plugin-monitor=${hang}`, '--only', 'hang']);
  assert.equal(code, 2);
  assert.match((JSON.parse(stdout) as Report).results[0]?.error ?? '', /timed out after 1\.0s/);
});

test('a silenced reason no longer makes check fail', async () => {
  const root = newRoot();
  const config = root.write('/agent.yaml', 'detection:\n  silencedReasons: [FilesystemIsReadOnly]\nmonitors:\n  systemLog: [builtin:readonly-monitor.json]\n');
  const { code, stdout } = await runAgent(['check', '--json', '--root', `${hosts}npd-kernel-4.x`, '--config', config, '--only', 'readonly-monitor']);
  assert.equal(code, 0, stdout);
  assert.deepEqual((JSON.parse(stdout) as Report).results[0]?.conditions.map((c) => [c.status, c.reason]), [['False', 'Silenced']]);
});

test('bad usage exits 64', async () => {
  assert.equal((await runAgent(['check', '--bogus'])).code, 64);
  assert.equal((await runAgent(['check', '--timeout', 'soon'])).code, 64);
  assert.equal((await runAgent(['frobnicate'])).code, 64);
});

test('version --json and config defaults', async () => {
  const version = await runAgent(['version', '--json']);
  assert.equal(version.code, 0);
  assert.deepEqual(Object.keys(JSON.parse(version.stdout) as object), ['version', 'commit', 'node', 'platform', 'arch']);
  const defaults = await runAgent(['config', 'defaults']);
  assert.equal(defaults.code, 0);
  assert.match(defaults.stdout, /^listen: 127\.0\.0\.1:9746$/m);
});

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync, renameSync } from 'node:fs';
import { after, test } from 'node:test';
import type { LogLine } from '../../../src/detectors/npd/log-rules.ts';
import { openLogSource, type LogSource } from '../../../src/detectors/npd/log-sources.ts';
import { createSystemLogMonitor } from '../../../src/detectors/npd/system-log-monitor.ts';
import { createHost } from '../../../src/host/host.ts';
import { createLogger } from '../../../src/log.ts';
import type { DetectorResult } from '../../../src/types.ts';
import { TempRoot } from '../../helpers/host-root.ts';
import { syslogStamp } from '../../helpers/syslog.ts';
import { inlineMonitor, NPD_CONFIG_DIR, referenceMonitor } from './helpers.ts';

const roots: TempRoot[] = [];
after(() => roots.forEach((r) => r.remove()));
const newRoot = (): TempRoot => {
  const r = new TempRoot();
  roots.push(r);
  return r;
};
const signal = new AbortController().signal;

/** Every batch a one-shot read hands out, until the source is caught up. */
async function readAll(source: LogSource): Promise<LogLine[]> {
  const lines: LogLine[] = [];
  for (let batch = await source.read(signal, true); batch !== undefined; batch = await source.read(signal, true)) lines.push(...batch);
  return lines;
}

test("filelog: NPD's kernel-monitor-filelog.json on a kern.log, with its lookback", async () => {
  const root = newRoot();
  const now = Date.now();
  // Lines from kernel-lines.json in Debian's rsyslog kern.log layout; stamps are rewritten to now so the lookback applies.
  root.write(
    '/var/log/kern.log',
    [
      `${syslogStamp(now - 3_600_000)} node-1 kernel: [ 2160.247120] INFO: task dmsetup:2507 blocked for more than 120 seconds.`,
      `${syslogStamp(now - 60_000)} node-1 kernel: [34315.120624] INFO: task jbd2/sda1-8:161 blocked for more than 120 seconds.`,
      `${syslogStamp(now - 30_000)} node-1 kernel: [34316.000000] "echo 0 > /proc/sys/kernel/hung_task_timeout_secs" disables this message.`,
      `${syslogStamp(now - 20_000)} node-1 kernel: [732240.608081] INFO: task docker:71063 blocked for more than 120 seconds.`,
    ].join('\n'),
  );
  const monitor = referenceMonitor('kernel-monitor-filelog.json');
  const detector = createSystemLogMonitor(monitor, { expiryMs: {}, patterns: [] }, { host: createHost({ root: root.dir }), log: createLogger('silent'), nodeName: 'n', mode: 'check', previous: [], silenced: new Set() });
  const result = await detector.probe(signal);
  assert.deepEqual(result.events.map((e) => e.reason), ['TaskHung', 'TaskHung', 'DockerHung'], 'the hour-old line is outside the 5m lookback');
  assert.equal(result.conditions.find((c) => c.type === 'KernelDeadlock')?.status, 'True');
});

test('kmsg: dictionary lines belong to their record, an unterminated last record still counts in a one-shot read', async () => {
  const root = newRoot();
  root.write('/proc/uptime', '100.00 100.00\n');
  root.write('/dev/kmsg', '3,1,99000000,-;EXT4-fs (dm-4): Remounting filesystem read-only\n SUBSYSTEM=block\n DEVICE=b253:4\n3,2,99500000,-;Buffer I/O error on dev sdb, logical block 0, lost async page write');
  const source = await openLogSource(createHost({ root: root.dir }), referenceMonitor('readonly-monitor.json'));
  const lines = await readAll(source);
  await source.close();
  assert.deepEqual(lines.map((l) => l.message), ['EXT4-fs (dm-4): Remounting filesystem read-only', 'Buffer I/O error on dev sdb, logical block 0, lost async page write']);
  const now = Date.now();
  assert.ok(Math.abs(lines[0]!.timestamp - (now - 1000)) < 5000, 'a record 1 s before uptime is 1 s old');
});

test('kmsg in the daemon: a record appended later is picked up, an unfinished one waits for its newline', async () => {
  const root = newRoot();
  root.write('/proc/uptime', '100.00 100.00\n');
  const kmsg = root.write('/dev/kmsg', '6,1,1000,-;Linux version 6.1.0\n');
  const host = createHost({ root: root.dir });
  const detector = createSystemLogMonitor(referenceMonitor('readonly-monitor.json'), { expiryMs: {}, patterns: [] }, { host, log: createLogger('silent'), nodeName: 'n', mode: 'run', previous: [], silenced: new Set() });
  const controller = new AbortController();
  const results: DetectorResult[] = [];
  const watching = detector.watch!((r) => results.push(r), controller.signal);
  await new Promise((r) => setTimeout(r, 400));
  appendFileSync(kmsg, '3,2,99000000,-;EXT4-fs (dm-4): Remounting filesystem read-only\n3,3,99000001,-;EXT4-fs (sdb1): Remounting');
  for (let i = 0; i < 40 && !results.some((r) => r.events.length > 0); i++) await new Promise((r) => setTimeout(r, 100));
  controller.abort();
  await watching;
  const events = results.flatMap((r) => r.events);
  assert.deepEqual(events.map((e) => e.message), ['Node condition ReadonlyFilesystem is now: True, reason: FilesystemIsReadOnly, message: "EXT4-fs (dm-4): Remounting filesystem read-only"']);
  assert.equal(results.at(-1)?.conditions[0]?.status, 'True');
});

test('kmsg in the daemon: a True condition with an expiry clears on time while the log stays quiet, with no record to wake it', async (t) => {
  const root = newRoot();
  root.write('/proc/uptime', '100.00 100.00\n');
  root.write('/dev/kmsg', '3,1,99900000,-;EXT4-fs (dm-4): Remounting filesystem read-only\n');
  const host = createHost({ root: root.dir });
  const detector = createSystemLogMonitor(referenceMonitor('readonly-monitor.json'), { expiryMs: { ReadonlyFilesystem: 1_000 }, patterns: [] }, { host, log: createLogger('silent'), nodeName: 'n', mode: 'run', previous: [], silenced: new Set() });
  const controller = new AbortController();
  const results: DetectorResult[] = [];
  const watching = detector.watch!((r) => results.push(r), controller.signal);
  t.after(() => controller.abort());
  const status = (): string | undefined => results.at(-1)?.conditions.find((c) => c.type === 'ReadonlyFilesystem')?.status;
  for (let i = 0; i < 50 && status() !== 'True'; i++) await new Promise((r) => setTimeout(r, 100));
  assert.equal(status(), 'True');
  // Nothing more is logged: a file is re-checked every 30 s, so only the expiry's own timer clears it within 10 s.
  for (let i = 0; i < 100 && status() !== 'False'; i++) await new Promise((r) => setTimeout(r, 100));
  controller.abort();
  await watching;
  assert.equal(status(), 'False', 'still True 10 s after its 1 s expiry');
});

// One entry in journald's export format, of a boot that began a day before the test. The journal orders entries of one boot by
// their monotonic time, so it must grow with the realtime: a monotonic clock wrapping between two entries (as usec modulo a
// constant did, once in about 16 runs) put the later one before journalctl -f's position, and it was never shown.
const bootUsec = Date.now() * 1000 - 86_400_000_000;
const entry = (usec: number, id: string, message: string): string =>
  `__REALTIME_TIMESTAMP=${usec}\n__MONOTONIC_TIMESTAMP=${usec - bootUsec}\n_BOOT_ID=6c1f2d0e4b1a4f449d6e0a8f3b2c1d00\nMESSAGE=${message}\nSYSLOG_IDENTIFIER=${id}\nPRIORITY=6\n\n`;

test('journald: real journalctl over a real journal, filtered by identifier and lookback', async () => {
  const root = newRoot();
  const now = Date.now() * 1000;
  // systemd's own unit messages as systemd 252 prints them, written into a journal file by systemd-journal-remote.
  const exported =
    entry(now - 3_600_000_000, 'systemd', 'Started kubelet.service - kubelet: The Kubernetes Node Agent.') +
    entry(now - 120_000_000, 'systemd', 'Started kubelet.service - kubelet: The Kubernetes Node Agent.') +
    entry(now - 60_000_000, 'systemd', 'Starting containerd.service - containerd container runtime...') +
    entry(now - 30_000_000, 'kernel', 'Started kubelet.service - kubelet: The Kubernetes Node Agent.');
  const journal = root.path('/var/log/journal/0123456789abcdef0123456789abcdef/system.journal');
  execFileSync('mkdir', ['-p', root.path('/var/log/journal/0123456789abcdef0123456789abcdef')]);
  execFileSync('/lib/systemd/systemd-journal-remote', ['-o', journal, '-'], { input: exported, stdio: ['pipe', 'ignore', 'ignore'] });
  root.script('/usr/bin/journalctl', 'exec /usr/bin/journalctl "$@"');
  const monitor = referenceMonitor('systemd-monitor.json');
  const detector = createSystemLogMonitor(monitor, { expiryMs: {}, patterns: [] }, { host: createHost({ root: root.dir }), log: createLogger('silent'), nodeName: 'n', mode: 'check', previous: [], silenced: new Set() });
  const result = await detector.probe(signal);
  assert.deepEqual(result.events.map((e) => e.reason), ['KubeletStart', 'ContainerdStart']);
});

test('journald in the daemon: one journalctl -f stays open, a new entry comes through it, and it ends with the watch', async () => {
  const root = newRoot();
  const now = Date.now() * 1000;
  const dir = root.path('/var/log/journal/0123456789abcdef0123456789abcdef');
  execFileSync('mkdir', ['-p', dir]);
  // systemd's own unit messages as systemd 252 prints them, written into journal files by systemd-journal-remote. Each file is
  // finished beside the journal and renamed in, as journald rotates: a follower that opens a file systemd-journal-remote is still
  // writing may skip it.
  const journal = (name: string, exported: string): void => {
    const staged = root.path(`/${name}`);
    execFileSync('/lib/systemd/systemd-journal-remote', ['-o', staged, '-'], { input: exported, stdio: ['pipe', 'ignore', 'ignore'] });
    renameSync(staged, `${dir}/${name}`);
  };
  journal('system.journal', entry(now - 60_000_000, 'systemd', 'Started kubelet.service - kubelet: The Kubernetes Node Agent.'));
  // Each start of journalctl leaves its pid here.
  const calls = root.path('/journalctl-calls');
  root.script('/usr/bin/journalctl', `echo $$ >> ${calls}\nexec /usr/bin/journalctl "$@"`);
  const host = createHost({ root: root.dir });
  const detector = createSystemLogMonitor(referenceMonitor('systemd-monitor.json'), { expiryMs: {}, patterns: [] }, { host, log: createLogger('silent'), nodeName: 'n', mode: 'run', previous: [], silenced: new Set() });
  const controller = new AbortController();
  const results: DetectorResult[] = [];
  const watching = detector.watch!((r) => results.push(r), controller.signal);
  const reasons = (): string[] => results.flatMap((r) => r.events.map((e) => e.reason));
  for (let i = 0; i < 200 && !reasons().includes('KubeletStart'); i++) await new Promise((r) => setTimeout(r, 100));
  journal('system@0005f0a1b2c3d4e5-0000000000000001.journal', entry(Date.now() * 1000, 'systemd', 'Starting containerd.service - containerd container runtime...'));
  for (let i = 0; i < 200 && !reasons().includes('ContainerdStart'); i++) await new Promise((r) => setTimeout(r, 100));
  controller.abort();
  await watching;
  assert.deepEqual(reasons(), ['KubeletStart', 'ContainerdStart']);
  const pids = readFileSync(calls, 'utf8').trim().split('\n');
  assert.equal(pids.length, 1, 'journalctl was started once, not once per catch-up');
  assert.equal(existsSync(`/proc/${pids[0]}`), false, 'the follower ends with the watch');
});

test('journald without journalctl on the host is an error the engine reports as unknown', async () => {
  const root = newRoot();
  const monitor = inlineMonitor({ plugin: 'journald', pluginConfig: { source: 'dockerd' }, source: 'd', rules: [] });
  const detector = createSystemLogMonitor(monitor, { expiryMs: {}, patterns: [] }, { host: createHost({ root: root.dir }), log: createLogger('silent'), nodeName: 'n', mode: 'check', previous: [], silenced: new Set() });
  await assert.rejects(detector.probe(signal), /journalctl not found/);
});

const monitorCtx = (root: TempRoot) => ({ host: createHost({ root: root.dir }), log: createLogger('silent'), nodeName: 'n', mode: 'check' as const, previous: [], silenced: new Set<string>() });

test("kmsg as NPD reads it: trailing whitespace trimmed (NPD's own 3.16 'divide error' sample), user-space records and no-lookback backlog dropped, skipList not applied", async () => {
  const root = newRoot();
  root.write('/proc/uptime', '100.00 100.00\n');
  // NPD's test data has this 3.16 line with its trailing space; the second is the same text written from user space (facility 1).
  root.write('/dev/kmsg', '4,1,99000000,-;divide error: 0000 [#1] SMP \n12,2,99100000,-;divide error: 0000 [#1] SMP\n');
  const monitor = (extra: object) =>
    inlineMonitor({ plugin: 'kmsg', source: 'k', skipList: ['divide'], conditions: [], rules: [{ type: 'temporary', reason: 'KernelOops', pattern: 'divide error: 0000 \\[#\\d+\\] SMP' }], ...extra });
  const withLookback = await createSystemLogMonitor(monitor({ lookback: '5m' }), { expiryMs: {}, patterns: [] }, monitorCtx(root)).probe(signal);
  assert.deepEqual(withLookback.events.map((e) => e.message), ['divide error: 0000 [#1] SMP']);
  const without = await createSystemLogMonitor(monitor({}), { expiryMs: {}, patterns: [] }, monitorCtx(root)).probe(signal);
  assert.deepEqual(without.events, [], 'no lookback: nothing already in the buffer counts');
});

test('filelog: no lookback reads none of the file; lines from before this boot or within delay of it are not replayed', async () => {
  const root = newRoot();
  const now = Date.now();
  root.write('/proc/uptime', '600.00 600.00\n');
  root.write(
    '/var/log/kern.log',
    [
      // The same captured line at three moments: before this boot (10 min of uptime), 1 min after boot, and 1 min ago.
      `${syslogStamp(now - 900_000)} node-1 kernel: [34315.120624] INFO: task jbd2/sda1-8:161 blocked for more than 120 seconds.`,
      `${syslogStamp(now - 540_000)} node-1 kernel: [   60.000000] INFO: task jbd2/sda1-8:161 blocked for more than 120 seconds.`,
      `${syslogStamp(now - 60_000)} node-1 kernel: [  540.000000] INFO: task jbd2/sda1-8:161 blocked for more than 120 seconds.`,
      '',
    ].join('\n'),
  );
  const base = JSON.parse(readFileSync(`${NPD_CONFIG_DIR}kernel-monitor-filelog.json`, 'utf8')) as Record<string, unknown>;
  const run = async (overrides: Record<string, unknown>): Promise<number> => {
    const doc: Record<string, unknown> = { ...base, ...overrides };
    if (overrides.lookback === undefined) delete doc.lookback;
    const detector = createSystemLogMonitor(inlineMonitor(doc), { expiryMs: {}, patterns: [] }, monitorCtx(root));
    return (await detector.probe(signal)).events.filter((e) => e.reason === 'TaskHung').length;
  };
  assert.equal(await run({ lookback: '1h' }), 2, 'the line from before this boot is not replayed');
  assert.equal(await run({ lookback: '1h', delay: '2m' }), 1, 'nor the one within delay of boot');
  assert.equal(await run({}), 0, 'no lookback: nothing already in the file');
});

import { Type, type StaticDecode } from '@sinclair/typebox';
import type { Host } from '../host/host.ts';
import { hostStatfs, type FsStats } from '../host/statfs.ts';
import { writeProbe } from '../host/write-probe.ts';
import type { DetectorResult } from '../types.ts';
import { Conditions, tripAfter, type ConditionSpec, type Finding } from './engine/conditions.ts';
import { withDeadline } from '../util/deadline.ts';
import { Duration } from '../util/duration-schema.ts';
import type { DetectorDefinition } from './engine/types.ts';
import { ExecError } from '../errors.ts';
import { compileRe2, type Re2Regex } from '../util/re2.ts';
import { Re2Pattern } from '../util/re2-schema.ts';

// ---------------------------------------------------------------- parsers (pure)

export interface MountEntry {
  device: string;
  mountpoint: string;
  fstype: string;
  options: string[];
}

/** /proc/mounts (fstab(5) format: spaces in fields are written as octal escapes such as \040). */
export function parseMounts(text: string): MountEntry[] {
  const unescape = (s: string): string => s.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
  const mounts: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4) continue;
    mounts.push({ device: unescape(f[0] as string), mountpoint: unescape(f[1] as string), fstype: f[2] as string, options: (f[3] as string).split(',') });
  }
  return mounts;
}

/** The mount a path lives on: the longest mountpoint prefix; the last mount of a mountpoint wins (it hides the others). */
export function containingMount(mounts: readonly MountEntry[], hostPath: string): MountEntry | undefined {
  let best: MountEntry | undefined;
  for (const m of mounts) {
    const prefix = m.mountpoint === '/' ? '/' : `${m.mountpoint}/`;
    if (hostPath !== m.mountpoint && !hostPath.startsWith(prefix)) continue;
    if (best === undefined || m.mountpoint.length >= best.mountpoint.length) best = m;
  }
  return best;
}

export interface BlockStat {
  completions: number;
  inFlight: number;
  ioTicks: number;
}

/**
 * /sys/block/<dev>/stat (Documentation/block/stat.rst): 11 fields up to 4.18, 15 with discards
 * (4.18+), 17 with flushes (5.5+). Completed requests are fields 1, 5, 12 and 16; in_flight is 9;
 * io_ticks is 10.
 */
export function parseBlockStat(text: string): BlockStat | undefined {
  const f = text.trim().split(/\s+/).map(Number);
  if (f.length < 11 || f.some((n) => !Number.isFinite(n))) return undefined;
  const at = (i: number): number => f[i - 1] ?? 0;
  return { completions: at(1) + at(5) + at(12) + at(16), inFlight: at(9), ioTicks: at(10) };
}

/**
 * A device is stalled when it had requests in flight at both reads and completed none in between.
 * io_ticks is not used: since 5.0 reading the stat file itself advances it while requests are in flight.
 */
export function isStalled(before: BlockStat, after: BlockStat): boolean {
  return before.inFlight > 0 && after.inFlight > 0 && after.completions === before.completions;
}

export interface Usage {
  usedPercent: number;
  inodesUsedPercent: number | undefined;
}

/** As df computes it: used / (used + available to users), so reserved blocks count as unavailable. */
export function usageOf(s: FsStats): Usage | undefined {
  const used = s.blocks - s.bfree;
  const total = used + s.bavail;
  if (s.blocks <= 0 || total <= 0) return undefined;
  // Filesystems without a fixed inode table (btrfs reports 0 files) have no inode limit to hit.
  const inodesUsedPercent = s.files > 0 ? ((s.files - s.ffree) / s.files) * 100 : undefined;
  return { usedPercent: (used / total) * 100, inodesUsedPercent };
}

export interface SmartDevice {
  name: string;
  type: string;
}

/** `smartctl --scan-open --json`: the devices smartctl could open, with the -d type it chose. */
export function parseSmartScan(json: string): SmartDevice[] {
  const doc = JSON.parse(json) as { devices?: { name?: unknown; type?: unknown }[] };
  return (doc.devices ?? [])
    .filter((d) => typeof d.name === 'string')
    .map((d) => ({ name: d.name as string, type: typeof d.type === 'string' ? d.type : 'auto' }));
}

export interface SmartHealth {
  /** smart_status.passed; undefined when smartctl could not tell (device open failed, no SMART). */
  passed: boolean | undefined;
  exitStatus: number;
  model: string | undefined;
  failing: string[];
  error: string | undefined;
}

/**
 * `smartctl -H -A --json DEV`. exit_status is smartctl's bit mask: bit 1 open failed, bit 2 a SMART
 * command failed, bit 3 "DISK FAILING", bit 4 a pre-fail attribute at or below its threshold now.
 */
export function parseSmartHealth(json: string): SmartHealth {
  const doc = JSON.parse(json) as {
    smartctl?: { exit_status?: number; messages?: { string?: string; severity?: string }[] };
    smart_status?: { passed?: boolean };
    model_name?: string;
    scsi_model_name?: string;
    ata_smart_attributes?: { table?: { name?: string; when_failed?: string }[] };
  };
  const exitStatus = doc.smartctl?.exit_status ?? 0;
  const errors = (doc.smartctl?.messages ?? []).filter((m) => m.severity === 'error').map((m) => m.string ?? '');
  const failing = (doc.ata_smart_attributes?.table ?? []).filter((a) => a.when_failed === 'now').map((a) => a.name ?? '?');
  let passed = doc.smart_status?.passed;
  if ((exitStatus & 8) !== 0) passed = false;
  return {
    passed,
    exitStatus,
    model: doc.model_name ?? doc.scsi_model_name,
    failing,
    error: errors.length > 0 ? errors.join('; ') : (exitStatus & 2) !== 0 ? 'device open failed' : undefined,
  };
}

// ---------------------------------------------------------------- detector

export const DEFAULT_IGNORED_FS_TYPES = [
  // kernel and memory-backed pseudo filesystems: no disk behind them
  'proc', 'sysfs', 'tmpfs', 'devtmpfs', 'devpts', 'ramfs', 'cgroup', 'cgroup2', 'nsfs', 'mqueue', 'securityfs',
  'debugfs', 'tracefs', 'pstore', 'bpf', 'configfs', 'fusectl', 'hugetlbfs', 'autofs', 'binfmt_misc', 'rpc_pipefs',
  'efivarfs', 'selinuxfs', 'nfsd', 'fuse.lxcfs', 'fuse.gvfsd-fuse', 'fuse.portal',
  // container layers (their usage is the backing filesystem's, checked on its own mount)
  'overlay', 'aufs', 'shiftfs',
  // read-only images are always full by design
  'squashfs', 'iso9660', 'erofs',
  // network filesystems: statfs blocks on a dead server, and a full share is not this node's disk
  'nfs', 'nfs4', 'cifs', 'smb3', 'ceph', 'glusterfs', 'fuse.sshfs', 'fuse.s3fs',
];

const configSchema = Type.Object(
  {
    diskUsagePercent: Type.Number({ minimum: 1, maximum: 100, default: 95, description: 'DiskFull when a filesystem is at least this full (df Use%)' }),
    inodeUsagePercent: Type.Number({ minimum: 1, maximum: 100, default: 95, description: 'InodesExhausted when at least this share of inodes is used' }),
    ignoreFsTypes: Type.Array(Type.String(), { default: DEFAULT_IGNORED_FS_TYPES, description: 'Filesystem types never checked for usage (pseudo, overlay, image and network filesystems)' }),
    ignoreMountPrefixes: Type.Array(Type.String({ pattern: '^/' }), {
      default: ['/proc/', '/sys/', '/dev/', '/run/containerd/', '/run/docker/', '/var/lib/kubelet/pods/', '/var/lib/kubelet/plugins/', '/var/lib/docker/overlay2/', '/var/lib/containerd/io.containerd.', '/snap/'],
      description: 'Mountpoints under these prefixes are not checked for usage (pod volumes and container layers are not the node disk)',
    }),
    statfsTimeout: Duration({ description: 'Deadline of one statfs call', default: '2s', min: '100ms', max: '1h' }),
    readWritePaths: Type.Array(Type.String({ pattern: '^/' }), {
      default: ['/var/lib/kubelet', '/var/lib/containerd', '/var/lib/docker', '/var/log'],
      description: 'Host paths that must be writable: the filesystem holding each must not be mounted ro',
    }),
    writeProbeDirs: Type.Array(Type.String({ pattern: '^/' }), {
      default: ['/var/lib/kubelet'],
      description: 'Directories where the daemon writes, fsyncs and removes a small file (never in `check`); missing ones are skipped',
    }),
    writeProbeTimeout: Duration({ description: 'Deadline of one write probe', default: '5s', min: '100ms', max: '1h' }),
    ioStall: Type.Boolean({ default: true, description: 'Look for block devices with requests in flight and no completions' }),
    ioStallInterval: Duration({ description: 'Time between the two reads of /sys/block/*/stat', default: '1s', min: '1ms', max: '1m' }),
    ignoreBlockDevices: Re2Pattern({ default: '^(loop|ram|zram|fd|sr|nbd)[0-9]*$', description: 'RE2 pattern of block device names not checked for stalls' }),
    smart: Type.Boolean({ default: true, description: 'Check SMART health with smartctl when it is installed' }),
    smartTimeout: Duration({ description: 'Deadline of one smartctl call', default: '10s', max: '1h' }),
    failuresToTrip: Type.Integer({ minimum: 1, default: 2, description: 'Consecutive probes with a problem before its condition turns (the daemon; check takes one look)' }),
    successesToClear: Type.Integer({ minimum: 1, default: 1, description: 'Consecutive good probes before a condition clears' }),
  },
  { additionalProperties: false },
);

export type StorageConfig = StaticDecode<typeof configSchema>;

export const STORAGE_CONDITIONS: readonly ConditionSpec[] = [
  { type: 'DiskFull', okReason: 'DiskHasFreeSpace', okMessage: 'every checked filesystem has free space' },
  { type: 'InodesExhausted', okReason: 'DiskHasFreeInodes', okMessage: 'every checked filesystem has free inodes' },
  // NPD's condition and reasons (readonly-monitor.json), so rules written for NPD keep working.
  { type: 'ReadonlyFilesystem', okReason: 'FilesystemIsNotReadOnly', okMessage: 'Filesystem is not read-only' },
  { type: 'IOStall', okReason: 'NoIOStall', okMessage: 'block devices complete their requests' },
  { type: 'DiskUnhealthy', okReason: 'DisksHealthy', okMessage: 'SMART health passed (or smartctl is not installed)' },
];

const pct = (n: number): string => `${n.toFixed(1)}%`;

async function readBlockStats(host: Host, ignore: Re2Regex): Promise<Map<string, BlockStat>> {
  const stats = new Map<string, BlockStat>();
  let names: string[];
  try {
    names = await host.readDir('/sys/block');
  } catch {
    return stats;
  }
  for (const name of names) {
    if (ignore.test(name)) continue;
    const text = await host.tryReadText(`/sys/block/${name}/stat`).catch(() => undefined);
    const stat = text === undefined ? undefined : parseBlockStat(text);
    if (stat !== undefined) stats.set(name, stat);
  }
  return stats;
}

export const storage: DetectorDefinition<typeof configSchema> = {
  description: 'Filesystem space and inodes, read-only filesystems, stalled block devices and SMART health',
  configSchema,
  defaults: { enabled: true, interval: '60s', timeout: '25s' },
  create(config, ctx) {
    const { host } = ctx;
    const tracker = new Conditions(STORAGE_CONDITIONS, ctx, { failuresToTrip: tripAfter(ctx.mode, config.failuresToTrip), successesToClear: config.successesToClear });
    const ignoredTypes = new Set(config.ignoreFsTypes);
    const ignoredDevices = compileRe2(config.ignoreBlockDevices);
    const statfsMs = config.statfsTimeout;

    const checkUsage = async (mounts: MountEntry[], findings: Finding[], notes: string[], signal: AbortSignal): Promise<void> => {
      const byMountpoint = new Map<string, MountEntry>();
      for (const m of mounts) byMountpoint.set(m.mountpoint, m);
      for (const m of byMountpoint.values()) {
        if (ignoredTypes.has(m.fstype) || config.ignoreMountPrefixes.some((p) => m.mountpoint.startsWith(p))) continue;
        let stats: FsStats | undefined;
        try {
          stats = await withDeadline(hostStatfs(host, m.mountpoint), statfsMs, host.clock, `statfs ${m.mountpoint}`, signal);
        } catch (err) {
          notes.push(`statfs ${m.mountpoint}: ${err instanceof Error ? err.message : String(err)}`);
          continue;
        }
        const usage = stats === undefined ? undefined : usageOf(stats);
        if (usage === undefined) continue;
        if (usage.usedPercent >= config.diskUsagePercent) {
          findings.push({ type: 'DiskFull', reason: 'DiskSpaceLow', key: m.mountpoint, message: `${m.mountpoint} (${m.device}, ${m.fstype}) is ${pct(usage.usedPercent)} full (threshold ${config.diskUsagePercent}%)` });
        }
        if (usage.inodesUsedPercent !== undefined && usage.inodesUsedPercent >= config.inodeUsagePercent) {
          findings.push({ type: 'InodesExhausted', reason: 'InodesLow', key: m.mountpoint, message: `${m.mountpoint} (${m.device}, ${m.fstype}) has ${pct(usage.inodesUsedPercent)} of its inodes in use (threshold ${config.inodeUsagePercent}%)` });
        }
      }
    };

    const checkReadOnly = async (mounts: MountEntry[], findings: Finding[], notes: string[]): Promise<void> => {
      const flagged = new Set<string>();
      for (const p of config.readWritePaths) {
        const m = containingMount(mounts, p);
        if (m === undefined || !m.options.includes('ro') || flagged.has(m.mountpoint)) continue;
        flagged.add(m.mountpoint);
        findings.push({ type: 'ReadonlyFilesystem', reason: 'FilesystemIsReadOnly', key: m.mountpoint, message: `${m.mountpoint} (${m.device}, ${m.fstype}), which holds ${p}, is mounted read-only` });
      }
      // check is read-only: the write probe runs in the daemon only.
      if (ctx.mode !== 'run') return;
      for (const dir of config.writeProbeDirs) {
        if (!(await host.exists(dir))) continue;
        const probeMs = config.writeProbeTimeout;
        let result;
        try {
          result = await withDeadline(writeProbe(host, dir), probeMs, host.clock, `write probe in ${dir}`);
        } catch (err) {
          findings.push({ type: 'IOStall', reason: 'WriteProbeHung', key: dir, message: `writing and syncing a small file in ${dir} took longer than ${probeMs}ms` });
          notes.push(err instanceof Error ? err.message : String(err));
          continue;
        }
        if (result.ok) continue;
        if (result.code === 'EROFS') {
          findings.push({ type: 'ReadonlyFilesystem', reason: 'FilesystemIsReadOnly', key: dir, message: `write probe in ${dir} failed: ${result.message}` });
        } else if (result.code === 'EIO') {
          findings.push({ type: 'ReadonlyFilesystem', reason: 'WriteProbeFailed', key: dir, message: `write probe in ${dir} failed with an I/O error: ${result.message}` });
        } else if (result.code !== 'ENOSPC' && result.code !== 'EDQUOT') {
          // ENOSPC is DiskFull's to report; permissions and the like say nothing about the disk.
          notes.push(`write probe in ${dir}: ${result.message}`);
        }
      }
    };

    const checkStalls = async (findings: Finding[], signal: AbortSignal): Promise<void> => {
      const before = await readBlockStats(host, ignoredDevices);
      if (![...before.values()].some((s) => s.inFlight > 0)) return;
      const intervalMs = config.ioStallInterval;
      await host.clock.sleep(intervalMs, signal);
      const after = await readBlockStats(host, ignoredDevices);
      for (const [name, b] of before) {
        const a = after.get(name);
        if (a !== undefined && isStalled(b, a)) {
          findings.push({ type: 'IOStall', reason: 'IORequestsStalled', key: name, message: `/dev/${name}: ${a.inFlight} request(s) in flight and none completed in ${intervalMs}ms` });
        }
      }
    };

    const checkSmart = async (findings: Finding[], unknown: Map<string, string>, notes: string[], signal: AbortSignal): Promise<void> => {
      const timeoutMs = config.smartTimeout;
      const scan = await host.exec(['smartctl', '--scan-open', '--json'], { timeoutMs, signal, cachedLookup: true });
      if (scan.notFound) {
        notes.push('smartctl is not installed: SMART health not checked');
        return;
      }
      let devices: SmartDevice[];
      try {
        devices = parseSmartScan(scan.stdout);
      } catch {
        unknown.set('DiskUnhealthy', `smartctl --scan-open --json gave no JSON${scan.exitCode === 0 ? '' : ` (${new ExecError(scan).message})`}`);
        return;
      }
      const unreadable: string[] = [];
      for (const dev of devices) {
        const run = await host.exec(['smartctl', '-H', '-A', '--json', '-d', dev.type, dev.name], { timeoutMs, signal, cachedLookup: true });
        if (run.timedOut) {
          unreadable.push(new ExecError(run).message);
          continue;
        }
        let health: SmartHealth;
        try {
          health = parseSmartHealth(run.stdout);
        } catch {
          unreadable.push(`${dev.name}: no JSON from smartctl${run.exitCode === 0 ? '' : ` (${new ExecError(run).message})`}`);
          continue;
        }
        if (health.passed === false) {
          const attrs = health.failing.length > 0 ? `; failing now: ${health.failing.join(', ')}` : '';
          findings.push({ type: 'DiskUnhealthy', reason: 'SmartHealthFailed', key: dev.name, message: `${dev.name}${health.model === undefined ? '' : ` (${health.model})`}: SMART overall-health self-assessment FAILED${attrs}` });
        } else if (health.passed === undefined) {
          unreadable.push(`${dev.name}: ${health.error ?? 'no SMART status'}`);
        }
      }
      if (unreadable.length > 0 && unreadable.length === devices.length) unknown.set('DiskUnhealthy', unreadable.join('; '));
      else notes.push(...unreadable);
    };

    return {
      async probe(signal): Promise<DetectorResult> {
        const findings: Finding[] = [];
        const unknown = new Map<string, string>();
        const notes: string[] = [];
        const mountsText = await host.tryReadText('/proc/mounts');
        if (mountsText === undefined) {
          for (const type of ['DiskFull', 'InodesExhausted', 'ReadonlyFilesystem']) unknown.set(type, '/proc/mounts is not readable');
        } else {
          const mounts = parseMounts(mountsText);
          await checkUsage(mounts, findings, notes, signal);
          await checkReadOnly(mounts, findings, notes);
        }
        if (config.ioStall) await checkStalls(findings, signal);
        if (config.smart) await checkSmart(findings, unknown, notes, signal);
        if (notes.length > 0) ctx.log.debug({ notes }, 'Storage checks skipped');
        const { conditions, events } = tracker.update({ findings, unknown });
        const unknownText = [...unknown.entries()].map(([t, m]) => `${t}: ${m}`).join('; ');
        return { conditions, events, ...(unknownText === '' ? {} : { unknown: unknownText }) };
      },
    };
  },
};

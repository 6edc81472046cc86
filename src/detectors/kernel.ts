import { Type, type StaticDecode } from '@sinclair/typebox';
import { errorMessage } from '../errors.ts';
import { isErrno, type Host } from '../host/host.ts';
import type { Condition, DetectorResult, ProblemEvent, Severity } from '../types.ts';
import { CountWindow, waitOrExpire } from './engine/window.ts';
import type { Detector, DetectorContext, DetectorDefinition } from './engine/types.ts';
import { KernelLog, KMSG_PATH } from './engine/kmsg.ts';
import { compileRe2, type Re2Regex } from '../util/re2.ts';
import { Duration } from '../util/duration-schema.ts';
import { Re2Pattern } from '../util/re2-schema.ts';
import { detach } from '../util/strings.ts';

// ---------------------------------------------------------------- the rule catalogue (data)

/**
 * Kernel generations whose format a rule was checked against on a real captured line
 * (test/detectors/kernel.test.ts holds one per generation; '3.10' means 3.10 and older).
 * An empty list: the pattern follows the kernel source or NPD's rule, no capture at hand yet.
 */
export type Generation = '3.10' | '4.x' | '5.x' | '6.x';

export type ConditionType = 'KernelDeadlock' | 'ReadonlyFilesystem' | 'XfsShutdown' | 'CperHardwareErrorFatal';

export interface KernelRule {
  id: string;
  /**
   * event: a temporary problem (an Event); condition: sets a permanent condition True;
   * context: no problem by itself, remembered to describe a later record (OOM victim's cgroup).
   */
  kind: 'event' | 'condition' | 'context';
  reason: string;
  condition?: ConditionType;
  /** A record must contain one of these before the pattern is tried: the cheap prefilter. */
  literals: readonly string[];
  /** RE2 syntax, compiled by compileRe2 (linear time on every engine it picks). */
  pattern: string;
  generations: readonly Generation[];
  /** Named group whose value keys count-in-window thresholds (one count per device or interface). */
  key?: string;
  /** Named group holding a block device name, checked against `ignoreDevices`. */
  device?: string;
  /** Severity of the event; info never marks the node. */
  severity?: Severity;
}

/**
 * Evaluated in order; the first rule that matches a record wins, so specific rules come
 * before general ones (XFS shutdown before other XFS errors, EDAC read errors before other
 * corrected errors). Only records from the kernel itself (syslog facility 0) are matched:
 * anything userspace writes to /dev/kmsg cannot raise a kernel problem.
 */
export const KERNEL_RULES: readonly KernelRule[] = [
  // kernel/hung_task.c, the same text from 2.6 to 6.x. Counts toward KernelDeadlock.
  { id: 'hung-task', kind: 'event', reason: 'TaskHung', literals: ['blocked for more than'], pattern: 'INFO: task (?P<comm>.+):(?P<pid>\\d+) blocked for more than (?P<secs>\\d+) seconds', generations: ['3.10', '4.x', '5.x', '6.x'] },
  // 3.10: "BUG: soft lockup - CPU#n"; 4.x: "NMI watchdog: BUG: soft lockup"; 4.15+: "watchdog: BUG: soft lockup".
  { id: 'soft-lockup', kind: 'event', reason: 'SoftLockup', literals: ['BUG: soft lockup'], pattern: 'BUG: soft lockup - CPU#(?P<cpu>\\d+) stuck for (?P<secs>\\d+)s!', generations: ['3.10', '4.x', '5.x'] },
  { id: 'hard-lockup', kind: 'event', reason: 'HardLockup', literals: ['hard LOCKUP', 'Hard LOCKUP'], pattern: 'Watchdog detected hard LOCKUP on cpu \\d+|Kernel panic - not syncing: Hard LOCKUP', generations: ['4.x'] },
  // 3.10/4.x: "INFO: rcu_sched self-detected stall on CPU"; 5.x+: "rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:".
  { id: 'rcu-stall', kind: 'event', reason: 'RCUStall', literals: ['INFO: rcu_'], pattern: 'INFO: rcu_(?:sched|preempt|bh)(?:_state)? (?:self-detected stall|detected stall|detected expedited stall)', generations: ['3.10', '4.x', '5.x', '6.x'] },
  // x86 page faults: up to 4.x "BUG: unable to handle kernel NULL pointer dereference at"; 5.x+ "BUG: kernel NULL pointer dereference, address:".
  { id: 'oops-null-old', kind: 'event', reason: 'KernelOops', literals: ['BUG: unable to handle kernel'], pattern: 'BUG: unable to handle kernel (?:NULL pointer dereference|paging request) at', generations: ['4.x'] },
  { id: 'oops-null', kind: 'event', reason: 'KernelOops', literals: ['BUG: kernel NULL pointer dereference', 'BUG: unable to handle page fault'], pattern: 'BUG: kernel NULL pointer dereference, address:|BUG: unable to handle page fault for address:', generations: ['5.x', '6.x'] },
  // "traps: x[123] general protection fault ip:…" is a user process fault and has no "[#n]": it does not match.
  { id: 'gpf', kind: 'event', reason: 'KernelOops', literals: ['general protection fault'], pattern: 'general protection fault(?:, probably for non-canonical address 0x[0-9a-f]+)?: [0-9a-f]+ \\[#\\d+\\]', generations: ['5.x'] },
  { id: 'kernel-bug', kind: 'event', reason: 'KernelOops', literals: ['kernel BUG at'], pattern: 'kernel BUG at \\S+:\\d+!', generations: [] },
  { id: 'divide-error', kind: 'event', reason: 'KernelOops', literals: ['divide error: '], pattern: 'divide error: [0-9a-f]+ \\[#\\d+\\]', generations: ['4.x', '5.x', '6.x'] },
  // x86 die() banners other than the page-fault and gpf ones; 6.x prefixes every banner with "Oops: ".
  { id: 'x86-die', kind: 'event', reason: 'KernelOops', literals: ['invalid opcode: ', 'stack segment: ', 'double fault: '], pattern: '(?:invalid opcode|stack segment|double fault): [0-9a-f]+ \\[#\\d+\\]', generations: ['6.x'] },
  // arm and arm64 die(): "Internal error: <reason>: <esr> [#n]" for every reason, not only Oops
  // (Oops - BUG, SP/PC alignment exception, synchronous external abort, BRK handler, bad mode, …).
  // XFS's "Internal error XFS_WANT_CORRUPTED…" has no colon and no [#n].
  { id: 'arm-die', kind: 'event', reason: 'KernelOops', literals: ['Internal error: '], pattern: 'Internal error: [^\\[]+\\[#\\d+\\]', generations: ['3.10', '5.x', '6.x'] },
  // OOM: the victim line is "Killed process" in every generation; 4.19+ print the memcg in an oom-kill: line
  // just before it, older kernels a "Task in X killed as a result of limit of Y" line in the dump header.
  { id: 'oom-kill-summary', kind: 'context', reason: 'OOMKilling', literals: ['oom-kill:constraint='], pattern: 'oom-kill:constraint=(?P<constraint>[A-Z_]+),.*task_memcg=(?P<memcg>[^,]*),task=(?P<task>[^,]*),pid=(?P<pid>\\d+)', generations: ['5.x'] },
  { id: 'oom-task-in', kind: 'context', reason: 'OOMKilling', literals: ['killed as a result of limit of'], pattern: 'Task in (?P<memcg>\\S+) killed as a result of limit of (?P<limit>\\S+)', generations: ['3.10', '4.x'] },
  { id: 'oom-select', kind: 'context', reason: 'OOMKilling', literals: ['of memory: Kill process'], pattern: '(?P<scope>Memory cgroup out of memory|Out of memory): Kill process (?P<pid>\\d+)', generations: ['3.10', '4.x'] },
  { id: 'oom-killed', kind: 'event', reason: 'OOMKilling', literals: ['Killed process '], pattern: 'Killed process (?P<pid>\\d+)(?:, UID \\d+,)? \\((?P<comm>[^)]*)\\)', generations: ['3.10', '4.x', '5.x', '6.x'] },
  { id: 'unregister-netdevice', kind: 'event', reason: 'UnregisterNetDevice', literals: ['unregister_netdevice: waiting for'], pattern: 'unregister_netdevice: waiting for (?P<dev>\\S+) to become free\\. Usage count = \\d+', key: 'dev', generations: ['5.x'] },
  // Filesystems. ext4 (and ext3/ext2) remount read-only on errors=remount-ro; btrfs forces read-only on an aborted transaction.
  { id: 'ext4-remount-ro', kind: 'condition', condition: 'ReadonlyFilesystem', reason: 'FilesystemIsReadOnly', literals: ['Remounting filesystem read-only'], pattern: 'Remounting filesystem read-only', generations: ['5.x'] },
  { id: 'btrfs-forced-ro', kind: 'condition', condition: 'ReadonlyFilesystem', reason: 'FilesystemIsReadOnly', literals: ['forced readonly'], pattern: 'BTRFS (?:info )?\\(device [^)]*\\): forced readonly', generations: ['5.x', '6.x'] },
  // Up to 5.14 "… Shutting down filesystem"; 5.15 adds a trailing dot; 6.x also "Filesystem has been shut down due to …".
  { id: 'xfs-shutdown', kind: 'condition', condition: 'XfsShutdown', reason: 'XfsHasShutdown', literals: ['Shutting down filesystem', 'Filesystem has been shut down'], pattern: 'XFS \\([^)]+\\): .*(?:Shutting down filesystem|Filesystem has been shut down)', generations: ['4.x', '6.x'] },
  { id: 'ext4-error', kind: 'event', reason: 'Ext4Error', literals: ['EXT4-fs error'], pattern: 'EXT4-fs error ', generations: ['5.x'] },
  { id: 'ext4-warning', kind: 'event', reason: 'Ext4Warning', literals: ['EXT4-fs warning'], pattern: 'EXT4-fs warning ', generations: [] },
  { id: 'xfs-error', kind: 'event', reason: 'XfsError', literals: ['XFS'], pattern: 'XFS(?: \\([^)]+\\))?: (?:metadata I/O error|Metadata corruption detected|Metadata CRC error|Internal error|Corruption detected|Corruption of in-memory data|log I/O error)', generations: ['3.10', '5.x'] },
  { id: 'btrfs-error', kind: 'event', reason: 'BtrfsError', literals: ['BTRFS'], pattern: 'BTRFS:? (?:error|critical) \\(device [^)]*\\)', generations: ['5.x'] },
  // Block layer. 3.10 "end_request: I/O error"; 4.3-5.x "blk_update_request: I/O error" (4.19 also "print_req_error:");
  // 5.18+ "I/O error, dev X, sector N op …"; "critical medium error" for media errors.
  { id: 'buffer-io-error', kind: 'event', reason: 'IOError', literals: ['Buffer I/O error'], pattern: 'Buffer I/O error on dev(?:ice)? (?P<dev>[^, ]+)', device: 'dev', key: 'dev', generations: ['3.10', '5.x', '6.x'] },
  { id: 'block-io-error', kind: 'event', reason: 'BlockIOError', literals: ['error, dev '], pattern: '(?:I/O|critical medium|critical target) error, dev (?P<dev>[^, ]+), sector', device: 'dev', key: 'dev', generations: ['3.10', '4.x', '5.x', '6.x'] },
  // NVMe: "I/O 12 QID 5 timeout, aborting|reset controller|disable controller"; 6.x adds "I/O tag …".
  { id: 'nvme-timeout', kind: 'event', reason: 'NVMeTimeout', literals: [' QID '], pattern: 'nvme (?P<ctrl>nvme\\d+): I/O (?:tag )?\\d+ .*QID \\d+ timeout', key: 'ctrl', generations: ['4.x', '5.x'] },
  { id: 'nvme-reset', kind: 'event', reason: 'NVMeControllerReset', literals: ['nvme nvme'], pattern: 'nvme (?P<ctrl>nvme\\d+): (?:controller is down; will reset|Removing after probe failure|Device not ready; aborting reset)', key: 'ctrl', generations: ['4.x', '6.x'] },
  { id: 'scsi-timeout', kind: 'event', reason: 'SCSITimeout', literals: ['DID_TIME_OUT', 'timing out command'], pattern: 'hostbyte=DID_TIME_OUT|timing out command, waited \\d+s', generations: [] },
  { id: 'scsi-offline', kind: 'event', reason: 'SCSIDeviceOffline', literals: ['Device offlined'], pattern: 'Device offlined - not ready after error recovery', generations: [] },
  // Memory. EDAC: "EDAC MC0: 1 CE memory read error on …" (3.x+); older drivers "EDAC MC0: 4 CE error on …".
  { id: 'edac-ue', kind: 'event', reason: 'UncorrectableMemoryError', literals: ['EDAC MC'], pattern: 'EDAC MC\\d+: (?:\\d+ )?UE ', generations: [] },
  { id: 'edac-ce-read', kind: 'event', reason: 'MemoryReadError', literals: ['CE memory read error'], pattern: 'CE memory read error', generations: ['4.x'] },
  { id: 'edac-ce', kind: 'event', reason: 'CorrectableMemoryError', literals: ['EDAC MC'], pattern: 'EDAC MC\\d+: (?:\\d+ )?CE ', generations: ['4.x'] },
  // UEFI CPER records (ghes), as NPD's kernel-monitor.json.
  { id: 'cper-fatal', kind: 'condition', condition: 'CperHardwareErrorFatal', reason: 'CperHardwareErrorFatal', literals: ['event severity: fatal'], pattern: '\\[Hardware Error\\]: event severity: fatal$', generations: [] },
  { id: 'cper-recoverable', kind: 'event', reason: 'CperHardwareErrorRecoverable', literals: ['event severity: recoverable'], pattern: '\\[Hardware Error\\]: event severity: recoverable$', generations: [] },
  { id: 'cper-corrected', kind: 'event', reason: 'CperHardwareErrorCorrected', literals: ['event severity: corrected'], pattern: '\\[Hardware Error\\]: event severity: corrected$', generations: ['6.x'] },
  // Logged for thermal events as well as for memory errors (which EDAC classifies): information only.
  { id: 'mce-logged', kind: 'event', reason: 'MachineCheckEvent', severity: 'info', literals: ['Machine check events logged'], pattern: '\\[Hardware Error\\]: Machine check events logged', generations: ['4.x'] },
  // NIC link loss, counted per interface: a flap is linkFlapCount downs within linkFlapWindow.
  { id: 'nic-link-down', kind: 'event', reason: 'NICLinkFlapping', literals: ['NIC Link is Down'], pattern: '(?P<ifname>[^ :]+):? NIC Link is Down', key: 'ifname', generations: ['4.x'] },
  { id: 'bond-link-down', kind: 'event', reason: 'NICLinkFlapping', literals: ['link status definitely down for interface'], pattern: 'link status definitely down for interface (?P<ifname>[^ ,]+)', key: 'ifname', generations: [] },
  { id: 'bond-slave-down', kind: 'event', reason: 'NICLinkFlapping', literals: ['link status definitely down, disabling slave'], pattern: '\\(slave (?P<ifname>[^)]+)\\): link status definitely down, disabling slave', key: 'ifname', generations: [] },
  // net/sched/sch_generic.c dev_watchdog(): up to 6.7 "NETDEV WATCHDOG: eth0 (drv): transmit queue 0 timed out",
  // 6.8 adds " 5368 ms"; 6.9+ prints it with netdev_crit: "<drv> <bus> eth0: NETDEV WATCHDOG: CPU: 1: transmit queue 0 timed out 5500 ms".
  { id: 'netdev-watchdog', kind: 'event', reason: 'NICTransmitTimeout', literals: ['NETDEV WATCHDOG: '], pattern: 'NETDEV WATCHDOG: (?P<ifname>\\S+) \\([^)]*\\): transmit queue (?P<queue>\\d+) timed out', key: 'ifname', generations: ['3.10', '5.x', '6.x'] },
  { id: 'netdev-watchdog-cpu', kind: 'event', reason: 'NICTransmitTimeout', literals: ['NETDEV WATCHDOG: CPU: '], pattern: '(?P<ifname>[^ :]+): NETDEV WATCHDOG: CPU: \\d+: transmit queue (?P<queue>\\d+) timed out', key: 'ifname', generations: ['6.x'] },
  // WARN() splats, kernel/panic.c __warn(): 2.6 "WARNING: at file:line func+0x…/0x…()", 3.10+ "WARNING: CPU: n PID: n at file:line func+0x…",
  // without the "()" from 4.x. The lines that follow (Modules linked in, the trace) are not matched.
  { id: 'kernel-warning', kind: 'event', reason: 'KernelWarning', literals: ['WARNING: '], pattern: 'WARNING: (?:CPU: \\d+ PID: \\d+ )?at (?P<where>\\S+:\\d+) (?P<func>[^ +]+)\\+0x[0-9a-f]+/0x[0-9a-f]+', generations: ['3.10', '5.x', '6.x'] },
  { id: 'conntrack-full', kind: 'event', reason: 'ConntrackTableFull', literals: ['table full, dropping packet'], pattern: 'nf_conntrack: (?:nf_conntrack: )?table full, dropping packet', generations: ['3.10', '4.x'] },
  { id: 'thermal-throttle', kind: 'event', reason: 'ThermalThrottling', literals: ['above threshold'], pattern: '(?:Core|Package) temperature (?:is )?above threshold, (?:cpu|CPU) clock (?:is )?throttled', generations: ['4.x', '5.x'] },
];

export interface ConditionSpec {
  type: ConditionType;
  okReason: string;
  okMessage: string;
}

/** The detector's conditions, with NPD's own types, healthy reasons and messages. */
export const KERNEL_CONDITIONS: readonly ConditionSpec[] = [
  { type: 'KernelDeadlock', okReason: 'KernelHasNoDeadlock', okMessage: 'kernel has no deadlock' },
  { type: 'ReadonlyFilesystem', okReason: 'FilesystemIsNotReadOnly', okMessage: 'Filesystem is not read-only' },
  { type: 'XfsShutdown', okReason: 'XfsHasNotShutDown', okMessage: 'XFS has not shutdown' },
  { type: 'CperHardwareErrorFatal', okReason: 'CperHardwareHasNoFatalError', okMessage: 'UEFI CPER has no fatal error' },
];

// ---------------------------------------------------------------- configuration


const Threshold = Type.Object(
  {
    count: Type.Integer({ minimum: 1, description: 'Occurrences (per device or interface where the rule has one) that make a warning' }),
    window: Duration({ max: '168h', description: 'Within this long' }),
  },
  { additionalProperties: false },
);

export const kernelConfigSchema = Type.Object(
  {
    lookback: Duration({ description: 'How far back the kernel log is read for events when the detector starts (check, daemon start); 0 = the whole buffer. Conditions look at the whole buffer of this boot, bounded by their expiry', default: '5m', min: '0', max: '168h' }),
    deadlockHungTasks: Type.Integer({ minimum: 1, default: 3, description: 'Hung-task reports within deadlockWindow that set KernelDeadlock (reason TooManyHungTasks)' }),
    deadlockWindow: Duration({ description: 'Window for deadlockHungTasks', default: '10m', max: '168h' }),
    deadlockTasks: Type.Array(Type.String({ minLength: 1 }), {
      default: ['docker', 'dockerd', 'containerd'],
      description: 'Task names whose single hung-task report sets KernelDeadlock at once (reason DockerHung for docker*, else ContainerRuntimeHung)',
    }),
    linkFlapCount: Type.Integer({ minimum: 1, default: 3, description: 'Link-down reports of one interface within linkFlapWindow that raise NICLinkFlapping' }),
    linkFlapWindow: Duration({ description: 'Window for linkFlapCount', default: '10m', max: '168h' }),
    thresholds: Type.Record(Type.String(), Threshold, {
      default: {},
      description: 'Reason -> {count, window}: how many matches make a warning event (default 1); fewer are reported as info',
    }),
    conditionExpiry: Type.Record(Type.String(), Duration({ max: '168h' }), {
      default: {},
      description:
        'Condition type -> how long a True condition holds without a new matching record. Absent or 0: until reboot (the state is log-derived and dropped when boot_id changes)',
    }),
    ignoreDevices: Re2Pattern({
      default: '^(loop|sr|fd|ram|zram)[0-9]*$',
      description: 'RE2 pattern of block devices whose I/O errors are ignored (optical drives, loop and RAM disks)',
    }),
    pstore: Type.Boolean({ default: true, description: 'Report panics and oopses of a previous boot kept in /sys/fs/pstore' }),
  },
  { additionalProperties: false },
);

export type KernelConfig = StaticDecode<typeof kernelConfigSchema>;

export interface KernelSettings {
  lookbackMs: number;
  deadlockHungTasks: number;
  deadlockWindowMs: number;
  deadlockTasks: Set<string>;
  thresholds: Map<string, { count: number; windowMs: number }>;
  /** Reasons the operator silenced (ctx.silenced): never an event, never a condition, so another reason of the type can surface. */
  silenced: ReadonlySet<string>;
  expiryMs: Map<string, number>;
  ignoreDevices: Re2Regex;
  pstore: boolean;
}

/** Resolves durations and patterns of the configuration once. */
export function resolveKernelSettings(config: KernelConfig, silenced: ReadonlySet<string> = new Set()): KernelSettings {
  const thresholds = new Map<string, { count: number; windowMs: number }>();
  thresholds.set('NICLinkFlapping', { count: config.linkFlapCount, windowMs: config.linkFlapWindow });
  for (const [reason, t] of Object.entries(config.thresholds)) thresholds.set(reason, { count: t.count, windowMs: t.window });
  return {
    lookbackMs: config.lookback,
    deadlockHungTasks: config.deadlockHungTasks,
    deadlockWindowMs: config.deadlockWindow,
    deadlockTasks: new Set(config.deadlockTasks),
    thresholds,
    silenced,
    expiryMs: new Map(Object.entries(config.conditionExpiry)),
    ignoreDevices: compileRe2(config.ignoreDevices),
    pstore: config.pstore,
  };
}

// ---------------------------------------------------------------- matching (pure)

interface CompiledRule extends KernelRule {
  regex: Re2Regex;
}

let compiled: CompiledRule[] | undefined;
function compiledRules(): CompiledRule[] {
  compiled ??= KERNEL_RULES.map((rule) => ({ ...rule, regex: compileRe2(rule.pattern, { builtIn: true }) }));
  return compiled;
}

export interface RuleMatch {
  rule: KernelRule;
  groups: Record<string, string>;
}

/** The first rule that matches one kernel message, or undefined. */
export function matchKernelMessage(message: string): RuleMatch | undefined {
  for (const rule of compiledRules()) {
    if (!rule.literals.some((l) => message.includes(l))) continue;
    const m = rule.regex.exec(message);
    if (m !== null) return { rule, groups: { ...(m.groups ?? {}) } };
  }
  return undefined;
}

export interface TimedRecord {
  /** Epoch ms on the host clock. */
  timestamp: number;
  message: string;
}

// ---------------------------------------------------------------- pstore (pure)

export interface PstoreDump {
  /** Panic or Oops, from the record's "Panic#2 Part1" header. */
  kind: 'Panic' | 'Oops';
  count: number;
  part: number;
  /** The panic line, else the first oops line, else the header. */
  summary: string;
}

const PSTORE_HEADER = /^(Panic|Oops)#(\d+) Part(\d+)\s*$/;
const PSTORE_PREFIX = /^<\d+>\[\s*\d+\.\d+\]\s?/;

/** Parses one /sys/fs/pstore/dmesg-* file; undefined for dumps that are not a panic or an oops (shutdown, reboot). */
export function parsePstoreDmesg(text: string): PstoreDump | undefined {
  const lines = text.split('\n');
  const header = PSTORE_HEADER.exec((lines[0] ?? '').trim());
  if (header === null) return undefined;
  let panic: string | undefined;
  let oops: string | undefined;
  for (const raw of lines.slice(1)) {
    const line = raw.replace(PSTORE_PREFIX, '').trimEnd();
    if (line.includes('Kernel panic - not syncing')) panic = line;
    else if (oops === undefined && matchKernelMessage(line)?.rule.reason === 'KernelOops') oops = line;
  }
  return {
    kind: header[1] as 'Panic' | 'Oops',
    count: Number(header[2]),
    part: Number(header[3]),
    summary: panic ?? oops ?? (lines[0] as string).trim(),
  };
}

// ---------------------------------------------------------------- state across records

interface OomContext {
  taskMemcg?: string;
  constraint?: string;
}

/**
 * Everything the detector remembers between records: the conditions, count windows and the
 * OOM context. Records must arrive in log order. Records older than `eventsFrom` still feed
 * conditions and count windows but raise no events (they are outside the lookback).
 */
export class KernelLogState {
  readonly #s: KernelSettings;
  readonly #conditions = new Map<string, Condition>();
  readonly #lastMatch = new Map<string, number>();
  readonly #windows = new Map<string, CountWindow>();
  readonly #hung: CountWindow;
  #oomByPid = new Map<string, OomContext>();
  #lastTaskIn: string | undefined;
  #lastScope: string | undefined;

  constructor(settings: KernelSettings, previous: readonly Condition[], now: number) {
    this.#s = settings;
    this.#hung = new CountWindow(settings.deadlockWindowMs);
    for (const spec of KERNEL_CONDITIONS) {
      this.#conditions.set(spec.type, { type: spec.type, status: 'False', reason: spec.okReason, message: spec.okMessage, transitionTime: now });
    }
    for (const prev of previous) {
      if (!this.#conditions.has(prev.type)) continue;
      this.#conditions.set(prev.type, { ...prev });
      if (prev.status === 'True') this.#lastMatch.set(prev.type, prev.transitionTime);
    }
  }

  get conditions(): Condition[] {
    return [...this.#conditions.values()].map((c) => ({ ...c }));
  }

  process(records: readonly TimedRecord[], eventsFrom: number, now: number): ProblemEvent[] {
    const events: ProblemEvent[] = [];
    for (const record of records) this.#record(record, record.timestamp >= eventsFrom, now, events);
    return events;
  }

  /** When the next True condition expires without a new match (epoch ms), or undefined when none will. */
  nextExpiry(): number | undefined {
    let next: number | undefined;
    for (const spec of KERNEL_CONDITIONS) {
      const ms = this.#s.expiryMs.get(spec.type) ?? 0;
      const last = this.#lastMatch.get(spec.type);
      if (ms > 0 && last !== undefined && this.#conditions.get(spec.type)?.status === 'True') next = Math.min(next ?? Infinity, last + ms);
    }
    return next;
  }

  /** Clears True conditions whose configured expiry has passed without a new match. */
  expire(now: number): ProblemEvent[] {
    const events: ProblemEvent[] = [];
    for (const spec of KERNEL_CONDITIONS) {
      const ms = this.#s.expiryMs.get(spec.type) ?? 0;
      const cond = this.#conditions.get(spec.type) as Condition;
      const last = this.#lastMatch.get(spec.type);
      if (ms <= 0 || cond.status !== 'True' || last === undefined || now - last < ms) continue;
      this.#conditions.set(spec.type, { type: spec.type, status: 'False', reason: spec.okReason, message: spec.okMessage, transitionTime: now });
      this.#lastMatch.delete(spec.type);
      events.push({ severity: 'info', reason: spec.okReason, message: `${spec.okMessage} (no new kernel report for ${Math.round(ms / 1000)}s)`, timestamp: now });
    }
    return events;
  }

  #record(read: TimedRecord, inLookback: boolean, now: number, events: ProblemEvent[]): void {
    const match = matchKernelMessage(read.message);
    if (match === undefined) return;
    // What a matched record leaves behind (messages, OOM context) outlives the read chunk it was cut from.
    const record = { ...read, message: detach(read.message) };
    const { rule } = match;
    const groups = Object.fromEntries(Object.entries(match.groups).map(([k, v]) => [k, detach(v)]));
    if (rule.kind === 'context') {
      if (rule.id === 'oom-kill-summary') {
        const ctx: OomContext = {};
        if (groups.memcg !== undefined) ctx.taskMemcg = groups.memcg;
        if (groups.constraint !== undefined) ctx.constraint = groups.constraint;
        this.#oomByPid.set(groups.pid ?? '', ctx);
        if (this.#oomByPid.size > 64) this.#oomByPid = new Map([...this.#oomByPid].slice(-32));
      } else if (rule.id === 'oom-select') {
        this.#lastScope = groups.scope;
      } else {
        this.#lastTaskIn = groups.memcg;
      }
      return;
    }
    if (rule.device !== undefined && this.#s.ignoreDevices.test(groups[rule.device] ?? '')) return;
    if (rule.kind === 'condition') {
      this.#setCondition(rule.condition as ConditionType, rule.reason, record.message, record.timestamp, now, inLookback ? events : []);
      return;
    }
    let message = record.message;
    if (rule.id === 'oom-killed') message = this.#describeOom(groups, record.message);
    if (rule.id === 'hung-task') this.#hungTask(groups.comm ?? '', record, now, inLookback ? events : []);
    if (this.#s.silenced.has(rule.reason)) return;
    const threshold = this.#s.thresholds.get(rule.reason);
    let severity: Severity = rule.severity ?? 'warn';
    if (threshold !== undefined && threshold.count > 1) {
      const key = `${rule.reason}\u0000${rule.key === undefined ? '' : (groups[rule.key] ?? '')}`;
      let window = this.#windows.get(key);
      if (window === undefined) {
        window = new CountWindow(threshold.windowMs);
        this.#windows.set(key, window);
      }
      const count = window.add(record.timestamp);
      if (count < threshold.count) severity = 'info';
      else message = `${count} times within ${Math.round(threshold.windowMs / 1000)}s; last: ${message}`;
    }
    if (inLookback) events.push({ severity, reason: rule.reason, message, timestamp: record.timestamp });
  }

  #describeOom(groups: Record<string, string>, line: string): string {
    const pid = groups.pid ?? '';
    const ctx = this.#oomByPid.get(pid);
    this.#oomByPid.delete(pid);
    const memcg = ctx?.taskMemcg ?? this.#lastTaskIn;
    const memcgLimit =
      ctx !== undefined
        ? ctx.constraint === 'CONSTRAINT_MEMCG'
        : line.includes('Memory cgroup out of memory') || this.#lastScope === 'Memory cgroup out of memory' || this.#lastTaskIn !== undefined;
    this.#lastTaskIn = undefined;
    this.#lastScope = undefined;
    const scope = memcgLimit ? 'memory cgroup limit' : 'system out of memory';
    const where = memcg === undefined || memcg === '' ? '' : ` in cgroup ${memcg}`;
    return `OOM killer (${scope}) killed ${groups.comm ?? '?'} (pid ${pid})${where}: ${line}`;
  }

  #hungTask(comm: string, record: TimedRecord, now: number, events: ProblemEvent[]): void {
    if (this.#s.deadlockTasks.has(comm)) {
      const reason = comm.startsWith('docker') ? 'DockerHung' : 'ContainerRuntimeHung';
      this.#setCondition('KernelDeadlock', reason, record.message, record.timestamp, now, events);
      return;
    }
    const count = this.#hung.add(record.timestamp);
    if (count >= this.#s.deadlockHungTasks) {
      const windowS = Math.round(this.#s.deadlockWindowMs / 1000);
      this.#setCondition('KernelDeadlock', 'TooManyHungTasks', `${count} hung-task reports within ${windowS}s; last: ${record.message}`, record.timestamp, now, events);
    }
  }

  #setCondition(type: ConditionType, reason: string, message: string, timestamp: number, now: number, events: ProblemEvent[]): void {
    if (this.#s.silenced.has(reason)) return;
    const expiry = this.#s.expiryMs.get(type) ?? 0;
    if (expiry > 0 && now - timestamp >= expiry) return;
    const cond = this.#conditions.get(type) as Condition;
    this.#lastMatch.set(type, timestamp);
    if (cond.status === 'True' && cond.reason === reason) return;
    // A deadlock caused by the runtime is the more specific reason; keep it once set.
    if (cond.status === 'True' && type === 'KernelDeadlock' && reason === 'TooManyHungTasks') return;
    this.#conditions.set(type, { type, status: 'True', reason, message, transitionTime: timestamp });
    events.push({ severity: 'warn', reason, message, timestamp });
  }
}

// ---------------------------------------------------------------- the detector

const PSTORE_DIR = '/sys/fs/pstore';

async function readPstore(host: Host, silenced: ReadonlySet<string>, now: number): Promise<ProblemEvent[]> {
  let names: string[];
  try {
    names = await host.readDir(PSTORE_DIR);
  } catch {
    return [];
  }
  const events: ProblemEvent[] = [];
  for (const name of names.filter((n) => n.startsWith('dmesg-')).sort()) {
    const text = await host.tryReadText(`${PSTORE_DIR}/${name}`).catch(() => undefined);
    const dump = text === undefined ? undefined : parsePstoreDmesg(text);
    // Part1 holds the end of the log, where the panic is; the other parts are earlier log text of the same dump.
    if (dump === undefined || dump.part !== 1) continue;
    const reason = dump.kind === 'Panic' ? 'PreviousBootPanic' : 'PreviousBootOops';
    if (silenced.has(reason)) continue;
    events.push({ severity: 'warn', reason, message: `${dump.kind}#${dump.count} kept in ${PSTORE_DIR}/${name}: ${dump.summary}`, timestamp: now });
  }
  return events;
}

async function openKmsg(host: Host): Promise<{ log: KernelLog } | { unknown: string }> {
  try {
    return { log: await KernelLog.open(host) };
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return { unknown: `${KMSG_PATH} does not exist on this host` };
    if (isErrno(err, 'EACCES') || isErrno(err, 'EPERM')) {
      return { unknown: `cannot read ${KMSG_PATH}: permission denied (needs root, or CAP_SYSLOG when kernel.dmesg_restrict=1)` };
    }
    return { unknown: `cannot open ${KMSG_PATH}: ${errorMessage(err)}` };
  }
}

export function createKernelDetector(config: KernelConfig, ctx: DetectorContext): Detector {
  const { host } = ctx;
  const settings = resolveKernelSettings(config, ctx.silenced);
  const state = new KernelLogState(settings, ctx.previous, host.clock.now());
  const eventsFrom = (now: number): number => (settings.lookbackMs > 0 ? now - settings.lookbackMs : Number.NEGATIVE_INFINITY);
  const pstore = async (now: number): Promise<ProblemEvent[]> => (settings.pstore ? readPstore(host, settings.silenced, now) : []);
  /** Everything the log holds now, batch by batch (memory stays bounded by one batch). */
  const catchUp = async (log: KernelLog, from: number, now: number, final: boolean): Promise<ProblemEvent[]> => {
    const events: ProblemEvent[] = [];
    for (let batch = await log.read(final); batch !== undefined; batch = await log.read(final)) events.push(...state.process(batch, from, now));
    return events;
  };
  // The events are computed before the conditions are read: processing the records is what sets them.
  const result = (events: ProblemEvent[], unknown?: string): DetectorResult => ({ conditions: state.conditions, events, ...(unknown === undefined ? {} : { unknown }) });

  return {
    async probe(): Promise<DetectorResult> {
      const now = host.clock.now();
      const previousBoot = await pstore(now);
      const opened = await openKmsg(host);
      if ('unknown' in opened) return result(previousBoot, opened.unknown);
      try {
        const events = [...previousBoot, ...(await catchUp(opened.log, eventsFrom(now), now, true)), ...state.expire(now)];
        return result(events);
      } finally {
        await opened.log.close();
      }
    },

    async watch(emit, signal): Promise<void> {
      const now = host.clock.now();
      const previousBoot = await pstore(now);
      const opened = await openKmsg(host);
      if ('unknown' in opened) {
        emit(result(previousBoot, opened.unknown));
        // Nothing to follow; stay quiet until stopped rather than failing and being restarted in a loop.
        while (!signal.aborted) await host.clock.sleep(60_000, signal).catch(() => undefined);
        return;
      }
      const { log } = opened;
      try {
        const first = [...previousBoot, ...(await catchUp(log, eventsFrom(now), now, false)), ...state.expire(now)];
        emit(result(first));
        while (!signal.aborted) {
          await waitOrExpire(host.clock, (s) => log.wait(s), state.nextExpiry(), signal);
          if (signal.aborted) break;
          const t = host.clock.now();
          const events = [...(await catchUp(log, Number.NEGATIVE_INFINITY, t, false)), ...state.expire(t)];
          if (events.length > 0) emit(result(events));
        }
      } finally {
        await log.close();
      }
    },
  };
}

export const kernel: DetectorDefinition<typeof kernelConfigSchema> = {
  description:
    'Kernel log (/dev/kmsg): hung tasks, lockups, RCU stalls, oopses (x86, arm, arm64), WARN splats, OOM kills, filesystem and block I/O errors, NVMe/SCSI timeouts, memory errors, link flaps, NIC transmit timeouts, conntrack overflow, thermal throttling; previous-boot panics from pstore',
  configSchema: kernelConfigSchema,
  defaults: { enabled: true, interval: '1m', timeout: '20s' },
  logDerived: true,
  create: (config, ctx) => createKernelDetector(config, ctx),
};

import { Type, type StaticDecode } from '@sinclair/typebox';
import { isErrno, type Host } from '../host/host.ts';
import type { DetectorResult, ProblemEvent } from '../types.ts';
import { Conditions } from './engine/conditions.ts';
import type { DetectorDefinition } from './engine/types.ts';
import { KernelLog, KMSG_PATH } from './engine/kmsg.ts';
import { ExecError } from '../errors.ts';
import { Duration } from '../util/duration-schema.ts';

// NVIDIA GPU health: `nvidia-smi -q -x` and a CSV query (count, ECC, retired pages, row
// remapping, clock slowdowns), nvidia-smi hanging past its deadline, and XIDs from /dev/kmsg
// classified by a configurable catalogue. A node where no GPU is expected and none is found is ok.

const CONDITION = 'GPUUnhealthy';

/**
 * XIDs that turn GPUUnhealthy, after the immediate-action resolution buckets of NVIDIA's Xid
 * catalogue (docs.nvidia.com/deploy/xid-errors/analyzing-xid-catalog.html):
 *   46 GPU stopped processing ............ RESET_GPU
 *   48 Double Bit ECC Error .............. WORKFLOW_XID_48
 *   62 Internal micro-controller halt .... RESET_GPU
 *   64 GPU memory remapping failure ...... RESET_GPU
 *   74 NVLINK Error ...................... WORKFLOW_NVLINK_ERR
 *   79 GPU has fallen off the bus ........ RESTART_BM (restart the node)
 *   95 Uncontained memory error .......... RESET_GPU
 *  109 Context Switch Timeout ............ RESET_GPU
 *  110 Security Fault Error .............. RESET_GPU
 *  119 GSP RPC Timeout ................... RESET_GPU
 *  120 GSP Error ......................... RESET_GPU
 *  136 Link Training Failed .............. RESET_GPU
 *  140 ECC Unrecovered Error ............. RESET_GPU
 *  143 GPU Initialization Error .......... RESET_GPU
 *  144-150 NVLink 5 (SAW … MSE) .......... WORKFLOW_NVLINK5_ERR
 *  151 Key rotation Error ................ RESTART_VM
 *  155 NVLINK: SW Defined Error .......... RESET_GPU
 *  156 Resource Retirement Event ......... RESET_GPU
 *  158 GPU Fatal Timeout ................. RESET_GPU
 * Codes the catalogue marks unused (CONTACT_SUPPORT) are not listed: they never appear.
 */
export const DEFAULT_FATAL_XIDS = [46, 48, 62, 64, 74, 79, 95, 109, 110, 119, 120, 136, 140, 143, 144, 145, 146, 147, 148, 149, 150, 151, 155, 156, 158];

/**
 * XIDs caused by the application or that need no action on the node: the RESTART_APP and
 * IGNORE buckets (and WORKFLOW_XID_45, "preemptive cleanup, due to previous errors", which
 * only follows another Xid). They never mark the node; they are info events.
 *   8 GPU stopped processing (RESTART_APP), 11/25/32 push buffer stream (RESTART_APP),
 *   13 Graphics Engine Exception (RESTART_APP), 31 GPU memory page fault (RESTART_APP),
 *   43 GPU stopped processing (IGNORE), 45 preemptive cleanup (WORKFLOW_XID_45),
 *   63 row remapping event (IGNORE; the pending remap is read from nvidia-smi instead),
 *   92 high single-bit ECC rate (IGNORE), 94 contained memory error (RESTART_APP),
 *   137 NVLink privilege error (IGNORE).
 */
export const DEFAULT_APP_XIDS = [8, 11, 13, 25, 31, 32, 43, 45, 63, 92, 94, 137];

export const CSV_FIELDS = [
  'index',
  'pci.bus_id',
  'uuid',
  'name',
  'temperature.gpu',
  'ecc.errors.uncorrected.volatile.total',
  'retired_pages.pending',
  'clocks_throttle_reasons.active',
] as const;

export const configSchema = Type.Object(
  {
    expected: Type.Union([Type.Literal('auto'), Type.Literal('true'), Type.Literal('false')], {
      default: 'auto',
      description: 'auto: GPUs are expected when /dev/nvidiaN exists or a count is configured; true: always; false: never check',
    }),
    expectedCount: Type.Integer({ minimum: 0, default: 0, description: 'GPUs this node must have; 0: do not compare' }),
    smiTimeout: Duration({ default: '15s', min: '100ms', max: '1h', description: 'Deadline of one nvidia-smi call; past it, NvidiaSmiHung' }),
    fatalXids: Type.Array(Type.Integer({ minimum: 1 }), { default: DEFAULT_FATAL_XIDS, description: 'XIDs that turn GPUUnhealthy (reason NvidiaXID<N>Error)' }),
    appXids: Type.Array(Type.Integer({ minimum: 1 }), { default: DEFAULT_APP_XIDS, description: 'Application-caused XIDs: info events only, never a problem' }),
    xidWindow: Duration({ default: '24h', max: '168h', description: 'How long a fatal XID keeps GPUUnhealthy True, and how far back the first kmsg read looks' }),
  },
  { additionalProperties: false },
);

type Config = StaticDecode<typeof configSchema>;

// ---- pure parsers ----

export interface SmiGpu {
  busId: string;
  name: string;
  uuid: string;
  remapPending: boolean | undefined;
  remapFailure: boolean | undefined;
  remapUncorrectable: number | undefined;
  retiredPending: boolean | undefined;
  /** Volatile uncorrectable (double-bit) ECC errors; undefined when not reported. */
  dbeVolatile: number | undefined;
  thermalSlowdown: boolean;
  powerBrakeSlowdown: boolean;
  hwSlowdown: boolean;
}

function tag(block: string, name: string): string | undefined {
  const m = new RegExp(`<${name}>([\\s\\S]*?)</${name}>`).exec(block);
  return m?.[1]?.trim();
}

function yesNo(value: string | undefined): boolean | undefined {
  if (value === 'Yes') return true;
  if (value === 'No') return false;
  return undefined;
}

function num(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value.trim());
  return value.trim() !== '' && Number.isFinite(n) ? n : undefined;
}

/** `nvidia-smi -q -x`: one entry per <gpu id="…"> block. Handles the clocks_throttle_reasons (≤ R530) and clocks_event_reasons names. */
export function parseSmiXml(xml: string): SmiGpu[] {
  const gpus: SmiGpu[] = [];
  const re = /<gpu id="([^"]+)">([\s\S]*?)<\/gpu>/g;
  for (let m = re.exec(xml); m !== null; m = re.exec(xml)) {
    const block = m[2] as string;
    const remap = tag(block, 'remapped_rows');
    const retired = tag(block, 'retired_pages');
    const volatile = tag(tag(block, 'ecc_errors') ?? '', 'volatile') ?? '';
    // Older DTDs: <double_bit><total>; newer: <dram_uncorrectable>, <sram_uncorrectable[_parity|_secded]>.
    const dbeParts = [
      num(tag(tag(volatile, 'double_bit') ?? '', 'total')),
      num(tag(volatile, 'dram_uncorrectable')),
      num(tag(volatile, 'sram_uncorrectable')),
      num(tag(volatile, 'sram_uncorrectable_parity')),
      num(tag(volatile, 'sram_uncorrectable_secded')),
    ].filter((n): n is number => n !== undefined);
    const reasons = tag(block, 'clocks_event_reasons') ?? tag(block, 'clocks_throttle_reasons') ?? '';
    const active = (suffix: string): boolean => new RegExp(`<clocks_(?:event|throttle)_reason_${suffix}>Active<`).test(reasons);
    gpus.push({
      busId: m[1] as string,
      name: tag(block, 'product_name') ?? '',
      uuid: tag(block, 'uuid') ?? '',
      remapPending: remap === undefined ? undefined : yesNo(tag(remap, 'remapped_row_pending')),
      remapFailure: remap === undefined ? undefined : yesNo(tag(remap, 'remapped_row_failure')),
      remapUncorrectable: remap === undefined ? undefined : num(tag(remap, 'remapped_row_unc')),
      retiredPending: retired === undefined ? undefined : (yesNo(tag(retired, 'pending_retirement')) ?? yesNo(tag(retired, 'pending_blacklist'))),
      dbeVolatile: dbeParts.length === 0 ? undefined : dbeParts.reduce((a, b) => a + b, 0),
      thermalSlowdown: active('hw_thermal_slowdown') || active('sw_thermal_slowdown'),
      powerBrakeSlowdown: active('hw_power_brake_slowdown'),
      hwSlowdown: active('hw_slowdown'),
    });
  }
  return gpus;
}

export interface CsvGpu {
  index: number;
  busId: string;
  uuid: string;
  name: string;
  temperature: number | undefined;
  dbeVolatile: number | undefined;
  retiredPending: boolean | undefined;
  /** clocks_throttle_reasons.active bitmask (NVML nvmlClocksThrottleReason*). */
  throttleMask: number | undefined;
}

// NVML clocks throttle reason bits.
export const THROTTLE = { hwSlowdown: 0x8, swThermal: 0x20, hwThermal: 0x40, hwPowerBrake: 0x80 } as const;

/** `--query-gpu=<CSV_FIELDS> --format=csv,noheader`: "0, 00000000:00:1E.0, GPU-…, NVIDIA A10G, 17, 0, [N/A], 0x0000000000000001". */
export function parseSmiCsv(text: string): CsvGpu[] {
  const out: CsvGpu[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const f = line.split(',').map((s) => s.trim());
    if (f.length < CSV_FIELDS.length) continue;
    const index = num(f[0]);
    if (index === undefined) continue;
    const mask = f[7] !== undefined && /^0x[0-9a-f]+$/i.test(f[7]) ? Number.parseInt(f[7].slice(2), 16) : undefined;
    out.push({
      index,
      busId: f[1] as string,
      uuid: f[2] as string,
      name: f[3] as string,
      temperature: num(f[4]),
      dbeVolatile: num(f[5]),
      retiredPending: yesNo(f[6]),
      throttleMask: mask,
    });
  }
  return out;
}

export interface Xid {
  pci: string;
  code: number;
  detail: string;
}

const XID_RE = /NVRM: Xid \((?:PCI:)?([0-9a-fA-F:.]+)\): (\d+)(?:,\s*(.*))?/;

/** "NVRM: Xid (PCI:0000:3b:00): 79, pid=…, GPU has fallen off the bus." (older drivers omit "PCI:" and pid). */
export function parseXid(message: string): Xid | undefined {
  const m = XID_RE.exec(message);
  if (m === null) return undefined;
  return { pci: m[1] as string, code: Number(m[2]), detail: (m[3] ?? '').trim() };
}

export type XidClass = 'fatal' | 'app' | 'warn';

export function classifyXid(xid: Xid, fatal: ReadonlySet<number>, app: ReadonlySet<number>): XidClass {
  // Xid 154 states the recovery action the driver now requires.
  if (xid.code === 154) return /GPU Reset Required|Node Reboot Required|Drain and Reset/.test(xid.detail) ? 'fatal' : 'app';
  if (fatal.has(xid.code)) return 'fatal';
  if (app.has(xid.code)) return 'app';
  return 'warn';
}

// ---- the detector ----

interface FatalXid {
  xid: Xid;
  at: number;
}

async function nvidiaDevices(host: Host): Promise<string[]> {
  try {
    return (await host.readDir('/dev')).filter((e) => /^nvidia\d+$/.test(e));
  } catch {
    return [];
  }
}

export const gpuNvidia: DetectorDefinition<typeof configSchema> = {
  description: 'NVIDIA GPUs: nvidia-smi (count, ECC, row remapping, retired pages, slowdowns, hangs) and XIDs from the kernel log',
  configSchema,
  defaults: { enabled: true, interval: '60s', timeout: '25s' },
  create(config: Config, ctx) {
    const { host } = ctx;
    const smiTimeoutMs = config.smiTimeout;
    const xidWindowMs = config.xidWindow;
    const fatalSet = new Set(config.fatalXids);
    const appSet = new Set(config.appXids.filter((c) => !fatalSet.has(c)));
    const book = new Conditions([{ type: CONDITION, okReason: 'GPUIsHealthy', okMessage: 'NVIDIA GPUs are healthy' }], ctx);
    const expectedCount = config.expectedCount;

    let log: KernelLog | undefined;
    let firstRead = true;
    const fatalXids: FatalXid[] = [];

    /** New XIDs from kmsg since the last call (the first call looks back xidWindow). */
    const readXids = async (): Promise<{ xids: FatalXid[]; unknown?: string }> => {
      try {
        log ??= await KernelLog.open(host);
        const now = host.clock.now();
        const found: FatalXid[] = [];
        const final = ctx.mode === 'check';
        for (let batch = await log.read(final); batch !== undefined; batch = await log.read(final)) {
          for (const record of batch) {
            const xid = parseXid(record.message);
            if (xid === undefined) continue;
            if (firstRead && now - record.timestamp > xidWindowMs) continue;
            found.push({ xid, at: record.timestamp });
          }
        }
        firstRead = false;
        return { xids: found };
      } catch (err) {
        if (isErrno(err, 'ENOENT')) return { xids: [] };
        return { xids: [], unknown: `cannot read ${KMSG_PATH}: ${err instanceof Error ? err.message : String(err)}` };
      }
    };

    return {
      async probe(signal): Promise<DetectorResult> {
        const events: ProblemEvent[] = [];
        const unknown: string[] = [];
        const problems: { reason: string; message: string }[] = [];
        if (config.expected === 'false') {
          book.ok(CONDITION, 'NVIDIA GPUs not checked (expected: false)');
          return { conditions: book.list(), events };
        }
        const devices = await nvidiaDevices(host);
        const expected = config.expected === 'true' || expectedCount > 0 || devices.length > 0;

        // nvidia-smi.
        const smiArgs = { timeoutMs: smiTimeoutMs, signal, maxOutputBytes: 16 * 1024 * 1024, cachedLookup: true };
        const [xml, csv] = await Promise.all([
          host.exec(['nvidia-smi', '-q', '-x'], smiArgs),
          host.exec(['nvidia-smi', `--query-gpu=${CSV_FIELDS.join(',')}`, '--format=csv,noheader'], smiArgs),
        ]);
        let count: number | undefined;
        if (xml.notFound) {
          if (devices.length > 0) unknown.push(`nvidia-smi not found, but ${devices.map((d) => `/dev/${d}`).join(', ')} exist`);
          else if (expected) count = 0;
        } else if (xml.timedOut || csv.timedOut) {
          problems.push({ reason: 'NvidiaSmiHung', message: new ExecError(xml.timedOut ? xml : csv).message });
        } else if (xml.exitCode !== 0) {
          const said = (xml.stdout + xml.stderr).trim().split('\n')[0]?.slice(0, 300) ?? '';
          if (/No devices were found/i.test(said)) count = 0;
          else if (expected) problems.push({ reason: 'NvidiaSmiFailed', message: new ExecError(xml).message });
        } else {
          const gpus = parseSmiXml(xml.stdout);
          const rows = csv.exitCode === 0 ? parseSmiCsv(csv.stdout) : [];
          count = gpus.length;
          for (const g of gpus) {
            const row = rows.find((r) => r.busId.toLowerCase() === g.busId.toLowerCase());
            const id = `GPU ${row?.index ?? '?'} ${g.name} (${g.busId})`;
            const dbe = row?.dbeVolatile ?? g.dbeVolatile;
            if (dbe !== undefined && dbe > 0) problems.push({ reason: 'NvidiaDoubleBitError', message: `${id}: ${dbe} volatile uncorrectable (double-bit) ECC errors` });
            if (g.remapFailure === true) problems.push({ reason: 'NvidiaRowRemapFailure', message: `${id}: row remapping failed (${g.remapUncorrectable ?? '?'} rows remapped for uncorrectable errors)` });
            else if (g.remapPending === true) problems.push({ reason: 'NvidiaRowRemapPending', message: `${id}: row remapping pending, GPU reset required (${g.remapUncorrectable ?? '?'} uncorrectable rows)` });
            if ((row?.retiredPending ?? g.retiredPending) === true) {
              events.push({ severity: 'warn', reason: 'NvidiaRetiredPagesPending', message: `${id}: retired pages pending, GPU reset required to retire them`, timestamp: host.clock.now() });
            }
            const mask = row?.throttleMask ?? 0;
            if (g.thermalSlowdown || (mask & (THROTTLE.hwThermal | THROTTLE.swThermal)) !== 0) {
              events.push({ severity: 'warn', reason: 'NvidiaThermalSlowdown', message: `${id}: clocks slowed by temperature${row?.temperature === undefined ? '' : ` (${row.temperature} C)`}`, timestamp: host.clock.now() });
            }
            if (g.powerBrakeSlowdown || (mask & THROTTLE.hwPowerBrake) !== 0) {
              events.push({ severity: 'warn', reason: 'NvidiaPowerBrakeSlowdown', message: `${id}: clocks slowed by the power brake (external power supply signal)`, timestamp: host.clock.now() });
            } else if (g.hwSlowdown || (mask & THROTTLE.hwSlowdown) !== 0) {
              events.push({ severity: 'warn', reason: 'NvidiaHWSlowdown', message: `${id}: hardware slowdown active`, timestamp: host.clock.now() });
            }
          }
          if (csv.exitCode !== 0 && !csv.notFound) {
            ctx.log.debug({ err: new ExecError(csv).message }, 'nvidia-smi CSV query failed; using the XML only');
          }
        }
        // XIDs: only where an NVIDIA driver can have written them.
        if (expected || !xml.notFound) {
          const { xids, unknown: kmsgUnknown } = await readXids();
          if (kmsgUnknown !== undefined && expected) unknown.push(kmsgUnknown);
          for (const { xid, at } of xids) {
            const cls = classifyXid(xid, fatalSet, appSet);
            const text = `Xid ${xid.code} on PCI:${xid.pci}: ${xid.detail}`.slice(0, 400);
            if (cls === 'fatal') {
              fatalXids.push({ xid, at });
              events.push({ severity: 'warn', reason: `NvidiaXID${xid.code}Error`, message: text, timestamp: at });
            } else if (cls === 'warn') {
              events.push({ severity: 'warn', reason: `NvidiaXID${xid.code}Warning`, message: text, timestamp: at });
            } else {
              events.push({ severity: 'info', reason: `NvidiaXID${xid.code}Application`, message: `${text} (application-caused; no action on the node)`, timestamp: at });
            }
          }
        }
        if (count !== undefined && expectedCount > 0 && count !== expectedCount) {
          problems.unshift({ reason: 'NvidiaDeviceCountMismatch', message: `found ${count} NVIDIA GPU(s), expected ${expectedCount}` });
        } else if (count === 0 && config.expected === 'true') {
          problems.unshift({ reason: 'NvidiaDeviceCountMismatch', message: 'found no NVIDIA GPU, but GPUs are expected' });
        }

        const now = host.clock.now();
        while (fatalXids.length > 0 && now - (fatalXids[0] as FatalXid).at > xidWindowMs) fatalXids.shift();
        const latest = new Map<number, FatalXid>();
        for (const f of fatalXids) latest.set(f.xid.code, f);
        for (const f of latest.values()) {
          problems.push({ reason: `NvidiaXID${f.xid.code}Error`, message: `Xid ${f.xid.code} on PCI:${f.xid.pci} at ${new Date(f.at).toISOString()}: ${f.xid.detail}`.slice(0, 400) });
        }
        // NvidiaSmiHung first: nothing else read from nvidia-smi can be trusted then.
        const order = ['NvidiaSmiHung', 'NvidiaSmiFailed', 'NvidiaDeviceCountMismatch'];
        problems.sort((a, b) => (order.includes(b.reason) ? 1 : 0) - (order.includes(a.reason) ? 1 : 0));
        const shown = problems.filter((p) => book.surfaces(p.reason));
        const first = shown[0];
        if (first === undefined) {
          book.ok(CONDITION, expected || count !== undefined ? `${count ?? '?'} NVIDIA GPU(s) healthy` : 'no NVIDIA GPU on this node (none expected)');
        } else {
          book.set(CONDITION, 'True', first.reason, shown.map((p) => p.message).join('; ').slice(0, 1000));
        }
        if (ctx.mode === 'check' && log !== undefined) {
          await log.close().catch(() => undefined);
          log = undefined;
        }
        // The warn events of fatal XIDs duplicate the condition; keep them (they carry the log time).
        return { conditions: book.list(), events, ...(unknown.length > 0 ? { unknown: unknown.join('; ') } : {}) };
      },
    };
  },
};

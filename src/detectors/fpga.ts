import { Type, type StaticDecode } from '@sinclair/typebox';
import type { Host } from '../host/host.ts';
import type { DetectorResult } from '../types.ts';
import { Conditions } from './engine/conditions.ts';
import type { DetectorDefinition } from './engine/types.ts';
import { ExecError } from '../errors.ts';
import { Duration } from '../util/duration-schema.ts';

// FPGA health from the kernel's FPGA framework and Intel's DFL driver:
// - /sys/class/fpga_manager/<fpga>/state: "operating" is programmed and running; the states
//   ending in "error" ("firmware request error", "write init error", "write error",
//   "write complete error") are programming faults (Documentation/ABI/testing/sysfs-class-fpga-manager);
//   /sys/class/fpga_manager/<fpga>/status (4.19+) names the reconfiguration error;
// - /sys/class/fpga_region/*: the regions, counted;
// - /sys/bus/platform/devices/dfl-fme.*/errors/*: DFL FME error registers, printed "0x%llx";
//   non-zero is a fault (Documentation/ABI/testing/sysfs-platform-dfl-fme). inject_errors
//   only shows errors injected for testing and is never a fault;
// - Xilinx XRT cards (Alveo), which are PCIe devices outside the FPGA framework: the
//   "Devices present" table of `xbutil examine` (`xrt-smi examine` from XRT 2024.1), whose
//   "Device Ready" column (XRT 2.13+) says "No" for a card XRT cannot use. The text report is
//   read because `-f JSON` writes only to a file given with -o (XRT issue #6029).
// A node without FPGAs where none is expected is ok.

const CONDITION = 'FPGAUnhealthy';

export const configSchema = Type.Object(
  {
    expected: Type.Union([Type.Literal('auto'), Type.Literal('true'), Type.Literal('false')], {
      default: 'auto',
      description: 'auto: check what is present; true: a node without FPGA is a problem; false: never check',
    }),
    expectedCount: Type.Integer({ minimum: 0, default: 0, description: 'FPGA managers this node must have; 0: do not compare' }),
    ignoredErrorFiles: Type.Array(Type.String({ minLength: 1 }), { default: ['inject_errors'], description: 'DFL errors/ files never read as faults' }),
    xrtTimeout: Duration({ default: '8s', min: '100ms', max: '1h', description: 'Deadline of `xbutil examine` / `xrt-smi examine` when XRT is installed' }),
  },
  { additionalProperties: false },
);

type Config = StaticDecode<typeof configSchema>;

// ---- pure parsers ----

export type ManagerVerdict = 'operating' | 'error' | 'other';

/** A fpga_manager state string (trailing newline allowed). */
export function classifyManagerState(state: string): ManagerVerdict {
  const s = state.trim();
  if (s === 'operating') return 'operating';
  if (s.endsWith('error')) return 'error';
  return 'other';
}

/** A DFL error register as the driver prints it ("0x%llx\n"); undefined when it is not a number. */
export function parseErrorRegister(text: string): bigint | undefined {
  const s = text.trim();
  if (!/^(0x[0-9a-fA-F]+|\d+)$/.test(s)) return undefined;
  return BigInt(s);
}

export interface XrtDevice {
  bdf: string;
  shell: string;
  /** undefined when this XRT version prints no "Device Ready" column. */
  ready: boolean | undefined;
}

/** The "Devices present" table of `xbutil examine` / `xrt-smi examine` / `xbmgmt examine`. */
export function parseXrtDevices(text: string): XrtDevice[] {
  const lines = text.split('\n');
  const start = lines.findIndex((l) => l.trim() === 'Devices present');
  if (start < 0) return [];
  const devices: XrtDevice[] = [];
  for (const line of lines.slice(start + 1)) {
    if (line.trim() === '') break;
    const m = /^\[([0-9a-fA-F:.]+)\]\s*:\s*(\S+)(.*)$/.exec(line.trim());
    if (m === null) continue;
    const last = (m[3] ?? '').trim().split(/\s+/).at(-1);
    devices.push({ bdf: m[1] as string, shell: m[2] as string, ready: last === 'Yes' ? true : last === 'No' ? false : undefined });
  }
  return devices;
}

// ---- the detector ----

async function list(host: Host, dir: string): Promise<string[]> {
  try {
    return (await host.readDir(dir)).sort();
  } catch {
    return [];
  }
}

async function read(host: Host, file: string): Promise<string | undefined> {
  try {
    return await host.tryReadText(file);
  } catch {
    return undefined;
  }
}

/** XRT's devices, when XRT is installed; its tool failing or hanging is a problem of its own. */
async function xrtDevices(host: Host, timeoutMs: number): Promise<{ devices: XrtDevice[]; error?: string }> {
  for (const tool of ['xrt-smi', 'xbutil']) {
    const result = await host.exec([tool, 'examine'], { timeoutMs, cachedLookup: true });
    if (result.notFound) continue;
    if (result.timedOut) return { devices: [], error: new ExecError(result).message };
    const devices = parseXrtDevices(result.stdout);
    if (result.exitCode !== 0 && devices.length === 0) {
      return { devices, error: new ExecError(result).message };
    }
    return { devices };
  }
  return { devices: [] };
}

export const fpga: DetectorDefinition<typeof configSchema> = {
  description: 'FPGAs: fpga_manager state and status, fpga_region count, Intel DFL FME error registers, Xilinx XRT device readiness',
  configSchema,
  defaults: { enabled: true, interval: '60s', timeout: '10s' },
  create(config: Config, ctx) {
    const { host } = ctx;
    const book = new Conditions([{ type: CONDITION, okReason: 'FPGAIsHealthy', okMessage: 'FPGAs are healthy' }], ctx);
    const ignored = new Set(config.ignoredErrorFiles);
    return {
      async probe(): Promise<DetectorResult> {
        if (config.expected === 'false') {
          book.ok(CONDITION, 'FPGAs not checked (expected: false)');
          return { conditions: book.list(), events: [] };
        }
        const problems: { reason: string; message: string }[] = [];
        const managers = await list(host, '/sys/class/fpga_manager');
        for (const m of managers) {
          const state = await read(host, `/sys/class/fpga_manager/${m}/state`);
          if (state === undefined) continue;
          if (classifyManagerState(state) === 'error') {
            const name = (await read(host, `/sys/class/fpga_manager/${m}/name`))?.trim() ?? m;
            const status = (await read(host, `/sys/class/fpga_manager/${m}/status`))?.trim() ?? '';
            problems.push({ reason: 'FPGAManagerError', message: `${m} (${name}): state "${state.trim()}"${status === '' ? '' : `, status "${status.replace(/\n/g, ', ')}"`}` });
          }
        }
        const regions = await list(host, '/sys/class/fpga_region');
        const fmes = (await list(host, '/sys/bus/platform/devices')).filter((d) => /^dfl-fme\.\d+$/.test(d));
        for (const fme of fmes) {
          const dir = `/sys/bus/platform/devices/${fme}/errors`;
          const nonZero: string[] = [];
          for (const file of await list(host, dir)) {
            if (ignored.has(file)) continue;
            const text = await read(host, `${dir}/${file}`);
            const value = text === undefined ? undefined : parseErrorRegister(text);
            if (value !== undefined && value !== 0n) nonZero.push(`${file}=0x${value.toString(16)}`);
          }
          if (nonZero.length > 0) problems.push({ reason: 'FPGADFLError', message: `${fme}: ${nonZero.join(', ')}` });
        }
        const xrt = await xrtDevices(host, config.xrtTimeout);
        if (xrt.error !== undefined) problems.push({ reason: 'FPGAXRTFailed', message: xrt.error });
        const notReady = xrt.devices.filter((d) => d.ready === false);
        if (notReady.length > 0) {
          problems.push({ reason: 'FPGANotReady', message: `XRT device(s) not ready: ${notReady.map((d) => `${d.bdf} (${d.shell})`).join(', ')}` });
        }
        const count = managers.length + xrt.devices.length;
        if (config.expectedCount > 0 && count !== config.expectedCount) {
          problems.unshift({ reason: 'FPGADeviceCountMismatch', message: `found ${count} FPGA(s) (${managers.length} FPGA manager(s), ${xrt.devices.length} XRT device(s)), expected ${config.expectedCount}` });
        } else if (config.expected === 'true' && count === 0 && fmes.length === 0) {
          problems.unshift({ reason: 'FPGADeviceCountMismatch', message: 'no FPGA found, but FPGAs are expected' });
        }
        const shown = problems.filter((p) => book.surfaces(p.reason));
        const first = shown[0];
        if (first === undefined) {
          book.ok(
            CONDITION,
            count + fmes.length === 0
              ? 'no FPGA on this node (none expected)'
              : `${managers.length} FPGA manager(s) operating, ${regions.length} region(s), ${fmes.length} DFL FME(s) without errors, ${xrt.devices.length} XRT device(s) ready`,
          );
        } else {
          book.set(CONDITION, 'True', first.reason, shown.map((p) => p.message).join('; ').slice(0, 1000));
        }
        return { conditions: book.list(), events: [] };
      },
    };
  },
};

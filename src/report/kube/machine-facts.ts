// Node facts for the Machine status, read only through the Host so that a
// `--root` replay of a captured host reports that host, not the one running the
// test. systeminformation is deliberately not used: it reads the live machine
// (and shells out to lspci/dmidecode) regardless of the root, and everything the
// Machine status carries is in /proc, /sys and /etc anyway. The one live fact is
// the architecture at root "/", where the agent binary's own arch is the node's.
import type { Host } from '../../host/host.ts';
import type { FpgaDevice, GpuDevice, NodeFacts } from '../../api/machine.ts';

const ARCH: Record<string, NodeFacts['architecture']> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64', loong64: 'loong64' };

const GPU_VENDORS: Record<string, string> = { '0x10de': 'NVIDIA', '0x1002': 'AMD' };
const FPGA_VENDORS: Record<string, string> = { '0x10ee': 'Xilinx', '0x1172': 'Intel (Altera)' };
/** Intel FPGA PACs enumerate under Intel's own vendor id. */
const INTEL_FPGA_DEVICES: Record<string, string> = {
  // IDs from the kernel's drivers/fpga/dfl-pci.c.
  '0xbcbd': 'Integrated FPGA 5.x', '0xbcc0': 'Integrated FPGA 6.x', '0x09c4': 'PAC Arria 10 GX', '0x09c5': 'PAC Arria 10 GX (VF)',
  '0x0b30': 'PAC N3000', '0x0b31': 'PAC N3000 (VF)', '0x0b2b': 'PAC D5005', '0x0b2c': 'PAC D5005 (VF)', '0xbcce': 'DFL FPGA', '0xbccf': 'DFL FPGA (VF)',
};

export interface MachineFacts {
  node: NodeFacts;
  gpus: GpuDevice[];
  fpgas: FpgaDevice[];
}

/** os-release's KEY=value lines, quotes removed. */
export function parseOsRelease(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m === null) continue;
    let v = (m[2] as string).trim();
    if (/^(["']).*\1$/.test(v)) v = v.slice(1, -1).replace(/\\(["\\$`])/g, '$1');
    out[m[1] as string] = v;
  }
  return out;
}

export function parseMemTotalBytes(meminfo: string): number | undefined {
  const m = /^MemTotal:\s+(\d+)\s*kB/m.exec(meminfo);
  return m === null ? undefined : Number(m[1]) * 1024;
}

export function countCpus(cpuinfo: string): number {
  return (cpuinfo.match(/^processor\s*:/gm) ?? []).length;
}

/** The architecture a captured cpuinfo belongs to, for replays (no uname in a directory tree). */
export function archFromCpuinfo(cpuinfo: string): NodeFacts['architecture'] | undefined {
  if (/^flags\s*:/m.test(cpuinfo) || /^vendor_id\s*:\s*(GenuineIntel|AuthenticAMD|HygonGenuine)/m.test(cpuinfo)) return 'amd64';
  if (/^CPU implementer\s*:/m.test(cpuinfo) || /^Features\s*:.*\basimd\b/m.test(cpuinfo)) return 'arm64';
  if (/^cpu\s*:\s*POWER/m.test(cpuinfo)) return 'ppc64le';
  if (/^vendor_id\s*:\s*IBM\/S390/m.test(cpuinfo)) return 's390x';
  if (/^isa\s*:\s*rv64/m.test(cpuinfo)) return 'riscv64';
  return undefined;
}

async function read(host: Host, path: string): Promise<string | undefined> {
  try {
    return (await host.tryReadText(path))?.trim();
  } catch {
    return undefined;
  }
}

/** NVIDIA's driver names the model and UUID per GPU here; absent without the driver. */
function nvidiaInformation(text: string | undefined): { model?: string; uuid?: string } {
  if (text === undefined) return {};
  const model = /^Model:\s*(.+)$/m.exec(text)?.[1]?.trim();
  const uuid = /^GPU UUID:\s*(.+)$/m.exec(text)?.[1]?.trim();
  return { ...(model === undefined ? {} : { model }), ...(uuid === undefined || uuid === '' ? {} : { uuid }) };
}

export async function collectPciAccelerators(host: Host): Promise<{ gpus: GpuDevice[]; fpgas: FpgaDevice[] }> {
  let addresses: string[];
  try {
    addresses = (await host.readDir('/sys/bus/pci/devices')).sort();
  } catch {
    return { gpus: [], fpgas: [] };
  }
  const gpus: GpuDevice[] = [];
  const fpgas: FpgaDevice[] = [];
  for (const busId of addresses) {
    const dir = `/sys/bus/pci/devices/${busId}`;
    const vendor = (await read(host, `${dir}/vendor`))?.toLowerCase();
    const cls = (await read(host, `${dir}/class`))?.toLowerCase();
    const device = (await read(host, `${dir}/device`))?.toLowerCase() ?? 'unknown';
    if (vendor === undefined || cls === undefined) continue;
    const validBus = /^[0-9a-f]{4,8}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/i.test(busId);
    const gpuVendor = GPU_VENDORS[vendor];
    // PCI class 0x03xxxx: display controllers (VGA 0x0300, 3D 0x0302, other 0x0380).
    if (gpuVendor !== undefined && cls.startsWith('0x03')) {
      const info = gpuVendor === 'NVIDIA' ? nvidiaInformation(await read(host, `/proc/driver/nvidia/gpus/${busId.toLowerCase()}/information`)) : {};
      gpus.push({ vendor: gpuVendor, model: info.model ?? `${vendor.slice(2)}:${device.replace(/^0x/, '')}`, ...(validBus ? { busId } : {}), ...(info.uuid === undefined ? {} : { uuid: info.uuid }) });
      continue;
    }
    const fpgaVendor = FPGA_VENDORS[vendor];
    const intelModel = vendor === '0x8086' ? INTEL_FPGA_DEVICES[device] : undefined;
    if (fpgaVendor !== undefined || intelModel !== undefined) {
      // PCI bridges and the like under an FPGA vendor are not accelerators.
      if (cls.startsWith('0x06')) continue;
      fpgas.push({ vendor: fpgaVendor ?? 'Intel', model: intelModel ?? `${vendor.slice(2)}:${device.replace(/^0x/, '')}`, ...(validBus ? { busId } : {}) });
    }
  }
  return { gpus, fpgas };
}

/** Throws only when the kernel release cannot be read: a host without /proc is not one to report on. */
export async function collectMachineFacts(host: Host): Promise<MachineFacts> {
  const kernelVersion = await read(host, '/proc/sys/kernel/osrelease');
  if (kernelVersion === undefined || kernelVersion === '') throw new Error(`cannot read ${host.path('/proc/sys/kernel/osrelease')}`);
  const os = parseOsRelease((await read(host, '/etc/os-release')) ?? (await read(host, '/usr/lib/os-release')) ?? '');
  const cpuinfo = (await read(host, '/proc/cpuinfo')) ?? '';
  const architecture = (host.root === '/' ? ARCH[process.arch] : undefined) ?? archFromCpuinfo(cpuinfo) ?? 'amd64';
  const bootId = await read(host, '/proc/sys/kernel/random/boot_id');
  const machineId = await read(host, '/etc/machine-id');
  const node: NodeFacts = {
    kernelVersion: kernelVersion.slice(0, 256),
    osImage: (os.PRETTY_NAME ?? os.NAME ?? 'Linux').slice(0, 256),
    ...(os.ID === undefined ? {} : { osId: os.ID.slice(0, 64) }),
    ...(os.VERSION_ID === undefined ? {} : { osVersion: os.VERSION_ID.slice(0, 64) }),
    architecture,
    cpus: Math.max(1, countCpus(cpuinfo)),
    memoryBytes: parseMemTotalBytes((await read(host, '/proc/meminfo')) ?? '') ?? 0,
    ...(bootId === undefined || bootId === '' ? {} : { bootId: bootId.slice(0, 64) }),
    ...(machineId === undefined || machineId === '' ? {} : { machineId: machineId.slice(0, 64) }),
  };
  return { node, ...(await collectPciAccelerators(host)) };
}

// A small captured-host tree for Machine facts: x86-64 Ubuntu with one NVIDIA
// GPU (driver loaded), one Intel PAC N3000 FPGA, a BMC VGA and a PCI bridge
// that must not count. Values follow real /proc, /sys and os-release layouts.
import { TempRoot } from '../../helpers/host-root.ts';

export function gpuFpgaRoot(): TempRoot {
  const root = new TempRoot();
  root.write('/proc/sys/kernel/osrelease', '5.15.0-105-generic\n');
  root.write('/proc/sys/kernel/random/boot_id', '3f0c1a7e-6a0b-4d4e-9d61-2f7e4c8e9b10\n');
  root.write('/etc/machine-id', 'b1946ac92492d2347c6235b4d2611184\n');
  root.write('/etc/os-release', 'PRETTY_NAME="Ubuntu 22.04.4 LTS"\nNAME="Ubuntu"\nVERSION_ID="22.04"\nVERSION="22.04.4 LTS (Jammy Jellyfish)"\nID=ubuntu\nID_LIKE=debian\n');
  const cpu = (i: number): string => `processor\t: ${i}\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz\nflags\t\t: fpu vme de pse tsc msr pae mce avx2\n\n`;
  root.write('/proc/cpuinfo', [0, 1, 2, 3].map(cpu).join(''));
  root.write('/proc/meminfo', 'MemTotal:       16318480 kB\nMemFree:         1123456 kB\nMemAvailable:    8123456 kB\n');
  const pci = (addr: string, vendor: string, device: string, cls: string): void => {
    root.write(`/sys/bus/pci/devices/${addr}/vendor`, `${vendor}\n`);
    root.write(`/sys/bus/pci/devices/${addr}/device`, `${device}\n`);
    root.write(`/sys/bus/pci/devices/${addr}/class`, `${cls}\n`);
  };
  pci('0000:00:1f.0', '0x8086', '0xa1c1', '0x060100');
  pci('0000:02:00.0', '0x1a03', '0x2000', '0x030000');
  pci('0000:3b:00.0', '0x10de', '0x20b0', '0x030200');
  pci('0000:af:00.0', '0x8086', '0x0b30', '0x120000');
  root.write('/proc/driver/nvidia/gpus/0000:3b:00.0/information', 'Model: \t\t NVIDIA A100-SXM4-40GB\nIRQ:   \t\t 150\nGPU UUID: \t GPU-5f3c2b1a-8e7d-4c6b-9a2f-1e0d3c4b5a69\nVideo BIOS: \t 92.00.25.00.08\nBus Type: \t PCIe\nBus Location: \t 0000:3b:00.0\n');
  return root;
}

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { createHost } from '../../../src/host/host.ts';
import { archFromCpuinfo, collectMachineFacts, countCpus, parseMemTotalBytes, parseOsRelease } from '../../../src/report/kube/machine-facts.ts';
import { machineReason } from '../../../src/report/kube/machine-status.ts';
import { TempRoot } from '../../helpers/host-root.ts';
import { gpuFpgaRoot } from './machine-host.ts';

const roots: TempRoot[] = [];
after(() => roots.forEach((r) => r.remove()));

test('facts come from the --root tree, not from the machine running the test', async () => {
  const root = gpuFpgaRoot();
  roots.push(root);
  const facts = await collectMachineFacts(createHost({ root: root.dir }));
  assert.deepEqual(facts, {
    node: {
      kernelVersion: '5.15.0-105-generic', osImage: 'Ubuntu 22.04.4 LTS', osId: 'ubuntu', osVersion: '22.04', architecture: 'amd64',
      cpus: 4, memoryBytes: 16318480 * 1024, bootId: '3f0c1a7e-6a0b-4d4e-9d61-2f7e4c8e9b10', machineId: 'b1946ac92492d2347c6235b4d2611184',
    },
    gpus: [{ vendor: 'NVIDIA', model: 'NVIDIA A100-SXM4-40GB', busId: '0000:3b:00.0', uuid: 'GPU-5f3c2b1a-8e7d-4c6b-9a2f-1e0d3c4b5a69' }],
    fpgas: [{ vendor: 'Intel', model: 'PAC N3000', busId: '0000:af:00.0' }],
  });
});

test('a host without /sys/bus/pci and without os-release still reports; without /proc it refuses, naming the file', async () => {
  const root = new TempRoot();
  roots.push(root);
  const host = createHost({ root: root.dir });
  await assert.rejects(collectMachineFacts(host), /proc\/sys\/kernel\/osrelease/);
  root.write('/proc/sys/kernel/osrelease', '6.1.0-18-arm64\n');
  root.write('/proc/cpuinfo', 'processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes\nCPU implementer\t: 0x41\n\nprocessor\t: 1\nCPU implementer\t: 0x41\n');
  const facts = await collectMachineFacts(host);
  assert.deepEqual(facts, { node: { kernelVersion: '6.1.0-18-arm64', osImage: 'Linux', architecture: 'arm64', cpus: 2, memoryBytes: 0 }, gpus: [], fpgas: [] });
});

const archCases: [string, string, string | undefined][] = [
  ['x86 flags', 'processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu\n', 'amd64'],
  ['arm64 implementer', 'processor\t: 0\nCPU implementer\t: 0x41\n', 'arm64'],
  ['POWER', 'processor\t: 0\ncpu\t\t: POWER9 (architected)\n', 'ppc64le'],
  ['nothing known', 'processor\t: 0\n', undefined],
];
for (const [name, text, want] of archCases) test(`archFromCpuinfo: ${name}`, () => assert.equal(archFromCpuinfo(text), want));

test('parsers: os-release quoting, MemTotal, processor count', () => {
  assert.deepEqual(parseOsRelease('NAME="Debian GNU/Linux"\nID=debian\n# comment\nPRETTY_NAME=\'Debian 12\'\nX="a \\"q\\""\n'), { NAME: 'Debian GNU/Linux', ID: 'debian', PRETTY_NAME: 'Debian 12', X: 'a "q"' });
  assert.equal(parseMemTotalBytes('MemTotal:        1024 kB\n'), 1024 * 1024);
  assert.equal(parseMemTotalBytes('nothing'), undefined);
  assert.equal(countCpus('processor : 0\n\nprocessor : 1\n'), 2);
});

const reasonCases: [string, string][] = [
  ['KernelHasNoDeadlock', 'KernelHasNoDeadlock'],
  ['Disk full!', 'Diskfull'],
  ['123', 'Unknown'],
  ['NvidiaXID79Error', 'NvidiaXID79Error'],
];
for (const [input, want] of reasonCases) test(`machineReason(${JSON.stringify(input)})`, () => assert.equal(machineReason(input), want));

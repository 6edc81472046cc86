import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { createHost } from '../../src/host/host.ts';

const root = mkdtempSync(path.join(os.tmpdir(), 'kn-pseudo-'));
after(() => rmSync(root, { recursive: true, force: true }));
const put = (rel: string, text: string): void => {
  mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
  writeFileSync(path.join(root, rel), text);
};
const host = createHost({ root });

test('readPseudoFile reads under the root, and is undefined for a file that is not there', () => {
  put('proc/loadavg', '0.20 0.18 0.12 1/80 11206\n');
  put('proc/4242/stat', '4242 (containerd) S 1 4242 4242 0 -1\n');
  assert.equal(host.readPseudoFile('/proc/loadavg'), '0.20 0.18 0.12 1/80 11206\n');
  assert.equal(host.readPseudoFile('/proc/4242/stat'), '4242 (containerd) S 1 4242 4242 0 -1\n');
  assert.equal(host.readPseudoFile('/proc/pressure/io'), undefined, 'a kernel without PSI');
  assert.equal(host.readPseudoFile('/proc/4243/stat'), undefined, 'a process that has exited');
});

test('readPseudoFile refuses every file that could block, before opening it', () => {
  put('proc/4242/cmdline', 'containerd\0');
  put('proc/mounts', 'proc /proc proc rw 0 0\n');
  put('etc/hostname', 'node-1\n');
  for (const p of ['/proc/4242/cmdline', '/proc/4242/environ', '/proc/self/stat', '/proc/mounts', '/sys/block/sda/stat', '/etc/hostname', '/proc/4242/../mounts', 'proc/loadavg']) {
    assert.throws(() => host.readPseudoFile(p), new RegExp(`^Error: ${p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is not a pseudo-file that can be read without blocking`), p);
  }
});

test('listProcessIds lists the numeric entries of /proc under the root, and throws without a /proc', () => {
  for (const pid of ['1', '42', '4242']) mkdirSync(path.join(root, 'proc', pid), { recursive: true });
  mkdirSync(path.join(root, 'proc/self'), { recursive: true });
  assert.deepEqual(host.listProcessIds().sort(), ['1', '42', '4242']);
  const bare = mkdtempSync(path.join(os.tmpdir(), 'kn-pseudo-bare-'));
  try {
    assert.throws(() => createHost({ root: bare }).listProcessIds(), { code: 'ENOENT' });
  } finally {
    rmSync(bare, { recursive: true, force: true });
  }
});

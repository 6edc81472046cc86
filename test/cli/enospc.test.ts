// A full disk end to end: the agent's state dir is a 16 KiB tmpfs, filled, mounted in a private
// mount namespace of an unprivileged user namespace (unshare -Urm), so the kernel itself answers
// ENOSPC and nothing outside the namespace sees the mount. main maps it to EX_IOERR.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { detectors } from '../../src/detectors/index.ts';
import { AGENT, REPO } from '../helpers/cli.ts';
import { TempRoot } from '../helpers/host-root.ts';

function inFullDisk(mountAt: string, argv: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const script = 'mount -t tmpfs -o size=16k tmpfs "$1" && { dd if=/dev/zero of="$1/fill" bs=1k count=64 2>/dev/null; shift; exec "$@"; }';
  return new Promise((resolve, reject) => {
    const child = spawn('unshare', ['-Urm', 'sh', '-c', script, 'sh', mountAt, process.execPath, AGENT, ...argv], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

test('run on a full state dir exits 74 with one line naming the file and the cause', async (t) => {
  const root = new TempRoot();
  t.after(() => root.remove());
  root.write('/proc/sys/kernel/random/boot_id', 'boot-1\n');
  root.write('/proc/sys/kernel/hostname', 'node-full\n');
  root.write('/var/lib/kubenode/.keep', '');
  const config = root.write('/agent.yaml', ['listen: 127.0.0.1:0', 'detectors:', ...Object.keys(detectors).map((name) => `  ${name}: { enabled: false }`), ''].join('\n'));
  const r = await inFullDisk(root.path('/var/lib/kubenode'), ['run', '--root', root.dir, '--config', config]);
  assert.equal(r.code, 74, r.stderr);
  assert.deepEqual(r.stderr.trimEnd().split('\n'), [`kubenode-agent: ${root.path('/var/lib/kubenode')}/.writable: no space left on device`]);
});

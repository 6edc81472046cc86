// kmsg fault → Node condition, end to end through the built agent: the agent (`run --kubeconfig`,
// agent identity, deploy/rbac applied) follows a scratch root's /dev/kmsg; the bench appends a real
// read-only-remount line and times until an admin watch sees ReadonlyFilesystem True on the Node,
// then appends a line matching a configured recovery pattern and times until it is False again.
// Run: node scripts/build.ts && node bench/kube-e2e.ts [transitions=40]
import { spawn } from 'node:child_process';
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { startCluster } from '../test/harness/cluster.ts';
import { applyDir } from '../test/helpers/kube-objects.ts';
import { createNode } from '../test/report/kube/rbac.ts';

const transitions = Number(process.argv[2] ?? 40);
const cluster = await startCluster({ agents: 1 });
const root = mkdtempSync(path.join(os.tmpdir(), 'kubenode-bench-e2e-'));
try {
  await applyDir(cluster, new URL('../deploy/rbac/', import.meta.url));
  await createNode(cluster, 'node-0');
  mkdirSync(path.join(root, 'proc/sys/kernel/random'), { recursive: true });
  mkdirSync(path.join(root, 'dev'));
  writeFileSync(path.join(root, 'proc/uptime'), '100.00 100.00\n');
  writeFileSync(path.join(root, 'proc/sys/kernel/random/boot_id'), 'bench\n');
  writeFileSync(path.join(root, 'dev/kmsg'), '6,1,1000,-;Linux version 6.1.0\n');
  // The embedded NPD readonly monitor alone, clearing on a recovery line, without flap damping.
  const config = path.join(root, 'agent.yaml');
  writeFileSync(config, [
    'listen: 127.0.0.1:0',
    'detection: { recoveryHold: 0s }',
    'monitors:',
    '  systemLog: [builtin:readonly-monitor.json]',
    '  recoveryPatterns: [{ condition: ReadonlyFilesystem, pattern: "re-mounted. Opts: errors=remount-ro" }]',
    'detectors: { kernel: { enabled: false }, storage: { enabled: false } }',
    '',
  ].join('\n'));

  const waiters: { status: string; resolve: () => void }[] = [];
  const url = new URL('/api/v1/nodes?watch=1&fieldSelector=metadata.name%3Dnode-0', cluster.server);
  const watch = request(url, { ca: cluster.ca, headers: { authorization: `Bearer ${cluster.adminToken}` }, agent: false }, (res) => {
    let buf = '';
    res.setEncoding('utf8');
    res.on('data', (d: string) => {
      buf += d;
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const ev = JSON.parse(buf.slice(0, nl)) as { object: { status?: { conditions?: { type: string; status: string }[] } } };
        buf = buf.slice(nl + 1);
        const status = ev.object.status?.conditions?.find((c) => c.type === 'ReadonlyFilesystem')?.status;
        for (const w of waiters.filter((x) => x.status === status)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve();
        }
      }
    });
  });
  watch.end();
  const seen = (status: string): Promise<void> => new Promise((resolve) => waiters.push({ status, resolve }));

  const agent = spawn(process.execPath, ['dist/kubenode-agent.cjs', 'run', '--root', root, '--config', config, '--kubeconfig', cluster.agentKubeconfig(0), '--node-name', 'node-0', '--log-level', 'error'], { stdio: 'inherit' });
  await seen('False');

  const lines = {
    True: 'EXT4-fs (dm-4): Remounting filesystem read-only',
    False: 'EXT4-fs (nvme0n1p5): re-mounted. Opts: errors=remount-ro. Quota mode: none.',
  } as const;
  const times: number[] = [];
  let seq = 2;
  for (let i = 0; i < transitions; i++) {
    const status = i % 2 === 0 ? 'True' : 'False';
    const visible = seen(status);
    const started = performance.now();
    appendFileSync(path.join(root, 'dev/kmsg'), `3,${seq++},99000000,-;${lines[status]}\n`);
    await visible;
    times.push(performance.now() - started);
  }
  agent.kill('SIGTERM');
  watch.destroy();
  times.sort((a, b) => a - b);
  const at = (q: number): string => (times[Math.min(times.length - 1, Math.floor(times.length * q))] as number).toFixed(0);
  console.log(`## kmsg line → Node condition, through the built agent (${times.length} transitions)`);
  console.log(`p50 ${at(0.5)} ms, p99 ${at(0.99)} ms, max ${(times.at(-1) as number).toFixed(0)} ms (kmsg is polled every 250 ms)`);
} finally {
  await cluster.stop();
  rmSync(root, { recursive: true, force: true });
}

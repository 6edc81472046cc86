// `kubenode-agent run` as the tests start it: the bundle `npm run build` makes, on a scratch host
// root. Every agent and root made here is killed and removed after the test file's tests.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { after } from 'node:test';
import { AGENT, REPO } from './cli.ts';
import { TempRoot } from './host-root.ts';

const children = new Set<ChildProcessWithoutNullStreams>();
const roots = new Set<TempRoot>();
after(() => {
  for (const child of children) child.kill('SIGKILL');
  for (const root of roots) root.remove();
});

/** A host root the daemon starts on: uptime, boot id, hostname, and a /dev/kmsg holding the kernel's first line. */
export function agentRoot(hostname = 'node-test'): TempRoot {
  const root = new TempRoot();
  roots.add(root);
  root.write('/proc/uptime', '100.00 100.00\n');
  root.write('/proc/sys/kernel/random/boot_id', 'boot-1\n');
  root.write('/proc/sys/kernel/hostname', `${hostname}\n`);
  root.write('/dev/kmsg', '6,1,1000,-;Linux version 6.1.0\n');
  return root;
}

/** `kubenode-agent ARGS` as a child process with the Node that runs the tests (given nodeArgs before the bundle). */
export function spawnAgent(args: readonly string[], options: { nodeArgs?: readonly string[] } = {}): ChildProcessWithoutNullStreams {
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), AGENT, ...args], { cwd: REPO });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

export interface Agent {
  child: ChildProcessWithoutNullStreams;
  /** Its JSON log lines so far (stdout). */
  logs: Record<string, unknown>[];
  /** http://ADDRESS it serves /metrics and /healthz on. */
  base: string;
  exited: Promise<number | null>;
  /** Everything it wrote, stdout and stderr. */
  output: () => string;
}

/** Starts `run --root ROOT --config CONFIG ARGS` and resolves once it says where it listens. */
export async function startAgent(root: TempRoot, config: string, args: readonly string[] = []): Promise<Agent> {
  const child = spawnAgent(['run', '--root', root.dir, '--config', config, ...args]);
  const logs: Record<string, unknown>[] = [];
  let out = '';
  let buffered = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    buffered += d.toString();
    const lines = buffered.split('\n');
    buffered = lines.pop() ?? '';
    for (const line of lines) logs.push(JSON.parse(line) as Record<string, unknown>);
  });
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const started = await waitFor(() => logs.find((l) => l.msg === 'Agent started'), () => `no start: ${out}`);
  return { child, logs, base: `http://${started.listen as string}`, exited, output: () => out };
}

/** Polls `probe` until it gives something other than undefined or false. */
export async function waitFor<T>(probe: () => T | undefined | false | Promise<T | undefined | false>, why: () => string, ms = 60_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > until) throw new Error(`timed out waiting: ${why()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

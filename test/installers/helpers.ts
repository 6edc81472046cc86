import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before } from 'node:test';
import { Header } from 'tar';
import { stringify } from 'yaml';
import { gzipSync } from 'node:zlib';
import { runAgent, type CliResult } from '../helpers/cli.ts';

export const sha256 = (data: Uint8Array | string): string => createHash('sha256').update(data).digest('hex');

export function tempDir(prefix: string): string {
  return mkdtempSync(path.join(os.tmpdir(), `kubenode-${prefix}-`));
}

/**
 * A sandbox host root. usr/bin/systemctl is a recording script: every call appends its argv to
 * var/log/systemctl.calls; calls with --root (enable/disable) are handed to the machine's real
 * systemctl, which acts only on the tree; `is-active UNIT` fails while run/inactive-UNIT exists.
 */
export function makeSandbox(options: { systemctl?: boolean } = {}): string {
  const root = tempDir('root');
  mkdirSync(path.join(root, 'usr/bin'), { recursive: true });
  mkdirSync(path.join(root, 'var/log'), { recursive: true });
  mkdirSync(path.join(root, 'etc'), { recursive: true });
  writeFileSync(path.join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n');
  writeFileSync(path.join(root, 'etc/group'), 'root:x:0:\ndaemon:x:1:\nnogroup:x:65534:\n');
  if (options.systemctl !== false) {
    const script = `#!/bin/sh
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
printf '%s\\n' "$*" >> "$ROOT/var/log/systemctl.calls"
case " $* " in
  *" --root "*) exec /usr/bin/systemctl "$@" ;;
esac
if [ "$1" = is-active ]; then
  if [ -e "$ROOT/run/inactive-$2" ]; then echo inactive; exit 3; fi
  echo active
fi
exit 0
`;
    writeFileSync(path.join(root, 'usr/bin/systemctl'), script);
    chmodSync(path.join(root, 'usr/bin/systemctl'), 0o755);
  }
  return root;
}

/** A sandbox root (makeSandbox), a scratch work directory, and the manifest directory's path in it (writeManifest makes it). */
export function installerSandbox(options: { systemctl?: boolean } = {}): { root: string; work: string; manifests: string } {
  const root = makeSandbox(options);
  const work = tempDir('work');
  return { root, work, manifests: path.join(work, 'manifests') };
}

/** A MachineComponent manifest (kubenode.io/v1alpha1), as YAML. */
export function componentManifest(name: string, spec: Record<string, unknown>): string {
  return stringify({ apiVersion: 'kubenode.io/v1alpha1', kind: 'MachineComponent', metadata: { name }, spec });
}

/** usr/bin/mark WORD [SECONDS]: appends "WORD start", sleeps, appends "WORD done" to var/log/hooks. */
export function withMarkHook(root: string): () => string[] {
  const file = path.join(root, 'usr/bin/mark');
  writeFileSync(file, '#!/bin/sh\nLOG="$(cd "$(dirname "$0")/../.." && pwd)/var/log/hooks"\necho "$1 start" >> "$LOG"\nsleep "${2:-0}"\necho "$1 done" >> "$LOG"\n');
  chmodSync(file, 0o755);
  const log = path.join(root, 'var/log/hooks');
  return () => (existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter((l) => l !== '') : []);
}

/** systemctl calls recorded in a sandbox (without the --root ones). */
export function systemctlCalls(root: string, options: { all?: boolean } = {}): string[] {
  const file = path.join(root, 'var/log/systemctl.calls');
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8').split('\n').filter((l) => l !== '' && (options.all === true || !l.includes('--root')));
}

export function clearSystemctlCalls(root: string): void {
  rmSync(path.join(root, 'var/log/systemctl.calls'), { force: true });
}

/** agent.yaml for tests: fast retries, a risk budget that does not get in the way. */
export function writeConfig(dir: string, extra: Record<string, unknown> = {}): string {
  const file = path.join(dir, 'agent.yaml');
  const installers = { downloadBackoff: '20ms', downloadAttempts: 4, lockTimeout: '300ms', ...extra };
  writeFileSync(file, `${JSON.stringify({ nodeName: 'node-a', monitors: { systemLog: [], customPlugin: [] }, installers, risk: { local: { maxDisruptive: 100 } } })}\n`);
  return file;
}

export interface TarEntry {
  path: string;
  type?: 'File' | 'Directory' | 'SymbolicLink' | 'Link' | 'CharacterDevice' | 'FIFO';
  content?: string;
  mode?: number;
  linkpath?: string;
}

/** A tar archive assembled entry by entry with node-tar's header encoder (so hostile entries are possible). */
export function makeTar(entries: readonly TarEntry[], gzip = true): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const type = e.type ?? 'File';
    const body = Buffer.from(type === 'File' ? (e.content ?? '') : '');
    const header = new Header({
      path: e.path,
      type,
      mode: e.mode ?? (type === 'Directory' ? 0o755 : 0o644),
      size: body.length,
      mtime: new Date('2026-01-01T00:00:00Z'),
      uid: 0,
      gid: 0,
      uname: 'root',
      gname: 'root',
      ...(e.linkpath === undefined ? {} : { linkpath: e.linkpath }),
      ...(type === 'CharacterDevice' ? { devmaj: 1, devmin: 3 } : {}),
    });
    const block = Buffer.alloc(512);
    header.encode(block, 0);
    blocks.push(block, body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  const tar = Buffer.concat(blocks);
  return gzip ? gzipSync(tar) : tar;
}

/** A small component release: a tarball with bin/demo printing its version and a health flag. */
export function demoRelease(version: string, options: { healthy?: boolean } = {}): Buffer {
  const healthy = options.healthy !== false;
  return makeTar([
    { path: `demo-${version}/`, type: 'Directory' },
    { path: `demo-${version}/bin/`, type: 'Directory' },
    {
      path: `demo-${version}/bin/demo`,
      mode: 0o755,
      content: `#!/bin/sh\nif [ "$1" = --version ]; then echo "demo version ${version}"; exit 0; fi\nif [ "$1" = --health ]; then ${healthy ? 'exit 0' : `echo "demo ${version} is broken" >&2; exit 1`}; fi\nexit 0\n`,
    },
    { path: `demo-${version}/README`, content: `demo ${version}\n` },
  ]);
}

export interface ArtifactServer {
  url(name: string): string;
  put(name: string, body: Buffer): void;
  /** The next `times` responses for this name stop after `bytes` bytes and drop the connection. */
  cutAfter(name: string, bytes: number, times?: number): void;
  requests: { name: string; range: string | undefined; status: number }[];
  close(): Promise<void>;
}

/** Serves artifacts on 127.0.0.1, honouring Range, optionally cutting connections half-way. */
export async function startArtifactServer(): Promise<ArtifactServer> {
  const files = new Map<string, Buffer>();
  const cuts = new Map<string, { bytes: number; times: number }>();
  const requests: ArtifactServer['requests'] = [];
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const name = decodeURIComponent((req.url ?? '/').slice(1));
    const body = files.get(name);
    const range = req.headers.range;
    if (body === undefined) {
      requests.push({ name, range, status: 404 });
      res.writeHead(404).end('not found');
      return;
    }
    let start = 0;
    let status = 200;
    const m = range === undefined ? null : /^bytes=(\d+)-$/.exec(range);
    if (m !== null) {
      start = Number(m[1]);
      if (start >= body.length) {
        requests.push({ name, range, status: 416 });
        res.writeHead(416, { 'content-range': `bytes */${body.length}` }).end();
        return;
      }
      status = 206;
    }
    requests.push({ name, range, status });
    const slice = body.subarray(start);
    res.writeHead(status, {
      'content-length': String(slice.length),
      'accept-ranges': 'bytes',
      ...(status === 206 ? { 'content-range': `bytes ${start}-${body.length - 1}/${body.length}` } : {}),
    });
    const cut = cuts.get(name);
    if (cut !== undefined && cut.times > 0) {
      cut.times -= 1;
      res.write(slice.subarray(0, cut.bytes), () => {
        // Drop the connection mid-body, as a failing proxy or a reset would.
        setTimeout(() => res.socket?.destroy(), 20);
      });
      return;
    }
    res.end(slice);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    url: (name) => `http://127.0.0.1:${port}/${encodeURIComponent(name)}`,
    put: (name, body) => files.set(name, body),
    cutAfter: (name, bytes, times = 1) => cuts.set(name, { bytes, times }),
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** One artifact server for the enclosing describe(): started before its first test, closed after its last. */
export function artifactServerForSuite(): ArtifactServer {
  let server: ArtifactServer | undefined;
  before(async () => {
    server = await startArtifactServer();
  });
  after(() => server?.close());
  const running = (): ArtifactServer => {
    if (server === undefined) throw new Error('the artifact server runs only while the tests of its describe() run');
    return server;
  };
  return {
    url: (name) => running().url(name),
    put: (name, body) => running().put(name, body),
    cutAfter: (name, bytes, times) => running().cutAfter(name, bytes, times),
    get requests() {
      return running().requests;
    },
    close: () => running().close(),
  };
}

export function writeManifest(dir: string, name: string, yamlText: string): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, name), yamlText);
}

/** Runs `kubenode-agent <command> --manifests M --root R --config C`. */
export function agent(command: 'plan' | 'apply' | 'status', env: { root: string; manifests?: string; config: string }, extra: string[] = [], options: { env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  const args = [command, '--root', env.root, '--config', env.config, ...(command !== 'status' && env.manifests !== undefined ? ['--manifests', env.manifests] : []), ...extra];
  return runAgent(args, { ...(options.env === undefined ? {} : { env: options.env }), timeoutMs: 60_000 });
}

export function readJson<T>(file: string): T {
  return JSON.parse(readFileSync(file, 'utf8')) as T;
}

import path from 'node:path';
import type { MachineComponentSpec } from '../../api/machine-component.ts';
import { listDir, readLink, removePath, statPath, swapSymlink } from '../../host/files.ts';
import { ensureArtifact, haveArtifact } from '../download.ts';
import type { InstallContext, Step } from '../types.ts';
import { StepError } from '../types.ts';

export const installDir = (spec: MachineComponentSpec): string => spec.install.dir ?? `/opt/kubenode/${spec.component}`;
export const versionDir = (spec: MachineComponentSpec): string => `${installDir(spec)}/${spec.version}`;

/** Checks that a spec with a download has its url and sha256 (the schema's CEL rule, in code). */
export function artifactOf(spec: MachineComponentSpec): { url: string; sha256: string } {
  const { url, sha256 } = spec.source;
  if (url === undefined || sha256 === undefined) throw new StepError('fetch', `source.type ${spec.source.type} needs url and sha256`);
  return { url, sha256 };
}

/** Downloads into the cache unless the version is already installed. */
export function fetchStep(ctx: InstallContext, spec: MachineComponentSpec, installed: () => Promise<boolean>): Step {
  const { url, sha256 } = artifactOf(spec);
  return {
    id: 'fetch',
    describe: `download ${url} (sha256 ${sha256.slice(0, 12)}…) into the cache`,
    marks: ['postInstall'],
    async check() {
      if (await installed()) return { inSync: true };
      return (await haveArtifact(ctx, spec.component, sha256)) ? { inSync: true } : { inSync: false, diff: 'not in the cache' };
    },
    async apply() {
      await ensureArtifact(ctx, spec.component, url, sha256, spec.source.maxBytes);
    },
  };
}

const linkTarget = (spec: MachineComponentSpec, linkPath: string, target: string): string =>
  path.relative(path.dirname(linkPath), `${installDir(spec)}/current/${target}`);

/** DIR/current → VERSION and the stable links into DIR/current, each swapped atomically. */
export function activateStep(ctx: InstallContext, spec: MachineComponentSpec): Step {
  const dir = installDir(spec);
  return {
    id: 'activate',
    describe: `point ${dir}/current at ${spec.version}${spec.install.links.length === 0 ? '' : ` and link ${spec.install.links.map((l) => l.path).join(', ')}`}`,
    marks: ['restart', 'postInstall'],
    touches: async () => [`${dir}/current`, ...spec.install.links.map((l) => l.path)].map((p) => ({ kind: 'path', path: p })),
    async check() {
      const current = await readLink(ctx.host, `${dir}/current`);
      if (current !== spec.version) return { inSync: false, diff: current === undefined ? 'no current version' : `current is ${current}` };
      for (const link of spec.install.links) {
        if ((await readLink(ctx.host, link.path)) !== linkTarget(spec, link.path, link.target)) return { inSync: false, diff: `${link.path} not linked` };
      }
      return { inSync: true };
    },
    async apply() {
      if ((await statPath(ctx.host, versionDir(spec)))?.type !== 'dir') throw new StepError('activate', `${versionDir(spec)} is not installed`);
      await swapSymlink(ctx.host, `${dir}/current`, spec.version);
      for (const link of spec.install.links) {
        const existing = await statPath(ctx.host, link.path);
        if (existing !== undefined && existing.type !== 'symlink') {
          throw new StepError('activate', `${link.path} exists and is a ${existing.type}, not a link this agent manages; remove it first`);
        }
        await swapSymlink(ctx.host, link.path, linkTarget(spec, link.path, link.target));
      }
    },
  };
}

/** Keeps the `keep` most recently used version directories and cached artifacts. */
export async function pruneVersioned(ctx: InstallContext, spec: MachineComponentSpec, keep: number, protect: { versions: string[]; sha256: string[] }): Promise<void> {
  const dir = installDir(spec);
  const current = await readLink(ctx.host, `${dir}/current`);
  const keepVersions = new Set([...protect.versions, ...(current === undefined ? [] : [current])]);
  await pruneDir(ctx, dir, keep, (name) => name !== 'current' && !name.startsWith('.'), (name) => keepVersions.has(name));
  await pruneCache(ctx, spec.component, keep, protect.sha256);
}

export async function pruneCache(ctx: InstallContext, component: string, keep: number, protect: string[]): Promise<void> {
  await pruneDir(ctx, `${ctx.config.cacheRoot}/${component}`, keep, (name) => /^[a-f0-9]{64}$/.test(name), (name) => protect.includes(name));
}

async function pruneDir(ctx: InstallContext, dir: string, keep: number, candidate: (name: string) => boolean, pinned: (name: string) => boolean): Promise<void> {
  const entries: { name: string; mtime: number }[] = [];
  for (const name of await listDir(ctx.host, dir)) {
    if (!candidate(name)) continue;
    const info = await statPath(ctx.host, `${dir}/${name}`);
    if (info !== undefined) entries.push({ name, mtime: info.mtimeMs });
  }
  entries.sort((a, b) => b.mtime - a.mtime);
  let kept = entries.filter((e) => pinned(e.name)).length;
  for (const e of entries) {
    if (pinned(e.name)) continue;
    if (kept < keep) {
      kept++;
      continue;
    }
    ctx.log.info({ path: `${dir}/${e.name}` }, 'Pruning old version');
    await removePath(ctx.host, `${dir}/${e.name}`);
  }
}

import path from 'node:path';
import type { MachineComponentSpec } from '../../api/machine-component.ts';
import { listDir, readLink, removePath, renamePath, statPath, swapSymlink } from '../../host/files.ts';
import { tempName } from '../../host/jail.ts';
import { ensureArtifact, haveArtifact } from '../download.ts';
import { crashPoint } from '../journal.ts';
import { disown, isOwned, own, ownedPaths } from '../owned.ts';
import { unsafeManagedPath } from '../paths.ts';
import type { InstallContext, Step } from '../types.ts';
import { StepError } from '../types.ts';

export const installDir = (spec: MachineComponentSpec): string => spec.install.dir ?? `/opt/kubenode/${spec.component}`;
export const versionDir = (spec: MachineComponentSpec): string => `${installDir(spec)}/${spec.version}`;

/** Throws when the install directory is reached through a symlink (src/installers/paths.ts). */
export async function checkInstallDir(ctx: InstallContext, spec: MachineComponentSpec, step: string): Promise<void> {
  const bad = await unsafeManagedPath(ctx.host, installDir(spec), 'install.dir', 'dir');
  if (bad !== undefined) throw new StepError(step, bad);
}

/**
 * The state of DIR/VERSION: installed only when this agent put it there (a version directory
 * appears at its name whole, by one rename, and leaves it whole, by one rename, so an owned one is
 * complete); foreign when something else made a directory of that name, which is never touched.
 */
export async function versionState(ctx: InstallContext, spec: MachineComponentSpec): Promise<'installed' | 'absent' | 'foreign'> {
  const dir = versionDir(spec);
  const info = await statPath(ctx.host, dir);
  if (info === undefined) return 'absent';
  return info.type === 'dir' && (await isOwned(ctx, spec.component, dir)) ? 'installed' : 'foreign';
}

export const foreignVersionError = (spec: MachineComponentSpec): StepError =>
  new StepError('install', `${versionDir(spec)} exists and was not made by this agent; refusing to use or replace it (remove it, or choose another install.dir)`);

/** Moves a fully prepared temp directory to DIR/VERSION, recorded as this agent's first. */
export async function placeVersion(ctx: InstallContext, spec: MachineComponentSpec, tmp: string): Promise<void> {
  await own(ctx, spec.component, versionDir(spec));
  await renamePath(ctx.host, tmp, versionDir(spec));
}

/**
 * Takes a version directory this agent made away from its name: renamed aside to a temp name (one
 * atomic step) and disowned, so a kill -9 during the delete that follows leaves a temp directory
 * (swept at the next start), never part of a version under its real name. Returns the temp path.
 */
async function moveVersionAside(ctx: InstallContext, component: string, hostPath: string): Promise<string | undefined> {
  if (!(await isOwned(ctx, component, hostPath))) return undefined;
  let aside: string | undefined;
  if ((await statPath(ctx.host, hostPath)) !== undefined) {
    aside = `${path.posix.dirname(hostPath)}/${tempName(path.posix.basename(hostPath))}`;
    await renamePath(ctx.host, hostPath, aside);
  }
  await disown(ctx, component, hostPath);
  return aside;
}

/** Removes a version directory this agent made (see moveVersionAside); others are left alone. */
export async function removeVersion(ctx: InstallContext, component: string, hostPath: string): Promise<void> {
  const aside = await moveVersionAside(ctx, component, hostPath);
  if (aside !== undefined) await removePath(ctx.host, aside);
}

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

/** What a managed link at linkPath holds: a relative path into DIR/current. */
export const linkTargetOf = (spec: MachineComponentSpec, linkPath: string, target: string): string =>
  path.relative(path.dirname(linkPath), `${installDir(spec)}/current/${target}`);

/** DIR/current must be this agent's kind of link (to a bare version name) or absent; each link path must be safe to swap. */
async function checkLinks(ctx: InstallContext, spec: MachineComponentSpec): Promise<void> {
  await checkInstallDir(ctx, spec, 'activate');
  const current = `${installDir(spec)}/current`;
  const info = await statPath(ctx.host, current);
  if (info !== undefined && (info.type !== 'symlink' || ((await readLink(ctx.host, current)) ?? '/').includes('/'))) {
    throw new StepError('activate', `${current} exists and is not a link this agent made (it would point at a version name); refusing to replace it`);
  }
  for (const link of spec.install.links) {
    const bad = await unsafeManagedPath(ctx.host, link.path, 'link', 'replace');
    if (bad !== undefined) throw new StepError('activate', bad);
    const existing = await statPath(ctx.host, link.path);
    if (existing !== undefined && existing.type !== 'symlink') {
      throw new StepError('activate', `${link.path} exists and is a ${existing.type}, not a link this agent manages; remove it first`);
    }
    // A link is this agent's when it points into DIR/current; another (an operator's python3 -> python3.11) is not replaced.
    const held = existing === undefined ? undefined : await readLink(ctx.host, link.path);
    if (held !== undefined && !path.posix.resolve(path.posix.dirname(link.path), held).startsWith(`${installDir(spec)}/current/`)) {
      throw new StepError('activate', `${link.path} is a link to ${held}, which this agent did not make; refusing to replace it (remove it first)`);
    }
  }
}

/** DIR/current → VERSION and the stable links into DIR/current, each swapped atomically. */
export function activateStep(ctx: InstallContext, spec: MachineComponentSpec): Step {
  const dir = installDir(spec);
  return {
    id: 'activate',
    describe: `point ${dir}/current at ${spec.version}${spec.install.links.length === 0 ? '' : ` and link ${spec.install.links.map((l) => l.path).join(', ')}`}`,
    marks: ['restart', 'postInstall'],
    touches: async () => [`${dir}/current`, ...spec.install.links.map((l) => l.path)].map((p) => ({ kind: 'path', path: p })),
    async check() {
      await checkLinks(ctx, spec);
      const current = await readLink(ctx.host, `${dir}/current`);
      if (current !== spec.version) return { inSync: false, diff: current === undefined ? 'no current version' : `current is ${current}` };
      for (const link of spec.install.links) {
        if ((await readLink(ctx.host, link.path)) !== linkTargetOf(spec, link.path, link.target)) return { inSync: false, diff: `${link.path} not linked` };
      }
      return { inSync: true };
    },
    async apply() {
      await checkLinks(ctx, spec);
      if ((await versionState(ctx, spec)) !== 'installed') throw new StepError('activate', `${versionDir(spec)} is not installed`);
      await swapSymlink(ctx.host, `${dir}/current`, spec.version);
      for (const link of spec.install.links) await swapSymlink(ctx.host, link.path, linkTargetOf(spec, link.path, link.target));
    },
  };
}

/**
 * Keeps the `keep` most recently used version directories and cached artifacts. Only directories
 * this agent recorded creating are candidates: whatever else lives in the install directory stays.
 */
export async function pruneVersioned(ctx: InstallContext, spec: MachineComponentSpec, keep: number, protect: { versions: string[]; sha256: string[] }): Promise<void> {
  const dir = installDir(spec);
  const current = await readLink(ctx.host, `${dir}/current`);
  const pinned = new Set([...protect.versions, ...(current === undefined ? [] : [current])].map((v) => `${dir}/${v}`));
  const entries: { path: string; mtime: number }[] = [];
  for (const owned of await ownedPaths(ctx, spec.component)) {
    const info = await statPath(ctx.host, owned);
    // A record of a directory that is gone (a crash between its rename and the record) is dropped.
    if (info === undefined) await disown(ctx, spec.component, owned);
    else entries.push({ path: owned, mtime: info.mtimeMs });
  }
  await pruneOldest(entries, keep, (p) => pinned.has(p), async (p) => {
    ctx.log.info({ component: spec.component, path: p }, 'Pruning old version');
    const aside = await moveVersionAside(ctx, spec.component, p);
    crashPoint(`pruning ${p}`);
    if (aside !== undefined) await removePath(ctx.host, aside);
  });
  await pruneCache(ctx, spec.component, keep, protect.sha256);
}

export async function pruneCache(ctx: InstallContext, component: string, keep: number, protect: string[]): Promise<void> {
  const dir = `${ctx.config.cacheRoot}/${component}`;
  const entries: { path: string; mtime: number }[] = [];
  for (const name of await listDir(ctx.host, dir)) {
    if (!/^[a-f0-9]{64}$/.test(name)) continue;
    const info = await statPath(ctx.host, `${dir}/${name}`);
    if (info?.type === 'file') entries.push({ path: `${dir}/${name}`, mtime: info.mtimeMs });
  }
  await pruneOldest(entries, keep, (p) => protect.includes(path.posix.basename(p)), (p) => removePath(ctx.host, p));
}

/** Removes all but the `keep` most recently used entries, pinned ones counted as kept and never removed. */
async function pruneOldest(entries: { path: string; mtime: number }[], keep: number, pinned: (p: string) => boolean, remove: (p: string) => Promise<void>): Promise<void> {
  entries.sort((a, b) => b.mtime - a.mtime);
  let kept = entries.filter((e) => pinned(e.path)).length;
  for (const e of entries) {
    if (pinned(e.path)) continue;
    if (kept < keep) {
      kept++;
      continue;
    }
    await remove(e.path);
  }
}

// Config files: rendered from the spec, written atomically (temp + fsync + rename) with mode and
// owner, compared by content hash.
import { createHash } from 'node:crypto';
import type { ComponentFile, MachineComponentSpec } from '../api/machine-component.ts';
import type { Host } from '../host/host.ts';
import { hashFile, setModeOwner, statPath, writeFileAtomicOwned } from '../host/files.ts';
import { unsafeManagedPath } from './paths.ts';
import type { InstallContext, Step } from './types.ts';
import { StepError } from './types.ts';

export interface Facts {
  nodeName: string;
  arch: string;
  component: string;
  version: string;
  installDir: string;
}

const ARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };
export const nodeArch = (): string => ARCH[process.arch] ?? process.arch;

/** Replaces {{name}} (spaces allowed inside the braces) with a fact; an unknown name is an error. */
export function renderTemplate(template: string, facts: Facts, where: string): string {
  return template.replace(/\{\{\s*([A-Za-z]+)\s*\}\}/g, (_m, name: string) => {
    const value = (facts as unknown as Record<string, string | undefined>)[name];
    if (value === undefined) throw new StepError(where, `template uses {{${name}}}; known facts: ${Object.keys(facts).join(', ')}`);
    return value;
  });
}

export function renderFile(file: ComponentFile, facts: Facts): string {
  return file.content ?? renderTemplate(file.template ?? '', facts, `file:${file.path}`);
}

export const sha256 = (data: string | Uint8Array): string => createHash('sha256').update(data).digest('hex');

async function lookupId(host: Host, db: '/etc/passwd' | '/etc/group', name: string): Promise<number | undefined> {
  if (/^[0-9]+$/.test(name)) return Number(name);
  const text = (await host.tryReadText(db)) ?? '';
  for (const line of text.split('\n')) {
    const fields = line.split(':');
    if (fields[0] === name && fields[2] !== undefined && /^[0-9]+$/.test(fields[2])) return Number(fields[2]);
  }
  return undefined;
}

/** "user[:group]" → ids, resolved in the host's own passwd and group files. */
export async function resolveOwner(host: Host, owner: string | undefined, where: string): Promise<{ uid?: number; gid?: number }> {
  if (owner === undefined) return {};
  const [user, group] = owner.split(':') as [string, string | undefined];
  const uid = await lookupId(host, '/etc/passwd', user);
  if (uid === undefined) throw new StepError(where, `owner: no user ${JSON.stringify(user)} in ${host.path('/etc/passwd')}`);
  if (group === undefined) return { uid };
  const gid = await lookupId(host, '/etc/group', group);
  if (gid === undefined) throw new StepError(where, `owner: no group ${JSON.stringify(group)} in ${host.path('/etc/group')}`);
  return { uid, gid };
}

/** Checks a managed file against wanted content, mode and owner; the diff names what differs. */
export async function checkManagedFile(
  host: Host,
  path: string,
  content: string,
  mode: number,
  owner: { uid?: number; gid?: number },
): Promise<{ inSync: true } | { inSync: false; diff: string; contentChanged: boolean }> {
  const info = await statPath(host, path);
  if (info === undefined) return { inSync: false, diff: 'create', contentChanged: true };
  if (info.type !== 'file') return { inSync: false, diff: `replace ${info.type} with a file`, contentChanged: true };
  const diffs: string[] = [];
  let contentChanged = false;
  if (info.size !== Buffer.byteLength(content) || (await hashFile(host, path)) !== sha256(content)) {
    diffs.push('content');
    contentChanged = true;
  }
  if (info.mode !== mode) diffs.push(`mode ${info.mode.toString(8).padStart(4, '0')} → ${mode.toString(8).padStart(4, '0')}`);
  if ((owner.uid !== undefined && info.uid !== owner.uid) || (owner.gid !== undefined && info.gid !== owner.gid)) {
    diffs.push(`owner ${info.uid}:${info.gid} → ${owner.uid ?? info.uid}:${owner.gid ?? info.gid}`);
  }
  return diffs.length === 0 ? { inSync: true } : { inSync: false, diff: diffs.join(', '), contentChanged };
}

/** Throws a StepError when a managed file or unit path is reached through a symlink or would replace a linked directory. */
export async function refuseUnsafe(host: Host, hostPath: string, what: string, step: string): Promise<void> {
  const bad = await unsafeManagedPath(host, hostPath, what, 'replace');
  if (bad !== undefined) throw new StepError(step, bad);
}

export function fileSteps(ctx: InstallContext, spec: MachineComponentSpec, facts: Facts): Step[] {
  return spec.files.map((file): Step => {
    const id = `file:${file.path}`;
    const mode = parseInt(file.mode, 8);
    const restarts = file.restartOnChange && spec.unit !== undefined && spec.unit.restartOnChange;
    let contentChanged = true;
    return {
      id,
      describe: `write ${file.path} (mode ${file.mode}${file.owner === undefined ? '' : `, owner ${file.owner}`})`,
      get marks() {
        return restarts && contentChanged ? (['restart'] as const).slice() : [];
      },
      touches: async () => [{ kind: 'path', path: file.path }],
      async check() {
        await refuseUnsafe(ctx.host, file.path, 'file', id);
        const result = await checkManagedFile(ctx.host, file.path, renderFile(file, facts), mode, await resolveOwner(ctx.host, file.owner, id));
        if (!result.inSync) contentChanged = result.contentChanged;
        return result.inSync ? { inSync: true } : { inSync: false, diff: result.diff };
      },
      async apply() {
        await refuseUnsafe(ctx.host, file.path, 'file', id);
        const owner = await resolveOwner(ctx.host, file.owner, id);
        const content = renderFile(file, facts);
        const current = await checkManagedFile(ctx.host, file.path, content, mode, owner);
        if (current.inSync) return;
        if (current.contentChanged) await writeFileAtomicOwned(ctx.host, file.path, content, { mode, ...owner });
        else await setModeOwner(ctx.host, file.path, { mode, ...owner });
      },
    };
  });
}

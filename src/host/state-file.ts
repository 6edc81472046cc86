// Reading the agent's own JSON state files. A file that cannot be parsed or does not have the
// expected shape is copied aside (FILE.corrupt-TIMESTAMP, once per bad content) for a person to look at and reported to
// the caller, which decides what a safe fresh state is; it never throws for bad content, so one
// bad file cannot stop the agent.
import type { TSchema, Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import path from 'node:path';
import { errorMessage } from '../errors.ts';
import { listDir, removePath } from './files.ts';
import { TEMP_NAME } from './jail.ts';
import type { Host } from './host.ts';

export type StateRead<T> =
  | { state: 'absent' }
  | { state: 'ok'; value: T }
  /** `setAsideAs` is the host path of the copy, absent when even reading failed. */
  | { state: 'corrupt'; reason: string; setAsideAs?: string };

const stamp = (ms: number): string => new Date(ms).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');

/** The host path of an earlier copy set aside with exactly this content, if any. */
async function setAsideBefore(host: Host, file: string, text: string): Promise<string | undefined> {
  const prefix = `${path.posix.basename(file)}.corrupt-`;
  const dir = path.posix.dirname(file);
  for (const name of await listDir(host, dir)) {
    if (!name.startsWith(prefix)) continue;
    const copy = path.posix.join(dir, name);
    if ((await host.tryReadText(copy)) === text) return copy;
  }
  return undefined;
}

export async function readStateFile<S extends TSchema>(host: Host, file: string, schema: S): Promise<StateRead<Static<S>>> {
  let text: string | undefined;
  try {
    text = await host.tryReadText(file);
  } catch (err) {
    return { state: 'corrupt', reason: `cannot read: ${errorMessage(err)}` };
  }
  if (text === undefined) return { state: 'absent' };
  let reason: string;
  try {
    const parsed = JSON.parse(text) as unknown;
    const first = Value.Errors(schema, parsed).First();
    if (first === undefined) return { state: 'ok', value: parsed as Static<S> };
    reason = `${first.path === '' ? 'top level' : first.path}: ${first.message}`;
  } catch (err) {
    reason = `not JSON (${errorMessage(err)})`;
  }
  try {
    // Once per bad content: a file read every pass would otherwise fill the directory with copies.
    const earlier = await setAsideBefore(host, file, text);
    if (earlier !== undefined) return { state: 'corrupt', reason, setAsideAs: earlier };
  } catch {
    // Unlistable siblings: copying again is the safe side.
  }
  const aside = `${file}.corrupt-${stamp(host.clock.now())}`;
  try {
    await host.writeFileAtomic(aside, text, 0o600);
    return { state: 'corrupt', reason, setAsideAs: aside };
  } catch (err) {
    return { state: 'corrupt', reason: `${reason}; could not be set aside: ${errorMessage(err)}` };
  }
}

/**
 * Start-up: removes what a kill -9 during writeFileAtomic left of a state file (`.NAME.kubenode-XXXX`
 * beside it), and only that, so a writer of another file in the same directory is never disturbed.
 */
export async function removeStateTemps(host: Host, file: string): Promise<void> {
  const base = path.posix.basename(file);
  const dir = path.posix.dirname(file);
  for (const name of await listDir(host, dir)) {
    if (TEMP_NAME.test(name) && name.startsWith(`.${base}.kubenode-`)) await removePath(host, path.posix.join(dir, name));
  }
}

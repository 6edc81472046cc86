// Reading the agent's own JSON state files. A file that cannot be parsed or does not have the
// expected shape is copied aside (FILE.corrupt-TIMESTAMP) for a person to look at and reported to
// the caller, which decides what a safe fresh state is; it never throws for bad content, so one
// bad file cannot stop the agent.
import type { TSchema, Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { errorMessage } from '../errors.ts';
import type { Host } from './host.ts';

export type StateRead<T> =
  | { state: 'absent' }
  | { state: 'ok'; value: T }
  /** `setAsideAs` is the host path of the copy, absent when even reading failed. */
  | { state: 'corrupt'; reason: string; setAsideAs?: string };

const stamp = (ms: number): string => new Date(ms).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');

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
  const aside = `${file}.corrupt-${stamp(host.clock.now())}`;
  try {
    await host.writeFileAtomic(aside, text, 0o600);
    return { state: 'corrupt', reason, setAsideAs: aside };
  } catch (err) {
    return { state: 'corrupt', reason: `${reason}; could not be set aside: ${errorMessage(err)}` };
  }
}

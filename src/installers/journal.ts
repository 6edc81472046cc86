// The on-disk journal of one component's run: written (fsync + rename) before each step runs and
// after it finishes, so that after a crash or kill -9 the next start knows what was under way.
import { hostWriteError } from '../errors.ts';
import type { Host } from '../host/host.ts';
import { listDir, removePath, renamePath } from '../host/files.ts';
import { JournalData } from './state.ts';
import { readInstallerState, type StateReadOptions } from './status.ts';
import type { Pending } from './types.ts';

export const journalDir = (stateDir: string): string => `${stateDir}/installers/journal`;
const journalFile = (stateDir: string, component: string): string => `${journalDir(stateDir)}/${component}.json`;

export class Journal {
  readonly #host: Host;
  readonly #file: string;
  data: JournalData;

  private constructor(host: Host, file: string, data: JournalData) {
    this.#host = host;
    this.#file = file;
    this.data = data;
  }

  /**
   * The journal a crashed run left, if any. A bad one is set aside (see readStateFile) and the
   * component converges from what is on disk: every step checks first, so a fresh run is safe.
   */
  static async load(host: Host, stateDir: string, component: string, options: StateReadOptions = {}): Promise<Journal | undefined> {
    const file = journalFile(stateDir, component);
    const data = await readInstallerState(host, file, JournalData, options);
    if (data?.component === component) return new Journal(host, file, data);
    if (data !== undefined) {
      const aside = `${file}.corrupt-${new Date(host.clock.now()).toISOString().replace(/[:.]/g, '')}`;
      if (options.readOnly !== true) await renamePath(host, file, aside);
      options.problems?.push(`journal ${host.path(file)} is for ${data.component}, not ${component}${options.readOnly === true ? '' : `; moved aside to ${host.path(aside)}`}`);
    }
    return undefined;
  }

  static async begin(host: Host, stateDir: string, init: Omit<JournalData, 'version' | 'steps' | 'startedAt' | 'pid'>): Promise<Journal> {
    const journal = new Journal(host, journalFile(stateDir, init.component), {
      version: 1,
      ...init,
      steps: [],
      startedAt: new Date(host.clock.now()).toISOString(),
      pid: process.pid,
    });
    await journal.save();
    return journal;
  }

  /** Components with a journal on disk. */
  static async list(host: Host, stateDir: string): Promise<string[]> {
    return (await listDir(host, journalDir(stateDir))).filter((n) => n.endsWith('.json')).map((n) => n.slice(0, -5));
  }

  async save(): Promise<void> {
    await this.#host.writeFileAtomic(this.#file, `${JSON.stringify(this.data, null, 1)}\n`, 0o600).catch((err: unknown) => {
      throw hostWriteError(this.#host.path(this.#file), err);
    });
  }

  async stepStarted(id: string, marks: readonly Pending[]): Promise<void> {
    for (const m of marks) this.data.pending[m] = true;
    this.data.steps.push({ id, state: 'started', at: new Date(this.#host.clock.now()).toISOString() });
    await this.save();
  }

  async stepDone(id: string, consumed?: Pending): Promise<void> {
    if (consumed !== undefined) this.data.pending[consumed] = false;
    this.data.steps.push({ id, state: 'done', at: new Date(this.#host.clock.now()).toISOString() });
    // Keep the journal short on long runs: only the last 200 records.
    if (this.data.steps.length > 200) this.data.steps.splice(0, this.data.steps.length - 200);
    await this.save();
    crashPoint(`after ${id}`);
  }

  /** The run is over (converged, or rolled back and reported): nothing left to resume. */
  async finish(): Promise<void> {
    await removePath(this.#host, this.#file);
  }
}

let boundaries = 0;
let crashAfter: number | undefined | null = null;

/**
 * Test hook: KUBENODE_TEST_CRASH_AFTER_STEP=N makes the process SIGKILL itself at the Nth step
 * boundary of the run (1 = right after the journal is first written, then after each step, then
 * after verification, before the result is recorded, then after each undo record of a cleanup,
 * then once per pruned version, between moving it aside and deleting it).
 * Used by the kill -9 tests; unset in production, where it costs one environment lookup.
 */
export function crashPoint(_where: string): void {
  if (crashAfter === null) {
    const raw = process.env.KUBENODE_TEST_CRASH_AFTER_STEP;
    crashAfter = raw === undefined || raw === '' ? undefined : Number(raw);
  }
  if (crashAfter === undefined) return;
  boundaries += 1;
  if (boundaries === crashAfter) process.kill(process.pid, 'SIGKILL');
}

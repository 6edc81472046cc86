import type { Logger } from 'pino';
import { errorMessage, hostWriteError } from '../errors.ts';
import type { Host } from '../host/host.ts';
import { removeStateTemps } from '../host/state-file.ts';
import type { Condition } from '../types.ts';

interface StoredDetector {
  bootId: string;
  /** Log-derived conditions belong to the boot that logged them; probed ones are re-checked anyway. */
  clearsOnReboot: boolean;
  conditions: Condition[];
}

interface StateFile {
  version: 1;
  detectors: Record<string, StoredDetector>;
}

export interface ConditionChange {
  detector: string;
  before: Condition | undefined;
  after: Condition;
}

/**
 * The node's current conditions, per detector, kept in the state directory so that a
 * restarted agent neither forgets a problem nor re-announces it.
 */
export class ConditionStore {
  readonly #host: Host;
  readonly #file: string;
  readonly #bootId: string;
  readonly #log: Logger;
  #state: StateFile = { version: 1, detectors: {} };
  #writing: Promise<void> = Promise.resolve();

  constructor(host: Host, stateDir: string, bootId: string, log: Logger) {
    this.#host = host;
    this.#file = `${stateDir.replace(/\/+$/, '')}/conditions.json`;
    this.#bootId = bootId;
    this.#log = log;
  }

  async load(): Promise<void> {
    // What a kill -9 in the middle of a write left beside the file.
    await removeStateTemps(this.#host, this.#file).catch((err: unknown) =>
      this.#log.warn({ err: errorMessage(err), file: this.#host.path(this.#file) }, 'Removing temporary files of an interrupted write failed'),
    );
    let text: string | undefined;
    try {
      text = await this.#host.tryReadText(this.#file);
    } catch (err) {
      this.#log.warn({ err: errorMessage(err), file: this.#host.path(this.#file) }, 'Cannot read condition state; starting clean');
    }
    if (text === undefined) return;
    try {
      const parsed = JSON.parse(text) as StateFile;
      if (parsed.version !== 1 || typeof parsed.detectors !== 'object') throw new Error('unrecognised layout');
      for (const [name, entry] of Object.entries(parsed.detectors)) {
        if (entry.clearsOnReboot && entry.bootId !== this.#bootId) continue;
        this.#state.detectors[name] = entry;
      }
    } catch (err) {
      this.#log.warn({ err: errorMessage(err), file: this.#host.path(this.#file) }, 'Condition state is corrupt; starting clean');
    }
  }

  previous(detector: string): Condition[] {
    return (this.#state.detectors[detector]?.conditions ?? []).map((c) => ({ ...c }));
  }

  /** Replaces a detector's conditions; returns what changed status, reason or message. */
  update(detector: string, conditions: readonly Condition[], clearsOnReboot: boolean): ConditionChange[] {
    const before = new Map((this.#state.detectors[detector]?.conditions ?? []).map((c) => [c.type, c]));
    const changes: ConditionChange[] = [];
    for (const after of conditions) {
      const prev = before.get(after.type);
      if (prev === undefined || prev.status !== after.status || prev.reason !== after.reason || prev.message !== after.message) {
        changes.push({ detector, before: prev, after });
      }
    }
    if (changes.length === 0 && before.size === conditions.length) return [];
    this.#state.detectors[detector] = { bootId: this.#bootId, clearsOnReboot, conditions: conditions.map((c) => ({ ...c })) };
    this.#persist();
    return changes;
  }

  all(): Condition[] {
    return Object.values(this.#state.detectors).flatMap((d) => d.conditions);
  }

  /** Resolves once every update so far is on disk. */
  flush(): Promise<void> {
    return this.#writing;
  }

  #persist(): void {
    const snapshot = JSON.stringify(this.#state, null, 1);
    this.#writing = this.#writing
      .then(() => this.#host.writeFileAtomic(this.#file, snapshot, 0o600))
      .catch((err: unknown) => this.#log.error({ err: errorMessage(hostWriteError(this.#host.path(this.#file), err)) }, 'Cannot persist condition state'));
  }
}

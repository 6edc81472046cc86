// Node conditions, written as node-problem-detector's k8s exporter writes them:
// the full set of condition types we own, lastHeartbeatTime stamped on every
// sync, lastTransitionTime from the condition, a change patched at once and a
// periodic heartbeat resync (NPD's --k8s-exporter-heartbeat-period, 5m).
// A strategic-merge patch keyed on `type` leaves every other writer's
// conditions (kubelet's Ready, MemoryPressure…) exactly as they are.
import type { Logger } from 'pino';
import type { Clock } from '../../host/clock.ts';
import type { KubeClient } from '../../kube/client.ts';
import type { Condition, ConditionStatus } from '../../types.ts';
import { LatestWriter, type WriteObserver, type WriteStats } from './latest-writer.ts';

/** One Node condition after merging every detector that reports its type. */
export interface MergedCondition {
  type: string;
  status: ConditionStatus;
  reason: string;
  message: string;
  /** Epoch ms. */
  transitionTime: number;
  /** Detectors whose status is the merged status, in the order they were chosen. */
  sources: string[];
}

/** core/v1 NodeCondition as sent. */
export interface NodeConditionPatch {
  type: string;
  status: ConditionStatus;
  reason: string;
  message: string;
  lastHeartbeatTime: string;
  lastTransitionTime: string;
}

/** Conditions the kubelet (or the node lifecycle controller) owns: never ours to write. */
export const KUBELET_CONDITION_TYPES: ReadonlySet<string> = new Set(['Ready', 'MemoryPressure', 'DiskPressure', 'PIDPressure', 'NetworkUnavailable']);

const MAX_MESSAGE = 1024;
const RANK: Record<ConditionStatus, number> = { True: 2, Unknown: 1, False: 0 };

/**
 * Merges same-type conditions from several detectors (ReadonlyFilesystem from the
 * kernel log and from the storage probe, say): True wins, then Unknown (a detector
 * that cannot tell must not be outvoted into "healthy"), then False. Among Trues the
 * earliest transition is chosen. With several sources at the merged status the
 * message names each. When the merged status did not change since `previous`, its
 * transition time is kept: a second detector agreeing is no transition.
 */
export function mergeConditions(
  byDetector: ReadonlyMap<string, readonly Condition[]>,
  previous: ReadonlyMap<string, MergedCondition> = new Map(),
): MergedCondition[] {
  const byType = new Map<string, { detector: string; condition: Condition }[]>();
  for (const [detector, conditions] of byDetector) {
    for (const condition of conditions) {
      const list = byType.get(condition.type) ?? [];
      list.push({ detector, condition });
      byType.set(condition.type, list);
    }
  }
  const merged: MergedCondition[] = [];
  for (const [type, entries] of byType) {
    const status = entries.reduce<ConditionStatus>((s, e) => (RANK[e.condition.status] > RANK[s] ? e.condition.status : s), 'False');
    const winners = entries
      .filter((e) => e.condition.status === status)
      .sort((a, b) =>
        (status === 'True' ? a.condition.transitionTime - b.condition.transitionTime : 0) || (a.detector < b.detector ? -1 : a.detector > b.detector ? 1 : 0),
      );
    const first = winners[0] as { detector: string; condition: Condition };
    const prev = previous.get(type);
    let transitionTime: number;
    if (prev !== undefined && prev.status === status) transitionTime = prev.transitionTime;
    else if (status === 'True') transitionTime = first.condition.transitionTime;
    // False/Unknown since the last of them flipped.
    else transitionTime = Math.max(...winners.map((w) => w.condition.transitionTime));
    const message =
      winners.length === 1 || winners.every((w) => w.condition.message === first.condition.message)
        ? first.condition.message
        : winners.map((w) => `${w.detector}: ${w.condition.message}`).join('; ');
    merged.push({
      type,
      status,
      reason: first.condition.reason,
      message: message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE - 1)}…` : message,
      transitionTime,
      sources: winners.map((w) => w.detector),
    });
  }
  return merged.sort((a, b) => (a.type < b.type ? -1 : a.type > b.type ? 1 : 0));
}

/** RFC 3339 at second precision, as metav1.Time serialises. */
export function kubeTime(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

export function nodeConditionPatch(conditions: readonly MergedCondition[], now: number): { status: { conditions: NodeConditionPatch[] } } {
  return {
    status: {
      conditions: conditions.map((c) => ({
        type: c.type,
        status: c.status,
        reason: c.reason,
        message: c.message,
        lastHeartbeatTime: kubeTime(now),
        lastTransitionTime: kubeTime(c.transitionTime),
      })),
    },
  };
}

export interface NodeConditionsOptions {
  client: KubeClient;
  nodeName: string;
  clock: Clock;
  log: Logger;
  /** NPD's --k8s-exporter-heartbeat-period. Default 5 min. */
  heartbeatMs?: number;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  random?: () => number;
  observe?: WriteObserver;
}

export class NodeConditionsReporter {
  readonly #o: NodeConditionsOptions;
  readonly #byDetector = new Map<string, Condition[]>();
  #merged = new Map<string, MergedCondition>();
  readonly #writer: LatestWriter<MergedCondition[]>;
  readonly #abort = new AbortController();
  readonly #refused = new Set<string>();
  #heartbeat: Promise<void> | undefined;

  constructor(options: NodeConditionsOptions) {
    this.#o = options;
    const path = `/api/v1/nodes/${encodeURIComponent(options.nodeName)}/status`;
    this.#writer = new LatestWriter<MergedCondition[]>({
      name: 'node-conditions',
      clock: options.clock,
      log: options.log,
      backoffBaseMs: options.backoffBaseMs,
      backoffMaxMs: options.backoffMaxMs,
      random: options.random,
      observe: options.observe,
      // Heartbeat time is the time of the write, not of the change: a state that
      // waited out an outage is still "seen now" when it lands.
      write: async (state) => {
        await options.client.patch(path, nodeConditionPatch(state, options.clock.now()), 'strategic');
      },
    });
  }

  get stats(): Readonly<WriteStats> {
    return this.#writer.stats;
  }

  /** Starts the heartbeat resync; changes are written whether or not it runs. */
  start(): void {
    this.#heartbeat ??= this.#heartbeatLoop();
  }

  /** A detector's full current condition set (what ConditionStore.update was given). */
  setDetector(detector: string, conditions: readonly Condition[]): void {
    const ours = conditions.filter((c) => {
      if (!KUBELET_CONDITION_TYPES.has(c.type)) return true;
      if (!this.#refused.has(`${detector}/${c.type}`)) {
        this.#refused.add(`${detector}/${c.type}`);
        this.#o.log.warn({ detector, type: c.type }, 'Condition type belongs to the kubelet; not written to the Node');
      }
      return false;
    });
    this.#byDetector.set(detector, ours.map((c) => ({ ...c })));
    const next = mergeConditions(this.#byDetector, this.#merged);
    const changed = next.length !== this.#merged.size || next.some((c) => !sameCondition(c, this.#merged.get(c.type)));
    this.#merged = new Map(next.map((c) => [c.type, c]));
    // A message that only carries fresh figures (PSI averages, free memory) waits for the
    // heartbeat: written at once it would patch every Node under pressure at every probe. A
    // change in which detectors see the condition is written at once.
    if (changed) this.#writer.set(next);
  }

  /** What the Node should show now. */
  current(): MergedCondition[] {
    return [...this.#merged.values()];
  }

  /** Resolves once the latest state is on the Node (or the reporter stopped). */
  settled(): Promise<void> {
    return this.#writer.settled();
  }

  async stop(): Promise<void> {
    this.#abort.abort(new Error('stopped'));
    await Promise.all([this.#heartbeat, this.#writer.stop()]);
  }

  async #heartbeatLoop(): Promise<void> {
    const every = this.#o.heartbeatMs ?? 5 * 60_000;
    for (;;) {
      try {
        await this.#o.clock.sleep(every, this.#abort.signal);
      } catch {
        return;
      }
      // Re-sending the same set refreshes lastHeartbeatTime only; transition times come from the state.
      if (this.#merged.size > 0) this.#writer.set(this.current());
    }
  }
}

function sameCondition(a: MergedCondition, b: MergedCondition | undefined): boolean {
  return b !== undefined && a.status === b.status && a.reason === b.reason && a.transitionTime === b.transitionTime && a.sources.join() === b.sources.join();
}

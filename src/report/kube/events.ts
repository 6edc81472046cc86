// core/v1 Events on the Node, as node-problem-detector records them (reason and
// message straight from the detector, Warning for warn, Normal for info),
// deduplicated and rate-limited the way client-go's EventCorrelator does:
//  - same type+reason+message within `dedupeWindowMs` (10 min, client-go's
//    aggregation window) → PATCH count and lastTimestamp of the existing Event;
//  - a token bucket (burst 25, one token back every 5 s) for all writes. client-go
//    refills one per 5 min per object, which would drop most of a busy node's
//    problems for the rest of the hour; 5 s still caps a node at 12 writes a minute.
// record() never waits: events queue (bounded) and one loop sends them. A 401 or 403 drops an
// event only when /readyz answers 200 right after it; from an apiserver still filling its RBAC
// caches (one just restarted refuses everyone) it is tried again like any other failure.
import type { Logger } from 'pino';
import { fitName } from '../../api/common.ts';
import type { Clock } from '../../host/clock.ts';
import { errorMessage } from '../../errors.ts';
import { classifyKubeError, type KubeClient } from '../../kube/client.ts';
import { judgeRefusal } from '../../kube/readyz.ts';
import type { ProblemEvent } from '../../types.ts';
import { kubeTime } from './node-conditions.ts';
import type { WriteObserver } from './latest-writer.ts';
import { backoffDelay } from '../../util/backoff.ts';

export const EVENT_SOURCE_COMPONENT = 'kubenode-agent';

export interface EventStats {
  created: number;
  patched: number;
  /** Refused by the rate limit or pushed out of a full queue. */
  dropped: number;
  /** Given up: refused by an apiserver that is ready (so the refusal is real), invalid, or still failing after every try. */
  failed: number;
}

export interface NodeEventsOptions {
  client: KubeClient;
  nodeName: string;
  clock: Clock;
  log: Logger;
  /** Namespace of Node events; "default", as the kubelet and NPD use. */
  namespace?: string;
  burst?: number;
  refillMs?: number;
  dedupeWindowMs?: number;
  queueMax?: number;
  /** Tries per write before the event is given up. */
  attempts?: number;
  backoffBaseMs?: number;
  random?: () => number;
  observe?: WriteObserver;
}

interface Seen {
  name: string;
  count: number;
  firstTimestamp: number;
  lastTimestamp: number;
}

interface Job {
  key: string;
  event: ProblemEvent;
  detector: string;
  at: number;
}

const MAX_SEEN = 4096;

/**
 * client-go's naming of a Node's Event: the node name and a nanosecond-ish stamp in hex (BigInt:
 * ms × 10⁶ is past 2⁵³; seq tells Events of one millisecond apart), the node name shortened by
 * fitName where the two would pass the 253 characters of a name.
 */
export function nodeEventName(node: string, atMs: number, seq: number): string {
  const stamp = (BigInt(atMs) * 1_000_000n + BigInt(seq % 1_000_000)).toString(16);
  return `${fitName(node, 253 - 1 - stamp.length)}.${stamp}`;
}

export class NodeEventsReporter {
  readonly stats: EventStats = { created: 0, patched: 0, dropped: 0, failed: 0 };
  readonly #o: Required<Omit<NodeEventsOptions, 'random' | 'observe'>> & Pick<NodeEventsOptions, 'random' | 'observe'>;
  readonly #seen = new Map<string, Seen>();
  readonly #queue: Job[] = [];
  readonly #abort = new AbortController();
  #tokens: number;
  #refilledAt: number;
  #loop: Promise<void> | undefined;
  #nodeUid: string | undefined;
  #seq = 0;

  constructor(options: NodeEventsOptions) {
    this.#o = {
      namespace: 'default',
      burst: 25,
      refillMs: 5000,
      dedupeWindowMs: 10 * 60_000,
      queueMax: 1000,
      attempts: 3,
      backoffBaseMs: 1000,
      ...options,
    };
    this.#tokens = this.#o.burst;
    this.#refilledAt = options.clock.now();
  }

  /** Queues one detector event; returns at once. */
  record(detector: string, event: ProblemEvent): void {
    if (this.#abort.signal.aborted) return;
    const now = this.#o.clock.now();
    const key = `${event.severity}\u0000${event.reason}\u0000${event.message}`;
    if (!this.#take(now)) {
      this.stats.dropped++;
      // The count stays true even when the write is skipped: the next write of this key carries it.
      const seen = this.#seen.get(key);
      if (seen !== undefined && now - seen.lastTimestamp <= this.#o.dedupeWindowMs) {
        seen.count++;
        seen.lastTimestamp = now;
      }
      this.#o.log.debug({ detector, reason: event.reason }, 'Event dropped by rate limit');
      return;
    }
    if (this.#queue.length >= this.#o.queueMax) {
      this.#queue.shift();
      this.stats.dropped++;
    }
    this.#queue.push({ key, event, detector, at: now });
    this.#loop ??= this.#run().finally(() => (this.#loop = undefined));
  }

  /** Resolves once every queued event is written or given up. */
  async settled(): Promise<void> {
    while (this.#loop !== undefined) await this.#loop;
  }

  async stop(): Promise<void> {
    this.#abort.abort(new Error('stopped'));
    await this.#loop;
  }

  #take(now: number): boolean {
    const refill = Math.floor((now - this.#refilledAt) / this.#o.refillMs);
    if (refill > 0) {
      this.#tokens = Math.min(this.#o.burst, this.#tokens + refill);
      this.#refilledAt = this.#tokens === this.#o.burst ? now : this.#refilledAt + refill * this.#o.refillMs;
    }
    if (this.#tokens < 1) return false;
    this.#tokens--;
    return true;
  }

  async #run(): Promise<void> {
    for (let job = this.#queue.shift(); job !== undefined && !this.#abort.signal.aborted; job = this.#queue.shift()) {
      for (let attempt = 0; ; attempt++) {
        try {
          await this.#send(job);
          this.#o.observe?.('events', true);
          break;
        } catch (failure) {
          this.#o.observe?.('events', false);
          // A refusal from an apiserver that is not ready yet (its RBAC caches filling) is tried again.
          const err = await judgeRefusal(this.#o.client, failure);
          const kind = classifyKubeError(err);
          if (kind === 'forbidden' || kind === 'unauthorized' || kind === 'invalid') {
            this.stats.failed++;
            this.#o.log.warn({ detector: job.detector, reason: job.event.reason, err: errorMessage(err), kind }, 'Apiserver refused the Event; dropped');
            break;
          }
          if (attempt + 1 >= this.#o.attempts) {
            this.stats.failed++;
            this.#o.log.warn({ detector: job.detector, reason: job.event.reason, err: errorMessage(err), kind, attempts: attempt + 1 }, 'Cannot record Event; dropped');
            break;
          }
          this.#o.log.debug({ detector: job.detector, reason: job.event.reason, err: errorMessage(err), kind, attempt: attempt + 1 }, 'Cannot record Event yet; will retry');
          try {
            await this.#o.clock.sleep(backoffDelay(attempt, this.#o.backoffBaseMs, 30_000, this.#o.random), this.#abort.signal);
          } catch {
            return;
          }
        }
      }
    }
  }

  async #send(job: Job): Promise<void> {
    const seen = this.#seen.get(job.key);
    const base = `/api/v1/namespaces/${this.#o.namespace}/events`;
    if (seen !== undefined && job.at - seen.lastTimestamp <= this.#o.dedupeWindowMs) {
      const count = seen.count + 1;
      try {
        await this.#o.client.patch(`${base}/${seen.name}`, { count, lastTimestamp: kubeTime(job.at) }, 'merge');
        seen.count = count;
        seen.lastTimestamp = job.at;
        this.#touch(job.key, seen);
        this.stats.patched++;
        return;
      } catch (err) {
        // Expired (the apiserver's event TTL is 1 h) or deleted: start a new one.
        if (classifyKubeError(err) !== 'not-found') throw err;
        this.#seen.delete(job.key);
      }
    }
    const name = nodeEventName(this.#o.nodeName, job.at, this.#seq++);
    const uid = await this.#uid();
    await this.#o.client.request('POST', base, {
      body: {
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { name, namespace: this.#o.namespace },
        involvedObject: { kind: 'Node', name: this.#o.nodeName, uid, apiVersion: 'v1' },
        reason: job.event.reason,
        message: job.event.message,
        type: job.event.severity === 'warn' ? 'Warning' : 'Normal',
        source: { component: EVENT_SOURCE_COMPONENT, host: this.#o.nodeName },
        reportingComponent: EVENT_SOURCE_COMPONENT,
        reportingInstance: this.#o.nodeName,
        firstTimestamp: kubeTime(job.at),
        lastTimestamp: kubeTime(job.at),
        count: 1,
      },
    });
    this.#touch(job.key, { name, count: 1, firstTimestamp: job.at, lastTimestamp: job.at });
    this.stats.created++;
  }

  #touch(key: string, seen: Seen): void {
    this.#seen.delete(key);
    this.#seen.set(key, seen);
    if (this.#seen.size > MAX_SEEN) this.#seen.delete(this.#seen.keys().next().value as string);
  }

  /**
   * The Node's uid, read once; the node name until the Node can be read (what the kubelet and NPD
   * put there). Refused by an apiserver that is not ready yet, the write waits for a real answer
   * instead of carrying the name where the uid belongs.
   */
  async #uid(): Promise<string> {
    if (this.#nodeUid !== undefined) return this.#nodeUid;
    try {
      const node = await this.#o.client.get<{ metadata: { uid: string } }>(`/api/v1/nodes/${encodeURIComponent(this.#o.nodeName)}`);
      this.#nodeUid = node.metadata.uid;
      return this.#nodeUid;
    } catch (err) {
      const judged = await judgeRefusal(this.#o.client, err);
      if (judged !== err) throw judged;
      return this.#o.nodeName;
    }
  }
}

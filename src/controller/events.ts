// core/v1 Events on a MachineComponentSet. A cluster-scoped object's Events live in "default",
// as client-go's recorder puts them. Each Event's name comes from a key the caller makes out of
// what happened (revision, batch, failure token), so a pass repeated after a restart or a
// failover creates nothing twice: the second POST is a 409 and is dropped. record() never
// waits; a bounded queue and one sender keep a burst from holding up a reconcile.
import { createHash } from 'node:crypto';
import { fitName } from '../api/common.ts';
import { errorMessage } from '../errors.ts';
import type { Clock } from '../host/clock.ts';
import { classifyKubeError, type KubeClient } from '../kube/client.ts';
import type { Logger } from '../log.ts';
import { microTime } from '../report/kube/lease.ts';

export const EVENT_COMPONENT = 'kubenode-controller';
const NAMESPACE = 'default';
const QUEUE_MAX = 1000;
const SENT_MAX = 10_000;

/** What an Event is about; a MachineComponentSet unless apiVersion and kind say otherwise. */
export interface EventTarget { name: string; uid: string; apiVersion?: string; kind?: string }

interface Job { target: EventTarget; type: 'Normal' | 'Warning'; reason: string; message: string; name: string }

/**
 * An Event's name: the target's name (shortened by fitName where it and the hash would pass 253
 * characters: a cut could end in '.' or '-') and a hash of the target's uid and the caller's key.
 */
export function eventName(target: EventTarget, key: string): string {
  return `${fitName(target.name, 253 - 17)}.${createHash('sha256').update(`${target.uid}/${key}`).digest('hex').slice(0, 16)}`;
}

export class EventRecorder {
  readonly stats = { created: 0, duplicates: 0, dropped: 0, failed: 0 };
  readonly #client: KubeClient;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #identity: string;
  readonly #queue: Job[] = [];
  readonly #sent = new Set<string>();
  #sending: Promise<void> | undefined;
  #mayWrite: () => boolean;

  constructor(client: KubeClient, clock: Clock, log: Logger, identity: string, mayWrite: () => boolean) {
    this.#client = client;
    this.#clock = clock;
    this.#log = log;
    this.#identity = identity;
    this.#mayWrite = mayWrite;
  }

  record(target: EventTarget, type: 'Normal' | 'Warning', reason: string, message: string, key: string): void {
    const name = eventName(target, key);
    if (this.#sent.has(name)) return;
    if (this.#queue.length >= QUEUE_MAX) {
      this.stats.dropped += 1;
      return;
    }
    this.#queue.push({ target, type, reason, message: message.slice(0, 1024), name });
    this.#sending ??= this.#drain().finally(() => (this.#sending = undefined));
  }

  /** Resolves when everything queued so far was sent (tests, shutdown). */
  async flush(): Promise<void> {
    while (this.#sending !== undefined) await this.#sending;
  }

  async #drain(): Promise<void> {
    for (let job = this.#queue.shift(); job !== undefined; job = this.#queue.shift()) {
      if (!this.#mayWrite()) {
        this.stats.dropped += 1;
        continue;
      }
      const now = microTime(this.#clock.now());
      const body = {
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { name: job.name, namespace: NAMESPACE },
        involvedObject: { apiVersion: job.target.apiVersion ?? 'kubenode.io/v1alpha1', kind: job.target.kind ?? 'MachineComponentSet', name: job.target.name, uid: job.target.uid },
        reason: job.reason,
        message: job.message,
        type: job.type,
        source: { component: EVENT_COMPONENT },
        reportingComponent: EVENT_COMPONENT,
        reportingInstance: this.#identity.slice(0, 128),
        action: job.reason,
        firstTimestamp: now.replace(/\.\d+Z$/, 'Z'),
        lastTimestamp: now.replace(/\.\d+Z$/, 'Z'),
        eventTime: now,
        count: 1,
      };
      try {
        await this.#client.request('POST', `/api/v1/namespaces/${NAMESPACE}/events`, { body });
        this.stats.created += 1;
      } catch (err) {
        if (classifyKubeError(err) === 'conflict') this.stats.duplicates += 1;
        else {
          this.stats.failed += 1;
          this.#log.warn({ reason: job.reason, err: errorMessage(err) }, 'Event not recorded');
          continue;
        }
      }
      if (this.#sent.size >= SENT_MAX) this.#sent.clear();
      this.#sent.add(job.name);
    }
  }
}

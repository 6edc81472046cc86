// A list+watch of one custom resource that does not give up. client-node's own informer stops on
// any error other than 410, so this is the loop written on client-node's `Watch`: list, then watch
// from the list's resourceVersion with bookmarks; on 410 Gone, a stall (no event, no bookmark for
// stallMs) or the periodic resync, list again; on any other error, back off (jittered,
// exponential) and watch again. Handlers see a snapshot keyed by name and resourceVersion, so a
// reconnect that replays objects changes nothing for them.
import type { KubeConfig } from '@kubernetes/client-node';
import { AgentError, errorMessage } from '../errors.ts';
import { classifyKubeError, kubeModule, type KubeClient } from '../kube/client.ts';
import { systemClock, type Clock } from '../host/clock.ts';
import type { Logger } from '../log.ts';
import { backoffDelay } from '../util/backoff.ts';

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace?: string; resourceVersion?: string; generation?: number; labels?: Record<string, string>; [key: string]: unknown };
  [key: string]: unknown;
}

/** A resource collection (group '' is the core group): cluster-scoped unless namespace is given. */
export interface ResourceRef {
  group: string;
  version: string;
  plural: string;
  namespace?: string;
}

export type InformerEvent<T extends KubeObject> =
  | { type: 'add'; object: T }
  | { type: 'update'; object: T; old: T }
  | { type: 'delete'; object: T }
  /** A list completed: the snapshot is now the apiserver's state (first sync, re-list, resync). */
  | { type: 'synced'; reason: ListReason };

export type ListReason = 'initial' | 'gone' | 'stall' | 'resync' | 'error';

export interface InformerOptions {
  /**
   * Lists go through this client (timeouts, request observer); watches through client-node's Watch
   * on the same kubeconfig. Give the informer a client of its own: after a stall it drops the
   * client's keep-alive sockets, which are as likely to be dead as the watch was.
   */
  client: KubeClient;
  kubeConfig: KubeConfig;
  resource: ResourceRef;
  labelSelector?: string;
  fieldSelector?: string;
  log: Logger;
  /** Re-list this often even when the watch is healthy. Default 10 min. */
  resyncMs?: number;
  /** No event and no bookmark for this long: the watch is dead without saying so; re-list. Default 5 min (3× the apiserver's ~1 min bookmark period, plus margin). */
  stallMs?: number;
  /** Reconnect backoff: first delay and cap; each delay is jittered between half and all of it. Defaults 500 ms and 30 s. */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** Deadline of one list request. Default 60 s. */
  listTimeoutMs?: number;
  /** Page size of a list. Default 500. */
  pageSize?: number;
  clock?: Clock;
  random?: () => number;
}

export interface InformerStats {
  /** HTTP requests made: list pages plus watch connections. */
  requests: number;
  lists: number;
  watches: number;
  events: number;
  bookmarks: number;
  /** 410 Gone seen (an ERROR event or an HTTP 410). */
  gone: number;
  stalls: number;
  resyncs: number;
  errors: number;
}

type WatchEnd = 'closed' | 'gone' | 'stall' | 'resync' | 'stopped';

class GoneError extends AgentError {
  constructor(message: string) {
    super('KUBE', message);
  }
}

/** Does this error (ApiException, Watch error with statusCode, Status object) say 410? */
function isGone(err: unknown): boolean {
  if (err instanceof GoneError) return true;
  const e = err as { code?: unknown; statusCode?: unknown } | null;
  return (e !== null && typeof e === 'object' && e.statusCode === 410) || classifyKubeError(err) === 'gone';
}

export class Informer<T extends KubeObject> {
  readonly stats: InformerStats = { requests: 0, lists: 0, watches: 0, events: 0, bookmarks: 0, gone: 0, stalls: 0, resyncs: 0, errors: 0 };
  readonly #o: Required<Omit<InformerOptions, 'labelSelector' | 'fieldSelector'>> & Pick<InformerOptions, 'labelSelector' | 'fieldSelector'>;
  readonly #cache = new Map<string, T>();
  readonly #handlers = new Set<(event: InformerEvent<T>) => void>();
  readonly #stop = new AbortController();
  #resourceVersion: string | undefined;
  #listedAt = 0;
  #synced = false;
  #syncWaiters: (() => void)[] = [];
  #loop: Promise<void> | undefined;

  constructor(options: InformerOptions) {
    this.#o = {
      resyncMs: 10 * 60_000,
      stallMs: 5 * 60_000,
      backoffMs: 500,
      maxBackoffMs: 30_000,
      listTimeoutMs: 60_000,
      pageSize: 500,
      clock: systemClock,
      random: Math.random,
      ...options,
    };
  }

  /** The current desired state, keyed by name (namespace/name when namespaced). */
  snapshot(): ReadonlyMap<string, T> {
    return this.#cache;
  }

  get(key: string): T | undefined {
    return this.#cache.get(key);
  }

  get hasSynced(): boolean {
    return this.#synced;
  }

  /** The resourceVersion the next watch starts from. */
  get resourceVersion(): string | undefined {
    return this.#resourceVersion;
  }

  /** Adds a handler; returns its removal. Handlers must not throw (a throw is logged and ignored). */
  on(handler: (event: InformerEvent<T>) => void): () => void {
    this.#handlers.add(handler);
    return () => this.#handlers.delete(handler);
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  /** Resolves after the first complete list (or when stopped). */
  waitForSync(): Promise<void> {
    if (this.#synced || this.#stop.signal.aborted) return Promise.resolve();
    return new Promise((resolve) => this.#syncWaiters.push(resolve));
  }

  async stop(): Promise<void> {
    this.#stop.abort(new Error('informer stopped'));
    for (const w of this.#syncWaiters.splice(0)) w();
    await this.#loop;
    this.#handlers.clear();
  }

  #emit(event: InformerEvent<T>): void {
    for (const h of this.#handlers) {
      try {
        h(event);
      } catch (err) {
        this.#o.log.error({ err: errorMessage(err) }, 'Informer handler threw');
      }
    }
  }

  #key(obj: KubeObject): string {
    return obj.metadata.namespace === undefined ? obj.metadata.name : `${obj.metadata.namespace}/${obj.metadata.name}`;
  }

  /** Add or update, unless this exact resourceVersion is already known (a replay). */
  #upsert(obj: T): void {
    const key = this.#key(obj);
    const old = this.#cache.get(key);
    if (old !== undefined && old.metadata.resourceVersion === obj.metadata.resourceVersion) return;
    this.#cache.set(key, obj);
    this.#emit(old === undefined ? { type: 'add', object: obj } : { type: 'update', object: obj, old });
  }

  #remove(obj: T): void {
    const key = this.#key(obj);
    const old = this.#cache.get(key);
    if (old === undefined) return;
    this.#cache.delete(key);
    this.#emit({ type: 'delete', object: obj });
  }

  #path(): string {
    const r = this.#o.resource;
    // The core group ('') lives under /api, every other group under /apis.
    const base = r.group === '' ? `/api/${r.version}` : `/apis/${r.group}/${r.version}`;
    return r.namespace === undefined ? `${base}/${r.plural}` : `${base}/namespaces/${r.namespace}/${r.plural}`;
  }

  async #run(): Promise<void> {
    const { log, clock } = this.#o;
    const signal = this.#stop.signal;
    let listReason: ListReason | undefined = 'initial';
    let failures = 0;
    while (!signal.aborted) {
      try {
        if (listReason !== undefined) {
          await this.#list(listReason);
          listReason = undefined;
        }
        const started = clock.now();
        const end = await this.#watchOnce();
        if (end === 'stopped') break;
        // Pooled sockets may sit on the same dead path as the stalled watch.
        if (end === 'stall') this.#o.client.close();
        if (end === 'gone' || end === 'stall' || end === 'resync') {
          listReason = end;
          failures = 0;
          continue;
        }
        // A clean close (the apiserver's request timeout, a restart): watch again from where we
        // were. One that closes at once, over and over, is backed off like an error.
        if (clock.now() - started >= 1000) failures = 0;
        else await this.#backoff(++failures, 'watch closed at once');
      } catch (err) {
        if (signal.aborted) break;
        if (isGone(err)) {
          this.stats.gone += 1;
          listReason = 'gone';
          continue;
        }
        this.stats.errors += 1;
        failures += 1;
        // A watch the apiserver keeps answering with an error may be failing on its
        // resourceVersion: list afresh after three. A network error says nothing about it.
        if (failures >= 3 && listReason === undefined && classifyKubeError(err) !== 'network') listReason = 'error';
        await this.#backoff(failures, errorMessage(err));
      }
    }
    log.debug({}, 'Informer stopped');
  }

  async #backoff(failures: number, why: string): Promise<void> {
    const { backoffMs, maxBackoffMs, random, clock, log } = this.#o;
    const delay = backoffDelay(failures - 1, backoffMs, maxBackoffMs, random);
    log.warn({ err: why, failures, delayMs: delay, resource: this.#o.resource.plural }, 'Watch failed; reconnecting after backoff');
    await clock.sleep(delay, this.#stop.signal).catch(() => {});
  }

  async #list(reason: ListReason): Promise<void> {
    const items: T[] = [];
    let resourceVersion = '';
    let cont: string | undefined;
    do {
      const query: Record<string, string> = { limit: String(this.#o.pageSize) };
      if (cont !== undefined) query.continue = cont;
      if (this.#o.labelSelector !== undefined) query.labelSelector = this.#o.labelSelector;
      if (this.#o.fieldSelector !== undefined) query.fieldSelector = this.#o.fieldSelector;
      this.stats.requests += 1;
      // A signal per request: the client adds a listener to it, which must not pile up on a long-lived one.
      const abort = new AbortController();
      const onStop = (): void => abort.abort();
      this.#stop.signal.addEventListener('abort', onStop, { once: true });
      let page: { items: T[]; metadata?: { resourceVersion?: string; continue?: string } };
      try {
        page = await this.#o.client.get(this.#path(), { query, timeoutMs: this.#o.listTimeoutMs, signal: abort.signal });
      } finally {
        this.#stop.signal.removeEventListener('abort', onStop);
      }
      items.push(...page.items);
      resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
      cont = page.metadata?.continue === '' ? undefined : page.metadata?.continue;
    } while (cont !== undefined);
    this.stats.lists += 1;
    if (reason === 'resync') this.stats.resyncs += 1;
    // Diff against the cache: only real changes reach the handlers.
    const seen = new Set<string>();
    for (const item of items) {
      seen.add(this.#key(item));
      this.#upsert(item);
    }
    for (const [key, old] of [...this.#cache]) if (!seen.has(key)) this.#remove(old);
    this.#resourceVersion = resourceVersion;
    this.#listedAt = this.#o.clock.now();
    this.#o.log.debug({ reason, items: items.length, resourceVersion }, 'Listed');
    if (!this.#synced) {
      this.#synced = true;
      for (const w of this.#syncWaiters.splice(0)) w();
    }
    this.#emit({ type: 'synced', reason });
  }

  /** One watch connection, from the last resourceVersion. Resolves with why it ended; rejects on errors. */
  async #watchOnce(): Promise<WatchEnd> {
    const k8s = await kubeModule();
    const { clock, stallMs, resyncMs } = this.#o;
    const watch = new k8s.Watch(this.#o.kubeConfig);
    const local = new AbortController();
    let lastActivity = clock.now();
    let gone = false;
    let controller: AbortController | undefined;
    this.stats.requests += 1;
    this.stats.watches += 1;

    return new Promise<WatchEnd>((resolve, reject) => {
      let settled = false;
      const settle = (fn: () => void): void => {
        if (settled) return;
        settled = true;
        // Everything this connection registered goes with it: nothing accumulates over reconnects.
        local.abort();
        this.#stop.signal.removeEventListener('abort', onStop);
        controller?.abort();
        fn();
      };
      const onStop = (): void => settle(() => resolve('stopped'));
      this.#stop.signal.addEventListener('abort', onStop, { once: true });

      // The watchdog: wakes at a fraction of the shorter period and compares clocks, so a fake
      // clock can drive it and a long sleep never overshoots much.
      const tick = Math.max(10, Math.min(stallMs, resyncMs) / 4);
      void (async () => {
        while (!local.signal.aborted) {
          await clock.sleep(tick, local.signal);
          const now = clock.now();
          if (now - lastActivity > stallMs) {
            this.stats.stalls += 1;
            this.#o.log.warn({ resource: this.#o.resource.plural, silentMs: now - lastActivity }, 'Watch stalled (no event or bookmark); re-listing');
            settle(() => resolve('stall'));
          } else if (now - this.#listedAt >= resyncMs) {
            settle(() => resolve('resync'));
          }
        }
      })().catch(() => {});

      const params: Record<string, string | boolean | undefined> = {
        allowWatchBookmarks: true,
        resourceVersion: this.#resourceVersion,
        labelSelector: this.#o.labelSelector,
        fieldSelector: this.#o.fieldSelector,
      };
      watch
        .watch(
          this.#path(),
          params,
          (type: string, obj: T & { code?: number; message?: string }) => {
            if (settled) return;
            lastActivity = clock.now();
            switch (type) {
              case 'ADDED':
              case 'MODIFIED':
                this.stats.events += 1;
                this.#resourceVersion = obj.metadata.resourceVersion ?? this.#resourceVersion;
                this.#upsert(obj);
                break;
              case 'DELETED':
                this.stats.events += 1;
                this.#resourceVersion = obj.metadata.resourceVersion ?? this.#resourceVersion;
                this.#remove(obj);
                break;
              case 'BOOKMARK':
                this.stats.bookmarks += 1;
                this.#resourceVersion = obj.metadata.resourceVersion ?? this.#resourceVersion;
                break;
              case 'ERROR':
                if (obj.code === 410) {
                  gone = true;
                  this.stats.gone += 1;
                  settle(() => resolve('gone'));
                } else {
                  settle(() => reject(new Error(`watch error event: ${obj.code ?? '?'} ${obj.message ?? ''}`)));
                }
                break;
              default:
                break;
            }
          },
          (err: unknown) => {
            if (err === null || err === undefined) settle(() => resolve(gone ? 'gone' : 'closed'));
            else if (isGone(err)) settle(() => reject(new GoneError('410 Gone')));
            else settle(() => reject(err instanceof Error ? err : new Error(String(err))));
          },
        )
        .then(
          (c) => {
            controller = c;
            if (settled) c.abort();
          },
          (err: unknown) => settle(() => reject(err)),
        );
    });
  }
}

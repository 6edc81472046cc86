import { Type, type StaticDecode } from '@sinclair/typebox';
import type { Host } from '../host/host.ts';
import { unixConnect, unixHttpGet } from '../host/unix-http.ts';
import type { DetectorResult, ProblemEvent } from '../types.ts';
import { Conditions } from './engine/conditions.ts';
import { Debounce } from './engine/window.ts';
import type { DetectorDefinition } from './engine/types.ts';
import { readProcesses, type ProcStat } from './engine/procs.ts';
import { ExecError } from '../errors.ts';
import { Duration } from '../util/duration-schema.ts';

// Container runtime stall: containerd through a real CRI RuntimeService/Status call (crictl info),
// Docker and Pouch through GET /_ping on their unix sockets, and runtime daemons stuck in
// uninterruptible sleep (D state). A runtime turns ContainerRuntimeUnhealthy only after
// failuresToTrip consecutive failed looks.
//
// `check` has a single probe, so the probe itself takes up to failuresToTrip looks,
// checkRetryInterval apart, and stops at the first good one: a runtime that is clearly down
// (refused, socket gone, no answer) fails every look and the condition turns True, while one
// transient failure followed by a good answer is only an info event.

const CONDITION = 'ContainerRuntimeUnhealthy';

const Expected = Type.Union([Type.Literal('auto'), Type.Literal('true'), Type.Literal('false')], {
  default: 'auto',
  description: 'auto: probe when its socket or daemon is present; true: absence is a problem; false: never probe',
});

const RuntimeSettings = (socket: string, label: string) =>
  Type.Object(
    {
      socket: Type.String({ pattern: '^/', default: socket, description: `Host path of the ${label} unix socket` }),
      expected: Expected,
    },
    { additionalProperties: false, default: {} },
  );


export const configSchema = Type.Object(
  {
    containerd: RuntimeSettings('/run/containerd/containerd.sock', 'containerd CRI'),
    docker: RuntimeSettings('/var/run/docker.sock', 'Docker Engine API'),
    pouch: RuntimeSettings('/var/run/pouchd.sock', 'PouchContainer API'),
    deadline: Duration({ default: '3s', min: '100ms', max: '1h', description: 'Deadline of one CRI Status call or /_ping' }),
    failuresToTrip: Type.Integer({ minimum: 1, maximum: 20, default: 3, description: 'Consecutive failed looks before the condition turns True' }),
    successesToClear: Type.Integer({ minimum: 1, maximum: 20, default: 1, description: 'Consecutive good looks before it turns back' }),
    checkRetryInterval: Duration({ default: '1s', min: '100ms', max: '1m', description: 'Pause between the looks `check` takes in one probe' }),
    dStateProcesses: Type.Array(Type.String({ minLength: 1 }), {
      default: ['containerd', 'dockerd', 'containerd-shim*', 'pouchd'],
      description: 'Process names (/proc/PID/stat comm; a trailing * matches a prefix) whose D state counts as a runtime stall',
    }),
  },
  { additionalProperties: false },
);

// ---- pure parsers ----

export function nameMatches(comm: string, patterns: readonly string[]): boolean {
  return patterns.some((p) => (p.endsWith('*') ? comm.startsWith(p.slice(0, -1)) : comm === p));
}

export interface CriStatus {
  runtimeReady: boolean | undefined;
  networkReady: boolean | undefined;
  /** reason/message of a condition that is false. */
  notReady: { type: string; reason: string; message: string }[];
}

/** `crictl info` JSON: {"status": {"conditions": [{"type": "RuntimeReady", "status": true, ...}]}, ...}. */
export function parseCrictlInfo(text: string): CriStatus | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return undefined;
  }
  const conditions = (doc as { status?: { conditions?: unknown } } | null)?.status?.conditions;
  if (!Array.isArray(conditions)) return undefined;
  const status: CriStatus = { runtimeReady: undefined, networkReady: undefined, notReady: [] };
  for (const c of conditions as { type?: unknown; status?: unknown; reason?: unknown; message?: unknown }[]) {
    if (typeof c.type !== 'string') continue;
    const value = c.status === true;
    if (c.type === 'RuntimeReady') status.runtimeReady = value;
    if (c.type === 'NetworkReady') status.networkReady = value;
    if (!value) status.notReady.push({ type: c.type, reason: String(c.reason ?? ''), message: String(c.message ?? '') });
  }
  return status;
}

/** The last fatal line crictl printed (logrus "FATA[0002] ..." or "level=fatal msg=..."), else the tail of stderr. */
export function crictlError(stderr: string): string {
  const lines = stderr.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  const fatal = lines.filter((l) => l.startsWith('FATA') || l.includes('level=fatal')).pop();
  return (fatal ?? lines.pop() ?? '').slice(0, 400);
}

// ---- looks ----

type RuntimeName = 'containerd' | 'docker' | 'pouch';

const DAEMONS: Record<RuntimeName, string> = { containerd: 'containerd', docker: 'dockerd', pouch: 'pouchd' };

interface Look {
  ok: boolean;
  reason: string;
  message: string;
  /** No verdict could be made (e.g. crictl absent and the socket accepts connections). */
  unknown?: string;
  events?: ProblemEvent[];
}

interface LookContext {
  host: Host;
  deadlineMs: number;
  signal: AbortSignal;
}

async function lookContainerd(socket: string, c: LookContext): Promise<Look> {
  const { host } = c;
  const endpoint = `unix://${host.path(socket)}`;
  const seconds = Math.max(1, Math.ceil(c.deadlineMs / 1000));
  const result = await host.exec(['crictl', '--runtime-endpoint', endpoint, '--timeout', `${seconds}s`, 'info'], {
    timeoutMs: c.deadlineMs + 1_000,
    signal: c.signal,
    cachedLookup: true,
  });
  if (result.notFound) {
    // Without crictl only the socket can be tried: a refusal is a verdict, an accepted connection is not.
    const connect = await unixConnect(host, socket, { timeoutMs: c.deadlineMs, signal: c.signal });
    if (!connect.ok) return { ok: false, reason: 'CRIStatusFailed', message: `containerd socket ${socket}: ${connect.failure}: ${connect.message}` };
    return { ok: true, reason: '', message: '', unknown: `crictl not found: containerd socket ${socket} accepts connections but the CRI Status call was not made` };
  }
  if (result.timedOut) return { ok: false, reason: 'CRIStatusFailed', message: `crictl info on ${socket} did not finish within ${c.deadlineMs}ms` };
  if (result.exitCode !== 0) {
    return { ok: false, reason: 'CRIStatusFailed', message: new ExecError({ ...result, stderr: crictlError(result.stderr) }).message };
  }
  const status = parseCrictlInfo(result.stdout);
  if (status === undefined) return { ok: true, reason: '', message: '', unknown: `crictl info printed no CRI status JSON: ${result.stdout.slice(0, 200)}` };
  if (status.runtimeReady === false) {
    const nr = status.notReady.find((n) => n.type === 'RuntimeReady');
    return { ok: false, reason: 'CRIRuntimeNotReady', message: `containerd reports RuntimeReady=false: ${nr?.reason ?? ''} ${nr?.message ?? ''}`.trim() };
  }
  const events: ProblemEvent[] = [];
  if (status.networkReady === false) {
    const nr = status.notReady.find((n) => n.type === 'NetworkReady');
    // Kubelet already turns a missing network plugin into NodeReady=False; here it is information.
    events.push({ severity: 'info', reason: 'CRINetworkNotReady', message: `containerd reports NetworkReady=false: ${nr?.reason ?? ''} ${nr?.message ?? ''}`.trim(), timestamp: host.clock.now() });
  }
  return { ok: true, reason: '', message: '', events };
}

async function lookPing(name: 'docker' | 'pouch', socket: string, c: LookContext): Promise<Look> {
  const reason = name === 'docker' ? 'DockerPingFailed' : 'PouchPingFailed';
  const result = await unixHttpGet(c.host, socket, '/_ping', { timeoutMs: c.deadlineMs, signal: c.signal, maxBodyBytes: 1024 });
  if (!result.ok) return { ok: false, reason, message: `${name} GET /_ping on ${socket}: ${result.failure}: ${result.message}` };
  if (result.statusCode !== 200) {
    return { ok: false, reason, message: `${name} GET /_ping on ${socket} answered HTTP ${result.statusCode}: ${result.body.trim().slice(0, 200)}` };
  }
  return { ok: true, reason: '', message: '' };
}

// ---- the detector ----

type Config = StaticDecode<typeof configSchema>;

export const containerRuntime: DetectorDefinition<typeof configSchema> = {
  description: 'Container runtime stall: containerd CRI Status, Docker/Pouch /_ping, runtime daemons in D state',
  configSchema,
  defaults: { enabled: true, interval: '30s', timeout: '20s' },
  create(config: Config, ctx) {
    const { host } = ctx;
    const deadlineMs = config.deadline;
    const retryMs = config.checkRetryInterval;
    const book = new Conditions([{ type: CONDITION, okReason: 'ContainerRuntimeIsHealthy', okMessage: 'container runtime answers' }], ctx);
    const tripped = book.get(CONDITION)?.status === 'True';
    const keys = ['containerd', 'docker', 'pouch', 'dstate'] as const;
    type Key = (typeof keys)[number];
    const debounce = new Map<Key, Debounce>(keys.map((k) => [k, new Debounce(config.failuresToTrip, config.successesToClear, tripped)]));
    const lastBad = new Map<Key, Look>();

    /** One look at every runtime that is present or expected; undefined for those not looked at. */
    const lookAll = async (signal: AbortSignal, only?: ReadonlySet<Key>): Promise<Map<Key, Look>> => {
      let procs: readonly ProcStat[] = [];
      try {
        procs = readProcesses(host);
      } catch {
        // no /proc under the root: no daemon is seen running
      }
      const running = (daemon: string): boolean => procs.some((p) => p.comm === daemon);
      const looks = new Map<Key, Look>();
      const c: LookContext = { host, deadlineMs, signal };
      await Promise.all(
        (['containerd', 'docker', 'pouch'] as const).map(async (name) => {
          if (only !== undefined && !only.has(name)) return;
          const settings = config[name];
          if (settings.expected === 'false') return;
          const socketThere = await host.exists(settings.socket);
          const daemonUp = running(DAEMONS[name]);
          if (!socketThere) {
            if (daemonUp) looks.set(name, { ok: false, reason: 'RuntimeSocketMissing', message: `${DAEMONS[name]} is running but ${settings.socket} does not exist` });
            else if (settings.expected === 'true') looks.set(name, { ok: false, reason: 'RuntimeNotRunning', message: `${name} is expected but neither ${DAEMONS[name]} nor ${settings.socket} is present` });
            return;
          }
          looks.set(name, name === 'containerd' ? await lookContainerd(settings.socket, c) : await lookPing(name, settings.socket, c));
        }),
      );
      if (only === undefined || only.has('dstate')) {
        const stuck = procs.filter((p) => p.state === 'D' && nameMatches(p.comm, config.dStateProcesses));
        looks.set(
          'dstate',
          stuck.length === 0
            ? { ok: true, reason: '', message: '' }
            : { ok: false, reason: 'RuntimeProcessInDState', message: `in uninterruptible sleep (D): ${stuck.map((p) => `${p.comm}[${p.pid}]`).join(', ')}` },
        );
      }
      return looks;
    };

    const state = new Map<Key, boolean>();
    const observe = (looks: Map<Key, Look>, only: ReadonlySet<Key> | undefined, events: ProblemEvent[]): void => {
      const now = host.clock.now();
      for (const key of keys) {
        if (only !== undefined && !only.has(key)) continue;
        const look = looks.get(key);
        const d = debounce.get(key) as Debounce;
        const wasFailing = d.failures > 0;
        const failed = look !== undefined && !look.ok;
        const bad = d.observe(failed);
        state.set(key, bad);
        if (failed) {
          lastBad.set(key, look);
          if (!bad && !wasFailing) {
            events.push({ severity: 'info', reason: look.reason, message: `${look.message} (failure 1 of ${config.failuresToTrip} before ${CONDITION})`, timestamp: now });
          }
        } else if (!bad) {
          lastBad.delete(key);
        }
      }
    };

    return {
      async probe(signal): Promise<DetectorResult> {
        const events: ProblemEvent[] = [];
        let looks = await lookAll(signal);
        const unknown = new Set<string>();
        const collect = (ls: Map<Key, Look>): void => {
          for (const l of ls.values()) {
            if (l.unknown !== undefined) unknown.add(l.unknown);
            if (l.events !== undefined) events.push(...l.events);
          }
        };
        collect(looks);
        observe(looks, undefined, events);
        if (ctx.mode === 'check') {
          // More looks at the failing runtimes only, until each either answers or trips.
          for (let attempt = 1; attempt < config.failuresToTrip; attempt++) {
            const failing = new Set<Key>(keys.filter((k) => looks.get(k)?.ok === false));
            if (failing.size === 0 || signal.aborted) break;
            await host.clock.sleep(retryMs, signal);
            const again = await lookAll(signal, failing);
            collect(again);
            // Runtimes not looked at again keep their last (good) state.
            const merged = new Map<Key, Look>();
            for (const k of keys) {
              const l = again.get(k) ?? (failing.has(k) ? undefined : looks.get(k));
              if (l !== undefined) merged.set(k, l);
            }
            const recovered = [...failing].filter((k) => again.get(k)?.ok !== false);
            for (const k of recovered) {
              const prev = lastBad.get(k);
              if (prev !== undefined) {
                events.push({ severity: 'info', reason: prev.reason, message: `${prev.message} (transient: the next look succeeded)`, timestamp: host.clock.now() });
              }
            }
            observe(merged, failing, []);
            looks = merged;
          }
        }
        const trippedKeys = keys.filter((k) => state.get(k) === true);
        const reported = trippedKeys.map((k) => lastBad.get(k)).filter((l): l is Look => l !== undefined && book.surfaces(l.reason));
        const first = reported[0];
        if (first === undefined) {
          const seen = (['containerd', 'docker', 'pouch'] as const).filter((k) => looks.has(k));
          book.ok(CONDITION, seen.length === 0 ? 'no container runtime found on this node (none expected)' : `${seen.join(', ')} answered`);
        } else {
          book.set(CONDITION, 'True', first.reason, reported.map((l) => l.message).join('; '));
        }
        const unknownText = [...unknown].join('; ');
        return {
          conditions: book.list(),
          events,
          ...(unknownText === '' || first !== undefined ? {} : { unknown: unknownText }),
        };
      },
    };
  },
};

// `kubenode-agent rollout …` (also `kubectl kubenode rollout …`): what a person types about a
// MachineComponentSet's rollout. Every action is a spec write (pause, resume, acknowledge, undo
// copies a stored revision's template back), never a status patch, so GitOps sees the change.
import { homedir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { UsageError } from '../errors.ts';
import type { KubeConfig } from '@kubernetes/client-node';
import type { KubeClient } from '../kube/client.ts';

/** Exit codes of `rollout status`: completed, failed (a gate failed or it rolled back), paused otherwise. */
export const ROLLOUT_EXIT = { completed: 0, failed: 1, paused: 2, timeout: 3 } as const;

const MCS_PATH = '/apis/kubenode.io/v1alpha1/machinecomponentsets';

interface CommonFlags { kubeconfig?: string; namespace: string }

interface SetView {
  metadata: { name: string; resourceVersion: string; generation?: number };
  spec: { paused?: boolean; template: { spec: { version: string } }; rollout?: { acknowledgeFailure?: string } };
  status?: {
    phase?: string;
    observedGeneration?: number;
    currentRevision?: string;
    updateRevision?: string;
    matched?: number;
    updated?: number;
    ready?: number;
    failed?: number;
    currentBatch?: number;
    pausedReason?: string;
    failure?: { token: string; reason: string; message: string; batch: number };
    conditions?: { type: string; status: string; reason: string; message: string }[];
  };
}

interface RevisionView {
  metadata: { name: string; creationTimestamp?: string; annotations?: Record<string, string>; labels?: Record<string, string> };
  revision: number;
  data: { template: { spec: { version: string } } };
}

/** The kubeconfig kubectl would use: --kubeconfig, else the first file in $KUBECONFIG, else ~/.kube/config. */
export function kubeconfigPath(flag: string | undefined): string {
  if (flag !== undefined) return flag;
  const env = process.env.KUBECONFIG?.split(':').find((p) => p !== '');
  return env ?? join(homedir(), '.kube', 'config');
}

async function connect(flags: CommonFlags): Promise<KubeClient> {
  return (await connectWithConfig(flags)).client;
}

export async function connectWithConfig(flags: { kubeconfig?: string }): Promise<{ client: KubeClient; kc: KubeConfig }> {
  const { createKubeClient, loadKubeConfig } = await import('../kube/client.ts');
  const kc = await loadKubeConfig({ kubeconfig: kubeconfigPath(flags.kubeconfig) });
  return { client: createKubeClient(kc), kc };
}

async function getSet(client: KubeClient, name: string): Promise<SetView> {
  const { classifyKubeError } = await import('../kube/client.ts');
  try {
    return await client.get<SetView>(`${MCS_PATH}/${encodeURIComponent(name)}`);
  } catch (err) {
    if (classifyKubeError(err) === 'not-found') throw new UsageError(`machinecomponentset ${JSON.stringify(name)} not found`);
    throw err;
  }
}

async function revisionsOf(client: KubeClient, namespace: string, name: string): Promise<RevisionView[]> {
  const { labelValueOf } = await import('../api/common.ts');
  const list = await client.get<{ items: RevisionView[] }>(`/apis/apps/v1/namespaces/${encodeURIComponent(namespace)}/controllerrevisions`, { query: { labelSelector: `kubenode.io/component-set=${labelValueOf(name)}` } });
  return list.items.sort((a, b) => a.revision - b.revision);
}

function describe(set: SetView): string {
  const s = set.status ?? {};
  const base = `${set.metadata.name}: ${s.updated ?? 0} of ${s.matched ?? 0} updated to ${set.spec.template.spec.version}, ${s.ready ?? 0} ready, ${s.failed ?? 0} failed, batch ${s.currentBatch ?? 0}`;
  return s.pausedReason === undefined ? base : `${base}; paused: ${s.pausedReason}`;
}

type Outcome = keyof typeof ROLLOUT_EXIT | undefined;

function outcomeOf(set: SetView): Outcome {
  const s = set.status;
  if (s === undefined || (s.observedGeneration ?? -1) < (set.metadata.generation ?? 0)) return undefined;
  if (s.phase === 'Completed') return 'completed';
  if (s.phase === 'Failed' || s.failure !== undefined) return 'failed';
  if (s.phase === 'Paused') return 'paused';
  return undefined;
}

async function mergePatch(client: KubeClient, name: string, patch: unknown): Promise<void> {
  await client.patch(`${MCS_PATH}/${encodeURIComponent(name)}`, patch, 'merge');
}

function addCommon(cmd: Command): Command {
  return cmd
    .option('--kubeconfig <file>', 'kubeconfig (default: $KUBECONFIG, else ~/.kube/config)')
    .option('-n, --namespace <ns>', "the controller's namespace, where the ControllerRevisions are", 'kubenode-system');
}

export function rolloutCommand(exitWith: (code: number) => never): Command {
  const rollout = new Command('rollout').description('follow and steer MachineComponentSet rollouts');

  addCommon(
    rollout
      .command('status <name>')
      .description(`follow the rollout until it completes (exit ${ROLLOUT_EXIT.completed}), fails (${ROLLOUT_EXIT.failed}) or pauses (${ROLLOUT_EXIT.paused}); ${ROLLOUT_EXIT.timeout} on --timeout`)
      .option('-w, --watch <bool>', 'keep following (false: print once and exit by the current state)', 'true')
      .option('--timeout <d>', 'give up after this long (0: never)', '0'),
  ).action(async (name: string, flags: CommonFlags & { watch: string; timeout: string }) => {
    const [{ decodeFlag }, { Duration }] = await Promise.all([import('../config/decode.ts'), import('../util/duration-schema.ts')]);
    const timeoutMs = decodeFlag('--timeout', Duration({ min: '0', max: '168h' }), flags.timeout);
    if (flags.watch !== 'true' && flags.watch !== 'false') throw new UsageError(`--watch: expected true or false, got ${JSON.stringify(flags.watch)}`);
    const { client, kc } = await connectWithConfig(flags);
    const deadline = timeoutMs === 0 ? Number.POSITIVE_INFINITY : Date.now() + timeoutMs;
    let last = '';
    let set = await getSet(client, name);
    for (;;) {
      const line = describe(set);
      if (line !== last) process.stdout.write(`${line}\n`);
      last = line;
      const outcome = outcomeOf(set);
      if (outcome !== undefined || flags.watch === 'false') {
        const s = set.status;
        if (outcome === 'completed') process.stdout.write(`rollout of ${name} to ${set.spec.template.spec.version} complete\n`);
        else if (outcome === 'failed') process.stdout.write(`rollout of ${name} failed: ${s?.failure?.message ?? s?.pausedReason ?? s?.phase ?? ''}${s?.failure === undefined ? '' : `\nacknowledge with: rollout resume ${name}`}\n`);
        else if (outcome === 'paused') process.stdout.write(`rollout of ${name} paused: ${s?.conditions?.find((c) => c.type === 'Paused')?.message ?? s?.pausedReason ?? ''}\n`);
        client.close();
        exitWith(ROLLOUT_EXIT[outcome ?? 'paused']);
      }
      if (Date.now() > deadline) {
        process.stderr.write(`timed out waiting for the rollout of ${name}\n`);
        client.close();
        exitWith(ROLLOUT_EXIT.timeout);
      }
      set = await waitForChange(client, kc, name, set.metadata.resourceVersion, Math.min(60_000, deadline - Date.now()));
    }
  });

  addCommon(rollout.command('pause <name>').description('set spec.paused: in-flight installs finish, no new batch starts')).action(async (name: string, flags: CommonFlags) => {
    const client = await connect(flags);
    await getSet(client, name);
    await mergePatch(client, name, { spec: { paused: true } });
    process.stdout.write(`machinecomponentset/${name} paused\n`);
    client.close();
  });

  addCommon(rollout.command('resume <name>').description('clear spec.paused and acknowledge the current failure (copies its token into spec.rollout.acknowledgeFailure)')).action(
    async (name: string, flags: CommonFlags) => {
      const client = await connect(flags);
      const set = await getSet(client, name);
      const token = set.status?.failure?.token;
      await mergePatch(client, name, { spec: { paused: false, ...(token === undefined ? {} : { rollout: { acknowledgeFailure: token } }) } });
      process.stdout.write(`machinecomponentset/${name} resumed${token === undefined ? '' : ` (failure ${token} acknowledged)`}\n`);
      client.close();
    },
  );

  addCommon(rollout.command('history <name>').description('the stored revisions: number, version, and how each rollout went')).action(async (name: string, flags: CommonFlags) => {
    const client = await connect(flags);
    const set = await getSet(client, name);
    const revs = await revisionsOf(client, flags.namespace, name);
    const rows = [['REVISION', 'VERSION', 'NAME', 'STATUS']];
    for (const r of revs) {
      const marks: string[] = [];
      if (r.metadata.name === set.status?.currentRevision) marks.push('current');
      if (r.metadata.name === set.status?.updateRevision && r.metadata.name !== set.status?.currentRevision) marks.push(`rolling out (${set.status?.phase ?? 'Pending'})`);
      const failed = r.metadata.annotations?.['kubenode.io/failed'];
      if (failed !== undefined) marks.push(`failed: ${failed}`);
      if (r.metadata.annotations?.['kubenode.io/invalid'] !== undefined) marks.push('invalid template');
      rows.push([String(r.revision), r.data.template.spec.version, r.metadata.name, marks.join(', ') || 'superseded']);
    }
    const widths = rows[0]?.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? '').length))) ?? [];
    for (const row of rows) process.stdout.write(`${row.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd()}\n`);
    client.close();
  });

  addCommon(
    rollout
      .command('undo <name>')
      .description('copy an earlier revision\'s template back into spec: the previous good one, or --to-revision N; revisions that failed their gate are refused')
      .option('--to-revision <n>', 'the revision number (see rollout history)'),
  ).action(async (name: string, flags: CommonFlags & { toRevision?: string }) => {
    const client = await connect(flags);
    const set = await getSet(client, name);
    const revs = await revisionsOf(client, flags.namespace, name);
    const updateRev = set.status?.updateRevision;
    const currentNumber = revs.find((r) => r.metadata.name === updateRev)?.revision ?? Number.POSITIVE_INFINITY;
    const good = (r: RevisionView): boolean => r.metadata.annotations?.['kubenode.io/failed'] === undefined && r.metadata.annotations?.['kubenode.io/invalid'] === undefined;
    let target: RevisionView | undefined;
    if (flags.toRevision !== undefined) {
      const n = Number(flags.toRevision);
      if (!Number.isInteger(n) || n < 1) throw new UsageError(`--to-revision: expected a revision number, got ${JSON.stringify(flags.toRevision)}`);
      target = revs.find((r) => r.revision === n);
      if (target === undefined) throw new UsageError(`--to-revision ${n}: ${name} has no such revision (have ${revs.map((r) => r.revision).join(', ') || 'none'})`);
      if (!good(target)) throw new UsageError(`--to-revision ${n}: revision ${n} (${target.data.template.spec.version}) failed its rollout (${target.metadata.annotations?.['kubenode.io/failed'] ?? 'invalid template'}); it is no rollback target`);
      if (target.metadata.name === updateRev) throw new UsageError(`--to-revision ${n}: that is the revision spec already has`);
    } else {
      target = revs.filter((r) => r.revision < currentNumber && r.metadata.name !== updateRev && good(r)).at(-1);
      if (target === undefined) throw new UsageError(`${name} has no earlier good revision to go back to (see rollout history)`);
    }
    // Replace the whole template (a merge patch would keep fields only the newer one has), on the version read.
    await client.patch(
      `${MCS_PATH}/${encodeURIComponent(name)}`,
      [
        { op: 'test', path: '/metadata/resourceVersion', value: set.metadata.resourceVersion },
        { op: 'replace', path: '/spec/template', value: target.data.template },
      ],
      'json',
    );
    process.stdout.write(`machinecomponentset/${name} rolled back to revision ${target.revision} (${target.data.template.spec.version})\n`);
    client.close();
  });
  for (const sub of rollout.commands) sub.exitOverride().configureOutput({ outputError: (text, write) => write(text) });
  return rollout;
}

/** One watch on the set: resolves with the set once it changed (or as it is after maxMs). */
async function waitForChange(client: KubeClient, kc: KubeConfig, name: string, resourceVersion: string, maxMs: number): Promise<SetView> {
  const { kubeModule } = await import('../kube/client.ts');
  const k8s = await kubeModule();
  await new Promise<void>((resolve) => {
    let done = false;
    let abort: AbortController | undefined;
    const finish = (): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      abort?.abort();
      resolve();
    };
    const timer = setTimeout(finish, Math.max(1000, maxMs));
    new k8s.Watch(kc)
      .watch(MCS_PATH, { fieldSelector: `metadata.name=${name}`, resourceVersion, allowWatchBookmarks: false }, () => finish(), () => finish())
      .then(
        (c) => {
          abort = c;
          if (done) c.abort();
        },
        () => finish(),
      );
  });
  return getSet(client, name);
}

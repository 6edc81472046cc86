// The watch a release keeps on a member's MachineComponentSet, when it breaks: a member apiserver
// stopped mid-release and started again on the same data, port and CA, and a member that ends
// every watch after a few seconds and compacts etcd every second, so that a re-watch from the
// last resourceVersion is answered 410 Gone. Real apiservers throughout: a management cluster with
// the pipeline controller in this process (its metrics and log read directly), two members with
// their own in-cluster controllers and agents played by the test, each writing an audit log in
// which the pipeline controller's requests are counted on the member itself. A member refusing
// /readyz (its RBAC not serving yet) is kept apart from one refusing the pipeline's writes.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import type { ReleaseStatus } from '../../src/api/release.ts';
import { Controller } from '../../src/controller/index.ts';
import { createLogger } from '../../src/log.ts';
import { startCluster, type Cluster } from '../harness/cluster.ts';
import { installCrds, READYZ_BINDINGS, takeClusterRoleBindings } from '../helpers/kube-objects.ts';
import { KUBENODE_API, MCS_PATH } from '../helpers/kube-api.ts';
import { ensureNamespace, must, type SimulatedAgents, until } from '../controller/helpers.ts';
import { addMember, AUDIT_POLICY, MEMBER_ROLE, pipelineRequests } from './helpers.ts';

const NS = 'kubenode-system';
const PROBE_MS = 1000;
const silent = createLogger('silent');
// restarted: stopped and started again; compacting: every watch ends after 4–8 s (the flag's floor
// and twice it), no watch cache (watches are etcd's own, with no bookmarks to move a quiet watch's
// resourceVersion on) and etcd compacted every second, so a quiet set's re-watch is too old.
const MEMBERS = { restarted: [], compacting: ['--min-request-timeout=4', '--watch-cache=false', '--etcd-compaction-interval=1s'] } as const;
type MemberName = keyof typeof MEMBERS;

describe('a member watch that breaks mid-release', () => {
  let mgmt: Cluster;
  let pipeline: Controller;
  const members = new Map<MemberName, { cluster: Cluster; agents: SimulatedAgents; controller: Controller }>();
  const auditDir = mkdtempSync(path.join(tmpdir(), 'kubenode-audit-'));
  const auditLog = (n: MemberName): string => path.join(auditDir, `${n}.log`);
  /** The pipeline controller's log, JSON lines at debug. */
  const logLines: Record<string, unknown>[] = [];
  const member = (n: MemberName) => members.get(n) as NonNullable<ReturnType<typeof members.get>>;
  const statusOf = async (name: string): Promise<ReleaseStatus | undefined> => (await must<{ status?: ReleaseStatus }>(mgmt, 'GET', `${KUBENODE_API}/releases/${name}`)).status;
  const clusterOf = async (name: string) => (await statusOf(name))?.stages[0]?.clusters[0];
  /** The pipeline controller's requests on the member for this set (its watches and lists are field-selected to it), from audit entry `from` on. */
  const setRequests = (n: MemberName, set: string, from = 0) => pipelineRequests(auditLog(n)).slice(from).filter((e) => e.requestURI.includes(`metadata.name%3D${set}`)).map((e) => e.verb);
  /** The same, as verb and response code: a member just started may refuse the first list. */
  const setAnswers = (n: MemberName, set: string, from = 0) => pipelineRequests(auditLog(n)).slice(from).filter((e) => e.requestURI.includes(`metadata.name%3D${set}`)).map((e) => `${e.verb} ${e.responseStatus?.code ?? '?'}`);
  const metric = async (name: string, labels: Record<string, string>): Promise<number> => {
    const m = await pipeline.registry.getSingleMetric(name)?.get();
    return (m?.values ?? []).filter((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x)).reduce((n, v) => n + v.value, 0);
  };
  const release = async (name: string, cluster: MemberName, bakeTime: string): Promise<void> => {
    await must(mgmt, 'POST', `${KUBENODE_API}/releasepipelines`, { apiVersion: 'kubenode.io/v1alpha1', kind: 'ReleasePipeline', metadata: { name }, spec: { stages: [{ name: 'only', clusters: [cluster], deadline: '10m' }] } });
    await must(mgmt, 'POST', `${KUBENODE_API}/releases`, {
      apiVersion: 'kubenode.io/v1alpha1',
      kind: 'Release',
      metadata: { name },
      spec: {
        pipeline: name,
        componentSet: name,
        selector: { matchLabels: { pool: 'e2e' } },
        template: { spec: { component: name, version: '1.0.0', source: { type: 'binary', url: `https://example.com/${name}-1.0.0`, sha256: 'a'.repeat(64) } } },
        rollout: { batches: [1, '100%'], bakeTime, maxUnavailable: 3 },
      },
    });
  };
  /** The member's own view of the set, which the release's cluster status must come to show. */
  const memberSet = async (n: MemberName, set: string) => must<{ status?: { phase?: string; updated?: number; matched?: number } }>(member(n).cluster, 'GET', `${MCS_PATH}/${set}`);

  before(async () => {
    writeFileSync(path.join(auditDir, 'policy.yaml'), AUDIT_POLICY);
    const names = Object.keys(MEMBERS) as MemberName[];
    const started = await Promise.all([
      startCluster({ agents: 1 }),
      ...names.map((n) => startCluster({ agents: 1, apiserverArgs: [`--audit-policy-file=${path.join(auditDir, 'policy.yaml')}`, `--audit-log-path=${auditLog(n)}`, ...MEMBERS[n]] })),
    ]);
    mgmt = started[0] as Cluster;
    await installCrds(mgmt);
    await ensureNamespace(mgmt, NS);
    for (const [i, n] of names.entries()) {
      const cluster = started[i + 1] as Cluster;
      members.set(n, { cluster, ...(await addMember(mgmt, cluster, { name: n, ns: NS, pool: 'e2e', log: silent })) });
    }
    const log = pino({ level: 'debug' }, { write: (line: string) => void logLines.push(JSON.parse(line) as Record<string, unknown>) });
    pipeline = new Controller({ kubeconfig: mgmt.adminKubeconfig, leaderElect: false, namespace: NS, listen: '127.0.0.1:0', pipelines: { probeIntervalMs: PROBE_MS } }, log);
    await pipeline.start();
  });

  after(async () => {
    await pipeline?.stop();
    for (const m of members.values()) {
      await m.agents.stop();
      await m.controller.stop();
      await m.cluster.stop();
    }
    await mgmt?.stop();
    rmSync(auditDir, { recursive: true, force: true });
  });

  it('a member apiserver stopped mid-release is Unknown, asked once per probe interval while away, watched again with one list and one watch once back, and its later progress reaches the release', async () => {
    const { cluster } = member('restarted');
    const server = cluster.server;
    await release('restart', 'restarted', '5s');
    // The first batch is in and baking: the second batch can only come once the member is back.
    await until('first batch in', async () => {
      const c = await clusterOf('restart');
      return c?.state === 'Progressing' && c.updated === 1;
    }, 60_000);
    assert.deepEqual(setRequests('restarted', 'restart').filter((v) => v === 'list' || v === 'watch'), ['list', 'watch'], 'one list and one watch before the outage');
    let mark = 0;
    await cluster.restart({
      whileDown: async () => {
        mark = pipelineRequests(auditLog('restarted')).length;
        await until('restarted Unknown', async () => (await clusterOf('restart'))?.state === 'Unknown', 60_000);
        const away = await clusterOf('restart');
        assert.equal(away?.reachable, 'False');
        assert.match(away?.message ?? '', /^unreachable: /);
        // A refused connection fails at once: asked again only after a probe interval, not in a loop.
        const failed = { verb: 'GET', result: 'network' };
        const [from, t0] = [await metric('kubenode_controller_member_requests_total', failed), Date.now()];
        await new Promise((r) => setTimeout(r, 4 * PROBE_MS));
        const probes = (await metric('kubenode_controller_member_requests_total', failed)) - from;
        const intervals = (Date.now() - t0) / PROBE_MS;
        assert.ok(probes >= 1 && probes <= intervals + 2, `${probes} failed requests to the stopped member in ${intervals.toFixed(1)} probe intervals`);
      },
    });
    assert.equal(cluster.server, server, 'the member came back on the same address (its Secret names it)');

    // A failure says where the release, the member's set and its /readyz stood (how the 403 of a member just started, failing the release, was found).
    await until('restart succeeds', async () => (await statusOf('restart'))?.phase === 'Succeeded', 120_000).catch(async (err: unknown) => {
      const readyz = await cluster.request('GET', '/readyz?verbose');
      const seen = { release: await clusterOf('restart'), memberSet: (await memberSet('restarted', 'restart')).status, readyz: `${readyz.status} ${readyz.body.split('\n').filter((l) => l.startsWith('[-]')).join('; ')}`, log: logLines.slice(-20) };
      throw new Error(`${(err as Error).message}: ${JSON.stringify(seen)}`);
    });
    const done = await clusterOf('restart');
    assert.equal(done?.reachable, 'True');
    assert.equal(done?.state, 'Finished');
    assert.equal(done?.updated, 3, 'the second batch, rolled out after the restart, reached the release status through the watch');
    assert.equal((await memberSet('restarted', 'restart')).status?.phase, 'Completed');
    const since = setAnswers('restarted', 'restart', mark);
    assert.deepEqual(since.filter((a) => a === 'list 200' || a.startsWith('watch')), ['list 200', 'watch 200'], `the set's watch started again exactly once after the restart (${since.join(', ')})`);
    const events = await must<{ items: { reason: string; involvedObject: { name: string } }[] }>(mgmt, 'GET', '/api/v1/namespaces/default/events');
    const reasons = new Set(events.items.filter((e) => e.involvedObject.name === 'restart').map((e) => e.reason));
    for (const r of ['ClusterUnreachable', 'ClusterReachable', 'ClusterFinished']) assert.ok(reasons.has(r), `Event ${r} (have ${[...reasons].join(', ')})`);
  });

  it('a member that refuses even /readyz, as one just started does until its RBAC caches fill, is not ready rather than failed: it waits until the member answers, then the release goes on; a refusal from a ready member fails the cluster', async () => {
    const { cluster } = member('restarted');
    const take = (names: readonly string[]): Promise<() => Promise<void>> => takeClusterRoleBindings(cluster, names);
    const giveReadyz = await take(READYZ_BINDINGS);
    // Heard from within a probe interval (the last test's release), the member would be written without a probe.
    await new Promise((r) => setTimeout(r, 2 * PROBE_MS));
    await release('notready', 'restarted', '1s');
    await until('notready not ready', async () => (await clusterOf('notready'))?.reachable === 'False', 60_000);
    assert.match((await clusterOf('notready'))?.message ?? '', /^unreachable: GET \/readyz: 403 not ready: forbidden: User "system:serviceaccount:kubenode-system:kubenode-pipeline" cannot get path "\/readyz"/);
    await new Promise((r) => setTimeout(r, 3 * PROBE_MS));
    // Its first request was the probe: the set was never written, and the cluster waits to start.
    assert.equal((await clusterOf('notready'))?.state, 'Pending', 'still waiting for it after three probe intervals');
    assert.equal((await statusOf('notready'))?.phase, 'Progressing');
    await giveReadyz();
    await until('notready succeeds', async () => (await statusOf('notready'))?.phase === 'Succeeded', 120_000);
    assert.equal((await clusterOf('notready'))?.updated, 3);

    // Ready, but the pipeline's own rights in the member are gone: its write is refused, and that fails the cluster at once.
    const giveRole = await take([MEMBER_ROLE]);
    const mark = pipelineRequests(auditLog('restarted')).length;
    await release('forbidden', 'restarted', '1s');
    await until('forbidden Failed', async () => (await clusterOf('forbidden'))?.state === 'Failed', 60_000);
    assert.match((await clusterOf('forbidden'))?.message ?? '', /^the cluster refused forbidden: PATCH \/apis\/kubenode\.io\/v1alpha1\/machinecomponentsets\/forbidden: 403 .* cannot patch resource "machinecomponentsets"/);
    assert.equal((await clusterOf('forbidden'))?.reachable, 'True');
    // The refusal was believed only once /readyz answered right after it.
    const asked = pipelineRequests(auditLog('restarted')).slice(mark).filter((e) => e.verb !== 'list' && e.verb !== 'watch').map((e) => `${e.verb} ${e.requestURI.split('?')[0] ?? ''} ${e.responseStatus?.code ?? '?'}`);
    const refused = asked.indexOf('patch /apis/kubenode.io/v1alpha1/machinecomponentsets/forbidden 403');
    assert.ok(refused >= 0 && asked[refused + 1] === 'get /readyz 200', asked.join(', '));
    await giveRole();
  });

  it('a re-watch answered 410 Gone lists again and misses nothing: the rollout that went on meanwhile reaches the release', async () => {
    await release('gone', 'compacting', '12s');
    await until('first batch in', async () => {
      const c = await clusterOf('gone');
      return c?.state === 'Progressing' && c.updated === 1;
    }, 60_000);
    const relisted = (): boolean => logLines.some((l) => l.set === 'gone' && l.msg === 'Listed' && l.reason === 'gone');
    // The set is quiet while the first batch bakes: its watch ends, and the re-watch from its last event is past the compaction.
    await until('a re-watch answered 410 and listed again', relisted, 60_000);
    assert.equal((await clusterOf('gone'))?.reachable, 'True', 'a 410 says nothing against the cluster');
    await until('gone succeeds', async () => (await statusOf('gone'))?.phase === 'Succeeded', 120_000);
    const set = await memberSet('compacting', 'gone');
    const done = await clusterOf('gone');
    assert.equal(done?.state, 'Finished');
    assert.equal(done?.updated, set.status?.updated);
    assert.equal(done?.updated, 3);
    const verbs = setRequests('compacting', 'gone');
    assert.ok(verbs.filter((v) => v === 'list').length >= 2, `listed again after the 410 (${verbs.join(', ')})`);
    assert.deepEqual(logLines.filter((l) => l.set === 'gone' && typeof l.msg === 'string' && /Watch failed/.test(l.msg)), [], 'the 410 was no watch failure: no backoff');
  });
});

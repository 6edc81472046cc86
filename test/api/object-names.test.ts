// Names built from a node's or another object's name: a Node name may have 253 characters, as may
// any object name, so a name made of one and a prefix or suffix can pass that, and a cut of it can
// end in '-' or '.'. Every builder: at most 253 characters (a generateName: 58, the apiserver's
// cut), a DNS subdomain, distinct for two long names sharing a prefix, and the plain name where it
// fits (so nothing live is renamed). Then what crosses a real apiserver: the join's CSR, and the
// controller's readers of the agent Lease finding a 253-character node's.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { GENERATE_NAME_MAX, generateNameOf } from '../../src/api/common.ts';
import { approvalName } from '../../src/api/release-approval.ts';
import { eventName, EventRecorder } from '../../src/controller/events.ts';
import { Controller } from '../../src/controller/index.ts';
import { centralOperationName } from '../../src/controller/remedy/central.ts';
import { systemClock } from '../../src/host/clock.ts';
import { requestCertificate } from '../../src/join/identity.ts';
import { createKubeClient, loadKubeConfig, type KubeClient } from '../../src/kube/client.ts';
import { createLogger } from '../../src/log.ts';
import { nodeEventName } from '../../src/report/kube/events.ts';
import { agentLeaseKey, agentLeaseName, agentLeaseNode, agentLeaseOf } from '../../src/report/kube/lease.ts';
import type { Cluster } from '../harness/cluster.ts';
import { central, ops, remedier, type NodeObj } from '../central-remedy/fleet.ts';
import { addMachine, ensureNamespace, must, renewLease, rolloutCluster, setNodeReady, until, type SimulatedAgents } from '../controller/helpers.ts';
import { MCS_PATH, MERGE_PATCH } from '../helpers/kube-api.ts';

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const log = createLogger(process.env.KUBENODE_TEST_LOG === '1' ? 'debug' : 'silent');

/** A valid node name of `length` characters whose first length-8 are the same for every tail. */
const longName = (tail: string, length = 253): string => `${'gpu-worker-0001.rack-07.hall-2.eu-central-1.'.repeat(6).slice(0, length - 8)}${tail.padEnd(8, '0')}`;
/** Names of `length` characters shifted by 0 to 13 characters, so that wherever a builder cuts, some cut lands on '.' and some on '-'. */
const shifted = (length = 253): string[] => Array.from({ length: 14 }, (_, i) => `${'x'.repeat(i)}${longName(`s${i}`, length)}`.slice(0, length - 1) + 'z');

function wellFormed(name: string, max = 253): void {
  assert.ok(name.length <= max, `${name.length} characters: ${name}`);
  assert.match(name, DNS_SUBDOMAIN);
}

/** What the apiserver does with a generateName: cut to 58, five random alphanumerics appended. */
const generated = (generateName: string): string => `${generateName.slice(0, GENERATE_NAME_MAX)}x7k2m`;

describe('generateNameOf', () => {
  test('the plain "<name>-" or "<name>-<suffix>-" where it fits', () => {
    assert.equal(generateNameOf('kubenode-agent-node-1'), 'kubenode-agent-node-1-');
    assert.equal(generateNameOf('node-1', 'restart-runtime'), 'node-1-restart-runtime-');
    const fits = 'n'.repeat(57 - '-clean-disk'.length);
    assert.equal(generateNameOf(fits, 'clean-disk'), `${fits}-clean-disk-`);
  });

  test('longer: 58 characters at most, the suffix kept, a valid name after the apiserver appends, distinct for names sharing a prefix', () => {
    const names = [...shifted(), ...shifted(60), longName('aaaa'), longName('bbbb')];
    for (const suffix of ['', 'restart-runtime', 'drain']) {
      const made = names.map((n) => generateNameOf(n, suffix));
      assert.ok(made.some((g, i) => (names[i] as string)[g.length - (suffix === '' ? 12 : suffix.length + 13)] === '.'), 'some cut landed on a dot');
      for (const [i, g] of made.entries()) {
        assert.ok(g.length <= GENERATE_NAME_MAX && g.endsWith('-'), g);
        wellFormed(generated(g));
        assert.ok(g.startsWith((names[i] as string).slice(0, 20)), g);
        if (suffix !== '') assert.ok(g.endsWith(`-${suffix}-`), g);
      }
      assert.equal(new Set(made).size, names.length, 'no two names alike');
    }
  });

  test('a suffix too long to leave the name room: both shortened together', () => {
    const g = generateNameOf(longName('a'), 'x'.repeat(50));
    assert.ok(g.length <= GENERATE_NAME_MAX, g);
    wellFormed(generated(g));
  });
});

describe('centralOperationName', () => {
  test('unchanged where the node name and the suffix fit', () => {
    assert.equal(centralOperationName('node-1', 0, '1796520452'), 'node-1-central-0-1796520452');
    assert.equal(centralOperationName('n'.repeat(200), 2, '1796520452'), `${'n'.repeat(200)}-central-2-1796520452`);
  });

  test('a long node name: at most 253 characters, valid wherever the cut lands, distinct for nodes sharing a prefix', () => {
    const names = [...shifted(), ...shifted(233), longName('aaaa'), longName('bbbb')];
    const made = names.map((n) => centralOperationName(n, 3, '1796520452'));
    for (const name of made) {
      wellFormed(name);
      assert.ok(name.endsWith('-central-3-1796520452'), name);
    }
    assert.equal(new Set(made).size, names.length);
  });
});

describe('agentLeaseName', () => {
  test('kubenode-agent-<node> where that fits: every node name up to 238 characters', () => {
    assert.equal(agentLeaseName('node-1'), 'kubenode-agent-node-1');
    const fits = longName('a', 238);
    assert.equal(agentLeaseName(fits), `kubenode-agent-${fits}`);
    assert.equal(agentLeaseName(fits).length, 253);
  });

  test('longer: at most 253 characters, a DNS subdomain, the node name recognisable, distinct for names sharing a prefix', () => {
    const names = [longName('aaaa'), longName('bbbb'), ...shifted()];
    for (const n of names) {
      wellFormed(agentLeaseName(n));
      assert.ok(agentLeaseName(n).startsWith(`kubenode-agent-${n.slice(0, 200)}`));
    }
    assert.equal(new Set(names.map(agentLeaseName)).size, names.length);
    assert.equal(agentLeaseName(longName('aaaa')), agentLeaseName(longName('aaaa')), 'the same name every time');
  });

  test('read back: by name where it fits, by holderIdentity where shortened; another node’s Lease of that name is not this one’s', () => {
    const lease = (node: string, holder?: string) => ({ metadata: { name: agentLeaseName(node) }, spec: holder === undefined ? {} : { holderIdentity: holder } });
    const long = longName('aaaa');
    assert.equal(agentLeaseNode(lease('node-1')), 'node-1', 'no holderIdentity: the name says');
    assert.equal(agentLeaseNode(lease('node-1', 'someone')), 'node-1');
    assert.equal(agentLeaseNode(lease(long, long)), long);
    assert.equal(agentLeaseNode({ metadata: { name: 'kubelet-lease' } }), undefined);
    // A node named exactly as another's shortened Lease name less the prefix: one Lease name for two nodes.
    const lookalike = agentLeaseName(long).slice('kubenode-agent-'.length);
    assert.equal(agentLeaseName(lookalike), agentLeaseName(long));
    const cache = new Map([[agentLeaseKey(long), lease(lookalike, lookalike)]]);
    assert.equal(agentLeaseOf(cache, long), undefined, 'held by the look-alike: not the long node’s');
    assert.equal(agentLeaseOf(cache, lookalike), cache.get(agentLeaseKey(long)));
    cache.set(agentLeaseKey(long), lease(long, long));
    assert.equal(agentLeaseOf(cache, long), cache.get(agentLeaseKey(long)));
  });
});

describe('Event names', () => {
  const at = Date.UTC(2026, 11, 6, 12, 0, 0, 123);
  test("the agent's: <node>.<stamp> where that fits, as client-go names them", () => {
    assert.equal(nodeEventName('node-1', at, 7), `node-1.${(BigInt(at) * 1_000_000n + 7n).toString(16)}`);
    const fits = longName('a', 253 - 17);
    assert.ok(nodeEventName(fits, at, 0).startsWith(`${fits}.`));
  });
  test("the controller's: <target>.<hash> where that fits", () => {
    assert.match(eventName({ name: 'web', uid: 'u1' }, 'rollout/1'), /^web\.[0-9a-f]{16}$/);
    const fits = longName('a', 236);
    assert.ok(eventName({ name: fits, uid: 'u1' }, 'k').startsWith(`${fits}.`));
  });
  test('long names: at most 253 characters, valid wherever the cut lands, distinct for names sharing a prefix', () => {
    const names = [...shifted(), ...shifted(240), longName('aaaa'), longName('bbbb')];
    const agents = names.map((n) => nodeEventName(n, at, 1));
    const controllers = names.map((n) => eventName({ name: n, uid: 'same-uid' }, 'same-key'));
    for (const [i, name] of [...agents, ...controllers].entries()) {
      wellFormed(name);
      assert.ok(name.startsWith((names[i % names.length] as string).slice(0, 200)), name);
    }
    assert.equal(new Set(agents).size, names.length);
    assert.equal(new Set(controllers).size, names.length);
  });
});

describe('approvalName', () => {
  test('<release>-<stage> where that fits', () => {
    assert.equal(approvalName('gpu-driver-535', 'production'), 'gpu-driver-535-production');
    const fits = longName('a', 253 - 1 - 'staging'.length);
    assert.equal(approvalName(fits, 'staging'), `${fits}-staging`);
  });
  test('long release names: at most 253 characters, valid wherever the cut lands, the stage kept, distinct for names sharing a prefix', () => {
    const names = [...shifted(), ...shifted(240), longName('aaaa'), longName('bbbb')];
    const stage = 'x'.repeat(63);
    const approvals = names.map((n) => approvalName(n, stage));
    for (const [i, name] of approvals.entries()) {
      wellFormed(name);
      assert.ok(name.endsWith(`-${stage}`) && name.startsWith((names[i] as string).slice(0, 150)), name);
    }
    assert.equal(new Set(approvals).size, names.length);
  });
});

describe('on a real apiserver: a 253-character node', () => {
  const NS = 'kubenode-system';
  // Both 253 characters with the same first 245: shortened Lease names that differ by the hash only.
  const ROLL = longName('roll');
  const DOWN = longName('down');
  let cluster: Cluster;
  let agents: SimulatedAgents;
  let controller: Controller;
  let client: KubeClient;
  const set = async () => (await must<{ status?: { phase?: string; deferredMachines?: string[]; updated?: number } }>(cluster, 'GET', `${MCS_PATH}/long-node-demo`)).status;

  before(async () => {
    ({ cluster, agents } = await rolloutCluster([]));
    await ensureNamespace(cluster, NS);
    await addMachine(cluster, ROLL, { pool: 'roll' });
    await addMachine(cluster, DOWN, { pool: 'down' });
    // The NodeRemedier selects by Node labels.
    const r = await cluster.request('PATCH', `/api/v1/nodes/${DOWN}`, { body: { metadata: { labels: { pool: 'down' } } }, headers: MERGE_PATCH });
    assert.equal(r.status, 200, r.body);
    client = createKubeClient(await loadKubeConfig({ kubeconfig: cluster.adminKubeconfig }), { timeoutMs: 5000 });
    controller = new Controller({ kubeconfig: cluster.adminKubeconfig, leaderElect: false, namespace: NS, listen: '127.0.0.1:0', remedySweepMs: 300, remedyRetryMs: 500 }, log);
    await controller.start();
  });
  after(async () => {
    await controller?.stop();
    client?.close();
    await agents?.stop();
    await cluster?.stop();
  });

  test("the join's CertificateSigningRequest for a 253-character node: created under a valid name that starts with kubenode-agent- and the node name", async () => {
    for (const node of [longName('csr'), ...shifted().slice(0, 7)]) {
      // Nobody approves it here: requestCertificate gives up after the timeout, naming the CSR.
      const err = await requestCertificate(client, node, { clock: systemClock, timeoutMs: 200, pollMs: 100 }).then(
        () => assert.fail('no one approves it'),
        (e: unknown) => e as Error,
      );
      const name = /CertificateSigningRequest (\S+) was not approved/.exec(err.message)?.[1];
      assert.ok(name !== undefined, err.message);
      wellFormed(name, 63);
      assert.ok(name.startsWith(`kubenode-agent-${node.slice(0, 20)}`), name);
    }
  });

  test("the controller's Event about a 253-character node: created under a valid name", async () => {
    const recorder = new EventRecorder(client, systemClock, log, 'object-names-test', () => true);
    const node = longName('event');
    recorder.record({ apiVersion: 'v1', kind: 'Node', name: node, uid: 'u-event' }, 'Warning', 'CentralRemedyExhausted', 'long node', 'exhausted/1');
    await recorder.flush();
    assert.equal(recorder.stats.created, 1, JSON.stringify(recorder.stats));
    const items = (await must<{ items: { metadata: { name: string }; involvedObject: { name: string } }[] }>(cluster, 'GET', '/api/v1/namespaces/default/events')).items.filter((e) => e.involvedObject.name === node);
    assert.deepEqual(items.map((e) => e.metadata.name), [eventName({ name: node, uid: 'u-event' }, 'exhausted/1')]);
    wellFormed(items[0]?.metadata.name ?? '');
  });

  test('a rollout reaches it while its Lease is fresh, defers it while stale, and goes on once renewed (the lease clock)', async () => {
    const template = (version: string) => ({ spec: { component: 'demo', version, source: { type: 'none' }, files: [{ path: '/etc/demo/demo.conf', content: 'x\n' }] } });
    await must(cluster, 'POST', MCS_PATH, { apiVersion: 'kubenode.io/v1alpha1', kind: 'MachineComponentSet', metadata: { name: 'long-node-demo' }, spec: { selector: { matchLabels: { pool: 'roll' } }, template: template('1.0.0'), rollout: { batches: ['100%'], bakeTime: '1s' } } });
    await until('the rollout Completed', async () => (await set())?.phase === 'Completed', 60_000);
    assert.equal((await set())?.updated, 1);

    await renewLease(cluster, ROLL, 1, Date.now() - 10_000);
    const r = await cluster.request('PATCH', `${MCS_PATH}/long-node-demo`, { body: { spec: { template: template('2.0.0') } }, headers: MERGE_PATCH });
    assert.equal(r.status, 200, r.body);
    await until('deferred: agent Lease stale', async () => ((await set())?.deferredMachines ?? []).includes(`${ROLL}: agent Lease stale`), 30_000);
    await renewLease(cluster, ROLL, 3600);
    await until('the rollout Completed again', async () => (await set())?.phase === 'Completed' && (await set())?.updated === 1, 60_000);
  });

  test('central remedies see it unreachable from its stale Lease and NotReady Node, confirm with a live read, and cordon it', async () => {
    await remedier(cluster, 'down', central([{ action: 'cordon', timeout: '1m' }]));
    await renewLease(cluster, DOWN, 1, Date.now() - 10_000);
    await setNodeReady(cluster, DOWN, 'False');
    await until('the cordon step Succeeded', async () => (await ops(cluster, DOWN)).some((o) => o.spec.action === 'cordon' && o.status?.phase === 'Succeeded'), 60_000);
    const [op] = await ops(cluster, DOWN);
    assert.ok(op !== undefined);
    wellFormed(op.metadata.name);
    assert.equal((await must<NodeObj>(cluster, 'GET', `/api/v1/nodes/${DOWN}`)).spec?.unschedulable, true);
    assert.notEqual((await must<NodeObj>(cluster, 'GET', `/api/v1/nodes/${ROLL}`)).spec?.unschedulable, true, 'the other long node, sharing the prefix, is left alone');
  });
});

// `kubenode-agent remedies`: the report over RemedyOperations and NodeRemediers as the apiserver
// returns them (shapes of src/api/), filtered by node and rule; then the built binary (npm run
// build first) and the kubectl plugin against a real apiserver.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it, test } from 'node:test';
import { parse, stringify } from 'yaml';
import { remediesReport, type OperationView, type RemediesSummary, type RemedierView } from '../../src/cli/remedies.ts';
import { startCluster, type Cluster } from '../harness/cluster.ts';
import { kubectl } from '../harness/kubectl.ts';
import { labelValueOf, NODE_LABEL } from '../../src/api/common.ts';
import { installCrds } from '../helpers/kube-objects.ts';
import { kubectlPluginDir, runAgent } from '../helpers/cli.ts';
import { must } from '../controller/helpers.ts';
import { MERGE_PATCH } from '../helpers/kube-api.ts';

const now = Date.parse('2026-12-02T12:00:00Z');
const ago = (min: number): string => new Date(now - min * 60_000).toISOString().replace(/\.\d+Z$/, 'Z');
const op = (name: string, node: string, extra: Partial<OperationView['spec']>, status: OperationView['status'], createdMinAgo: number): OperationView => ({
  metadata: { name, creationTimestamp: ago(createdMinAgo) },
  spec: { node, action: 'cordon', ...extra },
  ...(status === undefined ? {} : { status }),
});

const ops: OperationView[] = [
  op('a', 'n1', { remedier: 'workers', rule: 'central', actor: 'controller', action: 'power-cycle', step: 1 }, { phase: 'Verifying', message: 'power cycled through BMC 10.0.0.5' }, 3),
  op('b', 'n1', { remedier: 'workers', rule: 'central', actor: 'controller', action: 'cordon', step: 0 }, { phase: 'Succeeded', endTime: ago(4) }, 5),
  op('c', 'n2', { remedier: 'runtime', rule: 'runtime/containerd-down', action: 'restart-runtime' }, { phase: 'Failed', result: 'Error', endTime: ago(100) }, 120),
  op('d', 'n3', { rule: 'disk-full', action: 'clean-disk' }, { phase: 'Succeeded', endTime: ago(60 * 30) }, 60 * 30),
];
const remediers: RemedierView[] = [
  { metadata: { name: 'workers' }, spec: { central: {} }, status: { stormBreaker: { state: 'Closed' } } },
  { metadata: { name: 'runtime' }, spec: { stormBreaker: { maxShare: 0.3, window: '1h' } }, status: { stormBreaker: { state: 'Open', trippedAt: ago(30), reason: '4 of 10 selected nodes had operations within 1h' } } },
];

test('the whole fleet: tripped rules, rates per rule, current and recent operations', () => {
  const out = remediesReport(ops, remediers, now, { recentMs: 24 * 3_600_000 }).join('\n');
  assert.match(out, /TRIPPED RULES\n {2}runtime: storm breaker open since .*4 of 10 selected nodes/);
  assert.match(out, /kubectl patch noderemedier runtime --subresource=status/);
  assert.match(out, /workers\/central\s+2\s+2\s+0\s+1/);
  assert.match(out, /runtime\/containerd-down\s+0\s+1\s+1\s+1/);
  assert.doesNotMatch(out.split('RECENT')[0] as string, /agent\.yaml\/disk-full/, 'older than a day: not in the rates');
  const current = out.split('CURRENT')[1]?.split('RECENT')[0] ?? '';
  assert.match(current, /n1\s+workers\/central\s+power-cycle\s+controller\s+Verifying\s+3m\s+power cycled/);
  assert.doesNotMatch(current, /cordon/);
  const recent = out.split('RECENT')[1] ?? '';
  assert.match(recent, /n1\s+workers\/central\s+cordon/);
  assert.match(recent, /n2\s+runtime\/containerd-down\s+restart-runtime\s+agent\s+Failed/);
  assert.doesNotMatch(recent, /n3/, 'ended 30 h ago');
});

test('--node and --rule narrow every part', () => {
  const byNode = remediesReport(ops, remediers, now, { node: 'n2', recentMs: 24 * 3_600_000 }).join('\n');
  assert.doesNotMatch(byNode, /workers\/central/);
  assert.match(byNode, /runtime\/containerd-down/);
  const byRule = remediesReport(ops, remediers, now, { rule: 'workers', recentMs: 24 * 3_600_000 }).join('\n');
  assert.match(byRule, /TRIPPED RULES\n {2}none/);
  assert.doesNotMatch(byRule, /containerd-down/);
  const oneRule = remediesReport(ops, remediers, now, { rule: 'runtime/containerd-down', recentMs: 24 * 3_600_000 }).join('\n');
  assert.match(oneRule, /runtime: storm breaker open/);
  assert.match(remediesReport([], [], now, { recentMs: 3_600_000 }).join('\n'), /no operations in the last 24h[\s\S]*CURRENT\n {2}none[\s\S]*RECENT \(ended within 1h, newest first\)\n {2}none/);
});

// The built binary, as `kubenode-agent remedies` and as the kubectl plugin through the real
// kubectl, against a real apiserver holding operations as agents and the controller record them.
describe('kubenode-agent remedies and kubectl kubenode remedies on a real apiserver', () => {
  let cluster: Cluster;
  let pluginDir: string;
  let scratch: string;
  const long = `n-${'x'.repeat(68)}`;
  const stamp = (minAgo: number): string => new Date(Date.now() - minAgo * 60_000).toISOString().replace(/\.\d+Z$/, 'Z');
  const kk = (args: string[]) => kubectl(['kubenode', 'remedies', ...args], { env: { PATH: `${pluginDir}:${process.env.PATH ?? ''}`, KUBECONFIG: cluster.adminKubeconfig }, timeoutMs: 60_000 });
  const agent = (args: string[]) => runAgent(['remedies', '--kubeconfig', cluster.adminKubeconfig, ...args]);

  const record = async (name: string, node: string, spec: Record<string, unknown>, status: Record<string, unknown> | undefined): Promise<void> => {
    await must(cluster, 'POST', '/apis/kubenode.io/v1alpha1/remedyoperations', {
      apiVersion: 'kubenode.io/v1alpha1',
      kind: 'RemedyOperation',
      metadata: { name, labels: { [NODE_LABEL]: labelValueOf(node) } },
      spec: { node, problem: { conditionType: 'AgentUnreachable', reason: 'NodeStatusUnknown', message: '' }, risk: 'disruptive', step: 0, dryRun: false, ...spec },
    });
    if (status === undefined) return;
    const r = await cluster.request('PATCH', `/apis/kubenode.io/v1alpha1/remedyoperations/${name}/status`, { body: { status }, headers: MERGE_PATCH });
    assert.equal(r.status, 200, r.body);
  };

  before(async () => {
    cluster = await startCluster();
    await installCrds(cluster);
    pluginDir = kubectlPluginDir();
    scratch = mkdtempSync(join(tmpdir(), 'kubenode-remedies-cli-'));
    await must(cluster, 'POST', '/apis/kubenode.io/v1alpha1/noderemediers', { apiVersion: 'kubenode.io/v1alpha1', kind: 'NodeRemedier', metadata: { name: 'workers' }, spec: { nodeSelector: { matchLabels: { pool: 'workers' } }, central: { steps: [{ action: 'cordon' }, { action: 'power-cycle' }] } } });
    await must(cluster, 'POST', '/apis/kubenode.io/v1alpha1/noderemediers', {
      apiVersion: 'kubenode.io/v1alpha1',
      kind: 'NodeRemedier',
      metadata: { name: 'runtime' },
      spec: { rules: [{ name: 'containerd-down', condition: { type: 'ContainerRuntimeUnhealthy' }, steps: [{ action: 'restart-runtime' }] }], stormBreaker: { maxShare: 0.3, window: '1h' } },
    });
    const tripped = await cluster.request('PATCH', '/apis/kubenode.io/v1alpha1/noderemediers/runtime/status', { body: { status: { stormBreaker: { state: 'Open', trippedAt: stamp(5), reason: '4 of 10 selected nodes had operations within 1h' } } }, headers: MERGE_PATCH });
    assert.equal(tripped.status, 200, tripped.body);
    const gate = { gate: 'policy', allowed: true, decidedAt: stamp(30) };
    await record('n1-cordon', 'n1', { action: 'cordon', actor: 'controller', remedier: 'workers', rule: 'central' }, { phase: 'Succeeded', gate, startTime: stamp(30), endTime: stamp(30), message: 'cordon: cordoned' });
    await record('n1-cycle', 'n1', { action: 'power-cycle', actor: 'controller', remedier: 'workers', rule: 'central', step: 1 }, { phase: 'Verifying', gate, startTime: stamp(2), message: 'power cycled through BMC 127.0.0.1:9623' });
    await record('n2-runtime', 'n2', { action: 'restart-runtime', remedier: 'runtime', rule: 'runtime/containerd-down', problem: { conditionType: 'ContainerRuntimeUnhealthy', reason: 'ContainerdDown', message: '' } }, { phase: 'Failed', result: 'Error', endTime: stamp(1), message: 'containerd did not start' });
    await record('long-kubelet', long, { action: 'restart-kubelet', rule: 'kubelet-down' }, undefined);
  });
  after(async () => {
    await cluster?.stop();
    for (const d of [pluginDir, scratch]) if (d !== undefined) rmSync(d, { recursive: true, force: true });
  });

  it('prints the tables from the built binary', async () => {
    const r = await agent([]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^TRIPPED RULES\n {2}runtime: storm breaker open since \S+: 4 of 10 selected nodes/);
    assert.match(r.stdout, /^ {2}workers\/central\s+2\s+2\s+0\s+1$/m);
    assert.match(r.stdout, /^ {2}runtime\/containerd-down\s+1\s+1\s+1\s+1$/m);
    const current = r.stdout.split('\nCURRENT\n')[1]?.split('\nRECENT')[0] ?? '';
    assert.match(current, /n1\s+workers\/central\s+power-cycle\s+controller\s+Verifying\s+\S+\s+power cycled through BMC/);
    assert.match(current, new RegExp(`${long}\\s+agent\\.yaml/kubelet-down\\s+restart-kubelet\\s+agent\\s+Pending`));
    const recent = r.stdout.split('\nRECENT')[1] ?? '';
    assert.match(recent, /n2\s+runtime\/containerd-down\s+restart-runtime\s+agent\s+Failed/);
    assert.match(recent, /n1\s+workers\/central\s+cordon\s+controller\s+Succeeded/);
    assert.equal(r.stderr, '');
  });

  it('as kubectl kubenode remedies: --json, and --node and --rule narrowing it', async () => {
    const r = await kk(['--json']);
    assert.equal(r.code, 0, r.stderr);
    const all = JSON.parse(r.stdout) as RemediesSummary;
    assert.deepEqual(all.tripped.map((t) => [t.name, t.reason]), [['runtime', '4 of 10 selected nodes had operations within 1h']]);
    assert.deepEqual(all.rates.find((x) => x.rule === 'workers/central'), { rule: 'workers/central', lastHour: 2, last24h: 2, failed24h: 0, nodes24h: 1 });
    assert.deepEqual(all.current.map((o) => o.name).sort(), ['long-kubelet', 'n1-cycle']);
    assert.deepEqual(all.recent.map((o) => [o.name, o.phase, o.result]), [['n2-runtime', 'Failed', 'Error'], ['n1-cordon', 'Succeeded', undefined]]);
    assert.equal(all.recentMs, 24 * 3_600_000);

    const byNode = JSON.parse((await kk(['--json', '--node', 'n1'])).stdout) as RemediesSummary;
    assert.deepEqual([...byNode.current, ...byNode.recent].map((o) => o.name).sort(), ['n1-cordon', 'n1-cycle']);
    // A node name past a label value's 63 characters is matched by the command, not the apiserver.
    const byLong = JSON.parse((await kk(['--json', '--node', long])).stdout) as RemediesSummary;
    assert.deepEqual(byLong.current.map((o) => o.name), ['long-kubelet']);
    const byRule = await kk(['--rule', 'runtime/containerd-down']);
    assert.equal(byRule.code, 0, byRule.stderr);
    assert.match(byRule.stdout, /runtime: storm breaker open/);
    assert.doesNotMatch(byRule.stdout, /workers\/central|n1/);
    const since = JSON.parse((await kk(['--json', '--since', '10m'])).stdout) as RemediesSummary;
    assert.deepEqual(since.recent.map((o) => o.name), ['n2-runtime'], 'the cordon ended 30 min ago');

    const help = await kk(['--help']);
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /Usage: kubectl kubenode remedies \[options\]/);
    assert.match(help.stdout, /--json/);
  });

  it('bad input: exit 64 with the flag named, nothing on stdout; an apiserver it cannot reach: exit 1', async () => {
    const bad: [string[], RegExp][] = [
      [['--since', '0s'], /--since/],
      [['--since', 'soon'], /--since/],
      [['--since', '10000000h'], /--since/],
      [['--rule', ''], /--rule: expected a NodeRemedier name/],
      [['--node', 'Not_A_Node'], /--node: "Not_A_Node" is not a node name/],
      [['--output', 'yaml'], /unknown option '--output'/],
      [['--kubeconfig', join(scratch, 'missing')], /missing.*cannot load kubeconfig|cannot load kubeconfig.*missing/],
    ];
    for (const [args, why] of bad) {
      for (const [how, r] of [['plugin', await kk(args)], ['binary', await runAgent(['remedies', ...args], { env: { KUBECONFIG: cluster.adminKubeconfig } })]] as const) {
        assert.equal(r.code, 64, `${how} ${args.join(' ')}: ${r.stdout}${r.stderr}`);
        assert.match(r.stderr, why, `${how} ${args.join(' ')}`);
        assert.equal(r.stdout, '', `${how} ${args.join(' ')}: nothing half printed`);
      }
    }
    const kc = parse(readFileSync(cluster.adminKubeconfig, 'utf8')) as { clusters: { cluster: { server: string } }[] };
    for (const c of kc.clusters) c.cluster.server = 'https://127.0.0.1:1';
    writeFileSync(join(scratch, 'down'), stringify(kc));
    const down = await runAgent(['remedies', '--kubeconfig', join(scratch, 'down')]);
    assert.equal(down.code, 1, down.stdout + down.stderr);
    assert.match(down.stderr, /^kubenode-agent: .*127\.0\.0\.1:1/);
    assert.equal(down.stdout, '');
  });
});

// The release pipeline roles of deploy/controller/pipeline-rbac.yaml on a real apiserver, bound
// the way the README's "Release pipelines" section says, asked with the real
// `kubectl auth can-i --as=…`: each may do what the README says and nothing beside it. Then the
// member role does its job for real: an apply that creates the set and a watch, as that identity.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startCluster, type Cluster } from '../harness/cluster.ts';
import { MCS_PATH } from '../helpers/kube-api.ts';
import { installCrds } from '../helpers/kube-objects.ts';
import { MEMBER_USER, memberKubeconfig, pipelineRbac } from './helpers.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CONTROLLER = 'system:serviceaccount:kubenode-system:kubenode-controller';

describe('release pipeline RBAC', () => {
  let cluster: Cluster;
  /** `kubectl auth can-i VERB RESOURCE… --as=USER [--as-group=G]`: yes or no. */
  const can = async (as: string[], args: string[]): Promise<boolean> => {
    const r = await cluster.kubectl(['auth', 'can-i', ...as, ...args]);
    assert.ok(r.code === 0 || r.code === 1, `${args.join(' ')}: ${r.stderr}`);
    return r.stdout.trim() === 'yes';
  };
  const check = async (who: string, as: string[], allowed: string[][], denied: string[][]): Promise<void> => {
    for (const a of allowed) assert.equal(await can(as, a), true, `${who} may ${a.join(' ')}`);
    for (const d of denied) assert.equal(await can(as, d), false, `${who} may not ${d.join(' ')}`);
  };

  before(async () => {
    cluster = await startCluster({ agents: 1 });
    await installCrds(cluster);
    const applied = await cluster.kubectl(['apply', '-f', 'deploy/controller/namespace.yaml', '-f', 'deploy/controller/serviceaccount.yaml', '-f', 'deploy/controller/pipeline-rbac.yaml'], { cwd: ROOT });
    assert.equal(applied.code, 0, applied.stderr);
    // The README's commands, as an operator types them.
    for (const cmd of [
      ['create', 'clusterrolebinding', 'kubenode:pipeline-controller', '--clusterrole=kubenode:pipeline-controller', '--serviceaccount=kubenode-system:kubenode-controller'],
      ['-n', 'kubenode-system', 'create', 'rolebinding', 'kubenode:pipeline-members', '--role=kubenode:pipeline-members', '--serviceaccount=kubenode-system:kubenode-controller'],
      ['create', 'clusterrolebinding', 'release-approvers', '--clusterrole=kubenode:release-approver', '--group=sre-leads'],
      ['create', 'clusterrolebinding', 'release-operators', '--clusterrole=kubenode:release-operator', '--group=release-managers'],
    ]) {
      const r = await cluster.kubectl(cmd);
      assert.equal(r.code, 0, `${cmd.join(' ')}: ${r.stderr}`);
    }
  });
  after(async () => cluster?.stop());

  test('the pipeline controller: reads releases, pipelines and approvals, writes release status and unapproved approvals, reads member Secrets in kubenode-system only', async () => {
    await check(
      'the pipeline controller',
      [`--as=${CONTROLLER}`],
      [
        ['watch', 'releases.kubenode.io'],
        ['list', 'releasepipelines.kubenode.io'],
        ['watch', 'releaseapprovals.kubenode.io'],
        ['update', 'releases.kubenode.io', '--subresource=status'],
        ['patch', 'releasepipelines.kubenode.io', '--subresource=status'],
        ['create', 'releaseapprovals.kubenode.io'],
        ['update', 'releases.kubenode.io', '--subresource=finalizers'],
        ['list', 'secrets', '-n', 'kubenode-system'],
        ['watch', 'secrets', '-n', 'kubenode-system'],
      ],
      [
        // It reports on releases, never changes what people asked for, and never approves.
        ['patch', 'releases.kubenode.io'],
        ['update', 'releases.kubenode.io'],
        ['create', 'releases.kubenode.io'],
        ['delete', 'releases.kubenode.io'],
        ['patch', 'releasepipelines.kubenode.io'],
        ['patch', 'releaseapprovals.kubenode.io'],
        ['update', 'releaseapprovals.kubenode.io'],
        ['delete', 'releaseapprovals.kubenode.io'],
        ['list', 'secrets', '-n', 'default'],
        ['list', 'secrets', '--all-namespaces'],
        ['create', 'secrets', '-n', 'kubenode-system'],
        ['update', 'secrets', '-n', 'kubenode-system'],
      ],
    );
  });

  test('an approver: reads releases and pipelines, approves (patch or create an approval); cannot edit, pause, stop or create a release, nor edit a pipeline', async () => {
    await check(
      'an approver',
      ['--as=alice', '--as-group=sre-leads'],
      [
        ['get', 'releases.kubenode.io'],
        ['list', 'releasepipelines.kubenode.io'],
        ['patch', 'releaseapprovals.kubenode.io'],
        ['create', 'releaseapprovals.kubenode.io'],
      ],
      [
        ['patch', 'releases.kubenode.io'],
        ['update', 'releases.kubenode.io'],
        ['create', 'releases.kubenode.io'],
        ['delete', 'releases.kubenode.io'],
        ['update', 'releases.kubenode.io', '--subresource=status'],
        ['patch', 'releasepipelines.kubenode.io'],
        ['create', 'releasepipelines.kubenode.io'],
        ['delete', 'releaseapprovals.kubenode.io'],
        ['get', 'secrets', '-n', 'kubenode-system'],
      ],
    );
  });

  test('an operator: starts releases and pauses, resumes or stops them (patch); cannot approve, edit a pipeline, write status or delete a release', async () => {
    await check(
      'an operator',
      ['--as=bob', '--as-group=release-managers'],
      [
        ['create', 'releases.kubenode.io'],
        ['patch', 'releases.kubenode.io'],
        ['watch', 'releases.kubenode.io'],
        ['get', 'releaseapprovals.kubenode.io'],
        ['get', 'releasepipelines.kubenode.io'],
      ],
      [
        ['patch', 'releaseapprovals.kubenode.io'],
        ['create', 'releaseapprovals.kubenode.io'],
        ['patch', 'releasepipelines.kubenode.io'],
        ['update', 'releases.kubenode.io', '--subresource=status'],
        ['patch', 'releases.kubenode.io', '--subresource=status'],
        ['delete', 'releases.kubenode.io'],
        ['get', 'secrets', '-n', 'kubenode-system'],
      ],
    );
    // Nobody with none of the roles may do any of it.
    await check('someone else', ['--as=mallory'], [], [['get', 'releases.kubenode.io'], ['patch', 'releaseapprovals.kubenode.io'], ['list', 'secrets', '-n', 'kubenode-system']]);
  });

  test("the member clusters' identity: writes and watches MachineComponentSets, and nothing else", async () => {
    // memberKubeconfig binds kubenode:pipeline-member (from the same file) to kubenode-system/kubenode-pipeline.
    const kubeconfig = JSON.parse(await memberKubeconfig(cluster)) as { users: { user: { token: string } }[] };
    assert.deepEqual(
      (pipelineRbac().get('ClusterRole/kubenode:pipeline-member')?.rules as { resources: string[]; verbs: string[] }[]).map((r) => [r.resources, r.verbs]),
      [[['machinecomponentsets'], ['get', 'list', 'watch', 'create', 'patch']]],
    );
    await check(
      'the member identity',
      [`--as=${MEMBER_USER}`],
      [
        ['get', 'machinecomponentsets.kubenode.io'],
        ['watch', 'machinecomponentsets.kubenode.io'],
        ['patch', 'machinecomponentsets.kubenode.io'],
        ['create', 'machinecomponentsets.kubenode.io'],
      ],
      [
        ['update', 'machinecomponentsets.kubenode.io'],
        ['delete', 'machinecomponentsets.kubenode.io'],
        ['patch', 'machinecomponentsets.kubenode.io', '--subresource=status'],
        ['get', 'machinecomponents.kubenode.io'],
        ['patch', 'machines.kubenode.io'],
        ['get', 'nodes'],
        ['get', 'secrets', '-n', 'kubenode-system'],
        ['create', 'events'],
        ['get', 'releases.kubenode.io'],
      ],
    );
    // The job itself under that identity: a server-side apply that creates the set, then a watch of it.
    const token = kubeconfig.users[0]?.user.token as string;
    const set = { apiVersion: 'kubenode.io/v1alpha1', kind: 'MachineComponentSet', metadata: { name: 'demo' }, spec: { selector: {}, template: { spec: { component: 'demo', version: '1.0.0', source: { type: 'binary', url: 'https://example.com/demo', sha256: 'a'.repeat(64) } } }, paused: true } };
    const applied = await cluster.request('PATCH', `${MCS_PATH}/demo?fieldManager=kubenode-pipeline&force=true`, { token, body: JSON.stringify(set), headers: { 'content-type': 'application/apply-patch+yaml' } });
    assert.equal(applied.status, 201, applied.body);
    const watched = await cluster.request('GET', `${MCS_PATH}?watch=true&fieldSelector=metadata.name%3Ddemo&timeoutSeconds=1`, { token });
    assert.equal(watched.status, 200, watched.body);
    assert.match(watched.body, /"type":"ADDED"/);
    const deleted = await cluster.request('DELETE', `${MCS_PATH}/demo`, { token });
    assert.equal(deleted.status, 403, deleted.body);
  });
});

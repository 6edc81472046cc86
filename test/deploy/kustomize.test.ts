// deploy/: `kubectl apply -k deploy/` with the real kubectl against the real apiserver installs
// the CRDs, the agents' RBAC and admission policy and the controller; what it made is checked
// with `kubectl get`, and the controller's ServiceAccount gets exactly the access it needs.
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { startCluster } from '../harness/index.ts';
import type { Cluster } from '../harness/index.ts';
import { filesUnder } from '../helpers/files.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DEPLOY = join(ROOT, 'deploy');
const SA = 'system:serviceaccount:kubenode-system:kubenode-controller';

/** Every file a kustomization under dir reaches, following directory resources. */
function reached(dir: string): Set<string> {
  const out = new Set<string>();
  const k = parse(readFileSync(join(dir, 'kustomization.yaml'), 'utf8')) as { resources?: string[] };
  out.add(join(dir, 'kustomization.yaml'));
  for (const r of k.resources ?? []) {
    const p = join(dir, r);
    if (statSync(p).isDirectory()) for (const f of reached(p)) out.add(f);
    else out.add(p);
  }
  return out;
}

describe('deploy/ with kubectl apply -k', () => {
  let cluster: Cluster;
  let firstApply: { code: number | null; stdout: string; stderr: string };

  before(async () => {
    cluster = await startCluster({ agents: 1 });
    firstApply = await cluster.kubectl(['apply', '-k', 'deploy/'], { cwd: ROOT, timeoutMs: 120_000 });
  });
  after(async () => {
    await cluster?.stop();
  });

  test('every manifest under deploy/ is part of deploy/kustomization.yaml', () => {
    const inKustomization = reached(DEPLOY);
    const missing = filesUnder(DEPLOY, '.yaml').filter((f) => !inKustomization.has(f));
    assert.deepEqual(missing.map((f) => relative(ROOT, f)), []);
  });

  test('applies cleanly, server-side validated', () => {
    assert.equal(firstApply.code, 0, firstApply.stderr);
    assert.equal(firstApply.stderr.trim(), '');
    for (const line of ['namespace/kubenode-system created', 'deployment.apps/kubenode-controller created', 'customresourcedefinition.apiextensions.k8s.io/machinecomponentsets.kubenode.io created']) {
      assert.ok(firstApply.stdout.includes(line), `${line} missing from:\n${firstApply.stdout}`);
    }
  });

  test('applying again changes nothing', async () => {
    const versions = async (): Promise<string[]> => {
      const got = await cluster.kubectl(['get', '-k', 'deploy/', '-o', 'json'], { cwd: ROOT });
      assert.equal(got.code, 0, got.stderr);
      const items = (JSON.parse(got.stdout) as { items: { kind: string; metadata: { name: string; resourceVersion: string } }[] }).items;
      return items.map((i) => `${i.kind}/${i.metadata.name}@${i.metadata.resourceVersion}`);
    };
    const before = await versions();
    const again = await cluster.kubectl(['apply', '-k', 'deploy/'], { cwd: ROOT });
    assert.equal(again.code, 0, again.stderr);
    // kubectl's words are not the judge: it says "configured" for a PodDisruptionBudget even
    // when its patch changes nothing. Nothing stored may change.
    assert.deepEqual(await versions(), before);
  });

  test('kubectl get shows every object, and the CRDs serve their kinds', async () => {
    const got = await cluster.kubectl(['get', '-k', 'deploy/', '-o', 'json'], { cwd: ROOT });
    assert.equal(got.code, 0, got.stderr);
    const items = (JSON.parse(got.stdout) as { items: { kind: string; metadata: { name: string } }[] }).items;
    const rendered = await cluster.kubectl(['kustomize', 'deploy/'], { cwd: ROOT });
    const expected = rendered.stdout.split(/^---$/m).filter((d) => d.trim() !== '').length;
    assert.equal(items.length, expected);
    const crds = await cluster.kubectl(['wait', '--for=condition=Established', '--timeout=60s', '-f', 'deploy/crds/'], { cwd: ROOT, timeoutMs: 90_000 });
    assert.equal(crds.code, 0, crds.stderr);
    const mcs = await cluster.kubectl(['get', 'machinecomponentsets.kubenode.io']);
    assert.equal(mcs.code, 0, mcs.stderr);
    assert.match(mcs.stderr, /No resources found/);
  });

  test('the Deployment: 2 replicas, probes on /healthz and /readyz, requests and limits, restricted security', async () => {
    const got = await cluster.kubectl(['get', 'deployment', 'kubenode-controller', '-n', 'kubenode-system', '-o', 'json']);
    assert.equal(got.code, 0, got.stderr);
    type Probe = { httpGet: { path: string; port: string } };
    const d = JSON.parse(got.stdout) as {
      spec: {
        replicas: number;
        template: {
          spec: {
            serviceAccountName: string;
            containers: { image: string; args: string[]; livenessProbe: Probe; readinessProbe: Probe; resources: { requests: Record<string, string>; limits: Record<string, string> } }[];
          };
        };
      };
    };
    assert.equal(d.spec.replicas, 2);
    const spec = d.spec.template.spec;
    assert.equal(spec.serviceAccountName, 'kubenode-controller');
    const [c] = spec.containers;
    assert.ok(c);
    assert.equal(c.livenessProbe.httpGet.path, '/healthz');
    assert.equal(c.readinessProbe.httpGet.path, '/readyz');
    assert.ok(c.resources.requests.cpu && c.resources.requests.memory && c.resources.limits.memory);
    assert.deepEqual(c.args.slice(0, 3), ['controller', '--in-cluster', '--leader-elect=true']);
    // The image tag follows the release.
    const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
    assert.equal(c.image, `kubenode-agent:${version}`);
    // The namespace enforces the restricted Pod Security level, so a pod of this template is admitted there.
    const pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'kubenode-controller-probe', namespace: 'kubenode-system' },
      spec: d.spec.template.spec,
    };
    const dry = await cluster.kubectl(['create', '--dry-run=server', '-f', '-'], { input: JSON.stringify(pod) });
    assert.equal(dry.code, 0, dry.stderr);
    assert.equal(dry.stderr.includes('violate'), false, dry.stderr);
  });

  test("the controller's ServiceAccount may do its job and nothing more", async () => {
    const can = async (args: string[]): Promise<boolean> => {
      const r = await cluster.kubectl(['auth', 'can-i', `--as=${SA}`, ...args]);
      assert.ok(r.code === 0 || r.code === 1, r.stderr);
      return r.stdout.trim() === 'yes';
    };
    for (const allowed of [
      ['watch', 'machinecomponentsets.kubenode.io'],
      ['patch', 'machinecomponentsets.kubenode.io', '--subresource=status'],
      ['create', 'machinecomponents.kubenode.io'],
      ['list', 'machines.kubenode.io'],
      ['create', 'controllerrevisions.apps', '-n', 'kubenode-system'],
      ['update', 'leases.coordination.k8s.io', '-n', 'kubenode-system'],
      ['list', 'leases.coordination.k8s.io', '-n', 'kube-node-lease'],
      ['create', 'events'],
      ['watch', 'nodes'],
      ['patch', 'nodes'],
      ['patch', 'machines.kubenode.io', '--subresource=status'],
      // A retired Machine: its finalizer, its Node drained (evictions honour PDBs) and deleted when spec.deleteNode asks.
      ['patch', 'machines.kubenode.io'],
      ['create', 'pods', '--subresource=eviction'],
      ['delete', 'nodes'],
      // Auto-import: Machines for the Nodes the import policy selects.
      ['create', 'machines.kubenode.io'],
      // Central remedies: operations, storm breakers, BMC credentials, the replacement mark.
      ['create', 'remedyoperations.kubenode.io'],
      ['patch', 'remedyoperations.kubenode.io', '--subresource=status'],
      // Retention: finished operations past --remedy-operation-retention.
      ['delete', 'remedyoperations.kubenode.io'],
      ['update', 'noderemediers.kubenode.io', '--subresource=status'],
      ['update', 'riskpolicies.kubenode.io', '--subresource=status'],
      ['get', 'secrets', '-n', 'kubenode-system'],
    ]) {
      assert.equal(await can(allowed), true, `may ${allowed.join(' ')}`);
    }
    for (const denied of [
      ['get', 'secrets', '-n', 'default'],
      ['list', 'secrets', '-n', 'kubenode-system'],
      ['patch', 'machinecomponentsets.kubenode.io'],
      ['delete', 'pods'],
      ['update', 'nodes'],
      ['update', 'noderemediers.kubenode.io'],
      ['deletecollection', 'remedyoperations.kubenode.io'],
      ['delete', 'machines.kubenode.io'],
      ['update', 'leases.coordination.k8s.io', '-n', 'kube-node-lease'],
      ['create', 'controllerrevisions.apps', '-n', 'default'],
    ]) {
      assert.equal(await can(denied), false, `may not ${denied.join(' ')}`);
    }
  });
});

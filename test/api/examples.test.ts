// What an operator types, against a real apiserver with the generated CRDs: every example under
// examples/ applies with kubectl, `kubectl explain` shows the descriptions written in src/api/,
// and the short names and the kubenode category reach exactly our kinds.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { parseAllDocuments } from 'yaml';
import { GROUP, kinds, VERSION, type KindDefinition } from '../../src/api/index.ts';
import { Machine } from '../../src/api/machine.ts';
import { MachineComponent } from '../../src/api/machine-component.ts';
import { MachineComponentSet } from '../../src/api/machine-component-set.ts';
import { NodeRemedier } from '../../src/api/node-remedier.ts';
import { RemedyOperation } from '../../src/api/remedy-operation.ts';
import { ReleaseApproval } from '../../src/api/release-approval.ts';
import { ReleasePipeline } from '../../src/api/release-pipeline.ts';
import { Release } from '../../src/api/release.ts';
import { RiskPolicy } from '../../src/api/risk-policy.ts';
import { startCluster, type Cluster } from '../harness/cluster.ts';
import { kubectl as runKubectl } from '../harness/kubectl.ts';
import { filesUnder } from '../helpers/files.ts';
import { installCrds } from '../helpers/kube-objects.ts';
import { fieldsWithoutDescription } from './schema-walk.ts';

const EXAMPLES = fileURLToPath(new URL('../../examples/', import.meta.url));

const schemas: Record<string, TSchema> = { Machine, MachineComponent, MachineComponentSet, NodeRemedier, RemedyOperation, RiskPolicy, ReleasePipeline, Release, ReleaseApproval };
const defs = Object.values(kinds) as KindDefinition[];

interface Example {
  file: string;
  obj: { apiVersion: string; kind: string; metadata: { name: string } };
}

function examples(): Example[] {
  return filesUnder(EXAMPLES, '.yaml').flatMap((file) =>
    parseAllDocuments(readFileSync(file, 'utf8'))
      .map((d) => d.toJS() as Example['obj'] | null)
      .filter((obj) => obj !== null)
      .map((obj) => ({ file: file.slice(EXAMPLES.length), obj })),
  );
}

/** Short names of other projects' kinds that an operator may have in the same cluster. */
const TAKEN_ELSEWHERE: Record<string, string> = {
  ma: 'Cluster API Machine',
  mc: 'OpenShift MachineConfig',
  mcp: 'OpenShift MachineConfigPool',
};

test('examples/ holds at least one object of every kind, each valid for the local schema', () => {
  const all = examples();
  for (const def of defs) assert.ok(all.some((e) => e.obj.kind === def.kind), `no example of ${def.kind} under examples/`);
  for (const { file, obj } of all) {
    assert.equal(obj.apiVersion, `${GROUP}/${VERSION}`, file);
    const schema = schemas[obj.kind];
    assert.ok(schema, `${file}: ${obj.kind} is not a kubenode.io kind`);
    const errors = [...Value.Errors(schema, Value.Default(schema, structuredClone(obj)))].map((e) => `${e.path}: ${e.message}`);
    assert.deepEqual(errors, [], `${file} ${obj.kind}/${obj.metadata.name}`);
  }
});

test('short names: kn-prefixed, one set per kind, none taken by another known project', () => {
  const seen = new Map<string, string>();
  for (const def of defs) {
    assert.ok(def.shortNames.length > 0, `${def.kind} has no short name`);
    assert.deepEqual(def.categories, ['kubenode'], def.kind);
    for (const name of [...def.shortNames]) {
      assert.match(name, /^kn[a-z]+$/, `${def.kind}: ${name}`);
      assert.equal(seen.get(name), undefined, `${name} is used by ${seen.get(name)} and ${def.kind}`);
      assert.equal(TAKEN_ELSEWHERE[name], undefined, `${def.kind}: ${name} is ${TAKEN_ELSEWHERE[name]}'s`);
      seen.set(name, def.kind);
    }
  }
});

describe('with kubectl against a real apiserver', () => {
  let cluster: Cluster | undefined;
  const kubectl = async (...args: string[]): Promise<string> => {
    assert.ok(cluster);
    const r = await runKubectl(args, { kubeconfig: cluster.adminKubeconfig });
    assert.equal(r.code, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };

  before(async () => {
    cluster = await startCluster({ agents: 1 });
    await installCrds(cluster);
  });
  after(async () => {
    await cluster?.stop();
  });

  test('kubectl apply takes every example, and what the apiserver stored is valid locally', async () => {
    assert.ok(cluster);
    const out = await kubectl('apply', '--recursive', '-f', EXAMPLES);
    for (const { file, obj } of examples()) {
      const def = defs.find((d) => d.kind === obj.kind) as KindDefinition;
      assert.match(out, new RegExp(`^${def.singular}\\.${GROUP.replace('.', '\\.')}/${obj.metadata.name} created$`, 'm'), `${file}: ${out}`);
      const res = await cluster.request('GET', `/apis/${GROUP}/${VERSION}/${def.plural}/${obj.metadata.name}`);
      assert.equal(res.status, 200, res.body);
      const schema = schemas[obj.kind] as TSchema;
      const stored = JSON.parse(res.body) as unknown;
      assert.ok(Value.Check(schema, Value.Default(schema, stored)), `${file}: stored object fails the local schema: ${res.body}`);
    }
  });

  test('the published OpenAPI v3 (what kubectl explain reads) has a description on every field', async () => {
    assert.ok(cluster);
    const res = await cluster.request('GET', `/openapi/v3/apis/${GROUP}/${VERSION}`);
    assert.equal(res.status, 200, res.body);
    const doc = JSON.parse(res.body) as { components: { schemas: Record<string, Record<string, unknown>> } };
    for (const def of defs) {
      const schema = doc.components.schemas[`io.kubenode.${VERSION}.${def.kind}`];
      assert.ok(schema, `${def.kind} not published; have ${Object.keys(doc.components.schemas).join(', ')}`);
      assert.deepEqual(fieldsWithoutDescription(schema), [], def.kind);
    }
  });

  test('kubectl explain shows the source descriptions, addressed by plural.group', async () => {
    const cases = [
      { path: 'machines.kubenode.io.spec.taints', text: 'Taints the agent keeps on the Node' },
      { path: 'machinecomponents.kubenode.io.spec.healthCheck.retries', text: 'Attempts after the first failure' },
      { path: 'machinecomponentsets.kubenode.io.spec.rollout.bakeTime', text: 'How long a batch must stay healthy' },
      { path: 'noderemediers.kubenode.io.spec.rules.steps.cooldown', text: 'Wait after this step' },
      { path: 'remedyoperations.kubenode.io.status.gate.gate', text: 'The gate that refused' },
      { path: 'riskpolicies.kubenode.io.spec.circuitBreaker.cordonedShare', text: 'Trip when this share' },
    ];
    for (const c of cases) {
      const out = await kubectl('explain', c.path);
      assert.match(out, /^GROUP:\s+kubenode\.io$/m, c.path);
      assert.ok(out.replace(/\s+/g, ' ').includes(c.text), `${c.path}:\n${out}`);
    }
  });

  test('short names and the kubenode category reach our kinds and nothing else', async () => {
    assert.ok(cluster);
    const names = (await kubectl('get', defs.map((d) => d.shortNames[0]).join(','), '-o', 'name')).trim().split('\n').sort();
    const expected = examples()
      .map(({ obj }) => `${(defs.find((d) => d.kind === obj.kind) as KindDefinition).singular}.${GROUP}/${obj.metadata.name}`)
      .sort();
    assert.deepEqual(names, expected);
    assert.deepEqual((await kubectl('get', 'kubenode', '-o', 'name')).trim().split('\n').sort(), expected);
    for (const def of defs) {
      const full = (await kubectl('get', `${def.plural}.${GROUP}`, '-o', 'name')).trim().split('\n').sort();
      assert.deepEqual(full, expected.filter((n) => n.startsWith(`${def.singular}.`)), def.plural);
    }
    // No built-in resource of this apiserver answers to one of our short names.
    const builtIn = new Map<string, string>();
    const groups = JSON.parse((await cluster.request('GET', '/apis')).body) as { groups: { name: string; preferredVersion: { groupVersion: string } }[] };
    for (const gv of ['v1', ...groups.groups.filter((g) => g.name !== GROUP).map((g) => g.preferredVersion.groupVersion)]) {
      const list = JSON.parse((await cluster.request('GET', gv === 'v1' ? '/api/v1' : `/apis/${gv}`)).body) as { resources: { name: string; shortNames?: string[] }[] };
      for (const r of list.resources) for (const s of [r.name, ...(r.shortNames ?? [])]) builtIn.set(s, `${gv} ${r.name}`);
    }
    assert.ok(builtIn.has('po') && builtIn.has('deploy'), 'discovery lists the built-in short names');
    for (const def of defs) for (const s of def.shortNames) assert.equal(builtIn.get(s), undefined, `${def.kind}: ${s}`);
  });
});

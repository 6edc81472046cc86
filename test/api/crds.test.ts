// The CRDs in deploy/crds/ are generated from src/api/: they must match a fresh render, every
// kind file must be in the registry, and a real apiserver must take them and enforce them.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import type { TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { Type } from '@sinclair/typebox';
import { renderCrds, SchemaConversionError, toStructural } from '../../src/api/crd.ts';
import { kinds } from '../../src/api/index.ts';
import { Machine } from '../../src/api/machine.ts';
import { MachineComponent } from '../../src/api/machine-component.ts';
import { MachineComponentSet } from '../../src/api/machine-component-set.ts';
import { NodeRemedier } from '../../src/api/node-remedier.ts';
import { RemedyOperation } from '../../src/api/remedy-operation.ts';
import { RiskPolicy } from '../../src/api/risk-policy.ts';
import { startCluster, type Cluster } from '../harness/cluster.ts';
import { clone, goodObjects, installCrds } from '../helpers/kube-objects.ts';

const CRD_DIR = new URL('../../deploy/crds/', import.meta.url);

describe('generated CRDs', () => {
  test('deploy/crds/ matches what src/api/ generates (run npm run gen:crds)', () => {
    const expected = renderCrds();
    const onDisk = readdirSync(CRD_DIR).filter((f) => f.endsWith('.yaml'));
    assert.deepEqual(onDisk.sort(), [...expected.keys()].sort(), 'CRD files differ from the kinds in src/api/index.ts');
    for (const [name, content] of expected) {
      assert.equal(readFileSync(new URL(name, CRD_DIR), 'utf8'), content, `deploy/crds/${name} is stale: run npm run gen:crds`);
    }
  });

  test('toStructural refuses what a structural schema cannot say, naming the path', () => {
    const cases = [
      { name: 'union', schema: Type.Object({ a: Type.Union([Type.String(), Type.Integer()]) }), error: /\$\.a: anyOf is only structural as x-kubernetes-int-or-string/ },
      { name: 'literal', schema: Type.Object({ a: Type.Literal('x') }), error: /\$\.a: keyword const has no structural form/ },
      { name: 'unknown format', schema: Type.Object({ a: Type.String({ format: 'regex' }) }), error: /\$\.a: format regex/ },
      { name: 'typed record keys', schema: Type.Object({ a: Type.Record(Type.TemplateLiteral('x-${string}'), Type.String()) }), error: /\$\.a: patternProperties/ },
      { name: 'untyped node', schema: Type.Object({ a: Type.Unknown() }), error: /\$\.a: every node of a structural schema needs a type/ },
    ];
    for (const c of cases) assert.throws(() => toStructural(c.schema), (err: unknown) => err instanceof SchemaConversionError && c.error.test(err.message), c.name);
  });

  test('toStructural drops additionalProperties:false, maps records and open objects, spells out nested defaults', () => {
    const schema = Type.Object(
      {
        m: Type.Record(Type.String(), Type.Integer()),
        open: Type.Object({}, { additionalProperties: true }),
        d: Type.Object({ n: Type.Integer({ default: 3 }), inner: Type.Object({ s: Type.String({ default: 'x' }) }, { default: {} }) }, { default: {} }),
      },
      { additionalProperties: false, $id: 'X' },
    );
    assert.deepEqual(toStructural(schema), {
      type: 'object',
      required: ['m', 'open', 'd'],
      properties: {
        m: { type: 'object', additionalProperties: { type: 'integer' } },
        open: { type: 'object', properties: {}, 'x-kubernetes-preserve-unknown-fields': true },
        d: {
          type: 'object',
          default: { n: 3, inner: { s: 'x' } },
          required: ['n', 'inner'],
          properties: {
            n: { type: 'integer', default: 3 },
            inner: { type: 'object', default: { s: 'x' }, required: ['s'], properties: { s: { type: 'string', default: 'x' } } },
          },
        },
      },
    });
  });

  test('every kind file in src/api/ is in the registry', () => {
    const files = readdirSync(new URL('../../src/api/', import.meta.url))
      .filter((f) => f.endsWith('.ts') && !['index.ts', 'common.ts', 'crd.ts'].includes(f))
      .map((f) => f.replace(/\.ts$/, ''))
      .sort();
    const fromKinds = Object.values(kinds)
      .map((k) => k.kind.replace(/([a-z])([A-Z])/g, '$1-$2').toLowerCase())
      .sort();
    assert.deepEqual(files, fromKinds);
  });
});

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

interface BadCase {
  name: string;
  plural: string;
  /** Breaks a copy of the good object. */
  mutate: (o: Obj) => void;
  /** A field path the apiserver's error must name. */
  field: string;
  /** Written through /status after creating the good object. */
  status?: Obj;
  /** An update of the created object rather than a create. */
  update?: boolean;
  /** The same mistake is also caught by the TypeBox schema locally (not CEL-only rules). */
  local: boolean;
}

const badCases: BadCase[] = [
  { name: 'Machine: taint effect not in the enum', plural: 'machines', mutate: (o) => (o.spec.taints[0].effect = 'NoRun'), field: 'spec.taints[0].effect', local: true },
  { name: 'Machine: component name not DNS-1123', plural: 'machines', mutate: (o) => (o.spec.components = ['Kube_let']), field: 'spec.components[0]', local: true },
  { name: 'Machine: label key not a qualified name', plural: 'machines', mutate: (o) => (o.spec.labels = { 'bad key!': 'x' }), field: 'spec.labels', local: false },
  {
    name: 'Machine status: unknown architecture',
    plural: 'machines',
    mutate: () => {},
    status: { phase: 'Ready', node: { kernelVersion: '6.8.0', osImage: 'Ubuntu 24.04', architecture: 'x86', cpus: 8, memoryBytes: 1 } },
    field: 'status.node.architecture',
    local: true,
  },
  {
    name: 'Machine status: lifecycle not one of the phases',
    plural: 'machines',
    mutate: () => {},
    status: { agentVersion: '0.1.0', lifecycle: 'Imported' },
    field: 'status.lifecycle',
    local: true,
  },
  { name: 'MachineComponent: sha256 not 64 hex digits', plural: 'machinecomponents', mutate: (o) => (o.spec.source.sha256 = 'ABC'), field: 'spec.source.sha256', local: true },
  { name: 'MachineComponent: url without sha256', plural: 'machinecomponents', mutate: (o) => delete o.spec.source.sha256, field: 'spec.source', local: false },
  { name: 'MachineComponent: version not a version', plural: 'machinecomponents', mutate: (o) => (o.spec.version = 'latest!'), field: 'spec.version', local: true },
  { name: 'MachineComponent: source type not in the enum', plural: 'machinecomponents', mutate: (o) => (o.spec.source.type = 'docker'), field: 'spec.source.type', local: true },
  { name: 'MachineComponent: component missing', plural: 'machinecomponents', mutate: (o) => delete o.spec.component, field: 'spec.component', local: true },
  { name: 'MachineComponentSet: batches shrink', plural: 'machinecomponentsets', mutate: (o) => (o.spec.rollout = { batches: [5, 1] }), field: 'spec.rollout.batches', local: false },
  { name: 'MachineComponentSet: batch of zero', plural: 'machinecomponentsets', mutate: (o) => (o.spec.rollout = { batches: [0, 5] }), field: 'spec.rollout.batches[0]', local: true },
  { name: 'MachineComponentSet: maxUnavailable 150%', plural: 'machinecomponentsets', mutate: (o) => (o.spec.rollout = { maxUnavailable: '150%' }), field: 'spec.rollout.maxUnavailable', local: true },
  { name: 'MachineComponentSet: maxUnavailable negative', plural: 'machinecomponentsets', mutate: (o) => (o.spec.rollout = { maxUnavailable: -1 }), field: 'spec.rollout.maxUnavailable', local: true },
  { name: 'MachineComponentSet: template without a sha256', plural: 'machinecomponentsets', mutate: (o) => delete o.spec.template.spec.source.sha256, field: 'spec.template.spec.source', local: false },
  {
    name: 'MachineComponentSet: In without values',
    plural: 'machinecomponentsets',
    mutate: (o) => (o.spec.selector = { matchExpressions: [{ key: 'a', operator: 'In' }] }),
    field: 'spec.selector.matchExpressions[0]',
    local: false,
  },
  { name: 'NodeRemedier: action not in the enum', plural: 'noderemediers', mutate: (o) => (o.spec.rules[0].steps[1].action = 'format-disk'), field: 'spec.rules[0].steps[1].action', local: true },
  { name: 'NodeRemedier: restart-unit without params.unit', plural: 'noderemediers', mutate: (o) => delete o.spec.rules[0].steps[0].params, field: 'spec.rules[0].steps[0]', local: false },
  { name: 'NodeRemedier: empty escalation ladder', plural: 'noderemediers', mutate: (o) => (o.spec.rules[0].steps = []), field: 'spec.rules[0].steps', local: true },
  { name: 'NodeRemedier: maxAttempts 0', plural: 'noderemediers', mutate: (o) => (o.spec.rules[0].steps[0].maxAttempts = 0), field: 'spec.rules[0].steps[0].maxAttempts', local: true },
  { name: 'NodeRemedier: duration in words', plural: 'noderemediers', mutate: (o) => (o.spec.rules[0].minDuration = '5 minutes'), field: 'spec.rules[0].minDuration', local: true },
  { name: 'NodeRemedier: cooldown 720h, past what a timer holds', plural: 'noderemediers', mutate: (o) => (o.spec.rules[0].steps[0].cooldown = '720h'), field: 'spec.rules[0].steps[0].cooldown', local: true },
  { name: 'NodeRemedier: verifyAfter 0s', plural: 'noderemediers', mutate: (o) => (o.spec.rules[0].steps[0].verifyAfter = '0s'), field: 'spec.rules[0].steps[0].verifyAfter', local: true },
  { name: 'MachineComponentSet: bakeTime 720h', plural: 'machinecomponentsets', mutate: (o) => (o.spec.rollout = { bakeTime: '720h' }), field: 'spec.rollout.bakeTime', local: true },
  { name: 'RiskPolicy: permitTTL 0s', plural: 'riskpolicies', mutate: (o) => (o.spec.permitTTL = '0s'), field: 'spec.permitTTL', local: true },
  { name: 'RemedyOperation: node missing', plural: 'remedyoperations', mutate: (o) => delete o.spec.node, field: 'spec.node', local: true },
  { name: 'RemedyOperation: risk not in the enum', plural: 'remedyoperations', mutate: (o) => (o.spec.risk = 'yolo'), field: 'spec.risk', local: true },
  { name: 'RemedyOperation: spec changed after creation', plural: 'remedyoperations', mutate: (o) => (o.spec.action = 'reboot'), update: true, field: 'spec', local: false },
  {
    name: 'RemedyOperation status: Running without an allowing gate decision',
    plural: 'remedyoperations',
    mutate: () => {},
    status: { phase: 'Running', gate: { allowed: false, gate: 'policy', reasons: ['maxInFlight'], decidedAt: '2025-01-01T00:00:00Z' } },
    field: 'status',
    local: false,
  },
  { name: 'RiskPolicy: maxInFlight 0', plural: 'riskpolicies', mutate: (o) => (o.spec.maxInFlight = 0), field: 'spec.maxInFlight', local: true },
  { name: 'RiskPolicy: maxInFlight negative', plural: 'riskpolicies', mutate: (o) => (o.spec.maxInFlight = -3), field: 'spec.maxInFlight', local: true },
  { name: 'RiskPolicy: minHealthyShare above 1', plural: 'riskpolicies', mutate: (o) => (o.spec.minHealthyShare = 1.5), field: 'spec.minHealthyShare', local: true },
  { name: 'RiskPolicy: maxPerWindow without a window', plural: 'riskpolicies', mutate: (o) => delete o.spec.maxPerWindow.window, field: 'spec.maxPerWindow.window', local: true },
  { name: 'RiskPolicy: cron with three fields', plural: 'riskpolicies', mutate: (o) => (o.spec.blackoutWindows[0].cron = '0 8 *'), field: 'spec.blackoutWindows[0].cron', local: true },
  {
    name: 'RiskPolicy status: permit expiring before it was taken',
    plural: 'riskpolicies',
    mutate: () => {},
    status: { permits: [{ holder: 'node-1', operation: 'op-1', acquiredAt: '2025-01-01T10:00:00Z', expiresAt: '2025-01-01T09:00:00Z' }] },
    field: 'status.permits[0]',
    local: false,
  },
  {
    name: 'RiskPolicy status: breaker state not in the enum',
    plural: 'riskpolicies',
    mutate: () => {},
    status: { circuitBreaker: { state: 'HalfOpen' } },
    field: 'status.circuitBreaker.state',
    local: true,
  },
];

const fullSchemas: Record<string, TSchema> = {
  machines: Machine,
  machinecomponents: MachineComponent,
  machinecomponentsets: MachineComponentSet,
  noderemediers: NodeRemedier,
  remedyoperations: RemedyOperation,
  riskpolicies: RiskPolicy,
};

/** What the agent's local validation says: defaults applied as the apiserver would, then checked. */
function locallyValid(plural: string, obj: Obj): boolean {
  const schema = fullSchemas[plural];
  assert.ok(schema, plural);
  return Value.Check(schema, Value.Default(schema, clone(obj)));
}

interface StatusBody {
  code: number;
  reason: string;
  message: string;
  details?: { causes?: { field?: string; message: string }[] };
}

describe('CRDs on a real apiserver', () => {
  let cluster: Cluster | undefined;
  let seq = 0;
  before(async () => {
    cluster = await startCluster({ agents: 1 });
    await installCrds(cluster);
  });
  after(async () => {
    await cluster?.stop();
  });

  const url = (plural: string, name?: string, sub?: string) => `/apis/kubenode.io/v1alpha1/${plural}${name ? `/${name}` : ''}${sub ? `/${sub}` : ''}`;

  /** A good object under a fresh name, so cases do not collide. */
  function fresh(plural: string): Obj {
    const obj = clone(goodObjects()[plural]) as Obj;
    obj.metadata.name = `${obj.metadata.name}-${++seq}`;
    return obj;
  }

  test('every CRD is Established with a status subresource and printer columns', async () => {
    assert.ok(cluster);
    for (const def of Object.values(kinds)) {
      const res = await cluster.request('GET', `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${def.plural}.kubenode.io`);
      assert.equal(res.status, 200, res.body);
      const crd = JSON.parse(res.body) as Obj;
      assert.ok(crd.status.conditions.some((c: Obj) => c.type === 'Established' && c.status === 'True'), def.kind);
      assert.deepEqual(crd.spec.versions[0].subresources, { status: {} });
      assert.equal(crd.spec.scope, 'Cluster');
      assert.deepEqual(crd.spec.names.shortNames, def.shortNames);
    }
  });

  test('good objects are accepted, defaulted, and agree with the local schema', async () => {
    assert.ok(cluster);
    for (const [plural, obj] of Object.entries(goodObjects())) {
      assert.ok(locallyValid(plural, obj), `${plural} good object fails the local schema`);
      const res = await cluster.request('POST', url(plural), { body: obj });
      assert.equal(res.status, 201, `${plural}: ${res.body}`);
      const stored = JSON.parse(res.body) as Obj;
      // What the apiserver stored (defaults applied, unknown fields pruned) must be valid locally too.
      assert.ok(locallyValid(plural, stored), `${plural} as stored fails the local schema: ${res.body}`);
    }
    const set = JSON.parse((await cluster.request('GET', url('machinecomponentsets', 'node-exporter'))).body) as Obj;
    assert.deepEqual(set.spec.rollout.batches, [1, 5, 10, 50, 100]);
    assert.equal(set.spec.rollout.maxUnavailable, 1);
    const policy = JSON.parse((await cluster.request('GET', url('riskpolicies', 'fleet'))).body) as Obj;
    assert.equal(policy.spec.permitTTL, '15m');
    assert.equal(policy.spec.blackoutWindows[0].timeZone, 'Europe/Berlin');
  });

  test('a good status is accepted through the status subresource', async () => {
    assert.ok(cluster);
    const machine = fresh('machines');
    const created = JSON.parse((await cluster.request('POST', url('machines'), { body: machine })).body) as Obj;
    created.status = {
      phase: 'Ready',
      agentVersion: '0.1.0',
      node: { kernelVersion: '6.8.0-45-generic', osImage: 'Ubuntu 24.04.1 LTS', architecture: 'arm64', cpus: 64, memoryBytes: 274877906944 },
      gpus: [{ vendor: 'NVIDIA', model: 'H100 80GB HBM3', busId: '0000:3b:00.0', memoryBytes: 85899345920 }],
      conditions: [{ type: 'Ready', status: 'True', reason: 'AgentReady', lastTransitionTime: '2025-01-01T00:00:00Z' }],
      lastHeartbeatTime: '2025-01-01T00:00:10Z',
    };
    const res = await cluster.request('PUT', url('machines', machine.metadata.name, 'status'), { body: created });
    assert.equal(res.status, 200, res.body);
    assert.ok(locallyValid('machines', JSON.parse(res.body) as Obj), res.body);
  });

  test('printer columns: kubectl get shows phase, kernel, arch and agent version of a Machine', async () => {
    assert.ok(cluster);
    const res = await cluster.request('GET', url('machines'), { headers: { accept: 'application/json;as=Table;v=v1;g=meta.k8s.io' } });
    assert.equal(res.status, 200, res.body);
    const table = JSON.parse(res.body) as { columnDefinitions: { name: string }[]; rows: { cells: unknown[] }[] };
    const names = table.columnDefinitions.map((c) => c.name);
    assert.deepEqual(names.slice(0, 5), ['Name', 'Phase', 'Kernel', 'Arch', 'Agent']);
    const row = table.rows.find((r) => r.cells[1] === 'Ready');
    assert.ok(row, JSON.stringify(table.rows));
    assert.deepEqual(row.cells.slice(1, 5), ['Ready', '6.8.0-45-generic', 'arm64', '0.1.0']);
    assert.equal(row.cells[names.indexOf('GPUs')], 'H100 80GB HBM3');
  });

  for (const c of badCases) {
    test(`refused: ${c.name}`, async () => {
      assert.ok(cluster);
      const obj = fresh(c.plural);
      let res;
      if (c.status !== undefined || c.update === true) {
        const created = await cluster.request('POST', url(c.plural), { body: obj });
        assert.equal(created.status, 201, created.body);
        const current = JSON.parse(created.body) as Obj;
        if (c.status !== undefined) {
          current.status = c.status;
          res = await cluster.request('PUT', url(c.plural, obj.metadata.name, 'status'), { body: current });
        } else {
          c.mutate(current);
          res = await cluster.request('PUT', url(c.plural, obj.metadata.name), { body: current });
        }
      } else {
        c.mutate(obj);
        res = await cluster.request('POST', url(c.plural), { body: obj });
      }
      assert.equal(res.status, 422, `${c.name}: expected 422 Invalid, got ${res.status} ${res.body}`);
      const body = JSON.parse(res.body) as StatusBody;
      assert.equal(body.reason, 'Invalid');
      const fields = (body.details?.causes ?? []).map((x) => x.field ?? '');
      assert.ok(fields.includes(c.field), `${c.name}: expected an error on ${c.field}, got ${JSON.stringify(body.details?.causes)}`);

      const candidate = c.status !== undefined ? { ...obj, status: c.status } : obj;
      if (c.update === true) c.mutate(candidate);
      if (c.local) assert.equal(locallyValid(c.plural, candidate), false, `${c.name}: the local schema accepts what the apiserver refuses`);
    });
  }
});

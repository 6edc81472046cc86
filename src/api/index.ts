// Every kubenode.io/v1alpha1 kind in one place: what scripts/gen-crds.ts turns into deploy/crds/,
// what the RBAC and admission manifests name, and what clients need to build URLs.
import type { TSchema } from '@sinclair/typebox';
import { GROUP, VERSION } from './common.ts';
import { MachineSpec, MachineStatus } from './machine.ts';
import { MachineComponentSpec, MachineComponentStatus } from './machine-component.ts';
import { MachineComponentSetSpec, MachineComponentSetStatus } from './machine-component-set.ts';
import { NodeRemedierSpec, NodeRemedierStatus } from './node-remedier.ts';
import { RemedyOperationSpec, RemedyOperationStatus } from './remedy-operation.ts';
import { RiskPolicySpec, RiskPolicyStatus } from './risk-policy.ts';
import { ReleaseApprovalSpec, ReleaseApprovalStatus } from './release-approval.ts';
import { ReleasePipelineSpec, ReleasePipelineStatus } from './release-pipeline.ts';
import { ReleaseSpec, ReleaseStatus } from './release.ts';

export { GROUP, VERSION } from './common.ts';
export const API_GROUP_VERSION = `${GROUP}/${VERSION}`;

export interface PrinterColumn {
  name: string;
  type: 'string' | 'integer' | 'number' | 'boolean' | 'date';
  jsonPath: string;
  description?: string;
  /** 0 in the default view, 1 and up only with -o wide. */
  priority?: number;
  format?: string;
}

export interface KindDefinition {
  kind: string;
  plural: string;
  singular: string;
  /**
   * `kn` + the kind's initials: Machine and MachineComponent share their kind names with Cluster
   * API and OpenShift, and OpenShift already has `mc` (MachineConfig), so no plain initials.
   */
  shortNames: readonly string[];
  scope: 'Cluster';
  categories: readonly string[];
  spec: TSchema;
  status: TSchema;
  printerColumns: readonly PrinterColumn[];
  /** Rules on the whole object (name rules); spec and status rules live in their schemas. */
  validations?: readonly { rule: string; message: string }[];
}

const age: PrinterColumn = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' };
/** `kubectl get kubenode` lists every kind. */
const CATEGORIES = ['kubenode'] as const;

/** What differs from kind to kind; the rest of a KindDefinition follows from it in defineKinds. */
interface KindRow {
  shortName: string;
  /** When lower-case kind + `s` is not the English plural. */
  plural?: string;
  spec: TSchema;
  status: TSchema;
  /** The printer columns before Age, which every kind ends with. */
  columns: readonly PrinterColumn[];
}

/** Every kind is cluster-scoped, in the kubenode category, singular = lower-case kind. */
function defineKinds<K extends string>(rows: Record<K, KindRow>): Record<K, KindDefinition> {
  const out = {} as Record<K, KindDefinition>;
  for (const kind of Object.keys(rows) as K[]) {
    const row = rows[kind];
    out[kind] = {
      kind,
      plural: row.plural ?? `${kind.toLowerCase()}s`,
      singular: kind.toLowerCase(),
      shortNames: [row.shortName],
      scope: 'Cluster',
      categories: CATEGORIES,
      spec: row.spec,
      status: row.status,
      printerColumns: [...row.columns, age],
    };
  }
  return out;
}

export const kinds = defineKinds({
  Machine: {
    shortName: 'knm',
    spec: MachineSpec,
    status: MachineStatus,
    columns: [
      { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
      { name: 'Kernel', type: 'string', jsonPath: '.status.node.kernelVersion' },
      { name: 'Arch', type: 'string', jsonPath: '.status.node.architecture' },
      { name: 'Agent', type: 'string', jsonPath: '.status.agentVersion' },
      { name: 'Lifecycle', type: 'string', jsonPath: '.status.lifecycle' },
      { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
      { name: 'OS', type: 'string', jsonPath: '.status.node.osImage', priority: 1 },
      { name: 'CPUs', type: 'integer', jsonPath: '.status.node.cpus', priority: 1 },
      { name: 'GPUs', type: 'string', jsonPath: '.status.gpus[*].model', priority: 1 },
      { name: 'Heartbeat', type: 'date', jsonPath: '.status.lastHeartbeatTime', priority: 1 },
    ],
  },
  MachineComponent: {
    shortName: 'knmc',
    spec: MachineComponentSpec,
    status: MachineComponentStatus,
    columns: [
      { name: 'Machine', type: 'string', jsonPath: '.metadata.labels.kubenode\\.io/machine' },
      { name: 'Component', type: 'string', jsonPath: '.spec.component' },
      { name: 'Desired', type: 'string', jsonPath: '.spec.version' },
      { name: 'Installed', type: 'string', jsonPath: '.status.installedVersion' },
      { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
      { name: 'Source', type: 'string', jsonPath: '.spec.source.type', priority: 1 },
      { name: 'Error', type: 'string', jsonPath: '.status.lastError', priority: 1 },
    ],
  },
  MachineComponentSet: {
    shortName: 'knmcs',
    spec: MachineComponentSetSpec,
    status: MachineComponentSetStatus,
    columns: [
      { name: 'Component', type: 'string', jsonPath: '.spec.template.spec.component' },
      { name: 'Version', type: 'string', jsonPath: '.spec.template.spec.version' },
      { name: 'Revision', type: 'string', jsonPath: '.status.updateRevision' },
      { name: 'Updated', type: 'integer', jsonPath: '.status.updated' },
      { name: 'Ready', type: 'integer', jsonPath: '.status.ready' },
      { name: 'Matched', type: 'integer', jsonPath: '.status.matched' },
      { name: 'Batch', type: 'integer', jsonPath: '.status.currentBatch' },
      { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
      { name: 'Failed', type: 'integer', jsonPath: '.status.failed', priority: 1 },
      { name: 'Reason', type: 'string', jsonPath: '.status.pausedReason', priority: 1 },
      { name: 'Paused', type: 'boolean', jsonPath: '.spec.paused', priority: 1 },
    ],
  },
  NodeRemedier: {
    shortName: 'knnr',
    spec: NodeRemedierSpec,
    status: NodeRemedierStatus,
    columns: [
      { name: 'Rules', type: 'string', jsonPath: '.spec.rules[*].name' },
      { name: 'Nodes', type: 'integer', jsonPath: '.status.matchedNodes' },
      { name: 'Active', type: 'integer', jsonPath: '.status.activeOperations' },
      { name: 'Succeeded', type: 'integer', jsonPath: '.status.succeeded' },
      { name: 'Failed', type: 'integer', jsonPath: '.status.failed' },
      { name: 'Breaker', type: 'string', jsonPath: '.status.stormBreaker.state' },
      { name: 'Paused', type: 'boolean', jsonPath: '.spec.paused' },
      { name: 'DryRun', type: 'boolean', jsonPath: '.spec.dryRun', priority: 1 },
    ],
  },
  RemedyOperation: {
    shortName: 'knro',
    spec: RemedyOperationSpec,
    status: RemedyOperationStatus,
    columns: [
      { name: 'Node', type: 'string', jsonPath: '.spec.node' },
      { name: 'Reason', type: 'string', jsonPath: '.spec.problem.reason' },
      { name: 'Action', type: 'string', jsonPath: '.spec.action' },
      { name: 'Risk', type: 'string', jsonPath: '.spec.risk' },
      { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
      { name: 'Allowed', type: 'boolean', jsonPath: '.status.gate.allowed' },
      { name: 'Result', type: 'string', jsonPath: '.status.result' },
      { name: 'Gate', type: 'string', jsonPath: '.status.gate.gate', priority: 1 },
      { name: 'Attempts', type: 'integer', jsonPath: '.status.attempts', priority: 1 },
    ],
  },
  RiskPolicy: {
    shortName: 'knrp',
    plural: 'riskpolicies',
    spec: RiskPolicySpec,
    status: RiskPolicyStatus,
    columns: [
      { name: 'MaxInFlight', type: 'integer', jsonPath: '.spec.maxInFlight' },
      { name: 'Holders', type: 'string', jsonPath: '.status.permits[*].holder', description: 'Nodes with permit entries, held or still counting for maxPerWindow' },
      { name: 'Breaker', type: 'string', jsonPath: '.status.circuitBreaker.state' },
      { name: 'Paused', type: 'boolean', jsonPath: '.spec.paused' },
      { name: 'MinHealthy', type: 'number', jsonPath: '.spec.minHealthyShare', priority: 1 },
    ],
  },
  ReleasePipeline: {
    shortName: 'knpl',
    spec: ReleasePipelineSpec,
    status: ReleasePipelineStatus,
    columns: [
      { name: 'Stages', type: 'string', jsonPath: '.spec.stages[*].name' },
    ],
  },
  Release: {
    shortName: 'knrel',
    spec: ReleaseSpec,
    status: ReleaseStatus,
    columns: [
      { name: 'Pipeline', type: 'string', jsonPath: '.spec.pipeline' },
      { name: 'Set', type: 'string', jsonPath: '.spec.componentSet' },
      { name: 'Version', type: 'string', jsonPath: '.spec.template.spec.version' },
      { name: 'Stage', type: 'string', jsonPath: '.status.currentStage' },
      { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
      { name: 'State', type: 'string', jsonPath: '.spec.state', priority: 1 },
      { name: 'Message', type: 'string', jsonPath: '.status.message', priority: 1 },
    ],
  },
  ReleaseApproval: {
    shortName: 'knra',
    spec: ReleaseApprovalSpec,
    status: ReleaseApprovalStatus,
    columns: [
      { name: 'Release', type: 'string', jsonPath: '.spec.release' },
      { name: 'Stage', type: 'string', jsonPath: '.spec.stage' },
      { name: 'Approved', type: 'boolean', jsonPath: '.spec.approved' },
      { name: 'By', type: 'string', jsonPath: '.spec.approvedBy' },
    ],
  },
});

export type KindName = keyof typeof kinds;

// MachineComponentSet (kubenode.io/v1alpha1): one component for every Machine its selector
// matches, rolled out in growing batches with a health check after each and a pause on failure.
import { Kind, Type, TypeRegistry, type Static } from '@sinclair/typebox';
import { Conditions, Duration, KubeObject, LabelSelector, QUALIFIED_NAME_PATTERN, StringEnum, StringMap, Time, VERSION_PATTERN } from './common.ts';
import { MachineComponentSpec } from './machine-component.ts';

export const KIND = 'MachineComponentSet';

export const DEFAULT_BATCHES = [1, 5, 10, 50, 100];

/** An absolute number of machines or a percentage of the matched machines, like a Deployment's maxUnavailable. */
TypeRegistry.Set('IntOrPercent', (_schema, value) => (Number.isInteger(value) && (value as number) >= 0) || (typeof value === 'string' && /^(100|[1-9]?[0-9])%$/.test(value)));

export const IntOrPercent = (description: string, defaultValue: number | string) =>
  Type.Unsafe<number | string>({
    [Kind]: 'IntOrPercent',
    'x-kubernetes-int-or-string': true,
    anyOf: [{ type: 'integer' }, { type: 'string' }],
    default: defaultValue,
    description,
    'x-kubernetes-validations': [
      { rule: "type(self) == int ? self >= 0 : self.matches('^(100|[1-9]?[0-9])%$')", message: 'must be a non-negative integer or a percentage 0%..100%' },
    ],
  });

/** One batch: a machine count, or a percentage 1%..100% of the matched machines. */
TypeRegistry.Set('BatchSize', (_schema, value) => (Number.isInteger(value) && (value as number) >= 1 && (value as number) <= 100000) || (typeof value === 'string' && /^(100|[1-9][0-9]?)%$/.test(value)));

export const BatchSize = Type.Unsafe<number | string>({
  [Kind]: 'BatchSize',
  'x-kubernetes-int-or-string': true,
  anyOf: [{ type: 'integer' }, { type: 'string' }],
  // Bounds the CEL cost estimate: the longest valid string is "100%".
  maxLength: 4,
  'x-kubernetes-validations': [
    { rule: "type(self) == int ? self >= 1 && self <= 100000 : self.matches('^(100|[1-9][0-9]?)%$')", message: 'a batch is a count 1..100000 or a percentage 1%..100%' },
  ],
});

export const FailurePolicies = ['Pause', 'Rollback'] as const;
export const ConditionOperators = ['<', '<=', '>', '>=', '==', '!='] as const;
export const WebhookPhases = ['PreBatch', 'Observation'] as const;

export const NodeConditionGate = Type.Object(
  {
    type: Type.String({ minLength: 1, maxLength: 316, pattern: QUALIFIED_NAME_PATTERN, description: 'Node condition type, e.g. Ready, KernelDeadlock' }),
    badStatus: StringEnum(['True', 'False', 'Unknown', 'NotTrue'] as const, { description: 'The status that means a problem; NotTrue is False or Unknown (or the condition missing)' }),
  },
  { additionalProperties: false },
);

export const DEFAULT_NODE_CONDITIONS = [
  { type: 'Ready', badStatus: 'NotTrue' },
  { type: 'KernelDeadlock', badStatus: 'True' },
  { type: 'ReadonlyFilesystem', badStatus: 'True' },
  { type: 'FrequentKubeletRestart', badStatus: 'True' },
  { type: 'FrequentContainerdRestart', badStatus: 'True' },
  { type: 'ContainerRuntimeUnhealthy', badStatus: 'True' },
];

export const PrometheusGate = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 63, pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', description: 'Name shown in status and Events' }),
    address: Type.String({ maxLength: 2048, pattern: '^https?://[^\\s/?#@]+(/[^\\s?#]*)?$', description: 'Base URL of the Prometheus HTTP API, e.g. http://prometheus:9090' }),
    query: Type.String({
      minLength: 1,
      maxLength: 8192,
      description: 'PromQL instant query; {{nodes}} becomes a regex alternation of the updated machines (for =~), {{set}} the set name, {{batch}} the batch index',
    }),
    successCondition: Type.Object(
      {
        operator: StringEnum(ConditionOperators, { description: 'Comparison applied to every sample of the result' }),
        value: Type.Number({ description: 'Right-hand side of the comparison' }),
      },
      { additionalProperties: false, description: 'A measurement succeeds when every sample satisfies it; an empty result is an error (inconclusive)' },
    ),
    interval: Duration({ default: '30s', description: 'Time between measurements while the batch is verified and observed' }),
    count: Type.Integer({ minimum: 0, maximum: 1000, default: 0, description: 'Successful measurements the batch needs before it may succeed (0: none beyond the observation window)' }),
    failureLimit: Type.Integer({ minimum: 0, maximum: 1000, default: 0, description: 'Failed measurements tolerated; one more fails the batch' }),
    consecutiveErrorLimit: Type.Integer({ minimum: 0, maximum: 1000, default: 4, description: 'Consecutive errors (unreachable, bad answer, empty result) tolerated; one more pauses the rollout with GateError' }),
    timeout: Duration({ default: '10s', description: 'Deadline of one query' }),
  },
  { additionalProperties: false },
);

export type PrometheusGate = Static<typeof PrometheusGate>;

export const WebhookGate = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 63, pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', description: 'Name shown in status and Events' }),
    phase: StringEnum(WebhookPhases, { description: 'PreBatch: asked before a batch starts (the Kube Defender check); Observation: asked while the batch is verified and observed' }),
    url: Type.String({ maxLength: 2048, pattern: '^https://[^\\s/?#@]+(/[^\\s]*)?$', description: 'HTTPS endpoint; it receives a JSON POST and allows with 2xx, denies with 4xx' }),
    caBundle: Type.Optional(Type.String({ maxLength: 65536, description: 'PEM CA certificates (base64) that sign the endpoint; default: the system roots' })),
    timeout: Duration({ default: '10s', description: 'Deadline of one call; a timeout is an error (pause), not a denial' }),
    interval: Duration({ default: '30s', description: 'Time between Observation calls; for a PreBatch hook, how long after a denial it is asked again' }),
  },
  { additionalProperties: false },
);

export type WebhookGate = Static<typeof WebhookGate>;

export const HealthGate = Type.Object(
  {
    nodeConditions: Type.Array(NodeConditionGate, {
      default: DEFAULT_NODE_CONDITIONS,
      maxItems: 32,
      description: "Node conditions that fail the batch when they turn bad on an updated machine's Node after its update started",
    }),
    prometheus: Type.Array(PrometheusGate, { default: [], maxItems: 8, description: 'Prometheus queries evaluated while each batch is verified and observed' }),
    webhooks: Type.Array(WebhookGate, { default: [], maxItems: 8, description: 'HTTPS hooks asked before each batch and while it is observed' }),
  },
  { additionalProperties: false, default: {}, description: 'What decides that a batch is healthy: node conditions, Prometheus queries, webhooks' },
);

export const RolloutStrategy = Type.Object(
  {
    batches: Type.Array(BatchSize, {
      default: DEFAULT_BATCHES,
      minItems: 1,
      maxItems: 32,
      description:
        'Machines updated in each batch, as a count or a percentage of the matched machines (rounded up, at least 1); the last size repeats until every machine is done. Resolved sizes must not decrease',
      // Counts alone can be checked here; with percentages the controller checks against the matched machines.
      'x-kubernetes-validations': [{ rule: 'self.exists(x, type(x) == string) || self.isSorted()', message: 'batch sizes must not decrease' }],
    }),
    maxUnavailable: IntOrPercent('Machines whose component may be failed or mid-install at once; reaching it pauses the rollout', 1),
    bakeTime: Duration({ default: '60s', min: '0', description: 'How long a batch must stay healthy before the next one starts' }),
    failureThreshold: Type.Integer({ minimum: 0, default: 0, description: 'Failed machines tolerated before the rollout pauses itself' }),
    progressDeadline: Duration({ default: '10m', description: 'How long a batch may take from its start until every machine in it reports the update installed and ready; beyond it the batch fails with ProgressDeadlineExceeded' }),
    failurePolicy: StringEnum(FailurePolicies, {
      default: 'Pause',
      description: "What a failed health gate does: Pause, or Rollback the rollout's updated machines to status.currentRevision in batches capped by maxUnavailable. A gate that errors always pauses",
    }),
    partition: Type.Optional(Type.Integer({ minimum: 0, maximum: 100000, description: 'Run at most this many batches, then stop with the rollout paused (manual stepping: raise it to release the next batch)' })),
    priorityLabel: Type.Optional(
      Type.String({ minLength: 1, maxLength: 316, pattern: QUALIFIED_NAME_PATTERN, description: 'Machine label whose integer value orders selection: lower values first, machines without it last' }),
    ),
    acknowledgeFailure: Type.Optional(
      Type.String({ maxLength: 256, description: 'Copy status.failure.token here to acknowledge a failure: failed machines stop counting and the rollout goes on' }),
    ),
    healthGate: HealthGate,
  },
  { additionalProperties: false, default: {}, description: 'How the template reaches the machines: batch sizes, pace, health gates, what a failure does' },
);

export const ComponentTemplate = Type.Object(
  {
    metadata: Type.Optional(
      Type.Object(
        {
          labels: Type.Optional(StringMap({ maxProperties: 64, description: 'Labels each MachineComponent gets, besides kubenode.io/machine' })),
          annotations: Type.Optional(StringMap({ maxProperties: 64, description: 'Annotations each MachineComponent gets' })),
        },
        { additionalProperties: false, description: 'Metadata of the MachineComponents written from the template' },
      ),
    ),
    // spec.machine is the controller's, per machine.
    spec: Type.Omit(MachineComponentSpec, ['machine']),
  },
  { additionalProperties: false, description: 'The MachineComponent written for each matched Machine' },
);

export const MachineComponentSetSpec = Type.Object(
  {
    selector: LabelSelector({ description: 'Which Machines get the component (by Machine labels); required, {} selects all' }),
    template: ComponentTemplate,
    rollout: RolloutStrategy,
    paused: Type.Boolean({ default: false, description: 'Stop starting new batches; machines already updated stay updated' }),
    revisionHistoryLimit: Type.Integer({ minimum: 0, maximum: 1000, default: 10, description: 'ControllerRevisions kept besides the current and update revisions' }),
  },
  { additionalProperties: false, description: 'One component for every Machine the selector matches, rolled out in batches' },
);
export type MachineComponentSetSpec = Static<typeof MachineComponentSetSpec>;

export const RolloutPhases = ['Pending', 'Progressing', 'Paused', 'Completed', 'Failed'] as const;
export type RolloutPhase = (typeof RolloutPhases)[number];

export const BatchStates = ['Pending', 'Upgrading', 'Verifying', 'Observing', 'Succeeded', 'Failed'] as const;
export type BatchState = (typeof BatchStates)[number];
export const GatePhases = ['Running', 'Successful', 'Failed', 'Error'] as const;

export const GateResult = Type.Object(
  {
    name: Type.String({ maxLength: 128, description: 'components, nodeConditions, or the name of a Prometheus or webhook gate' }),
    phase: StringEnum(GatePhases, { description: 'Running, Successful, Failed or Error (could not be evaluated)' }),
    message: Type.String({ maxLength: 2048, default: '', description: 'The last evaluation, for people' }),
    successes: Type.Integer({ minimum: 0, default: 0, description: 'Measurements that passed in this batch' }),
    failures: Type.Integer({ minimum: 0, default: 0, description: 'Measurements that failed in this batch' }),
    consecutiveErrors: Type.Integer({ minimum: 0, default: 0, description: 'Evaluations in a row that could not be made' }),
    lastTime: Type.Optional(Time({ description: 'When it was last evaluated' })),
  },
  { additionalProperties: false },
);
export type GateResult = Static<typeof GateResult>;

export const BatchStatus = Type.Object(
  {
    index: Type.Integer({ minimum: 0, description: 'Position of the batch in the rollout, from 0' }),
    size: Type.Integer({ minimum: 0, description: 'Machines this batch updates' }),
    state: StringEnum(BatchStates, { description: 'Pending, Upgrading, Verifying, Observing, Succeeded or Failed' }),
    startTime: Type.Optional(Time({ description: 'When the batch started' })),
    readyTime: Type.Optional(Time({ description: 'When every gate first passed' })),
    observationEndTime: Type.Optional(Time({ description: 'readyTime + bakeTime: the next batch starts after it' })),
    endTime: Type.Optional(Time({ description: 'When the batch succeeded or failed' })),
    gates: Type.Array(GateResult, { default: [], maxItems: 20, description: "Each health gate's results for this batch" }),
  },
  { additionalProperties: false },
);
export type BatchStatus = Static<typeof BatchStatus>;

export const RolloutFailure = Type.Object(
  {
    token: Type.String({ maxLength: 256, description: 'Copy into spec.rollout.acknowledgeFailure to acknowledge' }),
    revision: Type.String({ maxLength: 253, description: 'ControllerRevision being rolled out when it failed' }),
    batch: Type.Integer({ minimum: 0, description: 'Index of the batch that failed' }),
    reason: Type.String({ maxLength: 128, description: 'HealthGateFailed, ProgressDeadlineExceeded or GateError' }),
    message: Type.String({ maxLength: 4096, description: 'What failed, for people' }),
    machines: Type.Array(Type.String({ maxLength: 253 }), { default: [], maxItems: 50, description: 'Machines that failed (at most 50)' }),
    time: Time({ description: 'When it failed' }),
  },
  { additionalProperties: false, description: 'The failure that paused (or rolled back) the rollout, until it is acknowledged' },
);
export type RolloutFailure = Static<typeof RolloutFailure>;

export const MachineComponentSetStatus = Type.Object(
  {
    phase: StringEnum(RolloutPhases, { description: 'Pending, Progressing, Paused, Completed or Failed' }),
    observedGeneration: Type.Optional(Type.Integer({ minimum: 0, description: 'metadata.generation the rollout is for' })),
    targetVersion: Type.Optional(Type.String({ maxLength: 128, pattern: VERSION_PATTERN, description: 'Version the rollout is taking the machines to' })),
    currentRevision: Type.Optional(Type.String({ maxLength: 253, description: 'ControllerRevision every machine had when the last rollout completed (the stable one)' })),
    updateRevision: Type.Optional(Type.String({ maxLength: 253, description: 'ControllerRevision of spec.template: what the rollout moves machines to' })),
    matched: Type.Integer({ minimum: 0, default: 0, description: 'Machines the selector matches' }),
    updated: Type.Integer({ minimum: 0, default: 0, description: 'Machines whose MachineComponent has the template spec' }),
    ready: Type.Integer({ minimum: 0, default: 0, description: 'Updated machines that report the component Installed and healthy' }),
    failed: Type.Integer({ minimum: 0, default: 0, description: 'Updated machines whose component failed' }),
    unavailable: Type.Integer({ minimum: 0, default: 0, description: 'Updated machines not ready yet plus failed ones (what maxUnavailable caps)' }),
    deferred: Type.Integer({ minimum: 0, default: 0, description: 'Machines not chosen because their Node is not Ready or their agent Lease is stale' }),
    deferredMachines: Type.Array(Type.String({ maxLength: 300 }), { default: [], maxItems: 20, description: 'Some deferred machines with why (at most 20)' }),
    conflicts: Type.Array(Type.String({ maxLength: 300 }), { default: [], maxItems: 20, description: 'Machines refused because another set or object already declares the component there (at most 20)' }),
    currentBatch: Type.Integer({ minimum: 0, default: 0, description: 'Index of the batch in progress (batches past the end of spec.rollout.batches repeat its last size)' }),
    batchStartTime: Type.Optional(Time({ description: 'When the current batch started' })),
    batches: Type.Array(BatchStatus, { default: [], maxItems: 16, description: 'The latest batches of this rollout (at most 16)' }),
    failure: Type.Optional(RolloutFailure),
    acknowledgedFailures: Type.Array(Type.String({ maxLength: 253 }), { default: [], maxItems: 1000, description: 'Failed machines whose failure was acknowledged in this rollout: they no longer count' }),
    pausedReason: Type.Optional(Type.String({ maxLength: 1024, description: 'Why the rollout paused itself' })),
    conditions: Conditions({ default: [] }),
  },
  { additionalProperties: false, description: 'Where the rollout stands, written by the controller' },
);
export type MachineComponentSetStatus = Static<typeof MachineComponentSetStatus>;

export const MachineComponentSet = KubeObject(KIND, MachineComponentSetSpec, MachineComponentSetStatus);
export type MachineComponentSet = Static<typeof MachineComponentSet>;

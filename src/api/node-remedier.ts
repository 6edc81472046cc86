// NodeRemedier (kubenode.io/v1alpha1): rules that map a node problem (a condition type and reason
// held for a while) to an escalation ladder of repairs, tried in order by the node's agent; and
// the central ladder the controller runs when the node's agent cannot act at all.
import { Type, type Static } from '@sinclair/typebox';
import { Conditions, ConditionStatuses, Duration, KubeObject, LabelSelector, QUALIFIED_NAME_PATTERN, REASON_PATTERN, StringEnum, StringMap, Time } from './common.ts';

export const KIND = 'NodeRemedier';

export const RemedyActions = [
  'restart-unit',
  'restart-runtime',
  'restart-kubelet',
  'clean-disk',
  'drop-caches',
  'cordon',
  'taint',
  'drain',
  'uncordon',
  'reboot',
] as const;
export type RemedyAction = (typeof RemedyActions)[number];

/**
 * What the controller does to a node whose agent cannot act, in escalation order: cordon (and
 * taint, so workloads move), an out-of-band power cycle through the Machine's BMC, and marking
 * the Machine for replacement (for Cluster API's remediation or a person).
 */
export const CentralActions = ['cordon', 'power-cycle', 'replace'] as const;
export type CentralAction = (typeof CentralActions)[number];

/** Every action a RemedyOperation or a RiskPolicy permit can name: the agents' and the controller's. */
export const OperationActions = [...RemedyActions, 'power-cycle', 'replace'] as const;
export type OperationAction = (typeof OperationActions)[number];

export const RiskLevels = ['safe', 'disruptive'] as const;
export type RiskLevel = (typeof RiskLevels)[number];

/** States of a breaker (a RiskPolicy's circuit breaker, a NodeRemedier's storm breaker). */
export const BreakerStates = ['Closed', 'Open'] as const;

/** Parameters some actions cannot do without, checked by the apiserver too. */
export const REQUIRED_PARAMS: Partial<Record<RemedyAction, readonly string[]>> = {
  'restart-unit': ['unit'],
  'clean-disk': ['path'],
  taint: ['key', 'effect'],
};

const paramRules = Object.entries(REQUIRED_PARAMS).map(([action, keys]) => ({
  rule: `self.action != '${action}' || (has(self.params) && ${keys.map((k) => `'${k}' in self.params`).join(' && ')})`,
  message: `${action} needs params ${keys.join(', ')}`,
}));

export const RemedyStep = Type.Object(
  {
    action: StringEnum(RemedyActions, { description: `What to do: ${RemedyActions.join(', ')}` }),
    params: Type.Optional(StringMap({ maxProperties: 16, description: 'Action parameters, e.g. unit for restart-unit, path for clean-disk, key/value/effect for taint' })),
    cooldown: Duration({ default: '5m', min: '0', description: 'Wait after this step before it or the next one runs' }),
    maxAttempts: Type.Integer({ minimum: 1, maximum: 10, default: 1, description: 'Attempts of this step before escalating to the next' }),
    verifyAfter: Duration({ default: '1m', min: '100ms', description: 'When to check that the problem is gone' }),
  },
  { additionalProperties: false, 'x-kubernetes-validations': paramRules },
);
export type RemedyStep = Static<typeof RemedyStep>;

export const ProblemMatch = Type.Object(
  {
    type: Type.String({ minLength: 1, maxLength: 316, pattern: QUALIFIED_NAME_PATTERN, description: 'Node condition type, e.g. KernelDeadlock' }),
    status: StringEnum(ConditionStatuses, { default: 'True', description: 'Condition status that means the problem is there' }),
    reasons: Type.Array(Type.String({ maxLength: 1024, pattern: REASON_PATTERN }), {
      default: [],
      maxItems: 32,
      'x-kubernetes-list-type': 'set',
      description: 'Condition reasons this rule handles; empty: any reason',
    }),
  },
  { additionalProperties: false, description: 'The node condition that starts this rule' },
);

export const RemedyRule = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 63, pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', description: 'Rule name, unique in this NodeRemedier; RemedyOperations name it' }),
    condition: ProblemMatch,
    minDuration: Duration({ default: '0s', min: '0', description: 'How long the condition must have held before the first step' }),
    steps: Type.Array(RemedyStep, { minItems: 1, maxItems: 16, description: 'Escalation ladder, least disruptive first' }),
  },
  { additionalProperties: false },
);
export type RemedyRule = Static<typeof RemedyRule>;

export const CentralStep = Type.Object(
  {
    action: StringEnum(CentralActions, { description: `What the controller does: ${CentralActions.join(', ')}` }),
    timeout: Duration({ default: '10m', min: '10s', max: '24h', description: 'How long the step may take to show its effect (the agent back with a new boot ID after power-cycle) before the next step runs' }),
  },
  { additionalProperties: false },
);
export type CentralStep = Static<typeof CentralStep>;

export const CentralRemedy = Type.Object(
  {
    unreachableFor: Duration({
      default: '5m',
      min: '10s',
      max: '24h',
      description: "A node is unreachable once its agent's Lease is stale and its Node's Ready condition has been Unknown or False for this long",
    }),
    steps: Type.Array(CentralStep, { minItems: 1, maxItems: 8, description: 'Escalation ladder the controller runs on an unreachable node, least disruptive first' }),
    taint: Type.Object(
      {
        key: Type.String({ minLength: 1, maxLength: 316, pattern: QUALIFIED_NAME_PATTERN, default: 'node.kubenode.io/unreachable', description: 'Taint key the cordon step adds' }),
        effect: StringEnum(['NoSchedule', 'NoExecute'] as const, { default: 'NoExecute', description: 'NoExecute moves running workloads off, NoSchedule only keeps new ones away' }),
      },
      { additionalProperties: false, default: {}, description: 'The taint the cordon step adds (and removes once the node is back)' },
    ),
  },
  { additionalProperties: false, description: 'Repairs the controller makes on nodes whose agent cannot act' },
);
export type CentralRemedy = Static<typeof CentralRemedy>;

export const StormBreaker = Type.Object(
  {
    maxShare: Type.Number({ minimum: 0, maximum: 1, default: 0.3, description: 'Trip when more than this share of the selected nodes had an operation of this NodeRemedier within window' }),
    window: Duration({ default: '1h', max: '168h', description: 'Operations newer than this count' }),
  },
  { additionalProperties: false, description: 'Stops every operation of this NodeRemedier (agents and controller) on a fleet-wide fault; only a person closes it' },
);

export const NodeRemedierSpec = Type.Object(
  {
    nodeSelector: LabelSelector({ default: {}, description: 'Nodes the rules apply to (by Node labels); empty selects all' }),
    rules: Type.Array(RemedyRule, {
      default: [],
      maxItems: 64,
      'x-kubernetes-list-type': 'map',
      'x-kubernetes-list-map-keys': ['name'],
      description: 'Which problem gets which repairs',
    }),
    paused: Type.Boolean({ default: false, description: 'Start no new repairs; operations already running finish' }),
    dryRun: Type.Boolean({ default: false, description: 'Record RemedyOperations with what would be done, do nothing' }),
    central: Type.Optional(CentralRemedy),
    stormBreaker: Type.Optional(StormBreaker),
  },
  {
    additionalProperties: false,
    description: 'Rules that map node problems to escalating repairs, for the nodes selected',
    'x-kubernetes-validations': [{ rule: 'self.rules.size() > 0 || has(self.central)', message: 'give rules (for the agents), central (for the controller), or both' }],
  },
);
export type NodeRemedierSpec = Static<typeof NodeRemedierSpec>;

export const NodeRemedierStatus = Type.Object(
  {
    observedGeneration: Type.Optional(Type.Integer({ minimum: 0, description: 'metadata.generation the counts are for' })),
    matchedNodes: Type.Integer({ minimum: 0, default: 0, description: 'Nodes the nodeSelector matches; written by the controller' }),
    activeOperations: Type.Integer({ minimum: 0, default: 0, description: "RemedyOperations of this NodeRemedier (its agents' rules and its central steps) not finished yet; written by the controller" }),
    succeeded: Type.Integer({ minimum: 0, default: 0, description: 'Of the RemedyOperations of this NodeRemedier the API holds: those that succeeded (result Fixed, or a central cordon done); written by the controller' }),
    failed: Type.Integer({ minimum: 0, default: 0, description: 'Of the RemedyOperations of this NodeRemedier the API holds: those that failed, or ended NotFixed (a replacement request among them); written by the controller' }),
    stormBreaker: Type.Object(
      {
        state: StringEnum(BreakerStates, { default: 'Closed', description: 'Closed (operations as the risk gate allows) or Open (no new operation, by agents or the controller)' }),
        trippedAt: Type.Optional(Time({ description: 'When it opened' })),
        reason: Type.Optional(Type.String({ maxLength: 1024, description: 'Why it opened' })),
        resetBy: Type.Optional(Type.String({ maxLength: 253, description: 'Who closed it again' })),
        resetAt: Type.Optional(Time({ description: 'When it was closed again; operations before it no longer count' })),
      },
      {
        additionalProperties: false,
        default: {},
        description: 'Written by the controller when it opens; a person closes it by setting state Closed (with resetBy)',
        'x-kubernetes-validations': [{ rule: "self.state != 'Open' || has(self.trippedAt)", message: 'an open breaker has trippedAt' }],
      },
    ),
    conditions: Conditions({ default: [] }),
  },
  { additionalProperties: false, description: 'Counts of the operations these rules started, and the storm breaker' },
);
export type NodeRemedierStatus = Static<typeof NodeRemedierStatus>;

export const NodeRemedier = KubeObject(KIND, NodeRemedierSpec, NodeRemedierStatus);
export type NodeRemedier = Static<typeof NodeRemedier>;

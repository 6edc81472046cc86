// NodeRemedier (kubenode.io/v1alpha1): rules that map a node problem (a condition type and reason
// held for a while) to an escalation ladder of repairs, tried in order.
import { Type, type Static } from '@sinclair/typebox';
import { Conditions, ConditionStatuses, Duration, KubeObject, LabelSelector, QUALIFIED_NAME_PATTERN, REASON_PATTERN, StringEnum, StringMap } from './common.ts';

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

export const RiskLevels = ['safe', 'disruptive'] as const;
export type RiskLevel = (typeof RiskLevels)[number];

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

export const NodeRemedierSpec = Type.Object(
  {
    nodeSelector: LabelSelector({ default: {}, description: 'Nodes the rules apply to (by Node labels); empty selects all' }),
    rules: Type.Array(RemedyRule, {
      minItems: 1,
      maxItems: 64,
      'x-kubernetes-list-type': 'map',
      'x-kubernetes-list-map-keys': ['name'],
      description: 'Which problem gets which repairs',
    }),
    paused: Type.Boolean({ default: false, description: 'Start no new repairs; operations already running finish' }),
    dryRun: Type.Boolean({ default: false, description: 'Record RemedyOperations with what would be done, do nothing' }),
  },
  { additionalProperties: false, description: 'Rules that map node problems to escalating repairs, for the nodes selected' },
);
export type NodeRemedierSpec = Static<typeof NodeRemedierSpec>;

export const NodeRemedierStatus = Type.Object(
  {
    observedGeneration: Type.Optional(Type.Integer({ minimum: 0, description: 'metadata.generation the counts are for' })),
    matchedNodes: Type.Integer({ minimum: 0, default: 0, description: 'Nodes the nodeSelector matches' }),
    activeOperations: Type.Integer({ minimum: 0, default: 0, description: "RemedyOperations of this NodeRemedier's rules not finished yet" }),
    succeeded: Type.Integer({ minimum: 0, default: 0, description: 'RemedyOperations that fixed the problem' }),
    failed: Type.Integer({ minimum: 0, default: 0, description: 'RemedyOperations that failed or did not fix it' }),
    conditions: Conditions({ default: [] }),
  },
  { additionalProperties: false, description: 'Counts of the operations these rules started' },
);
export type NodeRemedierStatus = Static<typeof NodeRemedierStatus>;

export const NodeRemedier = KubeObject(KIND, NodeRemedierSpec, NodeRemedierStatus);
export type NodeRemedier = Static<typeof NodeRemedier>;

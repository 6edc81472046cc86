// RemedyOperation (kubenode.io/v1alpha1): one repair on one node, from the problem that asked for
// it through the risk gate's decision to the result. The spec is a record of intent and never
// changes after creation; its actor (the agent on spec.node, or the controller for a node whose
// agent cannot act) writes the status.
import { Type, type Static } from '@sinclair/typebox';
import { Conditions, KubeObject, NodeName, QUALIFIED_NAME_PATTERN, REASON_PATTERN, StringEnum, StringMap, Time } from './common.ts';
import { OperationActions, RiskLevels } from './node-remedier.ts';

export const KIND = 'RemedyOperation';

export const Actors = ['agent', 'controller'] as const;

export const Problem = Type.Object(
  {
    conditionType: Type.String({ minLength: 1, maxLength: 316, pattern: QUALIFIED_NAME_PATTERN, description: 'Node condition type, e.g. ContainerRuntimeUnhealthy' }),
    reason: Type.String({ minLength: 1, maxLength: 1024, pattern: REASON_PATTERN, description: "The condition's reason" }),
    message: Type.String({ maxLength: 32768, default: '', description: "The condition's message" }),
    since: Type.Optional(Time({ description: 'When the condition last became true' })),
  },
  { additionalProperties: false, description: 'The node problem that asked for the repair' },
);
export type Problem = Static<typeof Problem>;

export const RemedyOperationSpec = Type.Object(
  {
    node: NodeName({ description: 'The node repaired' }),
    actor: StringEnum(Actors, { default: 'agent', description: "Who acts: the node's agent, or the controller (central remedies on a node whose agent cannot act)" }),
    problem: Problem,
    action: StringEnum(OperationActions, { description: `What to do: ${OperationActions.join(', ')}` }),
    params: Type.Optional(StringMap({ maxProperties: 16, description: 'Action parameters, as in the NodeRemedier step' })),
    risk: StringEnum(RiskLevels, { description: 'disruptive actions need a permit from the risk gate' }),
    remedier: Type.Optional(Type.String({ maxLength: 253, description: 'NodeRemedier that asked for it' })),
    rule: Type.Optional(Type.String({ maxLength: 63, description: 'Rule of that NodeRemedier' })),
    step: Type.Integer({ minimum: 0, maximum: 15, default: 0, description: "Index in the rule's escalation ladder" }),
    dryRun: Type.Boolean({ default: false, description: 'Record what would be done, do nothing' }),
  },
  {
    additionalProperties: false,
    description: 'One repair on one node, fixed when the operation is created',
    'x-kubernetes-validations': [{ rule: 'self == oldSelf', message: 'spec is immutable: create a new RemedyOperation' }],
  },
);
export type RemedyOperationSpec = Static<typeof RemedyOperationSpec>;

/** Which gate said no (or the last one that said yes): local budget, cluster RiskPolicy, NodeRemedier storm breaker, external webhook. */
export const Gates = ['none', 'local', 'policy', 'storm', 'webhook'] as const;

export const GateDecision = Type.Object(
  {
    allowed: Type.Boolean({ description: 'Whether the action may run' }),
    gate: StringEnum(Gates, { description: 'The gate that refused, or the last one that allowed: none, local, policy, storm (the NodeRemedier storm breaker) or webhook' }),
    policy: Type.Optional(Type.String({ maxLength: 253, description: 'RiskPolicy that granted or refused the permit' })),
    reasons: Type.Array(Type.String({ maxLength: 1024 }), { default: [], maxItems: 16, description: "Each gate's answer, in the order they were asked" }),
    decidedAt: Time({ description: 'When the decision was made' }),
  },
  { additionalProperties: false, description: "The risk gate's decision on this operation" },
);
export type GateDecision = Static<typeof GateDecision>;

export const OperationPhases = ['Pending', 'Denied', 'Running', 'Verifying', 'Succeeded', 'Failed', 'Skipped'] as const;
export type OperationPhase = (typeof OperationPhases)[number];

export const OperationResults = ['Fixed', 'NotFixed', 'Error', 'DryRun', 'NotNeeded'] as const;

export const RemedyOperationStatus = Type.Object(
  {
    phase: StringEnum(OperationPhases, { description: 'Pending, Denied (by the risk gate), Running, Verifying (is the problem gone?), Succeeded, Failed or Skipped' }),
    gate: Type.Optional(GateDecision),
    attempts: Type.Integer({ minimum: 0, maximum: 100, default: 0, description: 'Times the action was started' }),
    startTime: Type.Optional(Time({ description: 'When the action started' })),
    endTime: Type.Optional(Time({ description: 'When the operation finished' })),
    result: Type.Optional(StringEnum(OperationResults, { description: 'Fixed, NotFixed (the problem stayed), Error (the action failed), DryRun or NotNeeded (the problem was gone)' })),
    message: Type.Optional(Type.String({ maxLength: 32768, description: 'What happened, for people' })),
    conditions: Conditions({ default: [] }),
  },
  {
    additionalProperties: false,
    description: 'What the actor did; written only by the actor',
    'x-kubernetes-validations': [
      { rule: "!(self.phase in ['Succeeded', 'Failed', 'Skipped', 'Denied']) || has(self.endTime)", message: 'a finished operation has an endTime' },
      { rule: "self.phase != 'Running' || (has(self.gate) && self.gate.allowed)", message: 'an operation runs only after the gate allowed it' },
    ],
  },
);
export type RemedyOperationStatus = Static<typeof RemedyOperationStatus>;

export const RemedyOperation = KubeObject(KIND, RemedyOperationSpec, RemedyOperationStatus);
export type RemedyOperation = Static<typeof RemedyOperation>;

// RiskPolicy (kubenode.io/v1alpha1): fleet limits on disruptive actions. Agents take permits by
// appending to status.permits with an update guarded by resourceVersion, so of two nodes racing
// for the last slot one gets 409 Conflict, re-reads, and finds no slot left. Permits expire, so a
// node that dies holding one does not block the fleet.
import { Type, type Static } from '@sinclair/typebox';
import { Conditions, Duration, KubeObject, LabelSelector, NodeName, StringEnum, Time } from './common.ts';
import { BreakerStates, OperationActions } from './node-remedier.ts';

export const KIND = 'RiskPolicy';

/** Standard 5-field cron (minute hour day-of-month month day-of-week), as systemd and CronJob read it. */
export const CRON_FIELDS_PATTERN = '^(@(yearly|annually|monthly|weekly|daily|hourly)|[0-9*/,-]+ [0-9*/,-]+ [0-9*/,?LW-]+ [0-9A-Za-z*/,-]+ [0-9A-Za-z*/,?L#-]+)$';

export const BlackoutWindow = Type.Object(
  {
    cron: Type.String({ maxLength: 128, pattern: CRON_FIELDS_PATTERN, description: 'When a window starts, e.g. "0 8 * * 1-5"' }),
    duration: Duration({ max: '168h', description: 'How long it lasts' }),
    timeZone: Type.String({ maxLength: 64, default: 'UTC', pattern: '^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$', description: 'IANA time zone, e.g. Europe/Berlin' }),
  },
  { additionalProperties: false, description: 'A recurring time when no permit is granted' },
);
export type BlackoutWindow = Static<typeof BlackoutWindow>;

export const Budget = Type.Object(
  {
    cron: Type.String({ maxLength: 128, pattern: CRON_FIELDS_PATTERN, description: 'When the budget starts, e.g. "0 9 * * 1-5"' }),
    duration: Duration({ max: '168h', description: 'How long it lasts' }),
    timeZone: Type.String({ maxLength: 64, default: 'UTC', pattern: '^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$', description: 'IANA time zone, e.g. Asia/Shanghai' }),
    maxInFlight: Type.Integer({ minimum: 0, maximum: 100000, description: 'Permits held at once while it is active (0: none)' }),
  },
  { additionalProperties: false, description: 'A limit on permits in flight during a recurring time' },
);
export type Budget = Static<typeof Budget>;

export const RiskPolicySpec = Type.Object(
  {
    nodeSelector: LabelSelector({ default: {}, description: 'Nodes this policy limits (by Node labels); empty selects all' }),
    actions: Type.Array(StringEnum(OperationActions), {
      default: [],
      maxItems: 16,
      'x-kubernetes-list-type': 'set',
      description: 'Actions that need a permit; empty: every disruptive action',
    }),
    maxInFlight: Type.Integer({ minimum: 1, maximum: 100000, default: 1, description: 'Permits held at once across the selected nodes' }),
    maxPerWindow: Type.Optional(
      Type.Object(
        {
          count: Type.Integer({ minimum: 1, maximum: 100000, description: 'Permits granted per window at most' }),
          window: Duration({ max: '168h', description: 'Sliding window, e.g. 1h' }),
        },
        { additionalProperties: false, description: 'At most count permits granted per window' },
      ),
    ),
    minHealthyShare: Type.Number({ minimum: 0, maximum: 1, default: 0.9, description: 'No permit while fewer than this share of the selected nodes are Ready' }),
    permitTTL: Duration({ default: '15m', min: '10s', description: 'A permit expires this long after it was taken unless renewed' }),
    circuitBreaker: Type.Optional(
      Type.Object(
        {
          cordonedShare: Type.Number({ minimum: 0, maximum: 1, description: 'Trip when this share of the selected nodes is cordoned' }),
          window: Duration({ default: '1h', max: '168h', description: 'Cordons newer than this count' }),
        },
        { additionalProperties: false, description: 'Trips open (no permits) on a fleet-wide fault; only a person closes it' },
      ),
    ),
    budgets: Type.Array(Budget, { default: [], maxItems: 32, description: 'Lower limits at scheduled times (e.g. fewer at peak hours); the most restrictive active one wins' }),
    blackoutWindows: Type.Array(BlackoutWindow, { default: [], maxItems: 32, description: 'Times when no permit is granted, e.g. business hours' }),
    paused: Type.Boolean({ default: false, description: 'No permits at all' }),
  },
  { additionalProperties: false, description: 'Limits on disruptive actions across the nodes selected' },
);
export type RiskPolicySpec = Static<typeof RiskPolicySpec>;

export const Permit = Type.Object(
  {
    holder: NodeName({ description: 'Node holding the permit' }),
    operation: Type.String({ minLength: 1, maxLength: 253, description: 'RemedyOperation it was taken for' }),
    action: Type.Optional(StringEnum(OperationActions, { description: 'Action it was taken for' })),
    acquiredAt: Time({ description: 'When it was taken' }),
    expiresAt: Time({ description: 'When it stops counting as held unless renewed' }),
    releasedAt: Type.Optional(Time({ description: 'Set when the holder is done; kept while it still counts for maxPerWindow' })),
  },
  {
    additionalProperties: false,
    'x-kubernetes-validations': [{ rule: 'timestamp(self.expiresAt) > timestamp(self.acquiredAt)', message: 'expiresAt must be after acquiredAt' }],
  },
);
export type Permit = Static<typeof Permit>;

export { BreakerStates };

export const RiskPolicyStatus = Type.Object(
  {
    observedGeneration: Type.Optional(Type.Integer({ minimum: 0, description: 'metadata.generation last acted on' })),
    permits: Type.Array(Permit, {
      default: [],
      maxItems: 1000,
      'x-kubernetes-list-type': 'map',
      'x-kubernetes-list-map-keys': ['operation'],
      description: 'Permits taken and not yet pruned by their holder: held (no releasedAt, not expired) or still counting for maxPerWindow',
    }),
    circuitBreaker: Type.Object(
      {
        state: StringEnum(BreakerStates, { default: 'Closed', description: 'Closed (permits as the limits allow) or Open (no permits)' }),
        trippedAt: Type.Optional(Time({ description: 'When it opened' })),
        trippedBy: Type.Optional(Type.String({ maxLength: 253, description: 'Node whose agent saw the threshold crossed' })),
        reason: Type.Optional(Type.String({ maxLength: 1024, description: 'Why it opened' })),
        resetBy: Type.Optional(Type.String({ maxLength: 253, description: 'Who closed it again' })),
        resetAt: Type.Optional(Time({ description: 'When it was closed again' })),
      },
      {
        additionalProperties: false,
        default: {},
        description: 'The circuit breaker: opens on a fleet-wide fault, closed again only by a person',
        'x-kubernetes-validations': [{ rule: "self.state != 'Open' || has(self.trippedAt)", message: 'an open breaker has trippedAt' }],
      },
    ),
    conditions: Conditions({ default: [] }),
  },
  { additionalProperties: false, description: 'Permits held and the circuit breaker, written by agents and the controller' },
);
export type RiskPolicyStatus = Static<typeof RiskPolicyStatus>;

export const RiskPolicy = KubeObject(KIND, RiskPolicySpec, RiskPolicyStatus);
export type RiskPolicy = Static<typeof RiskPolicy>;

// MachineComponentSet (kubenode.io/v1alpha1): one component for every Machine its selector
// matches, rolled out in growing batches with a health check after each and a pause on failure.
import { Kind, Type, TypeRegistry, type Static } from '@sinclair/typebox';
import { Conditions, Duration, KubeObject, LabelSelector, StringEnum, StringMap, Time, VERSION_PATTERN } from './common.ts';
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

export const RolloutStrategy = Type.Object(
  {
    batches: Type.Array(Type.Integer({ minimum: 1, maximum: 100000 }), {
      default: DEFAULT_BATCHES,
      minItems: 1,
      maxItems: 32,
      description: 'Machines updated in each batch; the last size repeats until every machine is done',
      'x-kubernetes-validations': [{ rule: 'self.isSorted()', message: 'batch sizes must not decrease' }],
    }),
    maxUnavailable: IntOrPercent('Machines whose component may be failed or mid-install at once; reaching it pauses the rollout', 1),
    bakeTime: Duration({ default: '60s', description: 'How long a batch must stay healthy before the next one starts' }),
    failureThreshold: Type.Integer({ minimum: 0, default: 0, description: 'Failed machines tolerated before the rollout pauses itself' }),
  },
  { additionalProperties: false, default: {} },
);

export const ComponentTemplate = Type.Object(
  {
    metadata: Type.Optional(
      Type.Object({ labels: Type.Optional(StringMap({ maxProperties: 64 })), annotations: Type.Optional(StringMap({ maxProperties: 64 })) }, { additionalProperties: false }),
    ),
    spec: MachineComponentSpec,
  },
  { additionalProperties: false },
);

export const MachineComponentSetSpec = Type.Object(
  {
    selector: LabelSelector({ description: 'Which Machines get the component (by Machine labels); required, {} selects all' }),
    template: ComponentTemplate,
    rollout: RolloutStrategy,
    paused: Type.Boolean({ default: false, description: 'Stop starting new batches; machines already updated stay updated' }),
  },
  { additionalProperties: false },
);
export type MachineComponentSetSpec = Static<typeof MachineComponentSetSpec>;

export const RolloutPhases = ['Pending', 'Progressing', 'Paused', 'Completed', 'Failed'] as const;
export type RolloutPhase = (typeof RolloutPhases)[number];

export const MachineComponentSetStatus = Type.Object(
  {
    phase: StringEnum(RolloutPhases),
    observedGeneration: Type.Optional(Type.Integer({ minimum: 0 })),
    targetVersion: Type.Optional(Type.String({ maxLength: 128, pattern: VERSION_PATTERN })),
    matched: Type.Integer({ minimum: 0, default: 0, description: 'Machines the selector matches' }),
    updated: Type.Integer({ minimum: 0, default: 0, description: 'Machines whose MachineComponent has the template spec' }),
    ready: Type.Integer({ minimum: 0, default: 0, description: 'Updated machines that report the component Installed and healthy' }),
    failed: Type.Integer({ minimum: 0, default: 0 }),
    currentBatch: Type.Integer({ minimum: 0, default: 0, description: 'Index into spec.rollout.batches' }),
    batchStartTime: Type.Optional(Time()),
    pausedReason: Type.Optional(Type.String({ maxLength: 1024 })),
    conditions: Conditions({ default: [] }),
  },
  { additionalProperties: false },
);
export type MachineComponentSetStatus = Static<typeof MachineComponentSetStatus>;

export const MachineComponentSet = KubeObject(KIND, MachineComponentSetSpec, MachineComponentSetStatus);
export type MachineComponentSet = Static<typeof MachineComponentSet>;

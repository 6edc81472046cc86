// Pieces shared by the kubenode.io/v1alpha1 kinds. Every schema here must stay expressible as a
// Kubernetes structural schema (see scripts/gen-crds.ts): no anyOf/oneOf/const, enums as
// `type: string` + `enum`, RE2 patterns, cross-field rules as CEL in x-kubernetes-validations.
import { createHash } from 'node:crypto';
import { FormatRegistry, Kind, Type, TypeRegistry, type SchemaOptions, type Static, type TSchema, type TUnsafe } from '@sinclair/typebox';
import { DurationText, type DurationOptions } from '../util/duration-schema.ts';

export const API_VERSION = 'kubenode.io/v1alpha1';

if (!FormatRegistry.Has('date-time')) FormatRegistry.Set('date-time', (v) => /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/.test(v));
TypeRegistry.Set('StringEnum', (schema: { enum: string[] }, value) => typeof value === 'string' && schema.enum.includes(value));

/** A string enum as `{type: string, enum: [...]}`: structural, unlike TypeBox's anyOf-of-const unions. */
export function StringEnum<const T extends readonly string[]>(values: T, options: SchemaOptions = {}): TUnsafe<T[number]> {
  return Type.Unsafe<T[number]>({ ...options, [Kind]: 'StringEnum', type: 'string', enum: [...values] });
}

export const SHA256_PATTERN = '^[a-f0-9]{64}$';
/** semver-ish, also Debian and RPM shaped: 1.8.2, v1.30.1, 2.0.0-rc.1, 1.7.13-1, 1:2.3~rc1-4.el9. */
export const VERSION_PATTERN = '^([0-9]+:)?v?[0-9]+(\\.[0-9]+){0,3}([-+~._][0-9A-Za-z][0-9A-Za-z.+~_-]*)?$';
export const COMPONENT_NAME_PATTERN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';
/** DNS-1123 subdomain: Node, Machine and most object names. */
export const NODE_NAME_PATTERN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';

/** A MachineComponent's phases: here, apart from its schema, since the daemon's component metrics name them on every node and a node with nothing to install never loads the schema. */
export const ComponentPhases = ['Pending', 'Installing', 'Installed', 'Failed', 'RollingBack'] as const;
export type ComponentPhase = (typeof ComponentPhases)[number];

export const GROUP = 'kubenode.io';
export const VERSION = 'v1alpha1';
/** Label naming the node a RemedyOperation or coordination Lease is about (value: labelValueOf). */
export const NODE_LABEL = 'kubenode.io/node';

/**
 * A name as a label value, which holds at most 63 characters where a node or object name may
 * have 253: the name itself when it fits, else a prefix of it and a hash of the whole, so a
 * selector still finds exactly that name's objects and a person still recognises it.
 */
export function labelValueOf(name: string): string {
  return fitName(name, 63, 16);
}

/**
 * A name at most max characters long: the name when it fits, else a prefix of it (ending
 * alphanumeric, so a DNS name stays one) and hashChars of the hash of the whole.
 */
export function fitName(name: string, max: number, hashChars = 10): string {
  if (name.length <= max) return name;
  const hash = createHash('sha256').update(name).digest('hex').slice(0, hashChars);
  return `${name.slice(0, max - hashChars - 1).replace(/[^a-zA-Z0-9]+$/, '')}-${hash}`;
}

/**
 * How much of a generateName the apiserver keeps: it cuts one to 58 characters and appends 5
 * random ones (SimpleNameGenerator in k8s.io/apiserver: maxNameLength 63 less randomLength 5).
 */
export const GENERATE_NAME_MAX = 58;

/**
 * A generateName for objects named after name (and suffix, kept whole, as "<name>-<suffix>-"):
 * at most 58 characters, so the apiserver's own cut never ends it in '.' or leaves '.-' in it,
 * and ending '-' after an alphanumeric. A name too long for it is shortened by fitName, whose
 * hash still tells two long names that share a prefix apart.
 */
export function generateNameOf(name: string, suffix = ''): string {
  const tail = suffix === '' ? '' : `-${suffix}`;
  const room = GENERATE_NAME_MAX - 1 - tail.length;
  return room >= 16 ? `${fitName(name, room)}${tail}-` : `${fitName(`${name}${tail}`, GENERATE_NAME_MAX - 1)}-`;
}

/**
 * Label a MachineComponent carries to name its Machine (= Node name), value labelValueOf(machine).
 * Where that is not the name itself, spec.machine holds the name (see machineOf).
 */
export const MACHINE_LABEL = 'kubenode.io/machine';

/** The Machine a MachineComponent is for: spec.machine when set, else its kubenode.io/machine label. */
export function machineOf(mc: { metadata: { labels?: Record<string, string> }; spec?: unknown }): string | undefined {
  const machine = (mc.spec as { machine?: unknown } | undefined)?.machine;
  return typeof machine === 'string' ? machine : mc.metadata.labels?.[MACHINE_LABEL];
}
/**
 * On a MachineComponent of a Machine being deleted: the controller adds it before the delete, and
 * the node's agent removes it once the component is uninstalled (or, removalPolicy Orphan, let go).
 */
export const UNINSTALL_FINALIZER = 'kubenode.io/uninstall';

/** metav1.Condition's reason rule. */
export const REASON_PATTERN = '^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$';
/** Qualified name (label keys, condition types): optional DNS prefix, then a name segment. */
export const QUALIFIED_NAME_PATTERN = '^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$';

export const Time = (options: SchemaOptions = {}) => Type.String({ format: 'date-time', ...options });

/** Go time.Duration as kubectl and the agent config write it (30s, 5m, 1h30m), within bounds (default 1s to 24h). */
export const Duration = (options: DurationOptions = {}) => DurationText(options);

export const NodeName = (options: SchemaOptions = {}) => Type.String({ minLength: 1, maxLength: 253, pattern: NODE_NAME_PATTERN, ...options });

/**
 * A map of string to string. TypeBox's Record emits patternProperties, which structural schemas
 * do not allow; the CRD generator turns the catch-all pattern into additionalProperties.
 */
export const StringMap = (options: SchemaOptions = {}) => Type.Record(Type.String(), Type.String({ maxLength: 4096 }), options);

/** Labels: keys are qualified names, values at most 63 characters (apiserver rules for Node labels). */
export const Labels = (options: SchemaOptions = {}) =>
  Type.Record(Type.String(), Type.String({ maxLength: 63, pattern: '^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$' }), {
    maxProperties: 64,
    'x-kubernetes-validations': [{ rule: `self.all(k, k.size() <= 316 && k.matches('${QUALIFIED_NAME_PATTERN.replaceAll('\\', '\\\\')}'))`, message: 'label keys must be qualified names' }],
    ...options,
  });

export const LabelSelectorOperators = ['In', 'NotIn', 'Exists', 'DoesNotExist'] as const;

/** metav1.LabelSelector; empty selects everything. */
export const LabelSelector = (options: SchemaOptions = {}) =>
  Type.Object(
    {
      matchLabels: Type.Optional(Labels({ description: 'Labels an object must carry, all of them, with these values' })),
      matchExpressions: Type.Optional(
        Type.Array(
          Type.Object(
            {
              key: Type.String({ minLength: 1, maxLength: 316, description: 'Label key the requirement is about' }),
              operator: StringEnum(LabelSelectorOperators, { description: "How the label's value relates to values: In, NotIn, Exists, DoesNotExist" }),
              values: Type.Optional(Type.Array(Type.String({ maxLength: 63 }), { maxItems: 64, description: 'Label values; non-empty for In and NotIn, absent for Exists and DoesNotExist' })),
            },
            {
              additionalProperties: false,
              'x-kubernetes-validations': [
                {
                  rule: "(self.operator in ['In', 'NotIn']) == (has(self.values) && self.values.size() > 0)",
                  message: 'values are required for In and NotIn and not allowed for Exists and DoesNotExist',
                },
              ],
            },
          ),
          { maxItems: 32, description: 'Requirements on labels, all of which must hold' },
        ),
      ),
    },
    { additionalProperties: false, ...options },
  );
export type LabelSelector = Static<ReturnType<typeof LabelSelector>>;

export const ConditionStatuses = ['True', 'False', 'Unknown'] as const;

/** metav1.Condition plus the heartbeat NodeConditions carry. */
export const Condition = Type.Object(
  {
    type: Type.String({ minLength: 1, maxLength: 316, pattern: QUALIFIED_NAME_PATTERN, description: 'What the condition is about, in CamelCase (Ready, KernelDeadlock…)' }),
    status: StringEnum(ConditionStatuses, { description: 'True, False, or Unknown when it could not be determined' }),
    reason: Type.String({ minLength: 1, maxLength: 1024, pattern: REASON_PATTERN, description: 'Why the status is what it is, in CamelCase, one word for machines' }),
    message: Type.String({ maxLength: 32768, default: '', description: 'Why the status is what it is, for people' }),
    observedGeneration: Type.Optional(Type.Integer({ minimum: 0, description: 'metadata.generation the condition was computed for' })),
    lastTransitionTime: Time({ description: 'When status last changed' }),
    lastHeartbeatTime: Type.Optional(Time({ description: 'When the condition was last confirmed, changed or not' })),
  },
  { additionalProperties: false },
);
export type Condition = Static<typeof Condition>;

/** Conditions as a list-map keyed by type, so server-side apply and merge patches keep other writers' entries. */
export const Conditions = (options: SchemaOptions = {}) =>
  Type.Array(Condition, {
    maxItems: 64,
    'x-kubernetes-list-type': 'map',
    'x-kubernetes-list-map-keys': ['type'],
    description: 'Latest observations of the object, one per condition type',
    ...options,
  });

/** What every kind's object metadata is checked against locally (the apiserver owns the real rules). */
export const ObjectMeta = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 253, pattern: NODE_NAME_PATTERN }),
    generation: Type.Optional(Type.Integer({ minimum: 0 })),
    resourceVersion: Type.Optional(Type.String()),
    uid: Type.Optional(Type.String()),
    labels: Type.Optional(Type.Record(Type.String(), Type.String())),
    annotations: Type.Optional(Type.Record(Type.String(), Type.String())),
  },
  { additionalProperties: true },
);
export type ObjectMeta = Static<typeof ObjectMeta>;

/** The whole object: apiVersion/kind/metadata around a spec and an optional status. */
export function KubeObject<K extends string, S extends TSchema, T extends TSchema>(kind: K, spec: S, status: T) {
  return Type.Object(
    {
      apiVersion: StringEnum([`${GROUP}/${VERSION}`] as const),
      kind: StringEnum([kind] as const),
      metadata: ObjectMeta,
      spec,
      status: Type.Optional(status),
    },
    { additionalProperties: false },
  );
}

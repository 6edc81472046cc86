import { Kind, Type, TypeRegistry, type TTransform, type TUnsafe } from '@sinclair/typebox';
import { DURATION_PATTERN, TIMER_BOUNDS, durationWithin, expectedDuration, formatDuration, type DurationBounds } from './duration.ts';

/** The schema kind TypeBox checks duration values with: the grammar and the field's bounds. */
export const DURATION_KIND = 'Duration';
const BOUNDS = Symbol.for('kubenode.duration.bounds');

type DurationSchema = { [BOUNDS]: DurationBounds };

TypeRegistry.Set(DURATION_KIND, (schema, value) => durationWithin(value, (schema as DurationSchema)[BOUNDS]) !== undefined);

export interface DurationOptions {
  description?: string;
  default?: string;
  /** Shortest accepted value (default 1s); "0" lets the field switch something off. */
  min?: string;
  /** Longest accepted value (default 24h). */
  max?: string;
}

/** The bounds of a duration schema, or undefined for any other schema. */
export function durationBounds(schema: unknown): DurationBounds | undefined {
  return typeof schema === 'object' && schema !== null && (schema as Record<symbol, unknown>)[Kind] === DURATION_KIND ? (schema as DurationSchema)[BOUNDS] : undefined;
}

/** What a duration schema expects, in words, for error messages. */
export function describeDuration(schema: unknown): string | undefined {
  const bounds = durationBounds(schema);
  return bounds === undefined ? undefined : expectedDuration(bounds);
}

/**
 * A duration as text (custom resources: the value stays a string in the object). The bounds are
 * checked by the agent through TypeBox and by the apiserver through CEL, which parses the same
 * grammar (Go's time.ParseDuration).
 */
export function DurationText(options: DurationOptions = {}): TUnsafe<string> {
  const bounds = { min: options.min ?? TIMER_BOUNDS.min, max: options.max ?? TIMER_BOUNDS.max };
  const expected = expectedDuration(bounds);
  if (options.default !== undefined && durationWithin(options.default, bounds) === undefined) throw new TypeError(`default ${options.default} is not ${expected}`);
  return Type.Unsafe<string>({
    [Kind]: DURATION_KIND,
    [BOUNDS]: bounds,
    type: 'string',
    maxLength: 64,
    pattern: DURATION_PATTERN,
    ...(options.description === undefined ? {} : { description: options.description }),
    ...(options.default === undefined ? {} : { default: options.default }),
    'x-kubernetes-validations': [
      { rule: `duration(self) >= duration('${bounds.min}') && duration(self) <= duration('${bounds.max}')`, message: `must be ${expected}` },
    ],
  });
}

/** A duration setting of agent.yaml, decoded once at load into milliseconds. */
export function Duration(options: DurationOptions = {}): TTransform<TUnsafe<string>, number> {
  const text = DurationText(options);
  const bounds = durationBounds(text) as DurationBounds;
  // Value.Decode checks before it decodes, so the text is in bounds here.
  return Type.Transform(text)
    .Decode((value) => durationWithin(value, bounds) as number)
    .Encode((ms) => formatDuration(ms));
}

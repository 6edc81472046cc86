import { Kind, Type, TypeRegistry, type TUnsafe } from '@sinclair/typebox';
import { compileRe2, PatternError } from './re2.ts';

/** The schema kind TypeBox checks RE2 settings with: the pattern must compile as the detectors compile it. */
export const RE2_KIND = 'Re2Pattern';

/** Why compileRe2 refuses a value, or undefined when it compiles. */
export function re2Problem(value: unknown): string | undefined {
  if (typeof value !== 'string') return 'expected a string';
  try {
    compileRe2(value);
    return undefined;
  } catch (err) {
    if (err instanceof PatternError) return err.message;
    throw err;
  }
}

// A setting left at its default is not compiled again here: each default is proved once, by the
// test that compiles every one, and compiled at run time only by a detector that is enabled.
TypeRegistry.Set(RE2_KIND, (schema, value) => (schema as { default?: unknown }).default === value || re2Problem(value) === undefined);

export function isRe2Schema(schema: unknown): boolean {
  return typeof schema === 'object' && schema !== null && (schema as Record<symbol, unknown>)[Kind] === RE2_KIND;
}

/**
 * A regular-expression setting (RE2 syntax, as NPD's): checked at load, so `config validate`
 * refuses what a detector could not compile at start.
 */
export function Re2Pattern(options: { description?: string; default?: string; minLength?: number } = {}): TUnsafe<string> {
  return Type.Unsafe<string>({ [Kind]: RE2_KIND, type: 'string', ...options });
}

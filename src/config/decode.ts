// Checking and decoding a value against its schema, with errors in words; no heavy imports, so
// every command (and the controller's flags) can use it.
import type { StaticDecode, TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import type { Document } from 'yaml';
import { ConfigError, UsageError, errorMessage } from '../errors.ts';
import { describeDuration } from '../util/duration-schema.ts';
import { isRe2Schema, re2Problem } from '../util/re2-schema.ts';
import { LISTEN_EXPECTED, LISTEN_PATTERN } from './listen.ts';

/** JSON pointer "/monitors/systemLog/0" → "monitors.systemLog[0]". */
export function fieldPath(pointer: string): string {
  return pointer
    .split('/')
    .slice(1)
    .map((part) => part.replaceAll('~1', '/').replaceAll('~0', '~'))
    .reduce((acc, part) => (/^\d+$/.test(part) ? `${acc}[${part}]` : acc === '' ? part : `${acc}.${part}`), '');
}

/** Words for the patterns agent.yaml uses, so an error says what was expected rather than a regular expression. */
const PATTERN_WORDS: Record<string, string> = {
  '^/': 'an absolute path (starting with /)',
  '^(/.*)?$': 'an absolute path (starting with /), or empty',
  '^/.+': 'an absolute path (starting with /)',
  '^(https://.+)?$': 'an https:// URL, or empty',
  '^http://': 'an http:// URL',
  '^[0-9]+[KMGT]?$': 'a size like 500M or 2G',
  [LISTEN_PATTERN]: LISTEN_EXPECTED,
};

/** What a schema expects, in words. */
export function describeExpected(of: object): string {
  const schema = of as Record<string | symbol, unknown>;
  const duration = describeDuration(schema);
  if (duration !== undefined) return duration;
  if (Array.isArray(schema.anyOf)) return `one of ${(schema.anyOf as { const?: unknown }[]).map((s) => JSON.stringify(s.const)).join(', ')}`;
  if (Array.isArray(schema.enum)) return `one of ${(schema.enum as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
  if (typeof schema.pattern === 'string') return PATTERN_WORDS[schema.pattern] ?? `a string of the form ${schema.pattern}`;
  const bounds = [typeof schema.minimum === 'number' ? `at least ${schema.minimum}` : '', typeof schema.maximum === 'number' ? `at most ${schema.maximum}` : ''].filter((b) => b !== '');
  if (schema.type === 'integer') return `a whole number${bounds.length > 0 ? ` ${bounds.join(' and ')}` : ''}`;
  if (schema.type === 'number') return `a number${bounds.length > 0 ? ` ${bounds.join(' and ')}` : ''}`;
  if (schema.type === 'string' && typeof schema.minLength === 'number' && schema.minLength > 0) return 'a non-empty string';
  if (schema.type === 'array') return 'a list';
  if (schema.type === 'object') return 'a mapping';
  return typeof schema.type === 'string' ? `a ${schema.type}` : 'a value';
}

/** The first way a value fails its schema, in words: the field inside it and what was expected. */
function firstProblem(schema: TSchema, value: unknown): { field: string; message: string } | undefined {
  const first = Value.Errors(schema, value).First();
  if (first === undefined) return undefined;
  const got = JSON.stringify(first.value) ?? 'nothing';
  if (isRe2Schema(first.schema) && typeof first.value === 'string') return { field: fieldPath(first.path), message: `expected an RE2 regular expression: ${re2Problem(first.value)}` };
  const message = first.message.startsWith('Unexpected property')
    ? 'unknown key'
    : first.value === undefined
      ? `required, ${describeExpected(first.schema)}`
      : `expected ${describeExpected(first.schema)}, got ${got.length > 60 ? `${got.slice(0, 60)}…` : got}`;
  return { field: fieldPath(first.path), message };
}

/**
 * Fills a section's defaults, checks it and decodes it (durations to milliseconds); throws the
 * first problem as a ConfigError naming the file and the field (under prefix).
 */
export function decodeSection<T extends TSchema>(file: string, schema: T, raw: unknown, prefix = ''): StaticDecode<T> {
  const withDefaults = Value.Default(schema, structuredClone(raw));
  // Listing errors walks every branch of the schema; a plain check is a quarter of it (config load at start).
  const problem = Value.Check(schema, withDefaults) ? undefined : firstProblem(schema, withDefaults);
  if (problem !== undefined) {
    const field = prefix === '' ? problem.field : problem.field === '' ? prefix : `${prefix}.${problem.field}`;
    throw new ConfigError(file, field === '' ? '(top level)' : field, problem.message);
  }
  return Value.Decode(schema, withDefaults);
}

/** A command-line value checked and decoded by the schema of the setting it overrides; a UsageError names the flag. */
export function decodeFlag<T extends TSchema>(flag: string, schema: T, text: string): StaticDecode<T> {
  const problem = firstProblem(schema, text);
  if (problem !== undefined) throw new UsageError(`${flag}: ${problem.message}`);
  return Value.Decode(schema, text);
}

/**
 * The document's value. YAML aliases can expand exponentially (a "billion laughs" file); the
 * yaml library stops at 100 aliases and says so, which is bad input, not a bug.
 */
export function yamlToJs(file: string, doc: Document): unknown {
  try {
    return doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw new ConfigError(file, '', `invalid YAML: ${errorMessage(err)}`);
  }
}

import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { fieldPath } from '../../config/decode.ts';
import { ConfigError } from '../../errors.ts';
import { TIMER_BOUNDS, durationWithin, expectedDuration, type DurationBounds } from '../../util/duration.ts';
import { compileRe2, PatternError, type Re2Regex } from '../../util/re2.ts';

// NPD's monitor files, field for field. Unknown keys are allowed, as NPD's JSON decoding allows them,
// so that files written for newer NPD versions still load.

const DefaultCondition = Type.Object({
  type: Type.String({ minLength: 1 }),
  reason: Type.String({ minLength: 1 }),
  message: Type.String(),
});

const LogRule = Type.Object({
  type: Type.Union([Type.Literal('temporary'), Type.Literal('permanent')]),
  condition: Type.Optional(Type.String()),
  reason: Type.String({ minLength: 1 }),
  pattern: Type.String({ minLength: 1 }),
  patternGeneratedMessageSuffix: Type.Optional(Type.String()),
});

export const SystemLogMonitorConfig = Type.Object({
  plugin: Type.Union([Type.Literal('kmsg'), Type.Literal('filelog'), Type.Literal('journald')]),
  pluginConfig: Type.Optional(Type.Record(Type.String(), Type.String())),
  logPath: Type.Optional(Type.String()),
  lookback: Type.Optional(Type.String()),
  delay: Type.Optional(Type.String()),
  bufferSize: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
  source: Type.String({ minLength: 1 }),
  metricsReporting: Type.Optional(Type.Boolean()),
  skipList: Type.Optional(Type.Array(Type.String())),
  conditions: Type.Optional(Type.Array(DefaultCondition)),
  rules: Type.Array(LogRule),
});
export type SystemLogMonitorConfig = Static<typeof SystemLogMonitorConfig>;

const PluginRule = Type.Object({
  type: Type.Union([Type.Literal('temporary'), Type.Literal('permanent')]),
  condition: Type.Optional(Type.String()),
  reason: Type.String({ minLength: 1 }),
  path: Type.String({ minLength: 1 }),
  args: Type.Optional(Type.Array(Type.String())),
  timeout: Type.Optional(Type.String()),
});

export const CustomPluginMonitorConfig = Type.Object({
  plugin: Type.Literal('custom'),
  pluginConfig: Type.Optional(
    Type.Object({
      invoke_interval: Type.Optional(Type.String()),
      timeout: Type.Optional(Type.String()),
      max_output_length: Type.Optional(Type.Integer({ minimum: 1 })),
      concurrency: Type.Optional(Type.Integer({ minimum: 1 })),
      enable_message_change_based_condition_update: Type.Optional(Type.Boolean()),
      skip_initial_status: Type.Optional(Type.Boolean()),
    }),
  ),
  source: Type.String({ minLength: 1 }),
  metricsReporting: Type.Optional(Type.Boolean()),
  conditions: Type.Optional(Type.Array(DefaultCondition)),
  rules: Type.Array(PluginRule),
});
export type CustomPluginMonitorConfig = Static<typeof CustomPluginMonitorConfig>;

function check<T extends TSchema>(file: string, schema: T, doc: unknown): Static<T> {
  const first = Value.Errors(schema, doc).First();
  if (first !== undefined) {
    throw new ConfigError(file, fieldPath(first.path) || '(top level)', first.message.toLowerCase());
  }
  return doc as Static<T>;
}

const PLUGIN_TIMEOUT: DurationBounds = { min: '100ms', max: '1h' };
const LOOKBACK: DurationBounds = { min: '0', max: '168h' };
const START_DELAY: DurationBounds = { min: '0', max: '1h' };

/** A duration field of a monitor file; absent, NPD's own default applies. */
function duration(file: string, field: string, text: string | undefined, npdDefault: number, bounds: DurationBounds): number {
  if (text === undefined) return npdDefault;
  const ms = durationWithin(text, bounds);
  if (ms === undefined) throw new ConfigError(file, field, `expected ${expectedDuration(bounds)}, got ${JSON.stringify(text)}`);
  return ms;
}

function checkConditions(
  file: string,
  conditions: readonly { type: string }[],
  rules: readonly { type: string; condition?: string | undefined }[],
): void {
  const declared = new Set(conditions.map((c) => c.type));
  rules.forEach((rule, i) => {
    if (rule.type !== 'permanent') return;
    if (rule.condition === undefined || rule.condition === '') {
      throw new ConfigError(file, `rules[${i}].condition`, 'a permanent rule must name its condition');
    }
    if (!declared.has(rule.condition)) {
      throw new ConfigError(file, `rules[${i}].condition`, `condition ${JSON.stringify(rule.condition)} is not declared in "conditions"`);
    }
  });
}

export interface ParsedLogMonitor {
  kind: 'system-log-monitor';
  file: string;
  config: SystemLogMonitorConfig;
  lookbackMs: number;
  /** NPD's delay: lines logged within this long of boot are ignored while the node settles. */
  delayMs: number;
  bufferSize: number;
  patterns: Re2Regex[];
}

export interface ParsedPluginMonitor {
  kind: 'custom-plugin-monitor';
  file: string;
  config: CustomPluginMonitorConfig;
  invokeIntervalMs: number;
  timeoutMs: number;
  ruleTimeoutsMs: number[];
  maxOutputLength: number;
  concurrency: number;
  messageChangeUpdates: boolean;
  skipInitialStatus: boolean;
}

function parseJson(file: string, text: string): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(file, '', `invalid JSON: ${(err as Error).message}`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new ConfigError(file, '', 'expected a JSON object');
  return doc as Record<string, unknown>;
}

/** Refuses the NPD monitor kinds we do not run yet, by name, instead of a schema error. */
function refuseUnsupported(file: string, doc: Record<string, unknown>): void {
  if (!('plugin' in doc) && ['cpu', 'disk', 'memory', 'host', 'net', 'osFeature'].some((k) => k in doc)) {
    throw new ConfigError(file, '', 'system-stats-monitor configs are not supported yet (use Prometheus node_exporter for these metrics)');
  }
}

export function parseSystemLogMonitor(file: string, text: string): ParsedLogMonitor {
  const doc = parseJson(file, text);
  refuseUnsupported(file, doc);
  if (doc.plugin === 'custom') throw new ConfigError(file, 'plugin', 'this is a custom-plugin-monitor config; list it as one');
  const config = check(file, SystemLogMonitorConfig, doc);
  const conditions = config.conditions ?? [];
  checkConditions(file, conditions, config.rules);
  if (config.plugin === 'filelog') {
    for (const key of ['timestamp', 'message', 'timestampFormat']) {
      if (config.pluginConfig?.[key] === undefined) throw new ConfigError(file, `pluginConfig.${key}`, 'required by the filelog plugin');
    }
    if (config.logPath === undefined) throw new ConfigError(file, 'logPath', 'required by the filelog plugin');
  }
  const patterns = config.rules.map((rule, i) => {
    try {
      return compileRe2(rule.pattern, { anchorEnd: true });
    } catch (err) {
      if (err instanceof PatternError) throw new ConfigError(file, `rules[${i}].pattern`, err.message);
      throw err;
    }
  });
  return {
    kind: 'system-log-monitor',
    file,
    config,
    lookbackMs: duration(file, 'lookback', config.lookback, 0, LOOKBACK),
    delayMs: duration(file, 'delay', config.delay, 0, START_DELAY),
    bufferSize: config.bufferSize ?? 10,
    patterns,
  };
}

export function parseCustomPluginMonitor(file: string, text: string): ParsedPluginMonitor {
  const doc = parseJson(file, text);
  refuseUnsupported(file, doc);
  if (doc.plugin !== 'custom') {
    throw new ConfigError(file, 'plugin', `expected "custom" for a custom-plugin-monitor, got ${JSON.stringify(doc.plugin)}`);
  }
  const config = check(file, CustomPluginMonitorConfig, doc);
  checkConditions(file, config.conditions ?? [], config.rules);
  const pc = config.pluginConfig ?? {};
  // NPD's defaults (pkg/custompluginmonitor/types/config.go).
  const timeoutMs = duration(file, 'pluginConfig.timeout', pc.timeout, 5_000, PLUGIN_TIMEOUT);
  return {
    kind: 'custom-plugin-monitor',
    file,
    config,
    invokeIntervalMs: duration(file, 'pluginConfig.invoke_interval', pc.invoke_interval, 30_000, TIMER_BOUNDS),
    timeoutMs,
    ruleTimeoutsMs: config.rules.map((rule, i) => duration(file, `rules[${i}].timeout`, rule.timeout, timeoutMs, PLUGIN_TIMEOUT)),
    maxOutputLength: pc.max_output_length ?? 80,
    concurrency: pc.concurrency ?? 3,
    messageChangeUpdates: pc.enable_message_change_based_condition_update ?? false,
    skipInitialStatus: pc.skip_initial_status ?? false,
  };
}

import path from 'node:path';
import type { Condition, ConditionStatus, DetectorResult, ProblemEvent } from '../../types.ts';
import type { Detector, DetectorContext } from '../engine/types.ts';
import type { ParsedPluginMonitor } from './config.ts';
import { conditionChangeEvent, defaultConditions } from './log-rules.ts';

type PluginStatus = 'OK' | 'NonOK' | 'Unknown';

interface RuleResult {
  rule: ParsedPluginMonitor['config']['rules'][number];
  status: PluginStatus;
  message: string;
}

const toConditionStatus: Record<PluginStatus, ConditionStatus> = { OK: 'False', NonOK: 'True', Unknown: 'Unknown' };

async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index] as T, index);
    }
  });
  await Promise.all(workers);
  return results;
}

/**
 * An NPD custom-plugin-monitor: each probe runs every rule's plugin (bounded concurrency),
 * exit 0 is OK, 1 is a problem, anything else (or a timeout) unknown; output is trimmed to
 * max_output_length, and a plugin that floods its output still runs to its exit code (the rest is
 * drained, as NPD does). Conditions follow NPD's five transition scenarios
 * (pkg/custompluginmonitor/custom_plugin_monitor.go), so a recovered plugin clears its condition.
 */
export function createCustomPluginMonitor(monitor: ParsedPluginMonitor, pluginWorkingDir: string, ctx: DetectorContext): Detector {
  const { host } = ctx;
  const declared = monitor.config.conditions ?? [];
  const defaults = new Map(declared.map((c) => [c.type, c]));
  const conditions = new Map<string, Condition>(defaultConditions(declared, host.clock.now()).map((c) => [c.type, c]));
  for (const prev of ctx.previous) if (conditions.has(prev.type)) conditions.set(prev.type, { ...prev });

  const runRule = async (index: number, signal: AbortSignal): Promise<RuleResult> => {
    const rule = monitor.config.rules[index] as RuleResult['rule'];
    const timeoutMs = monitor.ruleTimeoutsMs[index] as number;
    const command = path.isAbsolute(rule.path) ? rule.path : path.resolve(pluginWorkingDir, rule.path);
    const result = await host.exec([command, ...(rule.args ?? [])], { timeoutMs, signal, maxOutputBytes: 1024 * 1024, overflow: 'truncate' });
    const trimmed = result.stdout.trim().slice(0, monitor.maxOutputLength);
    if (result.notFound) return { rule, status: 'Unknown', message: `plugin ${command} not found` };
    if (result.timedOut) return { rule, status: 'Unknown', message: `Timeout when running plugin ${JSON.stringify(rule.path)}: state - killed. output - ${JSON.stringify(trimmed)}` };
    const status: PluginStatus = result.exitCode === 0 ? 'OK' : result.exitCode === 1 ? 'NonOK' : 'Unknown';
    return { rule, status, message: trimmed };
  };

  const apply = (results: RuleResult[], now: number): ProblemEvent[] => {
    const events: ProblemEvent[] = [];
    for (const { rule, status, message } of results) {
      if (rule.type === 'temporary') {
        if (status === 'NonOK') events.push({ severity: 'warn', reason: rule.reason, message, timestamp: now });
        continue;
      }
      const cond = conditions.get(rule.condition as string);
      const def = defaults.get(rule.condition as string);
      if (cond === undefined || def === undefined) continue;
      const next = toConditionStatus[status];
      let reason: string;
      let text: string;
      if (cond.status === 'True' && next !== 'True') {
        reason = def.reason;
        text = next === 'False' ? def.message : message;
      } else if (cond.status !== 'True' && next === 'True') {
        reason = rule.reason;
        text = message;
      } else if (cond.status !== next) {
        reason = def.reason;
        text = next === 'False' ? def.message : message;
      } else if (next === 'True' && (cond.reason !== rule.reason || (monitor.messageChangeUpdates && cond.message !== message))) {
        reason = rule.reason;
        text = message;
      } else {
        continue;
      }
      conditions.set(cond.type, { type: cond.type, status: next, reason, message: text, transitionTime: now });
      events.push(conditionChangeEvent(cond.type, next, reason, text, now));
    }
    return events;
  };

  return {
    async probe(signal): Promise<DetectorResult> {
      const results = await mapLimit(monitor.config.rules, monitor.concurrency, (_rule, i) => runRule(i, signal));
      const events = apply(results, host.clock.now());
      const unknown = results.filter((r) => r.status === 'Unknown').map((r) => `${r.rule.reason}: ${r.message}`);
      return {
        conditions: [...conditions.values()].map((c) => ({ ...c })),
        events,
        ...(unknown.length > 0 ? { unknown: unknown.join('; ') } : {}),
      };
    },
  };
}

// `kubenode-agent remedies [--node N] [--rule R]` (also `kubectl kubenode remedies`): the fleet's
// remedies at a glance — NodeRemediers whose storm breaker is open, operations per rule in the
// last hour and day, what runs now, what ended recently. Read-only: two LISTs.
import { Command } from 'commander';
import { UsageError } from '../errors.ts';
import { kubeconfigPath } from './rollout.ts';

export interface OperationView {
  metadata: { name: string; creationTimestamp?: string };
  spec: { node: string; action: string; actor?: string; remedier?: string; rule?: string; step?: number; dryRun?: boolean };
  status?: { phase?: string; result?: string; message?: string; startTime?: string; endTime?: string };
}
export interface RemedierView {
  metadata: { name: string };
  spec: { central?: unknown; stormBreaker?: { maxShare: number; window: string }; paused?: boolean };
  status?: { stormBreaker?: { state?: string; trippedAt?: string; reason?: string; resetAt?: string; resetBy?: string } };
}

export interface ReportFilter {
  node?: string;
  rule?: string;
  /** Finished operations newer than this are listed as recent. */
  recentMs: number;
}

const FINISHED = new Set(['Succeeded', 'Failed', 'Skipped', 'Denied']);
const HOUR = 3_600_000;

/** The rule an operation belongs to, as a person names it: NodeRemedier/rule, or agent.yaml/rule. */
export function ruleOf(op: OperationView): string {
  const rule = op.spec.rule ?? '?';
  if (op.spec.remedier === undefined) return `agent.yaml/${rule}`;
  return rule.startsWith(`${op.spec.remedier}/`) ? rule : `${op.spec.remedier}/${rule}`;
}

function matches(op: OperationView, f: ReportFilter): boolean {
  if (f.node !== undefined && op.spec.node !== f.node) return false;
  if (f.rule === undefined) return true;
  return ruleOf(op) === f.rule || op.spec.remedier === f.rule;
}

function age(from: string | undefined, now: number): string {
  const ms = now - Date.parse(from ?? '');
  if (!Number.isFinite(ms)) return '?';
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172_800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86_400)}d`;
}

function table(rows: string[][]): string[] {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ').trimEnd());
}

export interface OperationRow {
  name: string;
  node: string;
  rule: string;
  action: string;
  actor: string;
  phase: string;
  result?: string;
  created?: string;
  ended?: string;
  message: string;
}

/** What `remedies` finds, before it is drawn: `--json` prints this. */
export interface RemediesSummary {
  tripped: { name: string; trippedAt?: string; reason?: string }[];
  /** Operations per rule created in the last 24 h. */
  rates: { rule: string; lastHour: number; last24h: number; failed24h: number; nodes24h: number }[];
  current: OperationRow[];
  /** Finished within recentMs, the last to end first. */
  recent: OperationRow[];
  recentMs: number;
}

export function remediesSummary(operations: readonly OperationView[], remediers: readonly RemedierView[], now: number, f: ReportFilter): RemediesSummary {
  const ops = operations.filter((o) => matches(o, f));
  const tripped = remediers
    .filter((r) => r.status?.stormBreaker?.state === 'Open' && (f.rule === undefined || f.rule === r.metadata.name || f.rule.startsWith(`${r.metadata.name}/`)))
    .map((r) => ({ name: r.metadata.name, ...(r.status?.stormBreaker?.trippedAt === undefined ? {} : { trippedAt: r.status.stormBreaker.trippedAt }), ...(r.status?.stormBreaker?.reason === undefined ? {} : { reason: r.status.stormBreaker.reason }) }));
  const rules = new Map<string, { hour: number; day: number; failed: number; nodes: Set<string> }>();
  for (const o of ops) {
    const at = Date.parse(o.metadata.creationTimestamp ?? '');
    if (!(now - at <= 24 * HOUR)) continue;
    const e = rules.get(ruleOf(o)) ?? { hour: 0, day: 0, failed: 0, nodes: new Set<string>() };
    e.day += 1;
    if (now - at <= HOUR) e.hour += 1;
    if (o.status?.phase === 'Failed') e.failed += 1;
    e.nodes.add(o.spec.node);
    rules.set(ruleOf(o), e);
  }
  const rates = [...rules.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([rule, e]) => ({ rule, lastHour: e.hour, last24h: e.day, failed24h: e.failed, nodes24h: e.nodes.size }));
  const row = (o: OperationView): OperationRow => ({
    name: o.metadata.name,
    node: o.spec.node,
    rule: ruleOf(o),
    action: o.spec.action,
    actor: o.spec.actor ?? 'agent',
    phase: o.status?.phase ?? 'Pending',
    ...(o.status?.result === undefined ? {} : { result: o.status.result }),
    ...(o.metadata.creationTimestamp === undefined ? {} : { created: o.metadata.creationTimestamp }),
    ...(o.status?.endTime === undefined ? {} : { ended: o.status.endTime }),
    message: o.status?.message ?? '',
  });
  // Newest first: current by creation, recent by their end; timestamps have seconds, the name breaks ties.
  const newest = (at: (o: OperationView) => string | undefined) => (a: OperationView, b: OperationView): number => (at(b) ?? '').localeCompare(at(a) ?? '') || a.metadata.name.localeCompare(b.metadata.name);
  const ended = (o: OperationView): string | undefined => o.status?.endTime ?? o.metadata.creationTimestamp;
  const current = ops.filter((o) => !FINISHED.has(o.status?.phase ?? 'Pending')).sort(newest((o) => o.metadata.creationTimestamp)).map(row);
  const recent = ops.filter((o) => FINISHED.has(o.status?.phase ?? 'Pending') && now - Date.parse(ended(o) ?? '') <= f.recentMs).sort(newest(ended)).map(row);
  return { tripped, rates, current, recent, recentMs: f.recentMs };
}

/** The report as lines: what `remedies` prints. */
export function remediesReport(operations: readonly OperationView[], remediers: readonly RemedierView[], now: number, f: ReportFilter): string[] {
  const s = remediesSummary(operations, remediers, now, f);
  const out: string[] = ['TRIPPED RULES'];
  if (s.tripped.length === 0) out.push('  none');
  for (const t of s.tripped) {
    out.push(`  ${t.name}: storm breaker open since ${t.trippedAt ?? '?'}: ${t.reason ?? ''}`);
    out.push(`    reset: kubectl patch noderemedier ${t.name} --subresource=status --type=merge -p '{"status":{"stormBreaker":{"state":"Closed","resetBy":"<you>"}}}'`);
  }
  out.push('', 'RATES');
  if (s.rates.length === 0) out.push('  no operations in the last 24h');
  else out.push(...table([['RULE', 'LAST 1H', 'LAST 24H', 'FAILED 24H', 'NODES 24H'], ...s.rates.map((r) => [r.rule, String(r.lastHour), String(r.last24h), String(r.failed24h), String(r.nodes24h)])]).map((l) => `  ${l}`));
  const row = (o: OperationRow): string[] => [o.node, o.rule, o.action, o.actor, o.phase, age(o.created, now), o.message.replace(/\s+/g, ' ').slice(0, 120)];
  const header = ['NODE', 'RULE', 'ACTION', 'ACTOR', 'PHASE', 'AGE', 'MESSAGE'];
  out.push('', 'CURRENT');
  if (s.current.length === 0) out.push('  none');
  else out.push(...table([header, ...s.current.map(row)]).map((l) => `  ${l}`));
  out.push('', `RECENT (ended within ${Math.round(s.recentMs / HOUR)}h, newest first${s.recent.length > 50 ? `, 50 of ${s.recent.length}` : ''})`);
  if (s.recent.length === 0) out.push('  none');
  else out.push(...table([header, ...s.recent.slice(0, 50).map(row)]).map((l) => `  ${l}`));
  return out;
}

interface RemediesFlags {
  kubeconfig?: string;
  node?: string;
  rule?: string;
  since: string;
  json?: boolean;
}

export function remediesCommand(): Command {
  return new Command('remedies')
    .description("the fleet's remedies: tripped rules (storm breaker), operations per rule, current and recent operations, by agents and the controller")
    .option('--kubeconfig <file>', 'kubeconfig (default: $KUBECONFIG, else ~/.kube/config)')
    .option('--node <name>', 'only operations on this node')
    .option('--rule <name>', 'only this NodeRemedier, or one rule of it (NODEREMEDIER/RULE)')
    .option('--since <duration>', 'recent operations: those ended within this', '24h')
    .option('--json', 'print JSON (every recent operation, not the newest 50) instead of tables')
    .action(async (flags: RemediesFlags) => {
      const [{ decodeFlag }, { Duration }, { createKubeClient, loadKubeConfig }, { NODE_NAME_PATTERN, NODE_LABEL, labelValueOf }] = await Promise.all([import('../config/decode.ts'), import('../util/duration-schema.ts'), import('../kube/client.ts'), import('../api/common.ts')]);
      const recentMs = decodeFlag('--since', Duration({ min: '1m', max: '8760h' }), flags.since);
      if (flags.rule === '') throw new UsageError('--rule: expected a NodeRemedier name or NODEREMEDIER/RULE');
      if (flags.node !== undefined && (flags.node.length > 253 || !new RegExp(NODE_NAME_PATTERN).test(flags.node))) throw new UsageError(`--node: ${JSON.stringify(flags.node)} is not a node name (lowercase letters, digits, '-' and '.', at most 253)`);
      const client = createKubeClient(await loadKubeConfig({ kubeconfig: kubeconfigPath(flags.kubeconfig) }));
      try {
        // The label narrows the list; the report still matches spec.node, the full name.
        const query = flags.node === undefined ? {} : { query: { labelSelector: `${NODE_LABEL}=${labelValueOf(flags.node)}` } };
        const [ops, remediers] = await Promise.all([
          client.get<{ items: OperationView[] }>('/apis/kubenode.io/v1alpha1/remedyoperations', query),
          client.get<{ items: RemedierView[] }>('/apis/kubenode.io/v1alpha1/noderemediers'),
        ]);
        const filter: ReportFilter = { recentMs, ...(flags.node === undefined ? {} : { node: flags.node }), ...(flags.rule === undefined ? {} : { rule: flags.rule }) };
        process.stdout.write(flags.json === true ? `${JSON.stringify(remediesSummary(ops.items, remediers.items, Date.now(), filter), null, 2)}\n` : `${remediesReport(ops.items, remediers.items, Date.now(), filter).join('\n')}\n`);
      } finally {
        client.close();
      }
    });
}

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

/** The report as lines: what `remedies` prints. */
export function remediesReport(operations: readonly OperationView[], remediers: readonly RemedierView[], now: number, f: ReportFilter): string[] {
  const out: string[] = [];
  const ops = operations.filter((o) => matches(o, f));
  const tripped = remediers.filter((r) => r.status?.stormBreaker?.state === 'Open' && (f.rule === undefined || f.rule === r.metadata.name || f.rule.startsWith(`${r.metadata.name}/`)));
  out.push('TRIPPED RULES');
  if (tripped.length === 0) out.push('  none');
  for (const r of tripped) {
    const b = r.status?.stormBreaker ?? {};
    out.push(`  ${r.metadata.name}: storm breaker open since ${b.trippedAt ?? '?'}: ${b.reason ?? ''}`);
    out.push(`    reset: kubectl patch noderemedier ${r.metadata.name} --subresource=status --type=merge -p '{"status":{"stormBreaker":{"state":"Closed","resetBy":"<you>"}}}'`);
  }
  out.push('', 'RATES');
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
  if (rules.size === 0) out.push('  no operations in the last 24h');
  else out.push(...table([['RULE', 'LAST 1H', 'LAST 24H', 'FAILED 24H', 'NODES 24H'], ...[...rules.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([r, e]) => [r, String(e.hour), String(e.day), String(e.failed), String(e.nodes.size)])]).map((l) => `  ${l}`));
  const row = (o: OperationView): string[] => [o.spec.node, ruleOf(o), o.spec.action, o.spec.actor ?? 'agent', o.status?.phase ?? 'Pending', age(o.metadata.creationTimestamp, now), (o.status?.message ?? '').replace(/\s+/g, ' ').slice(0, 120)];
  const header = ['NODE', 'RULE', 'ACTION', 'ACTOR', 'PHASE', 'AGE', 'MESSAGE'];
  const byTime = (a: OperationView, b: OperationView): number => (b.metadata.creationTimestamp ?? '').localeCompare(a.metadata.creationTimestamp ?? '');
  const current = ops.filter((o) => !FINISHED.has(o.status?.phase ?? 'Pending')).sort(byTime);
  out.push('', 'CURRENT');
  if (current.length === 0) out.push('  none');
  else out.push(...table([header, ...current.map(row)]).map((l) => `  ${l}`));
  const recent = ops.filter((o) => FINISHED.has(o.status?.phase ?? 'Pending') && now - Date.parse(o.status?.endTime ?? o.metadata.creationTimestamp ?? '') <= f.recentMs).sort(byTime);
  out.push('', `RECENT (ended within ${Math.round(f.recentMs / HOUR)}h, newest first${recent.length > 50 ? `, 50 of ${recent.length}` : ''})`);
  if (recent.length === 0) out.push('  none');
  else out.push(...table([header, ...recent.slice(0, 50).map(row)]).map((l) => `  ${l}`));
  return out;
}

interface RemediesFlags {
  kubeconfig?: string;
  node?: string;
  rule?: string;
  since: string;
}

export function remediesCommand(): Command {
  return new Command('remedies')
    .description("the fleet's remedies: tripped rules (storm breaker), operations per rule, current and recent operations, by agents and the controller")
    .option('--kubeconfig <file>', 'kubeconfig (default: $KUBECONFIG, else ~/.kube/config)')
    .option('--node <name>', 'only operations on this node')
    .option('--rule <name>', 'only this NodeRemedier, or one rule of it (NODEREMEDIER/RULE)')
    .option('--since <duration>', 'recent operations: those ended within this', '24h')
    .action(async (flags: RemediesFlags) => {
      const [{ decodeFlag }, { Duration }, { createKubeClient, loadKubeConfig }] = await Promise.all([import('../config/decode.ts'), import('../util/duration-schema.ts'), import('../kube/client.ts')]);
      const recentMs = decodeFlag('--since', Duration({ min: '1m', max: '8760h' }), flags.since);
      if (flags.rule === '') throw new UsageError('--rule: expected a NodeRemedier name or NODEREMEDIER/RULE');
      const client = createKubeClient(await loadKubeConfig({ kubeconfig: kubeconfigPath(flags.kubeconfig) }));
      try {
        const [ops, remediers] = await Promise.all([
          client.get<{ items: OperationView[] }>('/apis/kubenode.io/v1alpha1/remedyoperations', flags.node === undefined ? {} : { query: { labelSelector: `kubenode.io/node=${flags.node}` } }),
          client.get<{ items: RemedierView[] }>('/apis/kubenode.io/v1alpha1/noderemediers'),
        ]);
        const lines = remediesReport(ops.items, remediers.items, Date.now(), { recentMs, ...(flags.node === undefined ? {} : { node: flags.node }), ...(flags.rule === undefined ? {} : { rule: flags.rule }) });
        process.stdout.write(`${lines.join('\n')}\n`);
      } finally {
        client.close();
      }
    });
}

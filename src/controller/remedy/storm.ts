// The storm breaker's arithmetic: how many of a NodeRemedier's selected nodes had one of its
// operations (an agent's or the controller's) within the window. One bad rule, or one fault
// across the fleet, shows as a rule firing on many nodes at once; past maxShare the rule stops.
import { durationMs } from '../../util/duration.ts';

export interface OperationLike {
  metadata: { name: string; creationTimestamp?: string };
  spec?: { node?: string; remedier?: string; dryRun?: boolean };
}

export interface StormVerdict {
  trip: boolean;
  nodes: string[];
  selected: number;
  reason: string;
}

export function stormVerdict(
  remedier: string,
  breaker: { maxShare: number; window: string },
  operations: Iterable<OperationLike>,
  selected: number,
  now: number,
  resetAt: number | undefined,
): StormVerdict {
  const windowMs = durationMs(breaker.window);
  // A reset from the future (a stepped clock) is ignored, as the RiskPolicy breaker does.
  const since = Math.max(now - windowMs, resetAt !== undefined && resetAt <= now ? resetAt : 0);
  const nodes = new Set<string>();
  for (const op of operations) {
    if (op.spec?.remedier !== remedier || op.spec.dryRun === true || op.spec.node === undefined) continue;
    const at = Date.parse(op.metadata.creationTimestamp ?? '');
    if (Number.isFinite(at) && at >= Math.floor(since / 1000) * 1000) nodes.add(op.spec.node);
  }
  const share = selected === 0 ? 0 : nodes.size / selected;
  const trip = selected > 0 && share > breaker.maxShare;
  const list = [...nodes].sort();
  return {
    trip,
    nodes: list,
    selected,
    reason: `${nodes.size} of ${selected} selected nodes had operations within ${breaker.window} (${share.toFixed(2)} ${trip ? '>' : '<='} maxShare ${breaker.maxShare}): ${list.slice(0, 5).join(', ')}${list.length > 5 ? ', …' : ''}`,
  };
}

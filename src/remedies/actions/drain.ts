import { systemClock } from '../../host/clock.ts';
import { cordon, drain as drainNode, uncordon } from '../node-ops.ts';
import { TIMER_BOUNDS, durationWithin, expectedDuration } from '../../util/duration.ts';
import { ActionParamError, type ActionContext, type ActionParams, type ActionResult, type RemedyAction } from '../types.ts';
import { needKube } from './cordon.ts';

function drainTimeout(ctx: ActionContext, params: ActionParams): number {
  if (params.timeout === undefined) return ctx.settings.drainTimeoutMs;
  const ms = durationWithin(params.timeout, TIMER_BOUNDS);
  if (ms === undefined) throw new ActionParamError('drain', 'timeout', `expected ${expectedDuration(TIMER_BOUNDS)}, got ${JSON.stringify(params.timeout)}`);
  return ms;
}

/**
 * Cordon, then evict. A drain that cannot finish uncordons at once (only if it did the cordon):
 * a half-drained, cordoned node is capacity lost for nothing.
 */
export async function cordonAndDrain(ctx: ActionContext, params: ActionParams): Promise<ActionResult & { cordonedHere: boolean }> {
  const kube = needKube(ctx, 'drain');
  const timeoutMs = drainTimeout(ctx, params);
  const outcome = await cordon(kube, ctx.nodeName, ctx.host.clock);
  const cordonedHere = outcome === 'cordoned';
  try {
    // Real time, even under a test's fake clock: PDB retries wait on the apiserver, not on the agent.
    const result = await drainNode(kube, ctx.nodeName, { timeoutMs, clock: systemClock, ...(ctx.signal === undefined ? {} : { signal: ctx.signal }) });
    if (result.ok) return { ok: true, message: `drained: ${result.evicted.length} evicted, ${result.skipped.length} skipped`, cordonedHere };
    const undone = cordonedHere ? await uncordon(kube, ctx.nodeName) : 'left as found';
    return { ok: false, message: `drain incomplete after ${timeoutMs}ms: ${result.blocked.map((b) => `${b.pod}: ${b.reason}`).join('; ')}; uncordon: ${undone}`, cordonedHere: false };
  } catch (err) {
    const undone = cordonedHere ? await uncordon(kube, ctx.nodeName).catch((e: unknown) => `failed: ${(e as Error).message}`) : 'left as found';
    return { ok: false, message: `drain failed: ${(err as Error).message}; uncordon: ${undone}`, cordonedHere: false };
  }
}

export const drain: RemedyAction = {
  name: 'drain',
  risk: 'disruptive',
  description: 'Cordon and evict pods through the Eviction API (PodDisruptionBudgets honoured; DaemonSet and mirror pods skipped; bounded in time; uncordons on failure)',
  async plan(ctx, params) {
    const timeoutMs = drainTimeout(ctx, params);
    return {
      action: this.name,
      risk: this.risk,
      steps: [
        `cordon Node ${ctx.nodeName} (annotated kubenode.io/cordoned-by=kubenode-agent)`,
        'evict every pod on the node except DaemonSet and mirror pods (429 from a PodDisruptionBudget: retry with backoff)',
        `give up after ${Math.round(timeoutMs / 1000)}s and uncordon (only if this drain cordoned)`,
      ],
      ...(ctx.kube === undefined ? { blocked: 'needs cluster access (--kubeconfig and a node name)' } : {}),
    };
  },
  async stillNeeded() {
    return { needed: true, why: 'pods may be running on the node' };
  },
  async execute(ctx, params) {
    const { cordonedHere: _c, ...result } = await cordonAndDrain(ctx, params);
    return result;
  },
};

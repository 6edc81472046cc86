import { addTaint, getNode, type Taint } from '../node-ops.ts';
import { ActionParamError, stringParam, type ActionParams, type RemedyAction } from '../types.ts';
import { needKube } from './cordon.ts';

const KEY = /^kubenode\.io\/[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;

function taintOf(params: ActionParams): Taint {
  const key = stringParam('taint', params, 'key');
  if (!KEY.test(key)) throw new ActionParamError('taint', 'key', `must be kubenode.io/<name>, got ${JSON.stringify(key)}`);
  const effect = stringParam('taint', params, 'effect', 'NoSchedule');
  if (effect !== 'NoSchedule' && effect !== 'NoExecute') throw new ActionParamError('taint', 'effect', `expected NoSchedule or NoExecute, got ${JSON.stringify(effect)}`);
  const value = params.value;
  if (value !== undefined && (typeof value !== 'string' || !/^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/.test(value))) {
    throw new ActionParamError('taint', 'value', `not a label value: ${JSON.stringify(value)}`);
  }
  return { key, effect, ...(value === undefined ? {} : { value }) };
}

export const taint: RemedyAction = {
  name: 'taint',
  // NoExecute evicts pods that do not tolerate it; NoSchedule only keeps new ones away. Both shrink capacity.
  risk: 'disruptive',
  description: 'Add a kubenode.io/… taint to the Node (params.key, params.effect NoSchedule|NoExecute, params.value)',
  async plan(ctx, params) {
    try {
      const t = taintOf(params);
      return {
        action: this.name,
        risk: this.risk,
        steps: [`PATCH Node ${ctx.nodeName}: add taint ${t.key}${t.value === undefined ? '' : `=${t.value}`}:${t.effect}`],
        ...(ctx.kube === undefined ? { blocked: 'needs cluster access (--kubeconfig and a node name)' } : {}),
      };
    } catch (err) {
      return { action: this.name, risk: this.risk, steps: [], blocked: (err as Error).message };
    }
  },
  async stillNeeded(ctx, params) {
    const t = taintOf(params);
    const node = await getNode(needKube(ctx, this.name), ctx.nodeName);
    const present = (node.spec?.taints ?? []).some((x) => x.key === t.key && x.effect === t.effect);
    return present ? { needed: false, why: `taint ${t.key}:${t.effect} already present` } : { needed: true, why: 'taint absent' };
  },
  async execute(ctx, params) {
    const t = taintOf(params);
    const outcome = await addTaint(needKube(ctx, this.name), ctx.nodeName, t, ctx.host.clock);
    return { ok: true, message: outcome === 'added' ? `taint ${t.key}:${t.effect} added` : `taint ${t.key}:${t.effect} already present` };
  },
};

import { cordon as cordonNode, getNode } from '../node-ops.ts';
import type { ActionContext, RemedyAction } from '../types.ts';

export function needKube(ctx: ActionContext, action: string) {
  if (ctx.kube === undefined) throw new Error(`${action} needs cluster access (--kubeconfig and a node name)`);
  return ctx.kube;
}

export const cordon: RemedyAction = {
  name: 'cordon',
  // No pod stops, but the node takes no new work: counted against the budgets like any capacity loss.
  risk: 'disruptive',
  description: 'Mark the Node unschedulable, annotated kubenode.io/cordoned-by=kubenode-agent',
  async plan(ctx) {
    return {
      action: this.name,
      risk: this.risk,
      steps: [`PATCH Node ${ctx.nodeName}: spec.unschedulable=true, annotation kubenode.io/cordoned-by=kubenode-agent (skipped when already cordoned)`],
      ...(ctx.kube === undefined ? { blocked: 'needs cluster access (--kubeconfig and a node name)' } : {}),
    };
  },
  async stillNeeded(ctx) {
    const node = await getNode(needKube(ctx, this.name), ctx.nodeName);
    return node.spec?.unschedulable === true ? { needed: false, why: 'node is already unschedulable' } : { needed: true, why: 'node is schedulable' };
  },
  async execute(ctx) {
    const outcome = await cordonNode(needKube(ctx, this.name), ctx.nodeName, ctx.host.clock);
    return { ok: true, message: outcome === 'cordoned' ? 'node cordoned' : `node ${outcome.replace(/-/g, ' ')}` };
  },
};

import { cordonedByAgent, getNode, uncordon as uncordonNode } from '../node-ops.ts';
import type { RemedyAction } from '../types.ts';
import { needKube } from './cordon.ts';

export const uncordon: RemedyAction = {
  name: 'uncordon',
  risk: 'safe',
  description: 'Make the Node schedulable again, only if the agent itself cordoned it',
  async plan(ctx) {
    return {
      action: this.name,
      risk: this.risk,
      steps: [`PATCH Node ${ctx.nodeName}: spec.unschedulable=false, only when annotated kubenode.io/cordoned-by=kubenode-agent`],
      ...(ctx.kube === undefined ? { blocked: 'needs cluster access (--kubeconfig and a node name)' } : {}),
    };
  },
  async stillNeeded(ctx) {
    const node = await getNode(needKube(ctx, this.name), ctx.nodeName);
    if (node.spec?.unschedulable !== true) return { needed: false, why: 'node is schedulable' };
    if (!cordonedByAgent(node)) return { needed: false, why: 'node was cordoned by someone else; leaving it' };
    return { needed: true, why: 'node is cordoned by the agent' };
  },
  async execute(ctx) {
    const outcome = await uncordonNode(needKube(ctx, this.name), ctx.nodeName);
    return { ok: outcome !== 'cordoned-by-other', message: outcome === 'cordoned-by-other' ? 'node was cordoned by someone else; left cordoned' : `node ${outcome.replace(/-/g, ' ')}` };
  },
};

import { Type } from '@sinclair/typebox';
import { readStateFile } from '../../host/state-file.ts';
import { getNode, uncordon } from '../node-ops.ts';
import type { ActionContext, RemedyAction } from '../types.ts';
import { cordonAndDrain } from './drain.ts';
import { execFailure } from '../../errors.ts';

export interface RebootIntent {
  operation: string;
  /** boot_id before the reboot: a different one at start-up means the reboot happened. */
  bootId: string;
  at: number;
  cordonedHere: boolean;
}

export const intentFile = (stateDir: string): string => `${stateDir.replace(/\/+$/, '')}/remedies/reboot-intent.json`;

const IntentFile = Type.Union([
  Type.Object({ operation: Type.String(), bootId: Type.String(), at: Type.Number(), cordonedHere: Type.Boolean() }),
  // What clearIntent leaves.
  Type.Object({}, { additionalProperties: false }),
]);

/**
 * The pending reboot, if any. An unreadable intent is set aside and reads as none: the ladder
 * that asked for the reboot then fails the operation at start-up rather than wait for a boot
 * it cannot recognise.
 */
export async function readIntent(ctx: Pick<ActionContext, 'host' | 'stateDir' | 'log'>): Promise<RebootIntent | undefined> {
  const file = intentFile(ctx.stateDir);
  const read = await readStateFile(ctx.host, file, IntentFile);
  if (read.state === 'corrupt') ctx.log.error({ file: ctx.host.path(file), err: read.reason, setAsideAs: read.setAsideAs }, 'Reboot intent is corrupt; set aside, no reboot taken as pending');
  return read.state === 'ok' && 'bootId' in read.value ? read.value : undefined;
}

export async function clearIntent(ctx: Pick<ActionContext, 'host' | 'stateDir'>): Promise<void> {
  // An empty object rather than unlink: the Host offers atomic writes, and "{}" reads as no intent.
  await ctx.host.writeFileAtomic(intentFile(ctx.stateDir), '{}', 0o600);
}

export type AfterBoot =
  | { state: 'none' }
  | { state: 'pending'; intent: RebootIntent }
  | { state: 'rebooted'; intent: RebootIntent; ready: boolean; uncordon: string };

/**
 * At start-up: did a reboot we asked for happen? If so, check the node is Ready again and undo our
 * cordon. The intent stays until the caller has recorded the outcome and cleared it.
 */
export async function afterBoot(ctx: ActionContext): Promise<AfterBoot> {
  const intent = await readIntent(ctx);
  if (intent === undefined) return { state: 'none' };
  if (intent.bootId === ctx.bootId) return { state: 'pending', intent };
  if (ctx.kube === undefined) return { state: 'rebooted', intent, ready: true, uncordon: 'standalone: nothing to uncordon' };
  const node = await getNode(ctx.kube, ctx.nodeName);
  const ready = node.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
  // A node that is not Ready stays cordoned: the kubelet has not proven the repair yet.
  const outcome = ready && intent.cordonedHere ? await uncordon(ctx.kube, ctx.nodeName) : ready ? 'not cordoned by this reboot' : 'kept: node not Ready';
  return { state: 'rebooted', intent, ready, uncordon: outcome };
}

export const reboot: RemedyAction = {
  name: 'reboot',
  risk: 'disruptive',
  description: 'Drain (with cluster access), record the intent in the state dir, then systemctl reboot; after boot verify Ready and uncordon',
  async plan(ctx) {
    return {
      action: this.name,
      risk: this.risk,
      steps: [
        ...(ctx.kube === undefined ? ['no cluster access: no drain'] : [`drain Node ${ctx.nodeName} (fails → uncordon, no reboot)`]),
        `record intent (boot_id ${ctx.bootId}) in ${intentFile(ctx.stateDir)}`,
        'systemctl reboot',
        'after boot (new boot_id): check Node Ready, uncordon if this reboot cordoned, release permits',
      ],
    };
  },
  async stillNeeded(ctx) {
    const intent = await readIntent(ctx);
    if (intent !== undefined && intent.bootId === ctx.bootId) return { needed: false, why: `a reboot is already pending (operation ${intent.operation})` };
    return { needed: true, why: 'no reboot pending' };
  },
  async execute(ctx, params) {
    let cordonedHere = false;
    if (ctx.kube !== undefined) {
      const drained = await cordonAndDrain(ctx, params);
      if (!drained.ok) return { ok: false, message: `not rebooting: ${drained.message}` };
      cordonedHere = drained.cordonedHere;
    }
    const intent: RebootIntent = { operation: ctx.operation ?? 'manual', bootId: ctx.bootId, at: ctx.host.clock.now(), cordonedHere };
    await ctx.host.writeFileAtomic(intentFile(ctx.stateDir), JSON.stringify(intent), 0o600);
    const r = await ctx.host.exec(['systemctl', 'reboot'], { timeoutMs: ctx.settings.commandTimeoutMs });
    const failure = execFailure(r);
    if (failure !== undefined) {
      await clearIntent(ctx);
      const undone = cordonedHere && ctx.kube !== undefined ? await uncordon(ctx.kube, ctx.nodeName) : 'left as found';
      return { ok: false, message: `${failure.message}; uncordon: ${undone}` };
    }
    return { ok: true, rebooting: true, message: 'reboot requested' };
  },
};

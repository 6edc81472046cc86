import { run, validUnit } from '../host-ops.ts';
import { ActionParamError, stringParam, type ActionContext, type ActionParams, type RemedyAction } from '../types.ts';
import type { RiskLevel } from '../../api/node-remedier.ts';

// restart-unit is a safe action (no permit); these units carry the node's pods and have gated actions of their own.
const GATED_UNITS = new Set(['containerd.service', 'crio.service', 'docker.service', 'cri-docker.service', 'kubelet.service']);

function unitOf(action: string, params: ActionParams, fallback?: string): string {
  const unit = stringParam(action, params, 'unit', fallback);
  if (!validUnit(unit)) throw new ActionParamError(action, 'unit', `not a systemd unit name: ${JSON.stringify(unit)}`);
  const full = unit.includes('.') ? unit : `${unit}.service`;
  if (action === 'restart-unit' && GATED_UNITS.has(full)) {
    throw new ActionParamError(action, 'unit', `${full} is restarted by restart-runtime or restart-kubelet, which the risk gate guards`);
  }
  return full;
}

/** Builds a restart action for one unit; the runtime and kubelet variants fix the default unit. */
export function restartAction(name: string, description: string, defaultUnit: string | undefined, risk: RiskLevel): RemedyAction {
  return {
    name,
    risk,
    description,
    async plan(_ctx: ActionContext, params: ActionParams) {
      try {
        return { action: name, risk: this.risk, steps: [`systemctl restart ${unitOf(name, params, defaultUnit)}`, 'systemctl is-active (expect active)'] };
      } catch (err) {
        return { action: name, risk: this.risk, steps: [], blocked: (err as Error).message };
      }
    },
    async stillNeeded(ctx, params) {
      const unit = unitOf(name, params, defaultUnit);
      const r = await ctx.host.exec(['systemctl', 'show', '--property=LoadState', '--value', unit], { timeoutMs: ctx.settings.commandTimeoutMs });
      if (r.notFound) return { needed: false, why: 'systemctl not found on this host' };
      if (r.stdout.trim() === 'not-found') return { needed: false, why: `${unit} is not installed` };
      return { needed: true, why: `${unit} is loaded` };
    },
    async execute(ctx, params) {
      const unit = unitOf(name, params, defaultUnit);
      await run(ctx, ['systemctl', 'restart', unit]);
      const active = await ctx.host.exec(['systemctl', 'is-active', unit], { timeoutMs: ctx.settings.commandTimeoutMs });
      const state = active.stdout.trim();
      return state === 'active' ? { ok: true, message: `${unit} restarted and active` } : { ok: false, message: `${unit} restarted but is ${state || 'in an unknown state'}` };
    },
  };
}

export const restartUnit = restartAction('restart-unit', 'Restart a systemd unit other than the runtime or kubelet (params.unit)', undefined, 'safe');

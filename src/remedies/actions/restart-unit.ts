import { run, validUnit } from '../host-ops.ts';
import { ActionParamError, stringParam, type ActionContext, type ActionParams, type RemedyAction } from '../types.ts';

function unitOf(action: string, params: ActionParams, fallback?: string): string {
  const unit = stringParam(action, params, 'unit', fallback);
  if (!validUnit(unit)) throw new ActionParamError(action, 'unit', `not a systemd unit name: ${JSON.stringify(unit)}`);
  return unit.includes('.') ? unit : `${unit}.service`;
}

/** Builds a restart action for one unit; the runtime and kubelet variants fix the default unit. */
export function restartAction(name: string, description: string, defaultUnit: string | undefined): RemedyAction {
  return {
    name,
    // Restarting any node service interrupts what depends on it (pods lose their runtime, kubelet re-syncs).
    risk: 'disruptive',
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

export const restartUnit = restartAction('restart-unit', 'Restart a systemd unit (params.unit)', undefined);

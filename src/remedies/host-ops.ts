import type { ActionContext } from './types.ts';
import { execFailure } from '../errors.ts';

/** Runs a host command; non-zero exit, timeout or a missing tool is an error naming the command. */
export async function run(ctx: ActionContext, argv: readonly string[]): Promise<string> {
  const r = await ctx.host.exec(argv, { timeoutMs: ctx.settings.commandTimeoutMs, ...(ctx.signal === undefined ? {} : { signal: ctx.signal }) });
  const failure = execFailure(r);
  if (failure !== undefined) throw failure;
  return r.stdout;
}

export function validUnit(name: string): boolean {
  return /^[A-Za-z0-9:_.@\\-]+$/.test(name) && !name.startsWith('-');
}

import type { ActionContext } from './types.ts';

/** Runs a host command; non-zero exit, timeout or a missing tool is an error naming the command. */
export async function run(ctx: ActionContext, argv: readonly string[]): Promise<string> {
  const r = await ctx.host.exec(argv, { timeoutMs: ctx.settings.commandTimeoutMs, ...(ctx.signal === undefined ? {} : { signal: ctx.signal }) });
  if (r.notFound) throw new Error(`${argv[0]} not found on this host`);
  if (r.timedOut) throw new Error(`${argv.join(' ')} timed out after ${ctx.settings.commandTimeoutMs}ms`);
  if (r.exitCode !== 0) throw new Error(`${argv.join(' ')} exited ${r.exitCode}: ${r.stderr.trim().slice(-300)}`);
  return r.stdout;
}

export function validUnit(name: string): boolean {
  return /^[A-Za-z0-9:_.@\\-]+$/.test(name) && !name.startsWith('-');
}

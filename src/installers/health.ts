// Verification after apply: version probe, then health checks (argv / HTTP GET / unit active),
// retried with an interval.
import type { MachineComponentSpec } from '../api/machine-component.ts';
import { httpGetStatus } from '../host/http.ts';
import { systemctlLive } from './systemd.ts';
import type { InstallContext } from './types.ts';
import { errorMessage, execFailure } from '../errors.ts';
import { compileRe2 } from '../util/re2.ts';

export type VerifyResult = { ok: true; version?: string } | { ok: false; error: string; version?: string };

/** Runs the version probe; undefined when the spec has none. */
export async function probeVersion(ctx: InstallContext, spec: MachineComponentSpec): Promise<{ version?: string; error?: string } | undefined> {
  const probe = spec.versionProbe;
  if (probe === undefined) return undefined;
  const r = await ctx.host.exec(probe.argv, { timeoutMs: probe.timeoutSeconds * 1000 });
  const failure = execFailure(r);
  if (failure !== undefined) return { error: `version probe ${failure.message}` };
  // Manifest patterns are RE2 and run in linear time: a careless one cannot stall the node.
  const m = compileRe2(probe.regex).exec(`${r.stdout}${r.stderr}`);
  if (m === null) return { error: `version probe output does not match /${probe.regex}/: ${JSON.stringify(r.stdout.slice(0, 200))}` };
  return { version: m[1] ?? m[0] };
}

/** True when an installed version string is the spec's version (Debian/RPM revisions and a v prefix allowed). */
export function versionMatches(wanted: string, installed: string): boolean {
  const norm = (v: string): string => v.replace(/^v/, '');
  const w = norm(wanted);
  let i = norm(installed);
  if (!w.includes(':')) i = i.replace(/^[0-9]+:/, '');
  if (i === w) return true;
  // 1.2.3 matches 1.2.3-1 (a package revision), unless the spec names the revision itself.
  return !w.includes('-') && i.lastIndexOf('-') > 0 && i.slice(0, i.lastIndexOf('-')) === w;
}

async function once(ctx: InstallContext, spec: MachineComponentSpec): Promise<string | undefined> {
  const hc = spec.healthCheck;
  if (hc === undefined) return undefined;
  const timeoutMs = hc.timeoutSeconds * 1000;
  if (hc.exec !== undefined) {
    const r = await ctx.host.exec(hc.exec.argv, { timeoutMs });
    const failure = execFailure(r);
    if (failure !== undefined) return `health check ${failure.message}`;
  }
  if (hc.http !== undefined) {
    try {
      const status = await httpGetStatus(hc.http.url, timeoutMs, ctx.signal);
      if (status !== hc.http.expectStatus) return `health check GET ${hc.http.url}: HTTP ${status}, expected ${hc.http.expectStatus}`;
    } catch (err) {
      return `health check GET ${errorMessage(err)}`;
    }
  }
  if (hc.unitActive && spec.unit !== undefined) {
    const r = await systemctlLive(ctx, ['is-active', spec.unit.name], 'health');
    if (r !== 'skipped' && r.exitCode !== 0) return `health check: unit ${spec.unit.name} is ${r.stdout.trim() || 'not active'}`;
  }
  return undefined;
}

export async function verify(ctx: InstallContext, spec: MachineComponentSpec): Promise<VerifyResult> {
  const probed = await probeVersion(ctx, spec);
  if (probed?.error !== undefined) return { ok: false, error: probed.error };
  const version = probed?.version;
  if (version !== undefined && !versionMatches(spec.version, version)) {
    return { ok: false, error: `version probe reports ${version}, expected ${spec.version}`, version };
  }
  const hc = spec.healthCheck;
  if (hc === undefined) return { ok: true, ...(version === undefined ? {} : { version }) };
  let error: string | undefined;
  for (let attempt = 0; attempt <= hc.retries; attempt++) {
    if (attempt > 0) await ctx.host.clock.sleep(hc.intervalSeconds * 1000, ctx.signal);
    error = await once(ctx, spec);
    if (error === undefined) return { ok: true, ...(version === undefined ? {} : { version }) };
    ctx.log.debug({ component: spec.component, attempt, err: error }, 'Health check failed');
  }
  return { ok: false, error: `${error} (after ${hc.retries + 1} attempts)`, ...(version === undefined ? {} : { version }) };
}

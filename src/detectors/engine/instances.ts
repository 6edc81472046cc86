import path from 'node:path';
import type { DetectorsConfig, MonitorsConfig } from '../../config/schema.ts';
import { ConfigError, errorMessage } from '../../errors.ts';
import type { Host } from '../../host/host.ts';
import { readLocalText } from '../../host/local.ts';
import { detectors } from '../index.ts';
import kernelMonitor from '../npd/builtin/kernel-monitor.json' with { type: 'json' };
import readonlyMonitor from '../npd/builtin/readonly-monitor.json' with { type: 'json' };
import { parseCustomPluginMonitor, parseSystemLogMonitor } from '../npd/config.ts';
import { createCustomPluginMonitor } from '../npd/custom-plugin-monitor.ts';
import type { Recovery } from '../npd/log-rules.ts';
import { compileRe2 } from '../../util/re2.ts';
import { createSystemLogMonitor } from '../npd/system-log-monitor.ts';
import type { DetectorDefinition, DetectorInstance, NpdProblem } from './types.ts';

// NPD's own files, shipped inside the binary so that a node without /etc/kubenode still gets them.
const BUILTIN_MONITORS: Record<string, unknown> = {
  'kernel-monitor.json': kernelMonitor,
  'readonly-monitor.json': readonlyMonitor,
};

/** A monitor file: `builtin:NAME`, an absolute local path, or an absolute host path (read under --root). */
export interface MonitorRef {
  file: string;
  from: 'local' | 'host';
}

async function readMonitor(host: Host, ref: MonitorRef): Promise<{ name: string; label: string; text: string }> {
  if (ref.file.startsWith('builtin:')) {
    const key = ref.file.slice('builtin:'.length);
    const doc = BUILTIN_MONITORS[key];
    if (doc === undefined) {
      throw new ConfigError(ref.file, '', `no embedded monitor of that name; embedded: ${Object.keys(BUILTIN_MONITORS).map((k) => `builtin:${k}`).join(', ')}`);
    }
    return { name: path.basename(key, '.json'), label: ref.file, text: JSON.stringify(doc) };
  }
  const name = path.basename(ref.file, '.json');
  try {
    if (ref.from === 'local') return { name, label: ref.file, text: await readLocalText(ref.file) };
    return { name, label: host.path(ref.file), text: await host.readText(ref.file) };
  } catch (err) {
    throw new ConfigError(ref.file, '', `cannot read monitor config: ${errorMessage(err)}`);
  }
}

function recoveryFor(monitors: MonitorsConfig): Recovery {
  const expiryMs: Record<string, number> = { ...monitors.conditionExpiry };
  // The schema checked every pattern at load (Re2Pattern), so these compile.
  const patterns = monitors.recoveryPatterns.map((p) => ({ condition: p.condition, regex: compileRe2(p.pattern) }));
  return { expiryMs, patterns };
}

function npdProblems(rules: readonly { type: string; reason: string; condition?: string | undefined }[]): NpdProblem[] {
  return rules.map((r) => (r.type === 'permanent' && r.condition !== undefined ? { reason: r.reason, condition: r.condition } : { reason: r.reason }));
}

/** The detectors' own slices of the agent config; the composition root cuts them. */
export interface DetectionSlice {
  detectors: DetectorsConfig;
  monitors: MonitorsConfig;
}

export interface InstanceOptions {
  systemLog: MonitorRef[];
  customPlugin: MonitorRef[];
}

/** Every enabled detector: the built-in ones, then one per NPD monitor file. Throws ConfigError on a bad file. */
export async function buildInstances(host: Host, config: DetectionSlice, options: InstanceOptions): Promise<DetectorInstance[]> {
  const instances: DetectorInstance[] = [];
  const taken = new Set<string>();
  const add = (instance: DetectorInstance, label: string): void => {
    if (taken.has(instance.name)) throw new ConfigError(label, '', `a detector named ${JSON.stringify(instance.name)} is already configured; monitor files must have distinct names`);
    taken.add(instance.name);
    instances.push(instance);
  };

  for (const [name, def] of Object.entries(detectors as Record<string, DetectorDefinition>)) {
    const settings = (config.detectors as Record<string, { enabled: boolean; interval: number; timeout: number }>)[name];
    if (settings === undefined || !settings.enabled) continue;
    add(
      {
        name,
        logDerived: def.logDerived ?? false,
        metricsReporting: true,
        settings: {
          enabled: true,
          intervalMs: settings.interval,
          timeoutMs: settings.timeout,
        },
        create: (ctx) => def.create(settings as never, ctx),
      },
      `detectors.${name}`,
    );
  }

  const recovery = recoveryFor(config.monitors);
  for (const ref of options.systemLog) {
    const { name, label, text } = await readMonitor(host, ref);
    const monitor = parseSystemLogMonitor(label, text);
    add(
      {
        name,
        logDerived: true,
        metricsReporting: monitor.config.metricsReporting ?? true,
        problems: npdProblems(monitor.config.rules),
        // Log monitors follow their log in the daemon; the interval only paces expiry checks.
        settings: { enabled: true, intervalMs: 60_000, timeoutMs: 20_000 },
        create: (ctx) => createSystemLogMonitor(monitor, recovery, ctx),
      },
      label,
    );
  }
  for (const ref of options.customPlugin) {
    const { name, label, text } = await readMonitor(host, ref);
    const monitor = parseCustomPluginMonitor(label, text);
    const waves = Math.ceil(monitor.config.rules.length / monitor.concurrency);
    const longest = Math.max(0, ...monitor.ruleTimeoutsMs);
    add(
      {
        name,
        logDerived: false,
        metricsReporting: monitor.config.metricsReporting ?? true,
        problems: npdProblems(monitor.config.rules),
        settings: { enabled: true, intervalMs: monitor.invokeIntervalMs, timeoutMs: waves * longest + 5_000 },
        create: (ctx) => createCustomPluginMonitor(monitor, config.monitors.pluginWorkingDir, ctx),
      },
      label,
    );
  }
  return instances;
}

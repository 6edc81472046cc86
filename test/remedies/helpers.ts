import { readFileSync, existsSync } from 'node:fs';
import { pino } from 'pino';
import type { Clock } from '../../src/host/clock.ts';
import { createHost, type Host } from '../../src/host/host.ts';
import type { ActionContext, ActionSettings } from '../../src/remedies/types.ts';
import type { KubeApi } from '../../src/remedies/kube-api.ts';
import { RiskConfig } from '../../src/risk/config.ts';
import type { RiskGate } from '../../src/risk/gate.ts';
import { createRiskGate } from '../../src/risk/index.ts';
import { TempRoot } from '../helpers/host-root.ts';
import { decodeSection } from '../../src/config/decode.ts';

export const silent = pino({ level: 'silent' });

export const settings: ActionSettings = { commandTimeoutMs: 5000, drainTimeoutMs: 5000, cleanPaths: [], journalMaxSize: '500M' };

/**
 * A host root whose systemctl, crictl, journalctl and sync only record their argv in /calls.log:
 * the Host seam keeps every action off the machine running the test.
 */
export function recordingRoot(options: { unitState?: string; bootId?: string } = {}): TempRoot & { calls(): string[] } {
  const root = new TempRoot() as TempRoot & { calls(): string[] };
  const log = root.path('/calls.log');
  const record = `echo "$(basename "$0") $*" >> '${log}'`;
  root.script('/usr/bin/systemctl', `${record}\ncase "$1" in\n  is-active) echo ${options.unitState ?? 'active'} ;;\n  show) echo loaded ;;\nesac\nexit 0`);
  root.script('/usr/bin/crictl', `${record}\nexit 0`);
  root.script('/usr/bin/journalctl', `${record}\nexit 0`);
  root.script('/usr/bin/sync', `${record}\nexit 0`);
  root.write('/proc/sys/vm/drop_caches', '0\n');
  root.write('/proc/sys/kernel/random/boot_id', `${options.bootId ?? 'boot-1'}\n`);
  root.calls = () => (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n').filter((l) => l !== '') : []);
  return root;
}

export function actionContext(root: TempRoot, extra: { clock?: Clock; kube?: KubeApi; nodeName?: string; bootId?: string; host?: Host } = {}): ActionContext {
  const host = extra.host ?? createHost({ root: root.dir, ...(extra.clock === undefined ? {} : { clock: extra.clock }) });
  return {
    host,
    log: silent,
    nodeName: extra.nodeName ?? 'node-0',
    stateDir: '/var/lib/kubenode',
    bootId: extra.bootId ?? 'boot-1',
    settings,
    ...(extra.kube === undefined ? {} : { kube: extra.kube }),
  };
}

/** The one risk gate as the agent builds it, from a partial `risk:` section. */
export function riskGate(host: Host, risk: Record<string, unknown> = {}, kube?: KubeApi): RiskGate {
  return createRiskGate({ host, config: decodeSection('test', RiskConfig, risk), stateDir: '/var/lib/kubenode', log: silent, ...(kube === undefined ? {} : { kube }) });
}

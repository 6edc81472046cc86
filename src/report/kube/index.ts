// Everything the agent reports to the cluster, behind one small interface the
// daemon feeds. Construction loads the kubeconfig but talks to no apiserver:
// an unreachable apiserver never delays start-up or detection; every write is
// queued or coalesced and retried in the background.
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import type { MachinePhase } from '../../api/machine.ts';
import type { Clock } from '../../host/clock.ts';
import type { Host } from '../../host/host.ts';
import { createKubeClient, loadKubeConfig, type KubeOptions } from '../../kube/client.ts';
import type { Condition, ProblemEvent } from '../../types.ts';
import { NodeEventsReporter } from './events.ts';
import type { WriteObserver } from './latest-writer.ts';
import { LeaseHeartbeat } from './lease.ts';
import { MachineStatusReporter } from './machine-status.ts';
import { NodeConditionsReporter } from './node-conditions.ts';
import { labelValue } from '../label-value.ts';

export interface ClusterReporterOptions {
  kube: KubeOptions;
  nodeName: string;
  host: Host;
  log: Logger;
  agentVersion: string;
  clock?: Clock;
  /** Where to count apiserver writes (kubenode_apiserver_writes_total); optional. */
  registry?: Registry;
  /** Off: no Machine status (a cluster without the kubenode.io CRDs). Default on. */
  machineStatus?: boolean;
}

export interface ClusterReporter {
  /** A detector's full current conditions, as given to ConditionStore.update (also for restored state at start). */
  setConditions(detector: string, conditions: readonly Condition[]): void;
  /** Events a detector raised; returns at once. */
  recordEvents(detector: string, events: readonly ProblemEvent[]): void;
  /** Machine phase; undefined derives it from the conditions (Degraded while any is True, else Ready). */
  setPhase(phase: MachinePhase | undefined): void;
  /** Whether this agent's Lease has been written (created or renewed) since it started. */
  leaseRenewed(): boolean;
  /** Stops every loop; pending writes are abandoned (the next start rewrites the full state). */
  stop(): Promise<void>;
}

/** One counter for every writer; cheap, and the only way to see an agent cut off from its apiserver. */
export function writeMetrics(registry: Registry): WriteObserver {
  const writes = new Counter({
    name: 'kubenode_apiserver_writes_total',
    help: 'Apiserver writes attempted by the cluster reporters, by writer and result.',
    labelNames: ['writer', 'result'],
    registers: [registry],
  });
  return (writer, ok) => writes.inc({ writer: labelValue(writer), result: ok ? 'ok' : 'error' });
}

export async function startClusterReporter(o: ClusterReporterOptions): Promise<ClusterReporter> {
  const kc = await loadKubeConfig(o.kube);
  const client = createKubeClient(kc);
  const clock = o.clock ?? o.host.clock;
  const log = o.log.child({ component: 'cluster-report', node: o.nodeName });
  const observe = o.registry === undefined ? undefined : writeMetrics(o.registry);
  const common = { client, nodeName: o.nodeName, clock, observe };
  const conditions = new NodeConditionsReporter({ ...common, log: log.child({ writer: 'node-conditions' }) });
  const events = new NodeEventsReporter({ ...common, log: log.child({ writer: 'events' }) });
  const lease = new LeaseHeartbeat({ ...common, log: log.child({ writer: 'lease' }) });
  const machine = o.machineStatus === false ? undefined : new MachineStatusReporter({ ...common, host: o.host, agentVersion: o.agentVersion, log: log.child({ writer: 'machine-status' }) });
  conditions.start();
  lease.start();
  await machine?.start();
  log.info({ server: client.server }, 'Reporting to the cluster');
  return {
    setConditions(detector, list) {
      conditions.setDetector(detector, list);
      machine?.setConditions(conditions.current());
    },
    recordEvents(detector, list) {
      for (const event of list) events.record(detector, event);
    },
    setPhase(phase) {
      machine?.setPhase(phase);
    },
    leaseRenewed: () => lease.stats.renewals + lease.stats.creates > 0,
    async stop() {
      await Promise.all([conditions.stop(), events.stop(), lease.stop(), machine?.stop()]);
      client.close();
    },
  };
}

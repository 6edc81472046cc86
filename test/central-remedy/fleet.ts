// The agents of the central-remedy tests, played by the test: each renews its kubenode-agent Lease
// while alive; a "dead" one stops and its Node goes Ready=Unknown (written as the node lifecycle
// controller would); when ipmi_sim's chassis log shows its power back on, it boots: a new boot ID
// in its Machine's status, its Lease renewed, its Node Ready.
import { randomUUID } from 'node:crypto';
import { agentLeaseName, microTime } from '../../src/report/kube/lease.ts';
import type { Cluster } from '../harness/cluster.ts';
import { labelValueOf, NODE_LABEL } from '../../src/api/common.ts';
import { must } from '../controller/helpers.ts';
import { MERGE_PATCH } from '../helpers/kube-api.ts';
import type { BmcSim } from './bmc.ts';

export const OPS = '/apis/kubenode.io/v1alpha1/remedyoperations';
export const LEASE_S = 3;
export const TAINT = 'node.kubenode.io/unreachable';

export interface Op {
  metadata: { name: string; labels?: Record<string, string> };
  spec: { node: string; action: string; step: number; remedier?: string; actor?: string };
  status?: { phase?: string; result?: string; message?: string; startTime?: string; endTime?: string; gate?: { gate: string; allowed: boolean } };
}
export interface NodeObj {
  metadata: { name: string; annotations?: Record<string, string> };
  spec?: { unschedulable?: boolean; taints?: { key: string; effect: string }[] };
}

export const ops = async (cluster: Cluster, node?: string): Promise<Op[]> =>
  (await must<{ items: Op[] }>(cluster, 'GET', `${OPS}${node === undefined ? '' : `?labelSelector=${NODE_LABEL}=${labelValueOf(node)}`}`)).items.filter((o) => node === undefined || o.spec.node === node);

/** The agents, played by the test. */
export class Fleet {
  readonly dead = new Set<string>();
  readonly boots = new Map<string, number[]>();
  readonly cycles = new Map<string, number[]>();
  #stop = false;
  #loop: Promise<void> | undefined;
  /** The pass under way: its renewals were sent for the machines alive when it began. */
  #passing: Promise<void> = Promise.resolve();
  #seen = 0;
  readonly #cluster: Cluster;
  readonly #sim: BmcSim;
  readonly #machines: string[] = [];
  /** Dead machines that stay dead after a power cycle (a board that never comes back). */
  readonly neverBoot = new Set<string>();

  constructor(cluster: Cluster, sim: BmcSim) {
    this.#cluster = cluster;
    this.#sim = sim;
  }

  async add(name: string, pool: string, bmc: Record<string, unknown> | undefined): Promise<void> {
    await must(this.#cluster, 'POST', '/apis/kubenode.io/v1alpha1/machines', { apiVersion: 'kubenode.io/v1alpha1', kind: 'Machine', metadata: { name, labels: { pool } }, spec: bmc === undefined ? {} : { bmc } });
    await this.#bootId(name);
    await must(this.#cluster, 'POST', '/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name, labels: { pool } } });
    await this.ready(name, 'True');
    await must(this.#cluster, 'POST', '/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases', {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: agentLeaseName(name) },
      spec: { holderIdentity: name, leaseDurationSeconds: LEASE_S, renewTime: microTime(Date.now()) },
    });
    this.#machines.push(name);
  }

  async #bootId(name: string): Promise<void> {
    const r = await this.#cluster.request('PATCH', `/apis/kubenode.io/v1alpha1/machines/${name}/status`, {
      body: { status: { node: { kernelVersion: '6.1.0-28-amd64', osImage: 'Debian GNU/Linux 12 (bookworm)', architecture: 'amd64', cpus: 4, memoryBytes: 8589934592, bootId: randomUUID() } } },
      headers: MERGE_PATCH,
    });
    if (r.status !== 200) throw new Error(`machine status: ${r.status} ${r.body}`);
  }

  async ready(name: string, status: 'True' | 'Unknown'): Promise<void> {
    const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    const r = await this.#cluster.request('PATCH', `/api/v1/nodes/${name}/status`, {
      body: { status: { conditions: [{ type: 'Ready', status, reason: status === 'True' ? 'KubeletReady' : 'NodeStatusUnknown', message: status === 'True' ? 'kubelet is posting ready status' : 'Kubelet stopped posting node status.', lastHeartbeatTime: now, lastTransitionTime: now }] } },
      headers: MERGE_PATCH,
    });
    if (r.status !== 200) throw new Error(`node status: ${r.status} ${r.body}`);
  }

  /** A dead machine that comes back on its own (someone fixed it by hand): a new boot, the agent renews. */
  async revive(name: string): Promise<void> {
    await this.#bootId(name);
    this.dead.delete(name);
    this.neverBoot.delete(name);
    await this.#renew(name);
    await this.ready(name, 'True');
  }

  /**
   * The agent dies: no renewal lands after its Node goes Unknown. The pass under way may still be
   * renewing its Lease (under load a pass takes seconds); landing after the death, that renewal
   * moves when the node went down (a new episode) or, later still, brings it back mid-ladder, which
   * ends the ladder and starts another. So the death waits for that pass.
   */
  async kill(name: string): Promise<void> {
    this.dead.add(name);
    await this.#passing;
    await this.ready(name, 'Unknown');
  }

  start(): void {
    this.#loop = (async () => {
      while (!this.#stop) {
        this.#passing = this.#pass().catch(() => undefined);
        await this.#passing;
        await new Promise((r) => setTimeout(r, 700));
      }
    })();
  }

  async #pass(): Promise<void> {
    const entries = this.#sim.log();
    for (const e of entries.slice(this.#seen)) {
      if (e.op !== 'set' || e.parm !== 'power') continue;
      if (e.value === '0') this.cycles.set(e.machine, [...(this.cycles.get(e.machine) ?? []), e.at]);
      if (e.value === '1' && this.dead.has(e.machine) && !this.neverBoot.has(e.machine)) {
        // The machine boots: a new boot ID, then the agent renews and the kubelet reports Ready.
        await new Promise((r) => setTimeout(r, 300));
        await this.#bootId(e.machine);
        this.dead.delete(e.machine);
        await this.#renew(e.machine);
        await this.ready(e.machine, 'True');
        this.boots.set(e.machine, [...(this.boots.get(e.machine) ?? []), Date.now()]);
      }
    }
    this.#seen = entries.length;
    await Promise.all(this.#machines.filter((m) => !this.dead.has(m)).map((m) => this.#renew(m)));
  }

  async #renew(name: string): Promise<void> {
    await this.#cluster.request('PATCH', `/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${agentLeaseName(name)}`, {
      body: { spec: { renewTime: microTime(Date.now()), leaseDurationSeconds: LEASE_S } },
      headers: MERGE_PATCH,
    });
  }

  async stop(): Promise<void> {
    this.#stop = true;
    await this.#loop;
  }
}

export async function remedier(cluster: Cluster, name: string, spec: Record<string, unknown>): Promise<void> {
  await must(cluster, 'POST', '/apis/kubenode.io/v1alpha1/noderemediers', { apiVersion: 'kubenode.io/v1alpha1', kind: 'NodeRemedier', metadata: { name }, spec: { nodeSelector: { matchLabels: { pool: name } }, ...spec } });
}

export const central = (steps: { action: string; timeout?: string }[]) => ({ central: { unreachableFor: '10s', steps } });


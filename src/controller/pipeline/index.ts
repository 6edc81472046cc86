// The pipeline controller's wiring inside `kubenode-agent controller --pipelines`: watches of the
// Releases, ReleasePipelines, ReleaseApprovals and member Secrets of the management cluster, one
// work queue over the Releases, and the member clusters' clients and the watches of the sets
// whose rollouts releases follow (their events queue those releases). Off by default: a controller
// inside a member cluster must never start writing into other clusters because a Secret showed up.
//
// The API access this adds (deploy/controller/rbac.yaml, management cluster only):
//   kubenode.io   releases                 get list watch
//   kubenode.io   releases/status          get update patch
//   kubenode.io   releasepipelines         get list watch
//   kubenode.io   releasepipelines/status  patch
//   kubenode.io   releaseapprovals         get list watch create
//   ""            secrets (controller namespace, label kubenode.io/member-cluster)   get list watch
// and in each member cluster, through its kubeconfig: machinecomponentsets get list watch patch
// (deploy/controller/pipeline-rbac.yaml, kubenode:pipeline-member).
import type { KubeConfig } from '@kubernetes/client-node';
import { MEMBER_CLUSTER_LABEL } from '../../api/release-pipeline.ts';
import type { Clock } from '../../host/clock.ts';
import type { KubeClient, RequestObserver } from '../../kube/client.ts';
import type { Logger } from '../../log.ts';
import { version } from '../../version.ts';
import type { Informer, KubeObject, ResourceRef } from '../../watch/informer.ts';
import type { EventRecorder } from '../events.ts';
import { WorkQueue } from '../queue.ts';
import { MemberClusters, type SecretObject } from './members.ts';
import { ReleaseReconciler, type ApprovalObject, type PipelineCaches, type PipelineObject, type ReleaseObject } from './reconciler.ts';

export interface PipelineSettings {
  /**
   * A member not heard from for this long (no answer, no watch event) answers /readyz before it
   * is used, and a running stage's members are asked this often: how soon a stopped member
   * apiserver is found Unknown. Default 10 s.
   */
  probeIntervalMs?: number;
  /** Deadline of one request to a member. Default 5 s. */
  memberTimeoutMs?: number;
}

export interface PipelineControllerOptions extends PipelineSettings {
  client: KubeClient;
  kubeConfig: KubeConfig;
  namespace: string;
  events: EventRecorder;
  clock: Clock;
  log: Logger;
  mayWrite: () => boolean;
  workers: number;
  /** Makes an informer (the caller starts and stops them with its others). */
  informer: <T extends KubeObject>(resource: ResourceRef, extra?: { labelSelector?: string }) => Informer<T>;
  observeMember?: RequestObserver;
}

export interface PipelineController {
  queue: WorkQueue;
  members: MemberClusters;
  /** Queues every release (after the caches synced). */
  all(): void;
}

const KN = { group: 'kubenode.io', version: 'v1alpha1' };

export function createPipelineController(o: PipelineControllerOptions, synced: () => boolean): PipelineController {
  const caches: PipelineCaches = {
    releases: o.informer<ReleaseObject>({ ...KN, plural: 'releases' }),
    pipelines: o.informer<PipelineObject>({ ...KN, plural: 'releasepipelines' }),
    approvals: o.informer<ApprovalObject>({ ...KN, plural: 'releaseapprovals' }),
  };
  const secrets = o.informer<SecretObject>({ group: '', version: 'v1', plural: 'secrets', namespace: o.namespace }, { labelSelector: MEMBER_CLUSTER_LABEL });
  const members = new MemberClusters({
    secrets,
    clock: o.clock,
    probeIntervalMs: o.probeIntervalMs ?? 10_000,
    requestTimeoutMs: o.memberTimeoutMs ?? 5_000,
    userAgent: `kubenode-agent/${version} pipeline-controller`,
    log: o.log.child({ component: 'member-watch' }),
    ...(o.observeMember === undefined ? {} : { observe: o.observeMember }),
    onSetChange: (_cluster, set) => add(reconciler.releasesOfSet(set)),
  });
  const reconciler = new ReleaseReconciler({ client: o.client, caches, members, events: o.events, clock: o.clock, log: o.log, mayWrite: o.mayWrite });
  const queue = new WorkQueue({ workers: o.workers, log: o.log.child({ component: 'release-queue' }), handle: (key) => reconciler.reconcile(key) });
  const add = (names: readonly string[]): void => {
    if (synced()) for (const n of names) queue.add(n);
  };
  const all = (): void => add([...caches.releases.snapshot().keys()]);
  caches.releases.on((e) => {
    if (e.type === 'synced') return all();
    if (e.type === 'delete') {
      queue.forget(e.object.metadata.name);
      members.want(e.object.metadata.name, []);
      return add(reconciler.releasesOfSet(e.object.spec.componentSet));
    }
    // Our own status writes come back too: only spec (state: Pause, Stop, Run) matters, and a release that ends frees its set.
    const ended = e.type === 'update' && e.old.status?.phase !== e.object.status?.phase;
    if (e.type === 'update' && e.old.metadata.generation === e.object.metadata.generation && !ended) return;
    add([e.object.metadata.name]);
    if (ended) add(reconciler.releasesOfSet(e.object.spec.componentSet));
  });
  caches.pipelines.on((e) => (e.type === 'synced' ? all() : add(reconciler.releasesOn(e.object.metadata.name))));
  caches.approvals.on((e) => (e.type === 'synced' ? all() : add([e.object.spec.release])));
  secrets.on((e) => (e.type === 'synced' ? all() : add(reconciler.releasesOn(undefined))));
  return { queue, members, all };
}

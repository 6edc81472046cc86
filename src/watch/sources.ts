// The two watches an agent in a cluster keeps: its own Machine (field selector on the name, the
// only field custom resources can be selected by besides the namespace) and its MachineComponents
// (label kubenode.io/machine=labelValueOf(NODE): the name, or for one too long a shortened form).
import type { KubeConfig } from '@kubernetes/client-node';
import type { KubeClient } from '../kube/client.ts';
import type { Logger } from '../log.ts';
import { GROUP, labelValueOf, MACHINE_LABEL, VERSION } from '../api/common.ts';
import { Informer, type InformerOptions, type KubeObject } from './informer.ts';

export { GROUP, MACHINE_LABEL, VERSION };

type Tuning = Partial<Pick<InformerOptions, 'resyncMs' | 'stallMs' | 'backoffMs' | 'maxBackoffMs' | 'listTimeoutMs' | 'clock'>>;

export function machineInformer<T extends KubeObject = KubeObject>(client: KubeClient, kubeConfig: KubeConfig, nodeName: string, log: Logger, tuning: Tuning = {}): Informer<T> {
  return new Informer<T>({
    client,
    kubeConfig,
    resource: { group: GROUP, version: VERSION, plural: 'machines' },
    fieldSelector: `metadata.name=${nodeName}`,
    log: log.child({ component: 'watch', resource: 'machines' }),
    ...tuning,
  });
}

export function machineComponentInformer<T extends KubeObject = KubeObject>(client: KubeClient, kubeConfig: KubeConfig, nodeName: string, log: Logger, tuning: Tuning = {}): Informer<T> {
  return new Informer<T>({
    client,
    kubeConfig,
    resource: { group: GROUP, version: VERSION, plural: 'machinecomponents' },
    labelSelector: `${MACHINE_LABEL}=${labelValueOf(nodeName)}`,
    log: log.child({ component: 'watch', resource: 'machinecomponents' }),
    ...tuning,
  });
}

// What the tests against the real apiserver say to it: the API paths (from the kinds in src/api),
// the merge-patch header, and the view of a status condition they read back.
import { API_GROUP_VERSION, kinds, type KindName } from '../../src/api/index.ts';

export const KUBENODE_API = `/apis/${API_GROUP_VERSION}`;
const collection = (kind: KindName): string => `${KUBENODE_API}/${kinds[kind].plural}`;
export const MACHINES_PATH = collection('Machine');
export const MC_PATH = collection('MachineComponent');
export const MCS_PATH = collection('MachineComponentSet');
export const CSRS_PATH = '/apis/certificates.k8s.io/v1/certificatesigningrequests';
export const NODE_LEASES_PATH = '/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases';

/** Headers for a JSON merge patch (RFC 7386), the patch the tests send. */
export const MERGE_PATCH = { 'content-type': 'application/merge-patch+json' } as const;

export interface Condition {
  type: string;
  status: string;
  reason: string;
  message: string;
}

/** The condition of that type in an object's status, if it has one. */
export const conditionOf = (obj: { status?: { conditions?: readonly Condition[] } } | undefined, type: string): Condition | undefined =>
  obj?.status?.conditions?.find((c) => c.type === type);

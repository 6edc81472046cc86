// What `kubeadm init` sets up for nodes to join with a bootstrap token, done through the API of a
// test cluster: the token Secret in kube-system, the kube-public/cluster-info ConfigMap (which
// kube-controller-manager's bootstrap signer then signs with every signing token). Who may read it
// and create CSRs is deploy/rbac/bootstrap-rbac.yaml, which tests apply as users do.
// Start the cluster with BOOTSTRAP_APISERVER_ARGS and the controller manager with
// BOOTSTRAP_CONTROLLERS for the token authenticator and the signer to run.
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import type { Cluster } from './cluster.ts';
import { DEFAULT_CONTROLLERS } from './controller-manager.ts';

export const BOOTSTRAP_APISERVER_ARGS = ['--enable-bootstrap-token-auth=true'] as const;
export const BOOTSTRAP_CONTROLLERS = [...DEFAULT_CONTROLLERS, 'bootstrap-signer-controller', 'token-cleaner-controller'] as const;
/** The extra group kubenode's tokens carry, as the controller's CSR approver expects. */
export const KUBENODE_BOOTSTRAP_GROUP = 'system:bootstrappers:kubenode';

export interface BootstrapToken {
  id: string;
  secret: string;
  /** id.secret, as `join --token` takes it. */
  token: string;
}

export interface BootstrapTokenOptions {
  /** RFC 3339 expiration; the token cleaner deletes the Secret after it. */
  expiration?: Date;
  /** auth-extra-groups; default [KUBENODE_BOOTSTRAP_GROUP]. */
  groups?: readonly string[];
  /** usage-bootstrap-signing; default true (the signer signs cluster-info with it). */
  signing?: boolean;
}

const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
const randomToken = (n: number): string => [...randomBytes(n)].map((b) => alphabet[b % alphabet.length]).join('');

/** sha256:<hex> of the CA's SubjectPublicKeyInfo, as `kubeadm token create --print-join-command` prints it. */
export function caCertHash(caPem: Buffer | string): string {
  const spki = new X509Certificate(caPem).publicKey.export({ type: 'spki', format: 'der' });
  return `sha256:${createHash('sha256').update(spki).digest('hex')}`;
}

async function must(cluster: Cluster, method: string, path: string, body: unknown): Promise<void> {
  const res = await cluster.request(method, path, { body });
  if (res.status >= 300 && res.status !== 409) throw new Error(`${method} ${path}: ${res.status} ${res.body}`);
}

export async function createBootstrapToken(cluster: Cluster, options: BootstrapTokenOptions = {}): Promise<BootstrapToken> {
  const id = randomToken(6);
  const secret = randomToken(16);
  const stringData: Record<string, string> = {
    'token-id': id,
    'token-secret': secret,
    'usage-bootstrap-authentication': 'true',
    'usage-bootstrap-signing': options.signing === false ? 'false' : 'true',
    'auth-extra-groups': (options.groups ?? [KUBENODE_BOOTSTRAP_GROUP]).join(','),
  };
  if (options.expiration !== undefined) stringData.expiration = options.expiration.toISOString().replace(/\.\d{3}Z$/, 'Z');
  await must(cluster, 'POST', '/api/v1/namespaces/kube-system/secrets', {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: `bootstrap-token-${id}`, namespace: 'kube-system' },
    type: 'bootstrap.kubernetes.io/token',
    stringData,
  });
  return { id, secret, token: `${id}.${secret}` };
}

/** The cluster-info ConfigMap as kubeadm publishes it (the RBAC to read it is deploy/rbac/bootstrap-rbac.yaml). Idempotent. */
export async function publishClusterInfo(cluster: Cluster, server = cluster.server): Promise<void> {
  const kubeconfig = [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: ""',
    '  cluster:',
    `    certificate-authority-data: ${cluster.ca.toString('base64')}`,
    `    server: ${server}`,
    'contexts: []',
    'users: []',
    '',
  ].join('\n');
  await must(cluster, 'POST', '/api/v1/namespaces/kube-public/configmaps', {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'cluster-info', namespace: 'kube-public' },
    data: { kubeconfig },
  });
}

/** Waits until the bootstrap signer has signed cluster-info with the token (it runs on changes and resyncs). */
export async function waitForClusterInfoSignature(cluster: Cluster, id: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await cluster.request('GET', '/api/v1/namespaces/kube-public/configmaps/cluster-info');
    if (res.status === 200 && (JSON.parse(res.body) as { data?: Record<string, string> }).data?.[`jws-kubeconfig-${id}`] !== undefined) return;
    if (Date.now() > deadline) throw new Error(`cluster-info not signed for token ${id} within ${timeoutMs}ms: ${res.status} ${res.body.slice(0, 300)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

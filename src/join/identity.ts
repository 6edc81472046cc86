// An agent's identity on disk and how it gets one: a CertificateSigningRequest for
// kubenode:agent:<node>, approved by the controller and signed by kube-controller-manager.
// The kubeconfig names the certificate by a path relative to itself, so one layout works under
// any --root, and client-node reads the file on every request: rotation swaps the file and the
// running agent's next request uses the new certificate.
import { createPublicKey, X509Certificate } from 'node:crypto';
import path from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { stringify as yamlStringify } from 'yaml';
import { generateNameOf } from '../api/common.ts';
import { errorMessage } from '../errors.ts';
import type { Clock } from '../host/clock.ts';
import type { Host } from '../host/host.ts';
import { createKubeClient, KubeApiError, kubeModule, type KubeClient } from '../kube/client.ts';
import { AGENT_GROUP, AGENT_USER_PREFIX, buildCsr, CLIENT_SIGNER, generateAgentKey } from './csr.ts';
import { JoinRefusedError } from './errors.ts';

export const DEFAULT_KUBECONFIG = '/etc/kubenode/kubeconfig';
const CSR_PATH = '/apis/certificates.k8s.io/v1/certificatesigningrequests';

/** Where the certificate and key (one PEM, mode 0600) of a kubeconfig live: pki/ next to it. */
export function credentialPath(kubeconfigPath: string): string {
  return path.posix.join(path.posix.dirname(kubeconfigPath), 'pki', 'kubenode-agent-client-current.pem');
}

export interface Issued {
  certPem: string;
  keyPem: string;
  csrName: string;
  notBefore: number;
  notAfter: number;
}

interface Csr {
  metadata: { name: string };
  status?: { certificate?: string; conditions?: { type: string; status?: string; reason?: string; message?: string }[] };
}

/** A client for the cluster with a trusted CA and, for the bootstrap, a bearer token. */
export async function bootstrapClient(server: string, caPem: string, token: string, timeoutMs: number): Promise<KubeClient> {
  const k8s = await kubeModule();
  const kc = new k8s.KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'cluster', server, caData: Buffer.from(caPem).toString('base64') }],
    users: [{ name: 'bootstrap', token }],
    contexts: [{ name: 'bootstrap', cluster: 'cluster', user: 'bootstrap' }],
    currentContext: 'bootstrap',
  });
  return createKubeClient(kc, { timeoutMs });
}

/** The client of an agent's own kubeconfig. */
export function identityClient(kc: KubeConfig, timeoutMs: number): KubeClient {
  return createKubeClient(kc, { timeoutMs });
}

export interface RequestOptions {
  clock: Clock;
  /** How long to wait for approval and signing. */
  timeoutMs: number;
  pollMs?: number;
  /** Stops waiting (the agent is stopping). */
  signal?: AbortSignal;
}

/** Sends a CSR for the node and waits for its certificate; JoinRefusedError when refused, denied or not signed in time. */
export async function requestCertificate(client: KubeClient, nodeName: string, options: RequestOptions): Promise<Issued> {
  const key = generateAgentKey();
  const cn = `${AGENT_USER_PREFIX}${nodeName}`;
  const body = {
    apiVersion: 'certificates.k8s.io/v1',
    kind: 'CertificateSigningRequest',
    metadata: { generateName: generateNameOf(`kubenode-agent-${nodeName}`) },
    spec: { request: Buffer.from(buildCsr(key.privateKey, cn, AGENT_GROUP)).toString('base64'), signerName: CLIENT_SIGNER, usages: ['client auth'] },
  };
  let created: Csr;
  try {
    created = await client.request<Csr>('POST', CSR_PATH, { body });
  } catch (err) {
    const kind = err instanceof KubeApiError ? err.kind : 'other';
    const why =
      kind === 'unauthorized' ? 'the apiserver does not accept these credentials (a bootstrap token that is unknown or expired?)'
        : kind === 'forbidden' ? 'these credentials may not create CertificateSigningRequests (RBAC)'
          : errorMessage(err);
    throw new JoinRefusedError(`creating the CertificateSigningRequest for ${cn} failed: ${why}`, { cause: err });
  }
  const name = created.metadata.name;
  const deadline = options.clock.now() + options.timeoutMs;
  for (let csr = created; ; ) {
    const conditions = csr.status?.conditions ?? [];
    const refused = conditions.find((c) => (c.type === 'Denied' || c.type === 'Failed') && c.status !== 'False');
    if (refused !== undefined) {
      throw new JoinRefusedError(`CertificateSigningRequest ${name} was ${refused.type.toLowerCase()}: ${refused.reason ?? ''}${refused.message ? `: ${refused.message}` : ''}`);
    }
    if (csr.status?.certificate) return issued(csr.status.certificate, key.pem, name, cn);
    if (options.clock.now() >= deadline) {
      throw new JoinRefusedError(`CertificateSigningRequest ${name} was not approved and signed within ${Math.round(options.timeoutMs / 1000)}s; its Events say why (kubectl describe csr ${name})`);
    }
    await options.clock.sleep(options.pollMs ?? 1000, options.signal);
    try {
      csr = await client.get<Csr>(`${CSR_PATH}/${name}`);
    } catch (err) {
      if (err instanceof KubeApiError && (err.kind === 'unauthorized' || err.kind === 'forbidden' || err.kind === 'not-found')) {
        throw new JoinRefusedError(`reading CertificateSigningRequest ${name} failed: ${errorMessage(err)}`, { cause: err });
      }
      // Transient: look again on the next turn.
    }
  }
}

function issued(certificate: string, keyPem: string, csrName: string, cn: string): Issued {
  const certPem = Buffer.from(certificate, 'base64').toString('utf8');
  const cert = new X509Certificate(certPem);
  if (!cert.publicKey.equals(createPublicKey(keyPem))) throw new JoinRefusedError(`CertificateSigningRequest ${csrName}: the issued certificate is not for our key`);
  if (!cert.subject.split('\n').includes(`CN=${cn}`)) throw new JoinRefusedError(`CertificateSigningRequest ${csrName}: the issued certificate is for ${cert.subject.replace(/\n/g, ', ')}, not CN=${cn}`);
  return { certPem, keyPem, csrName, notBefore: Date.parse(cert.validFrom), notAfter: Date.parse(cert.validTo) };
}

/** Validity of the certificate at the kubeconfig's credential path. */
export function certificateWindow(pem: string): { notBefore: number; notAfter: number } {
  const cert = new X509Certificate(pem);
  return { notBefore: Date.parse(cert.validFrom), notAfter: Date.parse(cert.validTo) };
}

/** Swaps in a new certificate and key: one file, written atomically, mode 0600. */
export async function writeCredential(host: Host, kubeconfigPath: string, certPem: string, keyPem: string): Promise<void> {
  await host.writeFileAtomic(credentialPath(kubeconfigPath), `${certPem.trimEnd()}\n${keyPem.trimEnd()}\n`, 0o600);
}

/** The credential file first, then the kubeconfig that names it: never a kubeconfig without its certificate. */
export async function writeIdentity(host: Host, kubeconfigPath: string, server: string, caPem: string, nodeName: string, cred: Issued): Promise<void> {
  await writeCredential(host, kubeconfigPath, cred.certPem, cred.keyPem);
  const user = `${AGENT_USER_PREFIX}${nodeName}`;
  const relative = path.posix.relative(path.posix.dirname(kubeconfigPath), credentialPath(kubeconfigPath));
  const kubeconfig = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'kubenode', cluster: { server, 'certificate-authority-data': Buffer.from(caPem).toString('base64') } }],
    users: [{ name: user, user: { 'client-certificate': relative, 'client-key': relative } }],
    contexts: [{ name: 'kubenode', context: { cluster: 'kubenode', user } }],
    'current-context': 'kubenode',
  };
  await host.writeFileAtomic(kubeconfigPath, yamlStringify(kubeconfig), 0o600);
}

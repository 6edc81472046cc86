// kubeadm's token discovery: read kube-public/cluster-info without trusting the server, then
// trust its CA only if the bootstrap token's detached JWS (HS256, key = token secret, kid = token
// id) signs the kubeconfig in it and the CA's public key has a pinned hash. Never trust on first use.
import { createHash, createHmac, timingSafeEqual, X509Certificate } from 'node:crypto';
import { parse as parseYaml } from 'yaml';
import { errorMessage } from '../errors.ts';
import { createKubeClient, KubeApiError, kubeModule } from '../kube/client.ts';
import { JoinRefusedError } from './errors.ts';

export const CLUSTER_INFO_PATH = '/api/v1/namespaces/kube-public/configmaps/cluster-info';

export interface BootstrapToken {
  id: string;
  secret: string;
}

export interface Discovered {
  /** The apiserver URL cluster-info names. */
  server: string;
  /** The cluster CA, PEM, now trusted. */
  caPem: string;
}

/** sha256:<hex> of a certificate's SubjectPublicKeyInfo (kubeadm's --discovery-token-ca-cert-hash). */
export function caCertHash(pem: string): string {
  const spki = new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' });
  return `sha256:${createHash('sha256').update(spki).digest('hex')}`;
}

const b64url = (b: Buffer | string): string => Buffer.from(b).toString('base64url');

/** Whether `jws` (header..signature) is the token's HS256 detached signature over content. */
export function verifyDetachedJws(jws: string, content: string, token: BootstrapToken): boolean {
  const parts = jws.split('.');
  if (parts.length !== 3 || parts[1] !== '') return false;
  const [header = '', , signature = ''] = parts;
  let h: { alg?: unknown; kid?: unknown };
  try {
    h = JSON.parse(Buffer.from(header, 'base64url').toString('utf8')) as typeof h;
  } catch {
    return false;
  }
  if (h.alg !== 'HS256' || h.kid !== token.id) return false;
  const expected = createHmac('sha256', token.secret).update(`${header}.${b64url(content)}`).digest();
  const got = Buffer.from(signature, 'base64url');
  return got.length === expected.length && timingSafeEqual(got, expected);
}

/** Fetches and verifies cluster-info; throws JoinRefusedError naming what did not hold. */
export async function discover(server: string, token: BootstrapToken, caHashes: readonly string[], timeoutMs: number): Promise<Discovered> {
  const k8s = await kubeModule();
  const kc = new k8s.KubeConfig();
  // Anonymous and unverified on purpose: what comes back is trusted only after the checks below.
  kc.loadFromOptions({
    clusters: [{ name: 'discovery', server, skipTLSVerify: true }],
    users: [{ name: 'anonymous' }],
    contexts: [{ name: 'discovery', cluster: 'discovery', user: 'anonymous' }],
    currentContext: 'discovery',
  });
  const client = createKubeClient(kc, { timeoutMs });
  let cm: { kind?: unknown; data?: Record<string, string> } | undefined;
  try {
    cm = await client.get(CLUSTER_INFO_PATH);
  } catch (err) {
    const why = err instanceof KubeApiError && err.status === undefined ? `cannot reach it: ${errorMessage(err)}` : `is this a Kubernetes apiserver with bootstrap tokens set up? ${errorMessage(err)}`;
    throw new JoinRefusedError(`--server ${server}: reading kube-public/cluster-info failed: ${why}`, { cause: err });
  } finally {
    client.close();
  }
  if (cm?.kind !== 'ConfigMap' || typeof cm.data?.kubeconfig !== 'string') {
    throw new JoinRefusedError(`--server ${server}: ${CLUSTER_INFO_PATH} did not answer with a cluster-info ConfigMap holding a kubeconfig; not a Kubernetes apiserver?`);
  }
  const content = cm.data.kubeconfig;
  const jws = cm.data[`jws-kubeconfig-${token.id}`];
  if (jws === undefined) {
    throw new JoinRefusedError(`--token: cluster-info carries no signature for token id ${token.id}: the token is unknown, expired, or not for signing (usage-bootstrap-signing)`);
  }
  if (!verifyDetachedJws(jws, content, token)) {
    throw new JoinRefusedError(`--token: the signature of cluster-info for token id ${token.id} does not verify with this token's secret: wrong secret, or cluster-info was tampered with`);
  }
  let cluster: { server?: unknown; 'certificate-authority-data'?: unknown } | undefined;
  try {
    const doc = parseYaml(content) as { clusters?: { cluster?: typeof cluster }[] };
    cluster = doc.clusters?.[0]?.cluster;
  } catch (err) {
    throw new JoinRefusedError(`cluster-info: its kubeconfig is not YAML: ${errorMessage(err)}`, { cause: err });
  }
  if (typeof cluster?.server !== 'string' || typeof cluster['certificate-authority-data'] !== 'string') {
    throw new JoinRefusedError('cluster-info: its kubeconfig has no clusters[0].cluster.server and certificate-authority-data');
  }
  const caPem = Buffer.from(cluster['certificate-authority-data'], 'base64').toString('utf8');
  let hash: string;
  try {
    hash = caCertHash(caPem);
  } catch (err) {
    throw new JoinRefusedError(`cluster-info: certificate-authority-data is not a PEM certificate: ${errorMessage(err)}`, { cause: err });
  }
  if (!caHashes.includes(hash)) {
    throw new JoinRefusedError(`--ca-cert-hash: the cluster's CA has public key hash ${hash}, not ${caHashes.join(' or ')}; refusing to trust it`);
  }
  return { server: cluster.server, caPem };
}

// `kubenode-agent join`: from a bootstrap token to the agent's own client certificate, kubeadm's
// way. Every check runs before anything is written; a refusal leaves the node as it was.
import type { Host } from '../host/host.ts';
import { UsageError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { discover } from './discovery.ts';
import { JoinRefusedError } from './errors.ts';
import { bootstrapClient, credentialPath, requestCertificate, writeIdentity } from './identity.ts';

export interface JoinOptions {
  server: string;
  token: string;
  caCertHashes: readonly string[];
  nodeName: string;
  /** Host path of the kubeconfig to write. */
  kubeconfig: string;
  timeoutMs: number;
  host: Host;
  log: Logger;
}

export interface JoinResult {
  kubeconfig: string;
  credential: string;
  user: string;
  csrName: string;
  notAfter: number;
}

const TOKEN = /^([a-z0-9]{6})\.([a-z0-9]{16})$/;
const CA_HASH = /^sha256:[0-9a-f]{64}$/;
// A Node name is a DNS subdomain.
const NODE_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Checks the flags' shapes; UsageError (exit 64) names the flag. */
export function checkJoinFlags(o: { server: string; token: string; caCertHashes: readonly string[]; nodeName: string }): { id: string; secret: string } {
  let url: URL;
  try {
    url = new URL(o.server);
  } catch {
    throw new UsageError(`--server: expected an https:// URL, got ${JSON.stringify(o.server)}`);
  }
  if (url.protocol !== 'https:') throw new UsageError(`--server: expected an https:// URL, got ${JSON.stringify(o.server)}`);
  const m = TOKEN.exec(o.token);
  if (m === null) throw new UsageError('--token: expected a bootstrap token ID.SECRET ([a-z0-9]{6}.[a-z0-9]{16}, as kubeadm token create prints)');
  if (o.caCertHashes.length === 0) throw new UsageError('--ca-cert-hash: required (sha256:<hex> of the CA public key; kubeadm token create --print-join-command prints it)');
  for (const h of o.caCertHashes) if (!CA_HASH.test(h)) throw new UsageError(`--ca-cert-hash: expected sha256:<64 hex digits>, got ${JSON.stringify(h)}`);
  if (o.nodeName.length > 253 || !NODE_NAME.test(o.nodeName)) throw new UsageError(`--node-name: ${JSON.stringify(o.nodeName)} is not a valid Node name (a lower-case DNS subdomain)`);
  return { id: m[1] as string, secret: m[2] as string };
}

export async function join(o: JoinOptions): Promise<JoinResult> {
  const token = checkJoinFlags(o);
  const { host, log } = o;
  for (const file of [o.kubeconfig, credentialPath(o.kubeconfig)]) {
    if (await host.exists(file)) throw new JoinRefusedError(`${file} exists: this node has joined already (remove it to join again)`);
  }
  const found = await discover(o.server, token, o.caCertHashes, Math.min(o.timeoutMs, 30_000));
  log.info({ server: found.server }, 'Cluster CA verified against --ca-cert-hash; cluster-info signature verified');
  const client = await bootstrapClient(found.server, found.caPem, o.token, 30_000);
  try {
    const cred = await requestCertificate(client, o.nodeName, { clock: host.clock, timeoutMs: o.timeoutMs });
    log.info({ csr: cred.csrName, notAfter: new Date(cred.notAfter).toISOString() }, 'Certificate issued');
    await writeIdentity(host, o.kubeconfig, found.server, found.caPem, o.nodeName, cred);
    return { kubeconfig: o.kubeconfig, credential: credentialPath(o.kubeconfig), user: `kubenode:agent:${o.nodeName}`, csrName: cred.csrName, notAfter: cred.notAfter };
  } finally {
    client.close();
  }
}

export { JoinRefusedError };

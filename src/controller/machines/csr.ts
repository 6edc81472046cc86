// Approval of agents' client certificates. kube-controller-manager signs what is approved for
// kubernetes.io/kube-apiserver-client; this decides what is approved, and nothing else: a CSR
// that does not qualify stays pending with a Warning Event saying why, for a person to approve
// or deny (kubectl certificate approve|deny). Qualifies:
//   - a first certificate: requested by a bootstrap token of the kubenode group, for
//     CN kubenode:agent:<node> where Machine <node> is importing (exists, not being deleted, no
//     agent has taken it past Pending), or <node> matches the import policy's name pattern;
//   - a renewal: requested by kubenode:agent:<node> itself, for the same CN;
// and in both cases O exactly kubenode:agents, usages exactly [client auth], no requested
// extensions (SANs and the like), a request signed by the key it carries.
import { X509Certificate } from 'node:crypto';
import { GROUP, VERSION } from '../../api/common.ts';
import { errorMessage } from '../../errors.ts';
import type { KubeClient } from '../../kube/client.ts';
import { classifyKubeError } from '../../kube/client.ts';
import type { Logger } from '../../log.ts';
import type { Informer, KubeObject, ResourceRef } from '../../watch/informer.ts';
import { AGENT_GROUP, AGENT_USER_PREFIX, CLIENT_SIGNER, parseCsr } from '../../join/csr.ts';
import type { EventRecorder } from '../events.ts';
import { WorkQueue } from '../queue.ts';

export const CSR_RESOURCE: ResourceRef = { group: 'certificates.k8s.io', version: 'v1', plural: 'certificatesigningrequests' };
/** Only requests for our signer: kubelets' CSRs are someone else's business. */
export const CSR_FIELD_SELECTOR = `spec.signerName=${CLIENT_SIGNER}`;
/** auth-extra-groups of the bootstrap tokens made for agents. */
export const BOOTSTRAP_GROUP = 'system:bootstrappers:kubenode';
const BOOTSTRAP_USER_PREFIX = 'system:bootstrap:';
/** Machine phases in which no agent has yet taken the machine over: import is under way. */
const IMPORTING_PHASES = new Set([undefined, '', 'Pending', 'Importing', 'WaitingForNode']);

export interface Csr extends KubeObject {
  spec: { request: string; signerName: string; usages?: string[]; username?: string; groups?: string[] };
  status?: { certificate?: string; conditions?: { type: string; status?: string }[] };
}

interface MachineLike extends KubeObject {
  status?: { phase?: string; agentCertificateExpiry?: string };
}

/** Writes status.agentCertificateExpiry alone: the lifecycle's apply (its own manager) keeps its fields. */
export const CERTIFICATE_FIELD_MANAGER = 'kubenode-controller-certificates';

export type CsrDecision =
  | { action: 'approve'; reason: 'AgentBootstrap' | 'AgentRenewal'; message: string }
  | { action: 'wait'; reason: string; message: string }
  | { action: 'none' };

function settled(csr: Csr): boolean {
  return csr.status?.certificate !== undefined || (csr.status?.conditions ?? []).some((c) => c.type === 'Approved' || c.type === 'Denied' || c.type === 'Failed');
}

export interface CsrPolicy {
  /** Node names (anchored RE) whose bootstrap CSRs are approved without an importing Machine. */
  importNodeNames?: { test(name: string): boolean };
}

/** Whether and why a CSR is approved: a pure function of the CSR, the Machine cache and the policy. */
export function decideCsr(csr: Csr, machineOf: (name: string) => MachineLike | undefined, policy: CsrPolicy): CsrDecision {
  if (csr.spec.signerName !== CLIENT_SIGNER || settled(csr)) return { action: 'none' };
  let parsed;
  try {
    parsed = parseCsr(Buffer.from(csr.spec.request, 'base64').toString('utf8'));
  } catch (err) {
    return { action: 'wait', reason: 'NotAnAgentRequest', message: `spec.request is not a PKCS#10 request: ${errorMessage(err)}` };
  }
  const [cn] = parsed.commonNames;
  // Someone else's client certificate (an admin's, another tool's): not ours to judge, no Event.
  if (parsed.commonNames.length !== 1 || cn === undefined || !cn.startsWith(AGENT_USER_PREFIX)) return { action: 'none' };
  const node = cn.slice(AGENT_USER_PREFIX.length);
  const wait = (reason: string, message: string): CsrDecision => ({ action: 'wait', reason, message: `not approved: ${message}` });
  if (parsed.organizations.length !== 1 || parsed.organizations[0] !== AGENT_GROUP) return wait('BadSubject', `subject O must be exactly ${AGENT_GROUP}, got ${JSON.stringify(parsed.organizations)}`);
  if (parsed.otherSubject.length > 0) return wait('BadSubject', `subject has attributes other than CN and O (${parsed.otherSubject.join(', ')})`);
  if (parsed.attributes.length > 0) return wait('BadSubject', `the request asks for extensions or attributes (${parsed.attributes.join(', ')}); agents ask for none`);
  if (!parsed.signatureValid) return wait('BadSignature', 'the request is not signed by the key it carries');
  const usages = csr.spec.usages ?? [];
  if (usages.length !== 1 || usages[0] !== 'client auth') return wait('BadUsages', `key usages must be exactly [client auth], got ${JSON.stringify(usages)}`);
  const user = csr.spec.username ?? '';
  const groups = csr.spec.groups ?? [];
  if (user === cn) {
    if (!groups.includes(AGENT_GROUP)) return wait('BadRequester', `renewal by ${user} outside group ${AGENT_GROUP}`);
    return { action: 'approve', reason: 'AgentRenewal', message: `renewal of ${cn} requested by ${user}` };
  }
  if (!user.startsWith(BOOTSTRAP_USER_PREFIX)) return wait('BadRequester', `requested by ${JSON.stringify(user)}, neither a bootstrap token nor ${cn} itself`);
  if (!groups.includes(BOOTSTRAP_GROUP)) return wait('BadRequester', `bootstrap token ${user} is not in group ${BOOTSTRAP_GROUP} (auth-extra-groups of its Secret)`);
  if (policy.importNodeNames?.test(node) === true) return { action: 'approve', reason: 'AgentBootstrap', message: `first certificate of ${cn}, requested by ${user}; node name matches the import policy` };
  const machine = machineOf(node);
  if (machine === undefined) return wait('NoMachine', `no Machine ${node} exists; create it (or widen the controller's --csr-import-nodes) to import this node`);
  if (machine.metadata.deletionTimestamp !== undefined) return wait('MachineDeleting', `Machine ${node} is being deleted`);
  if (!IMPORTING_PHASES.has(machine.status?.phase)) return wait('MachineNotImporting', `Machine ${node} is ${machine.status?.phase}, not importing; a node that joins again needs a person: kubectl certificate approve ${csr.metadata.name}`);
  return { action: 'approve', reason: 'AgentBootstrap', message: `first certificate of ${cn}, requested by ${user}, for importing Machine ${node}` };
}

export interface CsrApproverOptions {
  client: KubeClient;
  csrs: Informer<Csr>;
  machines: Informer<KubeObject>;
  events: EventRecorder;
  log: Logger;
  mayWrite: () => boolean;
  /** False until every cache has synced: nothing is judged on a half-listed Machine cache. */
  synced: () => boolean;
  policy: CsrPolicy;
}

/** Watches agents' CSRs and approves those that qualify; a Machine appearing re-judges what waits. */
export class CsrApprover {
  readonly queue: WorkQueue;
  readonly stats = { approved: 0, waiting: 0 };
  readonly #o: CsrApproverOptions;

  constructor(o: CsrApproverOptions) {
    this.#o = o;
    this.queue = new WorkQueue({ workers: 2, log: o.log.child({ component: 'csr-queue' }), handle: (key) => this.reconcile(key) });
    const add = (name: string): void => {
      if (o.synced()) this.queue.add(name);
    };
    o.csrs.on((e) => {
      if (e.type === 'synced') this.addAll();
      else if (e.type === 'delete') this.queue.forget(e.object.metadata.name);
      else add(e.object.metadata.name);
    });
    o.machines.on((e) => {
      if (e.type !== 'delete') this.addPending();
    });
  }

  /** Every CSR still waiting, and every signed one (its expiry may not be on its Machine yet). */
  addAll(): void {
    if (!this.#o.synced()) return;
    for (const [name, csr] of this.#o.csrs.snapshot()) if (!settled(csr) || csr.status?.certificate !== undefined) this.queue.add(name);
  }

  /** Every CSR still waiting: what a Machine's change can decide. */
  addPending(): void {
    if (!this.#o.synced()) return;
    for (const [name, csr] of this.#o.csrs.snapshot()) if (!settled(csr)) this.queue.add(name);
  }

  async reconcile(name: string): Promise<undefined> {
    const csr = this.#o.csrs.get(name);
    if (csr === undefined || !this.#o.mayWrite()) return undefined;
    if (csr.status?.certificate !== undefined) {
      await this.#recordExpiry(csr, csr.status.certificate);
      return undefined;
    }
    const d = decideCsr(csr, (n) => this.#o.machines.get(n), this.#o.policy);
    const target = { name, uid: String(csr.metadata.uid ?? ''), apiVersion: 'certificates.k8s.io/v1', kind: 'CertificateSigningRequest' };
    if (d.action === 'none') return undefined;
    if (d.action === 'wait') {
      this.stats.waiting += 1;
      this.#o.events.record(target, 'Warning', 'CertificateNotApproved', d.message, `wait/${d.reason}/${d.message}`);
      return undefined;
    }
    const body = {
      ...csr,
      status: { ...csr.status, conditions: [...(csr.status?.conditions ?? []), { type: 'Approved', status: 'True', reason: d.reason, message: d.message, lastUpdateTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z') }] },
    };
    try {
      await this.#o.client.request('PUT', `/apis/certificates.k8s.io/v1/certificatesigningrequests/${encodeURIComponent(name)}/approval`, { body });
    } catch (err) {
      // A stale resourceVersion: the watch brings the newer object and queues it again.
      if (classifyKubeError(err) === 'conflict' || classifyKubeError(err) === 'not-found') return undefined;
      throw err;
    }
    this.stats.approved += 1;
    this.#o.log.info({ csr: name, reason: d.reason }, 'Certificate request approved');
    this.#o.events.record(target, 'Normal', 'CertificateApproved', d.message, 'approved');
    return undefined;
  }

  /**
   * A certificate signed for an agent: its notAfter goes on the Machine, so that the lifecycle can
   * say AgentCertificateValid=False once it passes unrenewed (the agent itself can say nothing then).
   */
  async #recordExpiry(csr: Csr, certificate: string): Promise<void> {
    let cn: string | undefined;
    let notAfter: number;
    try {
      const parsed = parseCsr(Buffer.from(csr.spec.request, 'base64').toString('utf8'));
      cn = parsed.commonNames.length === 1 ? parsed.commonNames[0] : undefined;
      notAfter = Date.parse(new X509Certificate(Buffer.from(certificate, 'base64')).validTo);
    } catch {
      return;
    }
    if (cn === undefined || !cn.startsWith(AGENT_USER_PREFIX) || !Number.isFinite(notAfter)) return;
    const node = cn.slice(AGENT_USER_PREFIX.length);
    const machine = this.#o.machines.get(node) as MachineLike | undefined;
    if (machine === undefined || machine.metadata.deletionTimestamp !== undefined) return;
    const known = Date.parse(machine.status?.agentCertificateExpiry ?? '');
    if (Number.isFinite(known) && known >= notAfter) return;
    const at = new Date(notAfter).toISOString().replace(/\.\d+Z$/, 'Z');
    const body = { apiVersion: `${GROUP}/${VERSION}`, kind: 'Machine', metadata: { name: node }, status: { agentCertificateExpiry: at } };
    try {
      await this.#o.client.patch(`/apis/${GROUP}/${VERSION}/machines/${encodeURIComponent(node)}/status`, body, 'apply', { query: { fieldManager: CERTIFICATE_FIELD_MANAGER, force: 'true' } });
    } catch (err) {
      if (classifyKubeError(err) === 'not-found') return;
      throw err;
    }
    this.#o.log.info({ machine: node, notAfter: at }, "Agent's certificate expiry recorded");
  }
}

// Client certificate rotation, as kubelet's certificate manager does it: at a jittered ~80% of the
// certificate's lifetime the agent asks for the next one with its current identity (no bootstrap
// token), and swaps the credential file the kubeconfig names; every client reads that file per
// request, so the running agent switches without a restart. A certificate that expires with no
// renewal is loud: an error log on every attempt and kubenode_client_certificate_expired 1.
import { Counter, Gauge, type Registry } from 'prom-client';
import { errorMessage } from '../errors.ts';
import type { Clock } from '../host/clock.ts';
import type { Host } from '../host/host.ts';
import { loadKubeConfig } from '../kube/client.ts';
import { backoffDelay } from '../util/backoff.ts';
import type { Logger } from '../log.ts';
import { certificateWindow, credentialPath, identityClient, requestCertificate, writeCredential } from './identity.ts';

export interface RotatorOptions {
  host: Host;
  /** Host path of the kubeconfig join wrote. */
  kubeconfig: string;
  nodeName: string;
  log: Logger;
  registry: Registry;
  clock?: Clock;
  random?: () => number;
  /** How long one renewal waits for approval and signing. Default 5 min. */
  requestTimeoutMs?: number;
}

export interface RotatorState {
  notAfter: number;
  rotateAt: number;
  expired: boolean;
  rotations: number;
  lastError?: string;
}

export class CertificateRotator {
  readonly #o: RotatorOptions;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #stop = new AbortController();
  readonly #expiry: Gauge;
  readonly #expired: Gauge;
  readonly #failures: Counter;
  #state: RotatorState = { notAfter: 0, rotateAt: 0, expired: false, rotations: 0 };
  #loop: Promise<void> | undefined;

  constructor(o: RotatorOptions) {
    this.#o = o;
    this.#clock = o.clock ?? o.host.clock;
    this.#random = o.random ?? Math.random;
    this.#expiry = new Gauge({ name: 'kubenode_client_certificate_expiration_timestamp_seconds', help: "When the agent's client certificate expires.", registers: [o.registry] });
    this.#expired = new Gauge({ name: 'kubenode_client_certificate_expired', help: "1 while the agent's client certificate has expired without a renewal: the agent cannot reach the cluster.", registers: [o.registry] });
    this.#failures = new Counter({ name: 'kubenode_client_certificate_renewal_failures_total', help: 'Renewals of the client certificate that failed.', registers: [o.registry] });
  }

  state(): RotatorState {
    return { ...this.#state };
  }

  start(): void {
    this.#loop ??= this.#run().catch((err: unknown) => {
      if (!this.#stop.signal.aborted) this.#o.log.error({ err: errorMessage(err) }, 'Certificate rotation stopped');
    });
  }

  async stop(): Promise<void> {
    this.#stop.abort(new Error('stopped'));
    await this.#loop;
  }

  async #load(): Promise<void> {
    const { notBefore, notAfter } = certificateWindow(await this.#o.host.readText(credentialPath(this.#o.kubeconfig)));
    // 75–85% of the lifetime: a fleet joined in one hour does not renew in one minute.
    // Expired: at once. Otherwise never sooner than a minute from now: a signer that caps lifetimes, or a clock that is off,
    // must not turn renewal into a loop.
    const now = this.#clock.now();
    const due = notBefore + (notAfter - notBefore) * (0.75 + 0.1 * this.#random());
    const rotateAt = now >= notAfter ? now : Math.max(due, now + 60_000);
    this.#state = { ...this.#state, notAfter, rotateAt };
    this.#expiry.set(notAfter / 1000);
  }

  async #run(): Promise<void> {
    const signal = this.#stop.signal;
    await this.#load();
    for (let attempt = 0; !signal.aborted; ) {
      const wait = this.#state.rotateAt - this.#clock.now();
      if (wait > 0) await this.#clock.sleep(wait, signal);
      try {
        await this.#renew();
        attempt = 0;
        await this.#load();
      } catch (err) {
        if (signal.aborted) return;
        this.#failures.inc();
        const expired = this.#clock.now() >= this.#state.notAfter;
        this.#state = { ...this.#state, expired, lastError: errorMessage(err) };
        this.#expired.set(expired ? 1 : 0);
        const fields = { err: errorMessage(err), notAfter: new Date(this.#state.notAfter).toISOString() };
        if (expired) this.#o.log.error(fields, 'Client certificate expired and cannot be renewed: this agent cannot reach the cluster; join the node again');
        else this.#o.log.warn(fields, 'Client certificate renewal failed; retrying');
        await this.#clock.sleep(backoffDelay(attempt++, 5_000, 5 * 60_000, this.#random), signal);
      }
    }
  }

  async #renew(): Promise<void> {
    const kc = await loadKubeConfig({ kubeconfig: this.#o.host.path(this.#o.kubeconfig) });
    const client = identityClient(kc, 30_000);
    try {
      const cred = await requestCertificate(client, this.#o.nodeName, { clock: this.#clock, timeoutMs: this.#o.requestTimeoutMs ?? 5 * 60_000, signal: this.#stop.signal });
      await writeCredential(this.#o.host, this.#o.kubeconfig, cred.certPem, cred.keyPem);
      this.#state = { ...this.#state, expired: false, rotations: this.#state.rotations + 1 };
      delete this.#state.lastError;
      this.#expired.set(0);
      this.#o.log.info({ csr: cred.csrName, notAfter: new Date(cred.notAfter).toISOString() }, 'Client certificate renewed');
    } finally {
      client.close();
    }
  }
}

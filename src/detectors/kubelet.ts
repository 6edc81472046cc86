import { X509Certificate } from 'node:crypto';
import { Type, type StaticDecode } from '@sinclair/typebox';
import type { Host } from '../host/host.ts';
import { httpGet } from '../host/unix-http.ts';
import type { DetectorResult, ProblemEvent } from '../types.ts';
import { Conditions } from './engine/conditions.ts';
import { Debounce } from './engine/window.ts';
import type { DetectorDefinition } from './engine/types.ts';
import { readProcesses } from './engine/procs.ts';
import { ExecError } from '../errors.ts';
import { Duration } from '../util/duration-schema.ts';

// Kubelet health: its /healthz on loopback with a deadline (debounced: failuresToTrip
// consecutive failed looks; `check` takes them within its one probe, checkRetryInterval apart),
// "PLEG is not healthy" in its journal, and the days left on its client certificate.
// A node without a kubelet (no unit, no process, no cert, no state dir) is not a problem unless
// `expected: true`.

const UNHEALTHY = 'KubeletUnhealthy';
const CERT = 'KubeletCertificateExpiring';

export const configSchema = Type.Object(
  {
    expected: Type.Union([Type.Literal('auto'), Type.Literal('true'), Type.Literal('false')], {
      default: 'auto',
      description: 'auto: check when a kubelet unit, process, certificate or state directory is present; true: its absence is a problem; false: never check',
    }),
    healthzUrl: Type.String({ pattern: '^http://', default: 'http://127.0.0.1:10248/healthz', description: "Kubelet's healthz endpoint (--healthz-port, loopback)" }),
    deadline: Duration({ default: '3s', min: '100ms', max: '1h', description: 'Deadline of one /healthz request' }),
    failuresToTrip: Type.Integer({ minimum: 1, maximum: 20, default: 3, description: 'Consecutive failed /healthz looks before KubeletUnhealthy turns True' }),
    successesToClear: Type.Integer({ minimum: 1, maximum: 20, default: 1 }),
    checkRetryInterval: Duration({ default: '1s', min: '100ms', max: '1m', description: 'Pause between the looks `check` takes in one probe' }),
    unit: Type.String({ minLength: 1, default: 'kubelet', description: 'systemd unit whose journal is searched for PLEG messages' }),
    plegWindow: Duration({ default: '5m', max: '168h', description: 'How far back the journal is searched' }),
    plegMinCount: Type.Integer({ minimum: 1, default: 3, description: '"PLEG is not healthy" lines within plegWindow that turn the condition' }),
    journalTimeout: Duration({ default: '10s', max: '1h', description: 'Deadline of one journalctl call' }),
    clientCertPath: Type.String({ pattern: '^/', default: '/var/lib/kubelet/pki/kubelet-client-current.pem' }),
    certWarnDays: Type.Number({ minimum: 0, default: 14, description: 'Days left on the client certificate below which KubeletCertificateExpiring turns True (rotation normally renews far earlier)' }),
  },
  { additionalProperties: false },
);

type Config = StaticDecode<typeof configSchema>;

// ---- pure parsers ----

export interface CertInfo {
  subject: string;
  notAfter: Date;
  daysLeft: number;
}

/** The first CERTIFICATE block of a PEM file (kubelet-client-current.pem holds the cert and its key). */
export function parseClientCert(pem: string, now: number): CertInfo | { error: string } {
  const m = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(pem);
  if (m === null) return { error: 'no CERTIFICATE block' };
  try {
    const cert = new X509Certificate(m[0]);
    const notAfter = new Date(cert.validTo);
    if (Number.isNaN(notAfter.getTime())) return { error: `unreadable notAfter ${cert.validTo}` };
    return { subject: cert.subject.replace(/\n/g, ', '), notAfter, daysLeft: (notAfter.getTime() - now) / 86_400_000 };
  } catch (err) {
    return { error: err instanceof Error ? err.message : String(err) };
  }
}

/**
 * "PLEG is not healthy" lines from `journalctl -o cat`. Kubelet's start-up line
 * "PLEG is not healthy: pleg has yet to be successful" is normal while it starts and is not counted.
 */
export function plegLines(text: string): string[] {
  return text.split('\n').filter((l) => l.includes('PLEG is not healthy') && !l.includes('pleg has yet to be successful'));
}

// ---- the detector ----

const UNIT_FILES = ['/etc/systemd/system/kubelet.service', '/lib/systemd/system/kubelet.service', '/usr/lib/systemd/system/kubelet.service'];

async function kubeletPresent(host: Host, config: Config): Promise<boolean> {
  const files = await Promise.all([...UNIT_FILES, config.clientCertPath, '/var/lib/kubelet/config.yaml'].map((p) => host.exists(p)));
  if (files.includes(true)) return true;
  try {
    return readProcesses(host).some((p) => p.comm === 'kubelet');
  } catch {
    return false; // no /proc under the root
  }
}

interface HealthLook {
  ok: boolean;
  message: string;
}

export const kubelet: DetectorDefinition<typeof configSchema> = {
  description: 'Kubelet health: /healthz with a deadline, PLEG in its journal, client certificate expiry',
  configSchema,
  defaults: { enabled: true, interval: '30s', timeout: '25s' },
  create(config: Config, ctx) {
    const { host } = ctx;
    const deadlineMs = config.deadline;
    const retryMs = config.checkRetryInterval;
    const plegWindowMs = config.plegWindow;
    const journalTimeoutMs = config.journalTimeout;
    const book = new Conditions(
      [
        { type: UNHEALTHY, okReason: 'KubeletIsHealthy', okMessage: 'kubelet is healthy' },
        { type: CERT, okReason: 'KubeletClientCertValid', okMessage: 'kubelet client certificate is valid' },
      ],
      ctx,
    );
    let healthz = new Debounce(config.failuresToTrip, config.successesToClear, book.get(UNHEALTHY)?.reason === 'KubeletHealthzFailed');
    let lastBad: HealthLook | undefined;

    const lookHealthz = async (signal: AbortSignal): Promise<HealthLook> => {
      const r = await httpGet({ url: config.healthzUrl }, { timeoutMs: deadlineMs, signal, maxBodyBytes: 4096 });
      if (!r.ok) return { ok: false, message: `GET ${config.healthzUrl}: ${r.failure}: ${r.message}` };
      if (r.statusCode !== 200) return { ok: false, message: `GET ${config.healthzUrl}: HTTP ${r.statusCode}: ${r.body.trim().replace(/\n/g, ' ').slice(0, 300)}` };
      return { ok: true, message: '' };
    };

    return {
      async probe(signal): Promise<DetectorResult> {
        const events: ProblemEvent[] = [];
        const unknown: string[] = [];
        if (config.expected === 'false') {
          book.ok(UNHEALTHY, 'kubelet not checked (expected: false)');
          book.ok(CERT, 'kubelet not checked (expected: false)');
          return { conditions: book.list(), events };
        }
        const present = await kubeletPresent(host, config);
        if (!present && config.expected === 'auto') {
          // Nothing to look at: no /healthz request to a port nobody listens on every interval, and
          // a kubelet installed later starts its count of failed looks afresh.
          healthz = new Debounce(config.failuresToTrip, config.successesToClear);
          lastBad = undefined;
          book.ok(UNHEALTHY, 'no kubelet on this node (not expected)');
          book.ok(CERT, 'no kubelet on this node');
          return { conditions: book.list(), events };
        }

        // /healthz, debounced.
        let look = await lookHealthz(signal);
        const observe = (l: HealthLook): boolean => {
          const wasFailing = healthz.failures > 0;
          const bad = healthz.observe(!l.ok);
          if (!l.ok) {
            lastBad = l;
            if (!bad && !wasFailing && present) {
              events.push({ severity: 'info', reason: 'KubeletHealthzFailed', message: `${l.message} (failure 1 of ${config.failuresToTrip})`, timestamp: host.clock.now() });
            }
          } else if (!bad) lastBad = undefined;
          return bad;
        };
        let healthzBad = observe(look);
        if (ctx.mode === 'check') {
          for (let i = 1; i < config.failuresToTrip && !look.ok && !signal.aborted && present; i++) {
            await host.clock.sleep(retryMs, signal);
            look = await lookHealthz(signal);
            healthzBad = observe(look);
          }
        }
        // Not listening on a node without a kubelet is the expected state, not a failure.
        const nothingThere = !present && !look.ok;

        // PLEG in the journal.
        let pleg: string[] = [];
        if (present) {
          const since = Math.floor((host.clock.now() - plegWindowMs) / 1000);
          const r = await host.exec(['journalctl', '-u', config.unit, `--since=@${since}`, '-o', 'cat', '--no-pager', '-q'], { timeoutMs: journalTimeoutMs, signal, cachedLookup: true });
          if (r.notFound) unknown.push('journalctl not found: PLEG messages not read');
          else if (r.timedOut || r.exitCode !== 0) unknown.push(new ExecError(r).message);
          else pleg = plegLines(r.stdout);
        }

        const now = host.clock.now();
        if (config.expected === 'true' && !present && !look.ok) {
          book.set(UNHEALTHY, 'True', 'KubeletNotRunning', `kubelet is expected but absent: no unit, process, certificate or state directory, and ${look.message}`);
        } else if (healthzBad && !nothingThere && lastBad !== undefined && book.surfaces('KubeletHealthzFailed')) {
          book.set(UNHEALTHY, 'True', 'KubeletHealthzFailed', `${lastBad.message} (${config.failuresToTrip} consecutive failures)`);
        } else if (pleg.length >= config.plegMinCount && book.surfaces('PLEGNotHealthy')) {
          book.set(UNHEALTHY, 'True', 'PLEGNotHealthy', `${pleg.length} "PLEG is not healthy" lines in the last ${config.plegWindow}; last: ${(pleg.at(-1) ?? '').trim().slice(0, 300)}`);
        } else {
          if (pleg.length > 0) {
            events.push({ severity: 'info', reason: 'PLEGNotHealthy', message: `${pleg.length} "PLEG is not healthy" line(s) in the last ${config.plegWindow}, below ${config.plegMinCount}`, timestamp: now });
          }
          book.ok(UNHEALTHY, present ? 'kubelet is healthy' : 'no kubelet on this node (not expected)');
        }

        // Client certificate.
        const pem = present ? await host.tryReadText(config.clientCertPath).catch((err: unknown) => {
          unknown.push(`cannot read ${config.clientCertPath}: ${err instanceof Error ? err.message : String(err)}`);
          return undefined;
        }) : undefined;
        if (pem === undefined) {
          book.ok(CERT, present ? `no client certificate at ${config.clientCertPath}` : 'no kubelet on this node');
        } else {
          const cert = parseClientCert(pem, now);
          if ('error' in cert) {
            unknown.push(`${config.clientCertPath}: ${cert.error}`);
            book.set(CERT, 'Unknown', 'KubeletClientCertUnreadable', `${config.clientCertPath}: ${cert.error}`);
          } else if (cert.daysLeft <= 0) {
            book.set(CERT, 'True', 'KubeletClientCertExpired', `client certificate ${cert.subject} expired ${cert.notAfter.toISOString()}`);
          } else if (cert.daysLeft < config.certWarnDays) {
            book.set(CERT, 'True', 'KubeletClientCertExpiring', `client certificate ${cert.subject} expires ${cert.notAfter.toISOString()} (${cert.daysLeft.toFixed(1)} days left, below ${config.certWarnDays})`);
          } else {
            book.ok(CERT, `client certificate expires ${cert.notAfter.toISOString()} (${Math.floor(cert.daysLeft)} days left)`);
          }
        }

        return { conditions: book.list(), events, ...(unknown.length > 0 ? { unknown: unknown.join('; ') } : {}) };
      },
    };
  },
};

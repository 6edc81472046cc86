// A real Prometheus (Debian's `prometheus` package, /usr/bin/prometheus) on 127.0.0.1 with a
// scratch configuration and TSDB in a temp directory, scraping the targets a test names.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DaemonStartError, freePort, sleep, startDaemon } from './process.ts';
import type { Daemon } from './process.ts';

export interface PrometheusOptions {
  /** URLs to scrape, e.g. http://127.0.0.1:9100/metrics (the path defaults to /metrics). */
  scrapeTargets: readonly string[];
  /** Scrape interval in seconds (and evaluation interval). Default 1. */
  scrapeIntervalSeconds?: number;
  /** The job label of every target. Default "kubenode". */
  job?: string;
  /** $PROMETHEUS_BIN, else /usr/bin/prometheus. */
  bin?: string;
  /** Until /-/ready answers 200. Default 60 s. */
  readyTimeoutMs?: number;
  /** Leave the directory behind on stop() (also KUBENODE_TESTCLUSTER_KEEP=1). */
  keepDir?: boolean;
}

/** One element of an instant query's result (resultType "vector"). */
export interface PromSample {
  metric: Record<string, string>;
  value: [number, string];
}

export interface Prometheus {
  /** http://127.0.0.1:PORT */
  readonly url: string;
  readonly dir: string;
  readonly logFile: string;
  readonly pid: number | undefined;
  /** An instant query through /api/v1/query; rejects with Prometheus's error on a bad expression. */
  query(expr: string): Promise<PromSample[]>;
  /** Polls query(expr) until accept(result) holds; rejects after timeoutMs with the last result. */
  waitFor(expr: string, accept: (result: PromSample[]) => boolean, timeoutMs?: number): Promise<PromSample[]>;
  stop(): Promise<void>;
}

export async function startPrometheus(options: PrometheusOptions): Promise<Prometheus> {
  const bin = options.bin ?? process.env.PROMETHEUS_BIN ?? '/usr/bin/prometheus';
  const interval = options.scrapeIntervalSeconds ?? 1;
  if (!(interval > 0)) throw new RangeError(`scrapeIntervalSeconds must be positive, got ${interval}`);
  const dir = await mkdtemp(join(tmpdir(), 'kubenode-prometheus-'));
  const keepDir = options.keepDir ?? process.env.KUBENODE_TESTCLUSTER_KEEP === '1';
  try {
    const configFile = join(dir, 'prometheus.yml');
    await writeFile(configFile, renderConfig(options.scrapeTargets, options.job ?? 'kubenode', interval));
    const logFile = join(dir, 'prometheus.log');
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const url = `http://127.0.0.1:${port}`;
      try {
        const daemon = await startDaemon({
          name: 'prometheus',
          bin,
          args: [
            `--config.file=${configFile}`,
            `--storage.tsdb.path=${join(dir, 'data')}`,
            `--web.listen-address=127.0.0.1:${port}`,
            // Debian's defaults point at /usr/share/prometheus; nothing here needs the consoles.
            `--web.console.templates=${join(dir, 'consoles')}`,
            `--web.console.libraries=${join(dir, 'console_libraries')}`,
          ],
          logFile,
          ready: async () => (await get(`${url}/-/ready`)).status === 200,
          readyTimeoutMs: options.readyTimeoutMs ?? 60_000,
        });
        return new RunningPrometheus(url, dir, logFile, keepDir, daemon);
      } catch (err) {
        if (attempt >= 3 || !(err instanceof DaemonStartError) || !/address already in use/.test(err.log)) throw err;
      }
    }
  } catch (err) {
    if (!keepDir) await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

function renderConfig(targets: readonly string[], job: string, interval: number): string {
  // Prometheus groups static targets by scheme and metrics path; one scrape config per pair.
  const groups = new Map<string, { scheme: string; path: string; hosts: string[] }>();
  for (const target of targets) {
    let u: URL;
    try {
      u = new URL(target);
    } catch {
      throw new Error(`scrape target ${JSON.stringify(target)} is not a URL (expected e.g. http://127.0.0.1:9100/metrics)`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`scrape target ${target}: only http and https are scraped`);
    const scheme = u.protocol.slice(0, -1);
    const path = u.pathname === '/' ? '/metrics' : u.pathname;
    const key = `${scheme} ${path}`;
    const group = groups.get(key) ?? { scheme, path, hosts: [] };
    group.hosts.push(u.host);
    groups.set(key, group);
  }
  // JSON is YAML: no serializer needed, and every string is quoted.
  const config = {
    global: { scrape_interval: `${interval}s`, evaluation_interval: `${interval}s`, scrape_timeout: `${interval}s` },
    scrape_configs: [...groups.values()].map((g, i) => ({
      job_name: groups.size === 1 ? job : `${job}-${i}`,
      scheme: g.scheme,
      metrics_path: g.path,
      static_configs: [{ targets: g.hosts, labels: { job } }],
    })),
  };
  return `${JSON.stringify(config, null, 2)}\n`;
}

class RunningPrometheus implements Prometheus {
  readonly url: string;
  readonly dir: string;
  readonly logFile: string;
  readonly #keepDir: boolean;
  readonly #daemon: Daemon;
  #stopped = false;

  constructor(url: string, dir: string, logFile: string, keepDir: boolean, daemon: Daemon) {
    this.url = url;
    this.dir = dir;
    this.logFile = logFile;
    this.#keepDir = keepDir;
    this.#daemon = daemon;
  }

  get pid(): number | undefined {
    return this.#daemon.pid;
  }

  async query(expr: string): Promise<PromSample[]> {
    const res = await get(`${this.url}/api/v1/query?query=${encodeURIComponent(expr)}`);
    const body = JSON.parse(res.body) as { status: string; error?: string; data?: { resultType: string; result: PromSample[] } };
    if (body.status !== 'success' || body.data === undefined) throw new Error(`query ${expr}: ${body.error ?? `HTTP ${res.status}`}`);
    if (body.data.resultType !== 'vector') throw new Error(`query ${expr}: expected a vector, got ${body.data.resultType}`);
    return body.data.result;
  }

  async waitFor(expr: string, accept: (result: PromSample[]) => boolean, timeoutMs = 30_000): Promise<PromSample[]> {
    const deadline = Date.now() + timeoutMs;
    let last: PromSample[] = [];
    for (;;) {
      last = await this.query(expr);
      if (accept(last)) return last;
      if (Date.now() > deadline) throw new Error(`query ${expr} not accepted within ${timeoutMs}ms; last result: ${JSON.stringify(last)}`);
      await sleep(250);
    }
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    const { code, signal } = await this.#daemon.stop();
    if (!this.#keepDir) await rm(this.dir, { recursive: true, force: true, maxRetries: 3 });
    if (code !== 0) throw new Error(`prometheus ended with ${signal ?? `code ${code}`} after SIGTERM`);
  }
}

function get(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

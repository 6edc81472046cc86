// The harness's real Prometheus scraping a test exporter on loopback.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { startPrometheus } from './prometheus.ts';
import type { Prometheus } from './prometheus.ts';

describe('Prometheus (Debian package) in tests', () => {
  let value = 1;
  let scrapes = 0;
  const exporter = createServer((req, res) => {
    if (req.url !== '/custom/metrics') {
      res.writeHead(404).end();
      return;
    }
    scrapes++;
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
    res.end(`# HELP kubenode_test_value A value the test sets.\n# TYPE kubenode_test_value gauge\nkubenode_test_value{node="node-0"} ${value}\n`);
  });
  let prom: Prometheus;

  before(async () => {
    await new Promise<void>((resolve) => exporter.listen(0, '127.0.0.1', resolve));
    const { port } = exporter.address() as AddressInfo;
    prom = await startPrometheus({ scrapeTargets: [`http://127.0.0.1:${port}/custom/metrics`] });
  });
  after(async () => {
    await prom?.stop();
    exporter.close();
  });

  test('serves on loopback and answers a PromQL query about the target it scrapes', async () => {
    assert.match(prom.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    const up = await prom.waitFor('up{job="kubenode"}', (r) => r.length === 1 && r[0]!.value[1] === '1');
    assert.match(up[0]!.metric.instance ?? '', /^127\.0\.0\.1:\d+$/);
    const sum = await prom.waitFor('sum(kubenode_test_value{node="node-0"}) * 2', (r) => r.length === 1);
    assert.equal(sum[0]!.value[1], '2');
    assert.ok(scrapes > 0);
  });

  test('sees a changed value at the next scrape', async () => {
    value = 7;
    await prom.waitFor('kubenode_test_value', (r) => r[0]?.value[1] === '7');
  });

  test('a malformed expression is an error naming it', async () => {
    await assert.rejects(prom.query('sum(('), /query sum\(\(: .*parse error/);
  });

  test('refuses a scrape target that is not a URL before starting anything', async () => {
    await assert.rejects(startPrometheus({ scrapeTargets: ['127.0.0.1:9100'] }), /not a URL/);
  });

  test('stop() ends the process and removes its directory', async () => {
    const { pid, dir } = prom;
    assert.ok(pid !== undefined);
    await prom.stop();
    assert.throws(() => process.kill(pid, 0), { code: 'ESRCH' });
    assert.equal(existsSync(dir), false);
  });
});

// `kubenode-agent controller` and `rollout` refuse bad flags with exit 64 and a message naming
// the flag, before touching any cluster (needs `npm run build`).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, it } from 'node:test';

const CLI = resolve(import.meta.dirname, '../../dist/kubenode-agent.cjs');
const run = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, KUBECONFIG: '/nonexistent/kubeconfig' } });

describe('controller and rollout flags', () => {
  const cases: [string[], RegExp][] = [
    [['controller'], /give --kubeconfig FILE or --in-cluster/],
    [['controller', '--kubeconfig', 'x', '--in-cluster'], /exclude each other/],
    [['controller', '--kubeconfig', 'x', '--leader-elect', 'maybe'], /--leader-elect: expected true or false/],
    [['controller', '--kubeconfig', 'x', '--leader-elect-lease-duration', '10s', '--leader-elect-renew-deadline', '10s'], /renew-deadline \(10s\) must be shorter than --leader-elect-lease-duration/],
    [['controller', '--kubeconfig', 'x', '--leader-elect-retry-period', '0s'], /--leader-elect-retry-period: expected a duration .*got "0s"/],
    [['controller', '--kubeconfig', 'x', '--workers', '0'], /--workers: expected an integer 1\.\.64/],
    [['controller', '--kubeconfig', '/nonexistent/kc'], /\/nonexistent\/kc: cannot load kubeconfig/],
    [['controller', '--kubeconfig', 'x', '--import-node-selector', 'pool in (a,b'], /--import-node-selector: unbalanced parentheses in "pool in \(a,b"/],
    [['controller', '--kubeconfig', 'x', '--csr-import-nodes', 'gpu-(a'], /--csr-import-nodes: not an RE2 regular expression/],
    [['controller', '--kubeconfig', 'x', '--csr-import-nodes', '(gpu)-\\1'], /--csr-import-nodes: not an RE2 regular expression/],
    [['controller', '--kubeconfig', 'x', '--remedy-operation-retention', '1h'], /--remedy-operation-retention: expected a duration .*got "1h"/],
    [['rollout', 'status', 'x', '--timeout', 'soon'], /--timeout: expected a duration/],
    [['rollout', 'undo', 'x', '--kubeconfig', '/nonexistent/kc'], /cannot load kubeconfig/],
    [['rollout', 'status'], /missing required argument 'name'/],
  ];
  for (const [args, message] of cases) {
    it(args.join(' '), () => {
      const r = run(args);
      assert.equal(r.status, 64, `${r.stdout}${r.stderr}`);
      assert.match(r.stderr, message);
    });
  }
});

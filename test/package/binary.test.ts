// The single executables behave exactly as `node dist/kubenode-agent.cjs` does, on both arches,
// and take no code from the environment.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { KUBE_CHUNK } from '../../scripts/build.ts';
import { SEA_ARCHES } from '../../scripts/build-sea.ts';
import { unreachableKubeconfig } from '../helpers/cli.ts';
import { agentRunners, artifact, bundle, checkRoots, DIST, type Result } from './artifacts.ts';

const roots = checkRoots();
const kubeconfig = unreachableKubeconfig(mkdtempSync(join(tmpdir(), 'kubenode-sea-kube-')));
const caseList = (arch: string): { name: string; args: string[]; json?: boolean }[] => [
  { name: 'version', args: ['version'] },
  { name: 'version --json', args: ['version', '--json'] },
  { name: '--help', args: ['--help'] },
  { name: 'check --help', args: ['check', '--help'] },
  { name: 'config defaults', args: ['config', 'defaults'] },
  { name: 'unknown command', args: ['no-such-command'] },
  { name: 'rollout status with a kubeconfig', args: ['rollout', 'status', 'x', '--kubeconfig', kubeconfig] },
  // Under qemu (seconds a run) one host is enough to show that the same code runs.
  ...(arch === 'x64' ? roots : roots.slice(0, 1)).map((root) => ({
    name: `check --json --root <${root.name}>`,
    args: ['check', '--json', '--root', root.dir],
    json: true,
  })),
];

function comparable(r: Result, json: boolean): unknown {
  return { code: r.code, stdout: json ? JSON.parse(r.stdout, blankTimings) : r.stdout, stderr: r.stderr };
}

// startedAt, durationMs …: they differ from run to run.
function blankTimings(key: string, value: unknown): unknown {
  return /(At|Time|Ms)$/.test(key) ? '<timing>' : value;
}

test('the binaries embed the bundle and the Kubernetes client that the other tests run', () => {
  const embedded = artifact('sea/kubenode-agent.cjs', 'npm run build:sea');
  assert.ok(readFileSync(embedded).equals(readFileSync(bundle())), 'dist/ binaries are stale: run `npm run build:sea`');
  const chunk = artifact(`sea/${KUBE_CHUNK}`, 'npm run build:sea');
  assert.ok(readFileSync(chunk).equals(readFileSync(join(DIST, KUBE_CHUNK))), 'dist/ binaries are stale: run `npm run build:sea`');
});

for (const arch of SEA_ARCHES) {
  describe(`linux-${arch} binary${arch === 'x64' ? '' : ' under qemu-user'}`, () => {
    const run = agentRunners(arch);

    for (const c of caseList(arch)) {
      test(`${c.name} matches the bundle`, () => {
        const fromBinary = run.binary(c.args);
        const fromBundle = run.bundle(c.args);
        assert.deepEqual(comparable(fromBinary, c.json === true), comparable(fromBundle, c.json === true));
      });
    }

    test('reports its own arch and a stamped version, with nothing on stderr', () => {
      const r = run.binary(['version', '--json']);
      assert.equal(r.stderr, ''); // a rejected code cache or DEP0040 would warn here
      assert.equal(r.code, 0);
      const info = JSON.parse(r.stdout) as { version: string; arch: string; node: string };
      assert.equal(info.arch, arch);
      assert.equal(info.node, '26.12.1');
      assert.notEqual(info.version, '0.0.0-dev');
    });

    // NODE_DEBUG=kubenode: src/kube/client.ts reports each load of the client.
    test('loads the Kubernetes client from its own asset, and only for a command that needs it', () => {
      const debug = { NODE_DEBUG: 'kubenode' };
      for (const args of [['version'], ['check', '--json', '--root', roots[0]!.dir]]) {
        assert.doesNotMatch(run.binary(args, debug).stderr, /loading the Kubernetes client/, args.join(' '));
      }
      const r = run.binary(['rollout', 'status', 'x', '--kubeconfig', kubeconfig], debug);
      assert.match(r.stderr, new RegExp(`loading the Kubernetes client from the executable \\(asset ${KUBE_CHUNK.replaceAll('.', '\\.')}\\)\n`));
      assert.match(r.stderr, /ECONNREFUSED 127\.0\.0\.1:9\n$/);
      assert.equal(r.code, 1);
    });

    test('NODE_OPTIONS and --node-options inject nothing', () => {
      const dir = mkdtempSync(join(tmpdir(), 'kubenode-inject-'));
      const marker = join(dir, 'injected');
      const payload = join(dir, 'payload.cjs');
      writeFileSync(payload, `require('node:fs').writeFileSync(${JSON.stringify(marker)}, 'x');\n`);

      // The payload does run where Node honours NODE_OPTIONS, so its absence below means something.
      run.bundle(['version'], { NODE_OPTIONS: `--require ${payload}` });
      assert.ok(existsSync(marker), 'control: the payload runs under plain node');
      writeFileSync(marker, '');
      const plain = run.binary(['version']);

      for (const env of [`--require ${payload}`, `--import ${payload}`, '--inspect=127.0.0.1:0']) {
        const r = run.binary(['version'], { NODE_OPTIONS: env });
        assert.deepEqual(r, plain, `NODE_OPTIONS=${env}`);
      }
      const r = run.binary([`--node-options=--require ${payload}`, 'version']);
      assert.equal(r.code, 64, 'commander refuses the flag as an unknown option');
      assert.equal(readFileSync(marker, 'utf8'), '', 'payload ran inside the binary');
    });
  });
}

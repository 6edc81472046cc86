// Names built from a node's or another object's name: a Node name may have 253 characters, as may
// any object name, so a name made of one and a prefix or suffix can pass that, and a cut of it can
// end in '-' or '.'. Every builder: at most 253 characters (a generateName: 58, the apiserver's
// cut), a DNS subdomain, distinct for two long names sharing a prefix, and the plain name where it
// fits (so nothing live is renamed). Then what crosses a real apiserver.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { GENERATE_NAME_MAX, generateNameOf } from '../../src/api/common.ts';
import { centralOperationName } from '../../src/controller/remedy/central.ts';
import { systemClock } from '../../src/host/clock.ts';
import { requestCertificate } from '../../src/join/identity.ts';
import { createKubeClient, loadKubeConfig, type KubeClient } from '../../src/kube/client.ts';
import { startCluster, type Cluster } from '../harness/cluster.ts';

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** A valid node name of `length` characters whose first length-8 are the same for every tail. */
const longName = (tail: string, length = 253): string => `${'gpu-worker-0001.rack-07.hall-2.eu-central-1.'.repeat(6).slice(0, length - 8)}${tail.padEnd(8, '0')}`;
/** Names of `length` characters shifted by 0 to 13 characters, so that wherever a builder cuts, some cut lands on '.' and some on '-'. */
const shifted = (length = 253): string[] => Array.from({ length: 14 }, (_, i) => `${'x'.repeat(i)}${longName(`s${i}`, length)}`.slice(0, length - 1) + 'z');

function wellFormed(name: string, max = 253): void {
  assert.ok(name.length <= max, `${name.length} characters: ${name}`);
  assert.match(name, DNS_SUBDOMAIN);
}

/** What the apiserver does with a generateName: cut to 58, five random alphanumerics appended. */
const generated = (generateName: string): string => `${generateName.slice(0, GENERATE_NAME_MAX)}x7k2m`;

describe('generateNameOf', () => {
  test('the plain "<name>-" or "<name>-<suffix>-" where it fits', () => {
    assert.equal(generateNameOf('kubenode-agent-node-1'), 'kubenode-agent-node-1-');
    assert.equal(generateNameOf('node-1', 'restart-runtime'), 'node-1-restart-runtime-');
    const fits = 'n'.repeat(57 - '-clean-disk'.length);
    assert.equal(generateNameOf(fits, 'clean-disk'), `${fits}-clean-disk-`);
  });

  test('longer: 58 characters at most, the suffix kept, a valid name after the apiserver appends, distinct for names sharing a prefix', () => {
    const names = [...shifted(), ...shifted(60), longName('aaaa'), longName('bbbb')];
    for (const suffix of ['', 'restart-runtime', 'drain']) {
      const made = names.map((n) => generateNameOf(n, suffix));
      assert.ok(made.some((g, i) => (names[i] as string)[g.length - (suffix === '' ? 12 : suffix.length + 13)] === '.'), 'some cut landed on a dot');
      for (const [i, g] of made.entries()) {
        assert.ok(g.length <= GENERATE_NAME_MAX && g.endsWith('-'), g);
        wellFormed(generated(g));
        assert.ok(g.startsWith((names[i] as string).slice(0, 20)), g);
        if (suffix !== '') assert.ok(g.endsWith(`-${suffix}-`), g);
      }
      assert.equal(new Set(made).size, names.length, 'no two names alike');
    }
  });

  test('a suffix too long to leave the name room: both shortened together', () => {
    const g = generateNameOf(longName('a'), 'x'.repeat(50));
    assert.ok(g.length <= GENERATE_NAME_MAX, g);
    wellFormed(generated(g));
  });
});

describe('centralOperationName', () => {
  test('unchanged where the node name and the suffix fit', () => {
    assert.equal(centralOperationName('node-1', 0, '1796520452'), 'node-1-central-0-1796520452');
    assert.equal(centralOperationName('n'.repeat(200), 2, '1796520452'), `${'n'.repeat(200)}-central-2-1796520452`);
  });

  test('a long node name: at most 253 characters, valid wherever the cut lands, distinct for nodes sharing a prefix', () => {
    const names = [...shifted(), ...shifted(233), longName('aaaa'), longName('bbbb')];
    const made = names.map((n) => centralOperationName(n, 3, '1796520452'));
    for (const name of made) {
      wellFormed(name);
      assert.ok(name.endsWith('-central-3-1796520452'), name);
    }
    assert.equal(new Set(made).size, names.length);
  });
});

describe('on a real apiserver', () => {
  let cluster: Cluster;
  let client: KubeClient;
  before(async () => {
    cluster = await startCluster({ agents: 1 });
    client = createKubeClient(await loadKubeConfig({ kubeconfig: cluster.adminKubeconfig }), { timeoutMs: 5000 });
  });
  after(async () => {
    client?.close();
    await cluster?.stop();
  });

  test("the join's CertificateSigningRequest for a 253-character node: created under a valid name that starts with kubenode-agent- and the node name", async () => {
    for (const node of [longName('csr'), ...shifted().slice(0, 7)]) {
      // Nobody approves it here: requestCertificate gives up after the timeout, naming the CSR.
      const err = await requestCertificate(client, node, { clock: systemClock, timeoutMs: 200, pollMs: 100 }).then(
        () => assert.fail('no one approves it'),
        (e: unknown) => e as Error,
      );
      const name = /CertificateSigningRequest (\S+) was not approved/.exec(err.message)?.[1];
      assert.ok(name !== undefined, err.message);
      wellFormed(name, 63);
      assert.ok(name.startsWith(`kubenode-agent-${node.slice(0, 20)}`), name);
    }
  });
});

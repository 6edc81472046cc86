// The controller's approval rule, table-driven over real PKCS#10 requests built as the agent builds
// them (and as a hostile or mistaken client might), without an apiserver.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
import { CertificationRequest } from '@peculiar/asn1-csr';
import { AsnConvert } from '@peculiar/asn1-schema';
import { decideCsr, type Csr } from '../../src/controller/machines/csr.ts';
import { buildCsr, generateAgentKey, parseCsr } from '../../src/join/csr.ts';

const key = generateAgentKey();
const request = (cn: string, o = 'kubenode:agents', k = key.privateKey): string => Buffer.from(buildCsr(k, cn, o)).toString('base64');
const csr = (spec: Partial<Csr['spec']>, status?: Csr['status']): Csr => ({
  metadata: { name: 'c1', uid: 'u1' },
  spec: { request: request('kubenode:agent:n1'), signerName: 'kubernetes.io/kube-apiserver-client', usages: ['client auth'], username: 'system:bootstrap:abcdef', groups: ['system:bootstrappers', 'system:bootstrappers:kubenode', 'system:authenticated'], ...spec },
  ...(status === undefined ? {} : { status }),
});
const machines: Record<string, { metadata: { name: string; deletionTimestamp?: string }; status?: { phase?: string } }> = {
  n1: { metadata: { name: 'n1' } },
  ready: { metadata: { name: 'ready' }, status: { phase: 'Ready' } },
  going: { metadata: { name: 'going', deletionTimestamp: '2026-01-01T00:00:00Z' } },
};
const machineOf = (n: string) => machines[n];

describe('decideCsr', () => {
  const cases: [string, Csr, RegExp | 'AgentBootstrap' | 'AgentRenewal' | 'none', { importNodeNames?: RegExp }?][] = [
    ['bootstrap for an importing Machine', csr({}), 'AgentBootstrap'],
    ['renewal by the same identity', csr({ username: 'kubenode:agent:n1', groups: ['kubenode:agents', 'system:authenticated'] }), 'AgentRenewal'],
    ['renewal of another node', csr({ request: request('kubenode:agent:n2'), username: 'kubenode:agent:n1', groups: ['kubenode:agents'] }), /neither a bootstrap token nor kubenode:agent:n2/],
    ['no Machine', csr({ request: request('kubenode:agent:n9') }), /no Machine n9 exists/],
    ['no Machine, allowed by the import policy', csr({ request: request('kubenode:agent:pool-7') }), 'AgentBootstrap', { importNodeNames: /^(?:pool-\d+)$/ }],
    ['a Machine past importing', csr({ request: request('kubenode:agent:ready') }), /Machine ready is Ready, not importing/],
    ['a Machine being deleted', csr({ request: request('kubenode:agent:going') }), /Machine going is being deleted/],
    ['extra usages', csr({ usages: ['client auth', 'digital signature'] }), /key usages must be exactly \[client auth\]/],
    ['server auth', csr({ usages: ['server auth'] }), /key usages must be exactly/],
    ['another organization', csr({ request: request('kubenode:agent:n1', 'system:masters') }), /subject O must be exactly kubenode:agents/],
    ['a token outside the kubenode group', csr({ groups: ['system:bootstrappers'] }), /not in group system:bootstrappers:kubenode/],
    ['an unrelated user', csr({ username: 'alice', groups: ['devs'] }), /requested by "alice"/],
    ['not an agent CN: not ours to judge', csr({ request: request('alice') }), 'none'],
    ['another signer', csr({ signerName: 'kubernetes.io/kubelet-serving' }), 'none'],
    ['already approved', csr({}, { conditions: [{ type: 'Approved', status: 'True' }] }), 'none'],
    ['already denied', csr({}, { conditions: [{ type: 'Denied', status: 'True' }] }), 'none'],
    ['not PKCS#10', csr({ request: Buffer.from('hello').toString('base64') }), /spec.request is not a PKCS#10 request/],
  ];
  for (const [name, input, want, policy] of cases) {
    it(name, () => {
      const d = decideCsr(input, machineOf as never, policy ?? {});
      if (want === 'none') assert.equal(d.action, 'none');
      else if (typeof want === 'string') {
        assert.equal(d.action, 'approve', JSON.stringify(d));
        assert.equal(d.action === 'approve' && d.reason, want);
      } else {
        assert.equal(d.action, 'wait', JSON.stringify(d));
        assert.match(d.action === 'wait' ? d.message : '', want);
      }
    });
  }

  it('a request whose signature is not by its own key waits', () => {
    const good = parseCsr(buildCsr(key.privateKey, 'kubenode:agent:n1', 'kubenode:agents'));
    assert.equal(good.signatureValid, true);
    // Swap the signature for one by another key: same subject and public key, forged signature.
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const der = (pem: string): Buffer => Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
    const mine = AsnConvert.parse(der(buildCsr(key.privateKey, 'kubenode:agent:n1', 'kubenode:agents')), CertificationRequest);
    mine.signature = AsnConvert.parse(der(buildCsr(other, 'kubenode:agent:n1', 'kubenode:agents')), CertificationRequest).signature;
    const forged = Buffer.from(AsnConvert.serialize(mine));
    const pem = `-----BEGIN CERTIFICATE REQUEST-----\n${forged.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
    const d = decideCsr(csr({ request: Buffer.from(pem).toString('base64') }), machineOf as never, {});
    assert.equal(d.action, 'wait', JSON.stringify(d));
    assert.match(d.action === 'wait' ? d.message : '', /not signed by the key it carries/);
  });
});

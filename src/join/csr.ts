// The PKCS#10 requests agents send: node:crypto makes the key and signs, @peculiar/asn1-csr lays
// out the ASN.1 (Node can parse certificates but cannot build or read a certification request).
// The private key never leaves the process that made it.
import { createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { CertificationRequest, CertificationRequestInfo } from '@peculiar/asn1-csr';
import { AsnConvert } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier, AttributeTypeAndValue, AttributeValue, Name, RelativeDistinguishedName, SubjectPublicKeyInfo } from '@peculiar/asn1-x509';

const OID_ORGANIZATION = '2.5.4.10';
const OID_COMMON_NAME = '2.5.4.3';
const OID_ECDSA_WITH_SHA256 = '1.2.840.10045.4.3.2';

/** The identity every agent certificate carries: CN kubenode:agent:<node>, O kubenode:agents. */
export const AGENT_USER_PREFIX = 'kubenode:agent:';
export const AGENT_GROUP = 'kubenode:agents';
export const CLIENT_SIGNER = 'kubernetes.io/kube-apiserver-client';

export interface AgentKey {
  privateKey: KeyObject;
  /** PKCS#8 PEM. */
  pem: string;
}

/** An ECDSA P-256 key, as kubelet's certificate manager makes for its client certificate. */
export function generateAgentKey(): AgentKey {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { privateKey, pem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };
}

const rdn = (type: string, value: string): RelativeDistinguishedName =>
  new RelativeDistinguishedName([new AttributeTypeAndValue({ type, value: new AttributeValue({ utf8String: value }) })]);

/** A PEM CERTIFICATE REQUEST for O=<organization>, CN=<commonName>, signed with the key; no extensions. */
export function buildCsr(key: KeyObject, commonName: string, organization: string): string {
  const info = new CertificationRequestInfo({
    subject: new Name([rdn(OID_ORGANIZATION, organization), rdn(OID_COMMON_NAME, commonName)]),
    subjectPKInfo: AsnConvert.parse(createPublicKey(key).export({ type: 'spki', format: 'der' }), SubjectPublicKeyInfo),
  });
  const signature = sign('sha256', Buffer.from(AsnConvert.serialize(info)), key);
  const csr = new CertificationRequest({
    certificationRequestInfo: info,
    signatureAlgorithm: new AlgorithmIdentifier({ algorithm: OID_ECDSA_WITH_SHA256 }),
    signature: new Uint8Array(signature).buffer,
  });
  const der = Buffer.from(AsnConvert.serialize(csr));
  return `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64').replace(/.{1,64}/g, '$&\n')}-----END CERTIFICATE REQUEST-----\n`;
}

export interface ParsedCsr {
  commonNames: string[];
  organizations: string[];
  /** Subject attributes other than CN and O (OIDs). */
  otherSubject: string[];
  /** Requested attributes (extension requests: SANs, key usages…); ours send none. */
  attributes: string[];
  /** The request is signed by the key it carries. */
  signatureValid: boolean;
}

/** Reads a PEM certification request; throws on anything that is not one. */
export function parseCsr(pem: string): ParsedCsr {
  const m = /-----BEGIN CERTIFICATE REQUEST-----([\s\S]*?)-----END CERTIFICATE REQUEST-----/.exec(pem);
  if (m === null) throw new Error('no CERTIFICATE REQUEST block');
  const csr = AsnConvert.parse(Buffer.from((m[1] ?? '').replace(/\s+/g, ''), 'base64'), CertificationRequest);
  const info = csr.certificationRequestInfo;
  const parsed: ParsedCsr = { commonNames: [], organizations: [], otherSubject: [], attributes: info.attributes.map((a) => a.type), signatureValid: false };
  for (const set of info.subject) {
    for (const atv of set) {
      if (atv.type === OID_COMMON_NAME) parsed.commonNames.push(atv.value.toString());
      else if (atv.type === OID_ORGANIZATION) parsed.organizations.push(atv.value.toString());
      else parsed.otherSubject.push(atv.type);
    }
  }
  try {
    const publicKey = createPublicKey({ key: Buffer.from(AsnConvert.serialize(info.subjectPKInfo)), format: 'der', type: 'spki' });
    const hash = csr.signatureAlgorithm.algorithm === OID_ECDSA_WITH_SHA256 || csr.signatureAlgorithm.algorithm === '1.2.840.113549.1.1.11' ? 'sha256' : undefined;
    parsed.signatureValid = hash !== undefined && verify(hash, Buffer.from(AsnConvert.serialize(info)), publicKey, Buffer.from(csr.signature));
  } catch {
    parsed.signatureValid = false;
  }
  return parsed;
}

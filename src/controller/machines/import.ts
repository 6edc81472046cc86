// Auto-import: Nodes that other tools create (Cluster API, Karpenter, a cloud's autoscaling group)
// get a Machine when their labels match the controller's --import-node-selector. The Machine is
// named after the Node and carries the Node's labels as they were at import (so MachineComponentSets
// can select on pool, instance type, zone), and annotation kubenode.io/imported-by. From then on it is
// a Machine like any other: the CSR approver approves its agent's first certificate because an
// importing Machine now exists, and the lifecycle takes it through import and, one day, deletion.
// A Machine that exists is never touched here, and nothing is imported for a Node being deleted or
// for one kubenode cordoned (a retired Machine's Node, kept with spec.deleteNode false: deleting the
// Machine must not bring it straight back; uncordon the Node to have it imported again).
import { GROUP, VERSION } from '../../api/common.ts';
import { UsageError } from '../../errors.ts';
import { classifyKubeError, type KubeClient } from '../../kube/client.ts';
import type { Logger } from '../../log.ts';
import { cordonedByAgent } from '../../remedies/node-ops.ts';
import { matchesSelector } from '../rollout/plan.ts';
import type { Cache, MachineObject, NodeObject } from './lifecycle.ts';

export const ANNOTATION_IMPORTED_BY = 'kubenode.io/imported-by';
const IMPORTED_BY = 'import-node-selector';

type Requirement = { key: string; operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist'; values?: string[] };
export interface NodeSelector {
  text: string;
  matchLabels: Record<string, string>;
  matchExpressions: Requirement[];
}

const KEY = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$/;

/**
 * A label selector as kubectl -l takes it: k=v, k==v, k!=v, k, !k, k in (a,b), k notin (a,b),
 * comma-separated, all of them required. Empty is refused: importing every Node is a decision
 * to spell out (a selector on a label every Node has, such as kubernetes.io/os=linux).
 */
export function parseNodeSelector(text: string, flag = '--import-node-selector'): NodeSelector {
  const fail = (why: string): never => {
    throw new UsageError(`${flag}: ${why} in ${JSON.stringify(text)}; expected a label selector such as karpenter.sh/nodepool=gpu,kubernetes.io/arch in (amd64,arm64)`);
  };
  const out: NodeSelector = { text, matchLabels: {}, matchExpressions: [] };
  // Commas inside (…) belong to a set; split on the others.
  const parts: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of text) {
    if (ch === '(') depth += 1;
    if (ch === ')') depth -= 1;
    if (depth < 0 || depth > 1) fail('unbalanced parentheses');
    if (ch === ',' && depth === 0) {
      parts.push(cur);
      cur = '';
    } else cur += ch;
  }
  if (depth !== 0) fail('unbalanced parentheses');
  parts.push(cur);
  const key = (k: string): string => (KEY.test(k) ? k : fail(`${JSON.stringify(k)} is not a label key`));
  const value = (v: string): string => (VALUE.test(v) ? v : fail(`${JSON.stringify(v)} is not a label value`));
  for (const raw of parts) {
    const p = raw.trim();
    if (p === '') fail('an empty requirement');
    let m: RegExpMatchArray | null;
    if ((m = /^(\S+?)\s+(in|notin)\s*\((.*)\)$/.exec(p)) !== null) {
      const values = (m[3] as string).split(',').map((v) => value(v.trim()));
      out.matchExpressions.push({ key: key(m[1] as string), operator: m[2] === 'in' ? 'In' : 'NotIn', values });
    } else if ((m = /^([^!=\s]+)\s*!=\s*(\S*)$/.exec(p)) !== null) out.matchExpressions.push({ key: key(m[1] as string), operator: 'NotIn', values: [value(m[2] as string)] });
    else if ((m = /^([^!=\s]+)\s*==?\s*(\S*)$/.exec(p)) !== null) {
      const k = key(m[1] as string);
      if (k in out.matchLabels && out.matchLabels[k] !== m[2]) fail(`${k} required to equal two values`);
      out.matchLabels[k] = value(m[2] as string);
    } else if ((m = /^!\s*(\S+)$/.exec(p)) !== null) out.matchExpressions.push({ key: key(m[1] as string), operator: 'DoesNotExist' });
    else if (/^\S+$/.test(p)) out.matchExpressions.push({ key: key(p), operator: 'Exists' });
    else fail(`${JSON.stringify(p)} is not a requirement`);
  }
  return out;
}

export interface ImporterOptions {
  client: KubeClient;
  machines: Cache<MachineObject>;
  nodes: Cache<NodeObject>;
  selector: NodeSelector;
  log: Logger;
  mayWrite: () => boolean;
}

/** One pass per Node key: creates its Machine if the Node matches and none exists. */
export class NodeImporter {
  readonly stats = { imported: 0 };
  readonly #o: ImporterOptions;

  constructor(o: ImporterOptions) {
    this.#o = o;
  }

  matches(node: NodeObject): boolean {
    return (node.metadata as { deletionTimestamp?: string }).deletionTimestamp === undefined && !cordonedByAgent(node as Parameters<typeof cordonedByAgent>[0]) && matchesSelector(this.#o.selector, node.metadata.labels);
  }

  async reconcile(name: string): Promise<undefined> {
    const node = this.#o.nodes.get(name);
    if (node === undefined || !this.matches(node) || this.#o.machines.get(name) !== undefined) return undefined;
    if (!this.#o.mayWrite()) throw new Error('not the leader: refusing to write');
    const body = {
      apiVersion: `${GROUP}/${VERSION}`,
      kind: 'Machine',
      metadata: { name, labels: { ...(node.metadata.labels ?? {}) }, annotations: { [ANNOTATION_IMPORTED_BY]: IMPORTED_BY } },
      spec: {},
    };
    try {
      await this.#o.client.request('POST', `/apis/${GROUP}/${VERSION}/machines`, { body });
    } catch (err) {
      // Someone (a person, another replica's last write) made it first: theirs stands.
      if (classifyKubeError(err) === 'conflict') return undefined;
      throw err;
    }
    this.stats.imported += 1;
    this.#o.log.info({ machine: name, selector: this.#o.selector.text }, 'Node matches the import policy; Machine created');
    return undefined;
  }
}

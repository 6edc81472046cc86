// Two components claiming the same file, link, unit, package or directory would overwrite each
// other on every pass. The claim is found before anything runs: the component that already had the
// thing (its last good spec claimed it) keeps it and is told; the newcomer is refused and told why.
// With no incumbent (both new, or both had it) both are refused. Either way the answer is the same
// every pass: nothing flips back and forth.
import path from 'node:path';
import type { MachineComponentSpec } from '../api/machine-component.ts';
import { installDir } from './sources/common.ts';
import { UNIT_DIR } from './systemd.ts';
import type { Target } from './types.ts';

interface Claim {
  /** What is claimed, as an operator names it. */
  what: string;
  key: string;
  /** A directory claims everything below it. */
  subtree: boolean;
}

function claims(spec: MachineComponentSpec): Claim[] {
  const out: Claim[] = [];
  const p = (what: string, hostPath: string, subtree = false): void => {
    out.push({ what: `${what} ${hostPath}`, key: path.posix.normalize(hostPath), subtree });
  };
  for (const f of spec.files) p('file', f.path);
  if (spec.source.type === 'tarball' || spec.source.type === 'binary') {
    p('install.dir', installDir(spec), true);
    for (const l of spec.install.links) p('link', l.path);
  }
  if (spec.unit !== undefined) {
    out.push({ what: `unit ${spec.unit.name}`, key: `unit:${spec.unit.name}`, subtree: false });
    if (spec.unit.content !== undefined) p('unit file', `${UNIT_DIR}/${spec.unit.name}`);
  }
  if ((spec.source.type === 'deb' || spec.source.type === 'rpm') && spec.source.package !== undefined) {
    out.push({ what: `${spec.source.type} package ${spec.source.package}`, key: `package:${spec.source.type}:${spec.source.package}`, subtree: false });
  }
  return out;
}

/** Whether a key (a host path, `unit:NAME`, `package:TYPE:NAME`) is claimed by one of the targets. */
export function claimedBy(targets: readonly Target[]): (key: string) => boolean {
  const all = targets.flatMap((t) => claims(t.spec));
  return (key) => all.some((c) => c.key === key || (c.subtree && !key.includes(':') && under(key, c.key)));
}

const under = (child: string, dir: string): boolean => child === dir || child.startsWith(dir === '/' ? '/' : `${dir}/`);

/** The claim of `a` that collides with one of `b`, as [a's, b's]. */
function collision(a: Claim[], b: Claim[]): [Claim, Claim] | undefined {
  for (const x of a) {
    for (const y of b) {
      if (x.key === y.key) return [x, y];
      const paths = !x.key.includes(':') && !y.key.includes(':');
      if (paths && ((y.subtree && under(x.key, y.key)) || (x.subtree && under(y.key, x.key)))) return [x, y];
    }
  }
  return undefined;
}

export interface ConflictVerdict {
  /** Refused: not acted on this pass. Otherwise the component keeps what it has and only reports. */
  refused: boolean;
  message: string;
}

/**
 * Conflicts among the declared targets. `incumbent(component)` is the spec last installed and
 * healthy for that component, if any.
 */
export function findConflicts(targets: readonly Target[], incumbent: (component: string) => MachineComponentSpec | undefined): Map<string, ConflictVerdict> {
  const verdicts = new Map<string, ConflictVerdict>();
  const claimed = targets.map((t) => ({ t, claims: claims(t.spec), had: incumbent(t.spec.component) }));
  const hadClaims = new Map(claimed.map((c) => [c.t.spec.component, c.had === undefined ? [] : claims(c.had)]));
  const note = (component: string, refused: boolean, message: string): void => {
    const prev = verdicts.get(component);
    verdicts.set(component, { refused: refused || prev?.refused === true, message: prev === undefined ? message : `${prev.message}; ${message}` });
  };
  for (let i = 0; i < claimed.length; i++) {
    for (let j = i + 1; j < claimed.length; j++) {
      const a = claimed[i] as (typeof claimed)[number];
      const b = claimed[j] as (typeof claimed)[number];
      const hit = collision(a.claims, b.claims);
      if (hit === undefined) continue;
      const [ca, cb] = hit;
      const an = a.t.spec.component;
      const bn = b.t.spec.component;
      const aHad = collision([ca], hadClaims.get(an) ?? []) !== undefined;
      const bHad = collision([cb], hadClaims.get(bn) ?? []) !== undefined;
      const clash = `${ca.what} (component ${an}, ${a.t.origin}) and ${cb.what} (component ${bn}, ${b.t.origin}) claim the same place`;
      if (aHad !== bHad) {
        const [keeper, refused] = aHad ? [an, bn] : [bn, an];
        note(keeper, false, `conflict: ${clash}; ${keeper} had it first and keeps it, ${refused} is refused until one of them gives it up`);
        note(refused, true, `conflict: ${clash}; ${keeper} had it first, so ${refused} is refused until one of them gives it up`);
      } else {
        note(an, true, `conflict: ${clash}; both are refused until one of them gives it up`);
        note(bn, true, `conflict: ${clash}; both are refused until one of them gives it up`);
      }
    }
  }
  return verdicts;
}

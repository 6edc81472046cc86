// Keys of earlier releases, read as the keys that replaced them, so a node upgraded with its old
// agent.yaml still starts. Each old key configured half of today's one risk gate.
import type { TSchema } from '@sinclair/typebox';
import { ConfigError } from '../errors.ts';
import { RiskConfig } from '../risk/config.ts';
import { decodeSection } from './decode.ts';

const MOVED: readonly { from: readonly string[]; to: 'local' | 'webhook' }[] = [
  { from: ['installers', 'risk'], to: 'local' },
  { from: ['remedies', 'gate', 'local'], to: 'local' },
  { from: ['remedies', 'gate', 'webhook'], to: 'webhook' },
];

type Mapping = Record<string, unknown>;
const isMapping = (v: unknown): v is Mapping => typeof v === 'object' && v !== null && !Array.isArray(v);

function at(doc: Mapping, keys: readonly string[]): unknown {
  let v: unknown = doc;
  for (const key of keys) v = isMapping(v) && Object.hasOwn(v, key) ? v[key] : undefined;
  return v;
}

/** One field's value as the agent would use it (durations in ms), so `60m` and `1h` agree. */
function decoded(file: string, to: 'local' | 'webhook', field: string, value: unknown, prefix: string): unknown {
  const section = RiskConfig.properties[to] as TSchema;
  return (decodeSection(file, section, { [field]: value }, prefix) as Mapping)[field];
}

/**
 * The document with installers.risk and remedies.gate.* moved under risk.*, and the deprecation
 * warning to give (one for all of them). A field set both under an old key and under its new one
 * (or under both old keys) must say the same, or the file is refused naming both.
 */
export function upgradeDeprecatedKeys(file: string, raw: Mapping): { doc: Mapping; warning?: string } {
  const gate = at(raw, ['remedies', 'gate']);
  if (gate === undefined && at(raw, ['installers', 'risk']) === undefined) return { doc: raw };
  const doc = structuredClone(raw);
  if (gate !== undefined) {
    if (!isMapping(gate)) throw new ConfigError(file, 'remedies.gate', 'expected a mapping (deprecated: see risk)');
    for (const key of Object.keys(gate)) if (key !== 'local' && key !== 'webhook') throw new ConfigError(file, `remedies.gate.${key}`, 'unknown key');
  }
  if (doc.risk !== undefined && !isMapping(doc.risk)) throw new ConfigError(file, 'risk', 'expected a mapping');
  const risk = (doc.risk ?? {}) as Mapping;
  /** Where each field of risk.* that an old key set came from. */
  const setBy = new Map<string, string>();
  const moved: string[] = [];
  for (const m of MOVED) {
    const old = at(raw, m.from);
    if (old === undefined) continue;
    const oldName = m.from.join('.');
    if (!isMapping(old)) throw new ConfigError(file, oldName, `expected a mapping (deprecated: use risk.${m.to})`);
    if (risk[m.to] !== undefined && !isMapping(risk[m.to])) throw new ConfigError(file, `risk.${m.to}`, 'expected a mapping');
    const target = (risk[m.to] ?? {}) as Mapping;
    for (const [field, value] of Object.entries(old)) {
      const newName = `risk.${m.to}.${field}`;
      const oldValue = decoded(file, m.to, field, value, oldName);
      if (!Object.hasOwn(target, field)) {
        target[field] = value;
        setBy.set(newName, `${oldName}.${field}`);
        continue;
      }
      const other = setBy.get(newName) ?? newName;
      if (JSON.stringify(decoded(file, m.to, field, target[field], other.split('.').slice(0, -1).join('.'))) !== JSON.stringify(oldValue)) {
        throw new ConfigError(file, `${oldName}.${field}`, `deprecated key for ${newName}, and ${other} says otherwise (${JSON.stringify(target[field])} against ${JSON.stringify(value)}): keep only ${newName}`);
      }
    }
    risk[m.to] = target;
    moved.push(`${oldName} → risk.${m.to}`);
  }
  doc.risk = risk;
  if (isMapping(doc.installers)) delete doc.installers.risk;
  if (isMapping(doc.remedies)) delete doc.remedies.gate;
  return {
    doc,
    warning: `${file}: deprecated keys read as their replacements (${moved.join(', ')}); move them there — installers and remedies now spend one budget (README, "The risk gate")`,
  };
}

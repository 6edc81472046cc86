// A directory of MachineComponent YAML files (multi-document), validated against the same schema
// the CRD carries. A bad file is refused whole, with an error naming the file and the field; the
// other files still load.
import { createHash } from 'node:crypto';
import path from 'node:path';
import { Value } from '@sinclair/typebox/value';
import { parseAllDocuments } from 'yaml';
import { API_VERSION } from '../api/common.ts';
import { KIND, MachineComponent, type MachineComponentSpec } from '../api/machine-component.ts';
import { fieldPath, yamlToJs } from '../config/decode.ts';
import { ConfigError } from '../errors.ts';
import { compileRe2 } from '../util/re2.ts';
import type { Target } from './types.ts';

export interface ManifestReader {
  list(dir: string): Promise<string[]>;
  read(file: string): Promise<string>;
}

export interface LoadedManifests {
  targets: Target[];
  /** One per refused file. */
  errors: ConfigError[];
  files: number;
}

/** sha256 of the spec as canonical JSON (sorted keys): the identity of "this desired state". */
export function specHash(spec: MachineComponentSpec): string {
  const canon = (v: unknown): unknown =>
    Array.isArray(v) ? v.map(canon) : v !== null && typeof v === 'object' ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, canon((v as Record<string, unknown>)[k])])) : v;
  return createHash('sha256').update(JSON.stringify(canon(spec))).digest('hex');
}

function describeExpected(schema: Record<string, unknown>, value: unknown): string {
  if (schema.type === 'array' && !Array.isArray(value)) return 'an array (commands are argv arrays, never shell strings)';
  if (schema.type === 'object' && (typeof value !== 'object' || value === null || Array.isArray(value))) return 'a mapping';
  if (Array.isArray(schema.enum)) return `one of ${(schema.enum as string[]).join(', ')}`;
  const what = typeof schema.type === 'string' ? schema.type : 'a value';
  if (typeof schema.pattern === 'string') return `${what} matching ${schema.pattern}`;
  if (typeof schema.minimum === 'number' || typeof schema.maximum === 'number') return `${what} in [${String(schema.minimum ?? '')}, ${String(schema.maximum ?? '')}]`;
  if (typeof schema.minItems === 'number' && schema.type === 'array') return `an array of at least ${schema.minItems} item(s)`;
  if (typeof schema.minLength === 'number' && schema.type === 'string') return `a string of at least ${schema.minLength} character(s)`;
  return what;
}

const dotSegments = (p: string): boolean => p.split('/').some((s) => s === '..' || s === '.');

/** The CEL rules of the schema (x-kubernetes-validations), checked in code. */
function semanticErrors(spec: MachineComponentSpec): { field: string; message: string }[] {
  const errors: { field: string; message: string }[] = [];
  const s = spec.source;
  if (s.type !== 'none' && (s.url === undefined || s.sha256 === undefined)) {
    errors.push({ field: s.url === undefined ? 'spec.source.url' : 'spec.source.sha256', message: `required for source.type ${s.type} (every download is verified)` });
  }
  if (s.type === 'none' && (s.url !== undefined || s.sha256 !== undefined)) errors.push({ field: 'spec.source', message: 'type none takes no url or sha256' });
  if ((s.type === 'deb' || s.type === 'rpm') && s.package === undefined) errors.push({ field: 'spec.source.package', message: `required for source.type ${s.type}` });
  if (spec.install.dir !== undefined && dotSegments(spec.install.dir)) errors.push({ field: 'spec.install.dir', message: 'must not contain . or .. segments' });
  spec.install.links.forEach((l, i) => {
    if (dotSegments(l.path)) errors.push({ field: `spec.install.links[${i}].path`, message: 'must not contain . or .. segments' });
    if (dotSegments(l.target)) errors.push({ field: `spec.install.links[${i}].target`, message: 'must not contain . or .. segments' });
  });
  if (spec.install.links.length > 0 && (s.type === 'deb' || s.type === 'rpm' || s.type === 'none')) {
    errors.push({ field: 'spec.install.links', message: 'links apply to tarball and binary sources only' });
  }
  const seen = new Set<string>();
  spec.files.forEach((f, i) => {
    if ((f.content === undefined) === (f.template === undefined)) errors.push({ field: `spec.files[${i}]`, message: 'exactly one of content and template' });
    if (dotSegments(f.path)) errors.push({ field: `spec.files[${i}].path`, message: 'must not contain . or .. segments' });
    if (seen.has(f.path)) errors.push({ field: `spec.files[${i}].path`, message: `${f.path} is listed twice` });
    seen.add(f.path);
  });
  if (s.type === 'none' && (spec.hooks.preInstall.length > 0 || spec.hooks.postInstall.length > 0)) {
    errors.push({ field: 'spec.hooks', message: 'source.type none installs nothing, so preInstall and postInstall hooks would never run; remove them or give the component a source' });
  }
  if (spec.healthCheck?.unitActive === true && spec.unit === undefined) errors.push({ field: 'spec.healthCheck.unitActive', message: 'needs spec.unit' });
  if (spec.versionProbe !== undefined) {
    try {
      compileRe2(spec.versionProbe.regex);
    } catch (err) {
      errors.push({ field: 'spec.versionProbe.regex', message: `expected an RE2 regular expression (matched in linear time): ${(err as Error).message}` });
    }
  }
  return errors;
}

/** Parses one file; throws ConfigError (file + field) at the first problem. */
export function parseManifestText(file: string, text: string): Target[] {
  const docs = parseAllDocuments(text, { uniqueKeys: true, prettyErrors: false });
  const list = Array.isArray(docs) ? docs : [docs];
  const targets: Target[] = [];
  list.forEach((doc, index) => {
    const where = list.length > 1 ? `${file} (document ${index + 1})` : file;
    const yamlError = doc.errors[0];
    if (yamlError !== undefined) {
      const pos = yamlError.linePos?.[0];
      throw new ConfigError(where, '', `invalid YAML${pos === undefined ? '' : ` at line ${pos.line}, column ${pos.col}`}: ${yamlError.message.split('\n')[0]}`);
    }
    const raw = yamlToJs(where, doc);
    if (raw === null || raw === undefined) return;
    if (typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError(where, '', 'expected a mapping');
    const obj = raw as Record<string, unknown>;
    if (obj.apiVersion !== API_VERSION) throw new ConfigError(where, 'apiVersion', `expected ${API_VERSION}, got ${JSON.stringify(obj.apiVersion) ?? 'nothing'}`);
    if (obj.kind !== KIND) throw new ConfigError(where, 'kind', `expected ${KIND}, got ${JSON.stringify(obj.kind) ?? 'nothing'}`);
    const withDefaults = Value.Default(MachineComponent, structuredClone(obj)) as MachineComponent;
    const first = Value.Errors(MachineComponent, withDefaults).First();
    if (first !== undefined) {
      const field = fieldPath(first.path);
      if (first.message.startsWith('Unexpected property')) throw new ConfigError(where, field, 'unknown field');
      if (first.value === undefined) throw new ConfigError(where, field, 'required field is missing');
      const got = JSON.stringify(first.value) ?? 'nothing';
      throw new ConfigError(where, field, `expected ${describeExpected(first.schema as Record<string, unknown>, first.value)}, got ${got.length > 60 ? `${got.slice(0, 60)}…` : got}`);
    }
    const problem = semanticErrors(withDefaults.spec)[0];
    if (problem !== undefined) throw new ConfigError(where, problem.field, problem.message);
    targets.push({ spec: withDefaults.spec, specHash: specHash(withDefaults.spec), generation: withDefaults.metadata.generation ?? 1, origin: `${file}#${withDefaults.metadata.name}` });
  });
  const names = new Set<string>();
  for (const t of targets) {
    if (names.has(t.spec.component)) throw new ConfigError(file, 'spec.component', `${t.spec.component} is declared twice in this file`);
    names.add(t.spec.component);
  }
  return targets;
}

/** Loads every *.yaml / *.yml file of a directory, in name order. */
export async function loadManifestDir(reader: ManifestReader, dir: string): Promise<LoadedManifests> {
  let names: string[];
  try {
    names = (await reader.list(dir)).filter((n) => /\.ya?ml$/.test(n) && !n.startsWith('.')).sort();
  } catch (err) {
    throw new ConfigError(dir, '', `cannot read the manifest directory: ${err instanceof Error ? err.message : String(err)}`);
  }
  const out: LoadedManifests = { targets: [], errors: [], files: names.length };
  const owner = new Map<string, string>();
  for (const name of names) {
    const file = path.join(dir, name);
    try {
      const targets = parseManifestText(file, await reader.read(file));
      // A file truncated and then written in place (an editor, `cat >`, config management) is empty
      // for a moment: read then as "nothing declared", it uninstalled what it declares. Refused
      // instead, which also keeps every undeclared component until the next read.
      if (targets.length === 0) throw new ConfigError(file, '', 'declares no MachineComponent (read as a file still being written); to remove what it declared, delete the file');
      const clash = targets.find((t) => owner.has(t.spec.component));
      if (clash !== undefined) throw new ConfigError(file, 'spec.component', `${clash.spec.component} is already declared in ${owner.get(clash.spec.component)}`);
      for (const t of targets) owner.set(t.spec.component, file);
      out.targets.push(...targets);
    } catch (err) {
      if (err instanceof ConfigError) out.errors.push(err);
      else out.errors.push(new ConfigError(file, '', err instanceof Error ? err.message : String(err)));
    }
  }
  return out;
}

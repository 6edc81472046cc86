// TypeBox JSON Schema → CustomResourceDefinition. Pure (no files), so the staleness test can
// regenerate in memory what scripts/gen-crds.ts writes to deploy/crds/.
//
// The apiserver only takes structural schemas: every node has a type, no $id/$ref, no
// patternProperties, no anyOf/oneOf/allOf/not except the int-or-string pattern, no
// additionalProperties:false (unknown fields are pruned instead), formats from a fixed list.
// Anything here we cannot translate is an error naming the path, not a silent drop.
import { stringify } from 'yaml';
import { GROUP, VERSION, kinds, type KindDefinition, type KindName } from './index.ts';
import { AgentError } from '../errors.ts';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

/** Formats kube-apiserver validates (k8s.io/kube-openapi/pkg/validation/strfmt); others are dropped with an error. */
const KUBE_FORMATS = new Set([
  'bsonobjectid', 'uri', 'email', 'hostname', 'ipv4', 'ipv6', 'cidr', 'mac', 'uuid', 'uuid3', 'uuid4', 'uuid5',
  'isbn', 'isbn10', 'isbn13', 'creditcard', 'ssn', 'hexcolor', 'rgbcolor', 'byte', 'password', 'date', 'duration',
  'datetime', 'date-time', 'int32', 'int64', 'float', 'double',
]);

/** Keywords passed through as they are. */
const KEEP = new Set([
  'type', 'description', 'default', 'enum', 'format', 'pattern', 'minLength', 'maxLength', 'minimum', 'maximum',
  'exclusiveMinimum', 'exclusiveMaximum', 'multipleOf', 'minItems', 'maxItems', 'uniqueItems', 'minProperties',
  'maxProperties', 'required', 'nullable', 'x-kubernetes-validations', 'x-kubernetes-list-type',
  'x-kubernetes-list-map-keys', 'x-kubernetes-map-type', 'x-kubernetes-int-or-string',
  'x-kubernetes-preserve-unknown-fields', 'x-kubernetes-embedded-resource',
]);
/** TypeBox and JSON Schema annotations that mean nothing to the apiserver. */
const DROP = new Set(['$id', '$schema', 'title', 'examples', '$comment']);

export class SchemaConversionError extends AgentError {
  constructor(path: string, message: string) {
    super('INTERNAL', `${path}: ${message}`);
  }
}

/** A structural openAPIV3Schema from a TypeBox schema; throws on what cannot be expressed. */
export function toStructural(schema: unknown, path = '$'): JsonObject {
  // The round trip drops TypeBox's symbol keys ([Kind], [OptionalKind]).
  const plain = JSON.parse(JSON.stringify(schema)) as JsonObject;
  return convert(plain, path);
}

function convert(node: JsonObject, path: string): JsonObject {
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(node)) {
    if (DROP.has(key)) continue;
    switch (key) {
      case 'properties': {
        const props: JsonObject = {};
        for (const [name, sub] of Object.entries(value as JsonObject)) props[name] = convert(sub as JsonObject, `${path}.${name}`);
        out.properties = props;
        break;
      }
      case 'items':
        if (Array.isArray(value)) throw new SchemaConversionError(path, 'tuple items are not structural');
        out.items = convert(value as JsonObject, `${path}[]`);
        break;
      case 'patternProperties': {
        const entries = Object.entries(value as JsonObject);
        const [pattern, sub] = entries[0] ?? [];
        if (entries.length !== 1 || (pattern !== '^(.*)$' && pattern !== '^.*$')) {
          throw new SchemaConversionError(path, `patternProperties ${Object.keys(value as JsonObject).join(', ')}: only a catch-all map (Type.Record(Type.String(), …)) has a structural form`);
        }
        out.additionalProperties = convert(sub as JsonObject, `${path}{}`);
        break;
      }
      case 'additionalProperties':
        // false: the apiserver prunes unknown fields anyway; true: keep them.
        if (value === true) out['x-kubernetes-preserve-unknown-fields'] = true;
        else if (value !== false) out.additionalProperties = convert(value as JsonObject, `${path}{}`);
        break;
      case 'anyOf':
        if (node['x-kubernetes-int-or-string'] !== true) throw new SchemaConversionError(path, 'anyOf is only structural as x-kubernetes-int-or-string');
        out.anyOf = value;
        break;
      case 'format':
        if (!KUBE_FORMATS.has(value as string)) throw new SchemaConversionError(path, `format ${String(value)} is not one the apiserver knows`);
        out.format = value;
        break;
      default:
        if (!KEEP.has(key)) throw new SchemaConversionError(path, `keyword ${key} has no structural form`);
        out[key] = value;
    }
  }
  // The apiserver validates an object default as written, without applying the defaults nested in
  // it, so `default: {}` over required-with-default fields would be refused: spell them out.
  if (out.type === 'object' && isObject(out.default)) out.default = withNestedDefaults(out.default, out);
  if (out.type === undefined && out['x-kubernetes-int-or-string'] !== true && out['x-kubernetes-preserve-unknown-fields'] !== true) {
    throw new SchemaConversionError(path, 'every node of a structural schema needs a type');
  }
  return out;
}

function isObject(value: Json | undefined): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function withNestedDefaults(value: JsonObject, schema: JsonObject): JsonObject {
  const props = isObject(schema.properties) ? schema.properties : {};
  const out: JsonObject = { ...value };
  for (const [name, sub] of Object.entries(props)) {
    if (!isObject(sub)) continue;
    const current = out[name];
    if (current === undefined && sub.default !== undefined) out[name] = sub.default;
    else if (isObject(current) && sub.type === 'object') out[name] = withNestedDefaults(current, sub);
  }
  return out;
}

export interface CustomResourceDefinition {
  apiVersion: 'apiextensions.k8s.io/v1';
  kind: 'CustomResourceDefinition';
  metadata: { name: string; labels: Record<string, string> };
  spec: JsonObject;
}

export function crdFor(def: KindDefinition): CustomResourceDefinition {
  const root: JsonObject = {
    type: 'object',
    description: `${def.kind} (${GROUP}/${VERSION}); generated from src/api/ by scripts/gen-crds.ts`,
    required: ['spec'],
    properties: {
      apiVersion: { type: 'string', description: `Version of the schema this object follows: ${GROUP}/${VERSION}` },
      kind: { type: 'string', description: `Kind of object: ${def.kind}` },
      // The apiserver refuses anything here but a type, and documents metadata itself (ObjectMeta).
      metadata: { type: 'object' },
      spec: toStructural(def.spec, `${def.kind}.spec`),
      status: toStructural(def.status, `${def.kind}.status`),
    },
  };
  if (def.validations?.length) root['x-kubernetes-validations'] = def.validations.map((v) => ({ ...v }));
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${def.plural}.${GROUP}`, labels: { 'app.kubernetes.io/part-of': 'kubenode' } },
    spec: {
      group: GROUP,
      names: {
        kind: def.kind,
        listKind: `${def.kind}List`,
        plural: def.plural,
        singular: def.singular,
        shortNames: [...def.shortNames],
        categories: [...def.categories],
      },
      scope: def.scope,
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: def.printerColumns.map((c) => ({ ...c }) as JsonObject),
          schema: { openAPIV3Schema: root },
        },
      ],
    },
  };
}

const HEADER = '# Generated by scripts/gen-crds.ts from src/api/ — do not edit; run npm run gen:crds.\n';

/** deploy/crds/<plural>.kubenode.io.yaml → content, for every kind. */
export function renderCrds(): Map<string, string> {
  const files = new Map<string, string>();
  for (const name of Object.keys(kinds) as KindName[]) {
    const def: KindDefinition = kinds[name];
    files.set(`${def.plural}.${GROUP}.yaml`, HEADER + stringify(crdFor(def), { lineWidth: 0 }));
  }
  return files;
}

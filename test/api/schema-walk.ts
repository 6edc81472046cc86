// Walks an openAPIV3Schema (as generated, or as the apiserver publishes it) field by field.

type Node = Record<string, unknown>;

const isNode = (v: unknown): v is Node => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Paths (a.b[].c, m{}.d) of every property that has no non-empty description. */
export function fieldsWithoutDescription(schema: Node, path = ''): string[] {
  const out: string[] = [];
  if (isNode(schema.properties)) {
    for (const [name, sub] of Object.entries(schema.properties)) {
      if (!isNode(sub)) continue;
      const here = path === '' ? name : `${path}.${name}`;
      if (typeof sub.description !== 'string' || sub.description.trim() === '') out.push(here);
      out.push(...fieldsWithoutDescription(sub, here));
    }
  }
  if (isNode(schema.items)) out.push(...fieldsWithoutDescription(schema.items, `${path}[]`));
  if (isNode(schema.additionalProperties)) out.push(...fieldsWithoutDescription(schema.additionalProperties, `${path}{}`));
  // The apiserver's published document wraps referenced schemas in allOf.
  if (Array.isArray(schema.allOf)) for (const sub of schema.allOf) if (isNode(sub)) out.push(...fieldsWithoutDescription(sub, path));
  return out;
}

// Every field of every CRD says what it is: `kubectl explain` shows a field's description and
// nothing else, so a field without one is a field an operator has to read the source for.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Type } from '@sinclair/typebox';
import { crdFor, toStructural } from '../../src/api/crd.ts';
import { kinds, type KindDefinition } from '../../src/api/index.ts';
import { fieldsWithoutDescription } from './schema-walk.ts';

for (const def of Object.values(kinds) as KindDefinition[]) {
  test(`${def.kind}: every field of the CRD schema has a description`, () => {
    const schema = crdFor(def).spec.versions as [{ schema: { openAPIV3Schema: Record<string, unknown> } }];
    // metadata is the one field a CRD may not describe: the apiserver documents it as ObjectMeta.
    const missing = fieldsWithoutDescription(schema[0].schema.openAPIV3Schema).filter((f) => f !== 'metadata');
    assert.deepEqual(missing, [], `${def.kind}: add a description in src/api/ to each of these`);
  });
}

test('the walk finds a missing description in nested objects, array items and map values', () => {
  const schema = toStructural(
    Type.Object(
      {
        named: Type.String({ description: 'has one' }),
        bare: Type.String(),
        list: Type.Array(Type.Object({ inner: Type.Integer() }), { description: 'a list' }),
        map: Type.Record(Type.String(), Type.Object({ deep: Type.Boolean() }), { description: 'a map' }),
        nested: Type.Object({ leaf: Type.String({ description: 'a leaf' }) }),
      },
      { description: 'root' },
    ),
  );
  assert.deepEqual(fieldsWithoutDescription(schema), ['bare', 'list[].inner', 'map{}.deep', 'nested']);
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { kubeTime, mergeConditions, type MergedCondition } from '../../../src/report/kube/node-conditions.ts';
import type { Condition } from '../../../src/types.ts';

const c = (type: string, status: Condition['status'], reason: string, message: string, transitionTime: number): Condition => ({ type, status, reason, message, transitionTime });

const cases: {
  name: string;
  input: Record<string, Condition[]>;
  previous?: MergedCondition[];
  want: Omit<MergedCondition, 'type'> & { type: string };
}[] = [
  {
    name: 'one source passes through unchanged',
    input: { kernel: [c('KernelDeadlock', 'True', 'DockerHung', 'task docker:1 blocked', 5000)] },
    want: { type: 'KernelDeadlock', status: 'True', reason: 'DockerHung', message: 'task docker:1 blocked', transitionTime: 5000, sources: ['kernel'] },
  },
  {
    name: 'True wins over False; its reason and transition are used',
    input: {
      kernel: [c('ReadonlyFilesystem', 'False', 'FilesystemIsNotReadOnly', 'ok', 1000)],
      storage: [c('ReadonlyFilesystem', 'True', 'FilesystemIsReadOnly', '/var is read-only', 3000)],
    },
    want: { type: 'ReadonlyFilesystem', status: 'True', reason: 'FilesystemIsReadOnly', message: '/var is read-only', transitionTime: 3000, sources: ['storage'] },
  },
  {
    name: 'two Trues: the earliest transition leads and the message names both sources',
    input: {
      storage: [c('ReadonlyFilesystem', 'True', 'FilesystemIsReadOnly', '/var is read-only', 3000)],
      kernel: [c('ReadonlyFilesystem', 'True', 'FilesystemIsReadOnly', 'Remounting filesystem read-only', 2000)],
    },
    want: {
      type: 'ReadonlyFilesystem', status: 'True', reason: 'FilesystemIsReadOnly',
      message: 'kernel: Remounting filesystem read-only; storage: /var is read-only', transitionTime: 2000, sources: ['kernel', 'storage'],
    },
  },
  {
    name: 'Unknown beats False: a detector that cannot tell is not outvoted into healthy',
    input: {
      a: [c('DiskUnhealthy', 'False', 'DiskIsHealthy', 'ok', 1000)],
      b: [c('DiskUnhealthy', 'Unknown', 'SmartUnavailable', 'smartctl missing', 4000)],
    },
    want: { type: 'DiskUnhealthy', status: 'Unknown', reason: 'SmartUnavailable', message: 'smartctl missing', transitionTime: 4000, sources: ['b'] },
  },
  {
    name: 'all False with the same message: one message, transition when the last flipped',
    input: {
      a: [c('ReadonlyFilesystem', 'False', 'FilesystemIsNotReadOnly', 'ok', 1000)],
      b: [c('ReadonlyFilesystem', 'False', 'FilesystemIsNotReadOnly', 'ok', 7000)],
    },
    want: { type: 'ReadonlyFilesystem', status: 'False', reason: 'FilesystemIsNotReadOnly', message: 'ok', transitionTime: 7000, sources: ['a', 'b'] },
  },
  {
    name: 'status unchanged since the previous merge keeps its transition time',
    input: {
      kernel: [c('ReadonlyFilesystem', 'False', 'FilesystemIsNotReadOnly', 'ok', 9000)],
      storage: [c('ReadonlyFilesystem', 'True', 'FilesystemIsReadOnly', '/var is read-only', 3000)],
    },
    previous: [{ type: 'ReadonlyFilesystem', status: 'True', reason: 'FilesystemIsReadOnly', message: 'x', transitionTime: 2000, sources: ['kernel', 'storage'] }],
    want: { type: 'ReadonlyFilesystem', status: 'True', reason: 'FilesystemIsReadOnly', message: '/var is read-only', transitionTime: 2000, sources: ['storage'] },
  },
];

for (const tc of cases) {
  test(`mergeConditions: ${tc.name}`, () => {
    const previous = new Map((tc.previous ?? []).map((m) => [m.type, m]));
    const got = mergeConditions(new Map(Object.entries(tc.input)), previous);
    assert.deepEqual(got, [tc.want]);
  });
}

test('mergeConditions: types stay separate and come out sorted', () => {
  const got = mergeConditions(new Map([['k', [c('Zeta', 'False', 'r', 'm', 1), c('Alpha', 'True', 'r', 'm', 2)]]]));
  assert.deepEqual(got.map((m) => m.type), ['Alpha', 'Zeta']);
});

test('kubeTime: RFC 3339 at second precision, as metav1.Time', () => {
  assert.equal(kubeTime(Date.UTC(2026, 0, 1, 10, 0, 5, 999)), '2026-01-01T10:00:05Z');
});

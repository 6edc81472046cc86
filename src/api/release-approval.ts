// ReleaseApproval (kubenode.io/v1alpha1): the grant of one stage's manual approval, a separate
// object so RBAC can allow approving without allowing edits of the Release.
import { Type, type Static } from '@sinclair/typebox';
import { fitName, KubeObject, NODE_NAME_PATTERN, Time } from './common.ts';
import { ClusterName } from './release-pipeline.ts';

/**
 * The ReleaseApproval of one stage of a release: "<release>-<stage>", the release name shortened by
 * fitName where the two would pass 253 characters (a plain cut could end it in '.' before the '-',
 * or give two long releases sharing a prefix one approval). The controller and the CLI both use it.
 */
export function approvalName(release: string, stage: string): string {
  return `${fitName(release, 253 - 1 - stage.length)}-${stage}`;
}

export const ReleaseApprovalSpec = Type.Object(
  {
    release: Type.String({ minLength: 1, maxLength: 253, pattern: NODE_NAME_PATTERN, description: 'The Release', 'x-kubernetes-validations': [{ rule: 'self == oldSelf', message: 'release is immutable' }] }),
    releaseUID: Type.String({ minLength: 1, maxLength: 64, description: "The Release's metadata.uid: an approval never carries over to a new release of the same name", 'x-kubernetes-validations': [{ rule: 'self == oldSelf', message: 'releaseUID is immutable' }] }),
    stage: ClusterName('The stage whose Approval task this grants'),
    approved: Type.Boolean({ default: false, description: 'Set true to approve; an approval cannot be taken back', 'x-kubernetes-validations': [{ rule: 'self || !oldSelf', message: 'an approval cannot be taken back' }] }),
    approvedBy: Type.Optional(Type.String({ maxLength: 253, description: 'Who approved, for the record (the apiserver audit log has the authenticated user)' })),
    comment: Type.Optional(Type.String({ maxLength: 2048, description: 'Why, for the record' })),
  },
  {
    additionalProperties: false,
    description: "The grant of one stage's manual approval; the pipeline controller creates it unapproved when the stage waits for it",
    'x-kubernetes-validations': [{ rule: 'self.stage == oldSelf.stage', message: 'stage is immutable' }],
  },
);
export type ReleaseApprovalSpec = Static<typeof ReleaseApprovalSpec>;

export const ReleaseApprovalStatus = Type.Object(
  {
    requestedTime: Type.Optional(Time({ description: 'When the stage started waiting for it' })),
  },
  { additionalProperties: false, description: 'Written by the pipeline controller' },
);

export const ReleaseApproval = KubeObject('ReleaseApproval', ReleaseApprovalSpec, ReleaseApprovalStatus);
export type ReleaseApproval = Static<typeof ReleaseApproval>;

// ReleasePipeline (kubenode.io/v1alpha1), in a management cluster: the ordered stages of member
// clusters a Release (release.ts) goes through; reusable by many releases.
//
// The kind is ReleasePipeline, not Pipeline: Tekton's tekton.dev Pipeline is common in the
// management clusters this runs in, and `kubectl get pipelines` would then name two resources.
import { Type, type Static } from '@sinclair/typebox';
import { Duration, KubeObject, LabelSelector, StringEnum, Time } from './common.ts';
import { BatchSize, FailurePolicies, IntOrPercent as SetIntOrPercent } from './machine-component-set.ts';

/** IntOrPercent with its string bounded ("100%" is the longest), which keeps the CEL cost estimate inside the budget. */
export const IntOrPercent = (description: string, defaultValue: number | string) => Type.Unsafe<number | string>({ ...SetIntOrPercent(description, defaultValue), maxLength: 4 });

/** Label that makes a Secret in the controller's namespace a member cluster; its value is the cluster's name. */
export const MEMBER_CLUSTER_LABEL = 'kubenode.io/member-cluster';
/** Key of the kubeconfig in a member cluster's Secret. */
export const MEMBER_KUBECONFIG_KEY = 'kubeconfig';
/** On a member cluster's MachineComponentSet: the Release that last wrote it. */
export const RELEASE_ANNOTATION = 'kubenode.io/release';
/** On a ReleaseApproval: the Release it belongs to (for list filtering). */
export const RELEASE_LABEL = 'kubenode.io/release';

const DNS_LABEL = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';
export const MAX_STAGES = 16;
/** An explicit list; the CEL rule that a cluster is in one stage only must fit the apiserver's cost budget. */
export const MAX_LISTED_CLUSTERS = 100;
/** Clusters of one stage in status (a selector may pick more than a list may name). */
export const MAX_STAGE_CLUSTERS = 500;

export const ClusterName = (description: string) => Type.String({ minLength: 1, maxLength: 63, pattern: DNS_LABEL, description });

export const StageTaskTypes = ['TimedWait', 'Approval'] as const;

export const StageTask = Type.Object(
  {
    type: StringEnum(StageTaskTypes, { description: 'TimedWait: wait the given duration; Approval: wait until a ReleaseApproval for this stage is approved' }),
    duration: Type.Optional(Duration({ max: '720h', description: 'How long a TimedWait waits, counted from when the stage finished (TimedWait only)' })),
  },
  {
    additionalProperties: false,
    'x-kubernetes-validations': [{ rule: "(self.type == 'TimedWait') == has(self.duration)", message: 'duration is required for TimedWait and not allowed for Approval' }],
  },
);
export type StageTask = Static<typeof StageTask>;

/** The fields of a MachineComponentSet's spec.rollout a stage may set for its clusters; the rest come from the release. */
export const RolloutOverride = Type.Object(
  {
    batches: Type.Optional(Type.Array(BatchSize, { minItems: 1, maxItems: 32, description: 'Batch sizes in each cluster of the stage (see MachineComponentSet spec.rollout.batches)' })),
    maxUnavailable: Type.Optional(Type.Unsafe<number | string>({ ...IntOrPercent('Machines per cluster that may be failed or mid-install at once', 1), default: undefined })),
    bakeTime: Type.Optional(Duration({ min: '0', description: 'How long each batch must stay healthy before the next one starts' })),
    failureThreshold: Type.Optional(Type.Integer({ minimum: 0, description: 'Failed machines tolerated per cluster before its rollout pauses itself' })),
    progressDeadline: Type.Optional(Duration({ description: 'How long one batch may take to report its machines installed and ready' })),
    failurePolicy: Type.Optional(StringEnum(FailurePolicies, { description: 'What a failed health gate does in the cluster: Pause or Rollback' })),
  },
  { additionalProperties: false, description: "Overrides of the release's in-cluster rollout strategy for this stage's clusters" },
);
export type RolloutOverride = Static<typeof RolloutOverride>;

export const PipelineStage = Type.Object(
  {
    name: ClusterName('Name of the stage (test, staging, production…), unique in the pipeline'),
    clusters: Type.Optional(
      Type.Array(ClusterName('A member cluster: the value of the kubenode.io/member-cluster label on its kubeconfig Secret'), {
        minItems: 1,
        maxItems: MAX_LISTED_CLUSTERS,
        'x-kubernetes-list-type': 'set',
        description: 'Member clusters of the stage, in the order they are updated (alternative to clusterSelector)',
      }),
    ),
    clusterSelector: Type.Optional(
      LabelSelector({ description: "Member clusters of the stage by their Secrets' labels, updated in the order of sortingLabelKey (alternative to clusters)" }),
    ),
    sortingLabelKey: Type.Optional(
      Type.String({ minLength: 1, maxLength: 316, description: "Secret label whose integer value orders a selector's clusters: lower first, then by name; without it by name" }),
    ),
    maxConcurrency: IntOrPercent("Clusters of the stage whose rollout runs at once, as a count or a percentage of the stage's clusters (rounded up, at least 1)", 1),
    maxFailures: Type.Integer({ minimum: 0, default: 0, description: 'Failed clusters the stage tolerates; one more fails the release' }),
    deadline: Duration({
      default: '24h',
      max: '720h',
      description: 'How long the stage may take from its start until every cluster is finished; a cluster not finished by then (unreachable ones included) counts as failed',
    }),
    rolloutOverride: Type.Optional(RolloutOverride),
    afterStage: Type.Array(StageTask, { default: [], maxItems: 8, description: 'Tasks done in order once every cluster of the stage is finished, before the next stage starts' }),
  },
  {
    additionalProperties: false,
    'x-kubernetes-validations': [
      { rule: 'has(self.clusters) != has(self.clusterSelector)', message: 'a stage names its clusters either by clusters or by clusterSelector, exactly one of them' },
      { rule: '!has(self.sortingLabelKey) || has(self.clusterSelector)', message: 'sortingLabelKey orders a clusterSelector; an explicit clusters list is already ordered' },
    ],
  },
);
export type PipelineStage = Static<typeof PipelineStage>;

export const Stages = Type.Array(PipelineStage, {
  minItems: 1,
  maxItems: MAX_STAGES,
  'x-kubernetes-list-type': 'map',
  'x-kubernetes-list-map-keys': ['name'],
  description: 'The stages in the order a release goes through them',
  'x-kubernetes-validations': [
    {
      rule: 'self.all(s, !has(s.clusters) || s.clusters.all(c, self.filter(t, has(t.clusters) && c in t.clusters).size() == 1))',
      message: 'a cluster may appear in at most one stage',
    },
  ],
});

export const ReleasePipelineSpec = Type.Object(
  {
    stages: Stages,
  },
  { additionalProperties: false, description: 'Ordered stages of member clusters a release goes through' },
);
export type ReleasePipelineSpec = Static<typeof ReleasePipelineSpec>;

export const ReleasePipelineStatus = Type.Object(
  {
    lastRelease: Type.Optional(Type.String({ maxLength: 253, description: 'The Release that last started on this pipeline' })),
    lastReleaseTime: Type.Optional(Time({ description: 'When it started' })),
  },
  { additionalProperties: false, description: 'Written by the pipeline controller when a release starts; each Release reports its own progress' },
);

export const ReleasePipeline = KubeObject('ReleasePipeline', ReleasePipelineSpec, ReleasePipelineStatus);
export type ReleasePipeline = Static<typeof ReleasePipeline>;

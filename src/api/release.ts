// Release (kubenode.io/v1alpha1): one run of a pinned MachineComponentSet template through a
// ReleasePipeline's stages, written into each member cluster in order (src/controller/pipeline/).
import { Type, type Static } from '@sinclair/typebox';
import { Conditions, KubeObject, LabelSelector, NODE_NAME_PATTERN, StringEnum, Time, VERSION_PATTERN } from './common.ts';
import { ComponentTemplate } from './machine-component-set.ts';
import { MAX_STAGE_CLUSTERS, MAX_STAGES, RolloutOverride, StageTaskTypes, Stages } from './release-pipeline.ts';

export const ReleaseStates = ['Run', 'Pause', 'Stop'] as const;
export type ReleaseState = (typeof ReleaseStates)[number];

export const ReleaseSpec = Type.Object(
  {
    pipeline: Type.String({
      minLength: 1,
      maxLength: 253,
      pattern: NODE_NAME_PATTERN,
      description: 'The ReleasePipeline to go through; its stages are copied into status when the release starts',
      'x-kubernetes-validations': [{ rule: 'self == oldSelf', message: 'pipeline is immutable' }],
    }),
    componentSet: Type.String({
      minLength: 1,
      maxLength: 242,
      pattern: NODE_NAME_PATTERN,
      description: 'Name of the MachineComponentSet written into each member cluster; one active release per name',
      'x-kubernetes-validations': [{ rule: 'self == oldSelf', message: 'componentSet is immutable' }],
    }),
    selector: LabelSelector({
      description: "The member set's Machine selector (by Machine labels); {} selects all",
      'x-kubernetes-validations': [{ rule: 'self == oldSelf', message: 'selector is immutable' }],
    }),
    template: Type.Unsafe<Static<typeof ComponentTemplate>>({
      ...ComponentTemplate,
      description: 'The pinned MachineComponent template, the same in every cluster; immutable (a rollback is a new Release of the old template)',
      'x-kubernetes-validations': [{ rule: 'self == oldSelf', message: 'template is immutable: create a new Release' }],
    }),
    rollout: Type.Unsafe<RolloutOverride>({
      ...RolloutOverride,
      default: {},
      description: "The in-cluster rollout strategy (MachineComponentSet spec.rollout); a stage's rolloutOverride wins; unset fields take the set's defaults",
      'x-kubernetes-validations': [{ rule: 'self == oldSelf', message: 'rollout is immutable' }],
    }),
    state: StringEnum(ReleaseStates, {
      default: 'Run',
      description:
        "Run; Pause: no further cluster is started, the member sets whose rollout this release is running get spec.paused (in-flight installs finish, no new batch starts, nothing is rolled back) and stage deadlines stop counting, until Run again; Stop: the same pause, and final (a new Release takes the set over and its write lifts the pause)",
      'x-kubernetes-validations': [{ rule: "oldSelf != 'Stop' || self == 'Stop'", message: 'a stopped release cannot run again: create a new Release' }],
    }),
    stateBy: Type.Optional(Type.String({ maxLength: 253, description: 'Who set state last, for the record (the CLI fills it in; the apiserver audit log has the authenticated user)' })),
    stateReason: Type.Optional(Type.String({ maxLength: 1024, description: 'Why, for the record' })),
  },
  { additionalProperties: false, description: 'One run of a pinned component template through a pipeline' },
);
export type ReleaseSpec = Static<typeof ReleaseSpec>;

export const ReleasePhases = ['Pending', 'Progressing', 'Waiting', 'Paused', 'Succeeded', 'Failed', 'Stopped'] as const;
export type ReleasePhase = (typeof ReleasePhases)[number];
export const StageStates = ['Pending', 'Running', 'Waiting', 'Succeeded', 'Failed', 'Stopped'] as const;
export type StageState = (typeof StageStates)[number];
export const ClusterStates = ['Pending', 'Progressing', 'Finished', 'Failed', 'Unknown'] as const;
export type ClusterState = (typeof ClusterStates)[number];
export const TaskStates = ['Pending', 'Waiting', 'Done'] as const;

export const ClusterStatus = Type.Object(
  {
    name: Type.String({ maxLength: 63, description: 'The member cluster' }),
    state: StringEnum(ClusterStates, {
      description: 'Pending (not started), Progressing, Finished, Failed, or Unknown (unreachable: not finished, failed only past the stage deadline)',
    }),
    reachable: StringEnum(['True', 'False', 'Unknown'] as const, { description: 'Whether the last probe of its apiserver answered' }),
    startTime: Type.Optional(Time({ description: 'When the set was first written into the cluster' })),
    endTime: Type.Optional(Time({ description: 'When it finished or failed' })),
    lastSeen: Type.Optional(Time({ description: 'When its apiserver last answered, to the minute while it keeps answering' })),
    revision: Type.Optional(Type.String({ maxLength: 253, description: "The ControllerRevision name the pinned template has in this cluster (what finished means it runs)" })),
    observedGeneration: Type.Optional(Type.Integer({ minimum: 0, description: "The member set's status.observedGeneration" })),
    generation: Type.Optional(Type.Integer({ minimum: 0, description: "The member set's metadata.generation" })),
    phase: Type.Optional(Type.String({ maxLength: 32, description: "The member set's status.phase" })),
    batch: Type.Optional(Type.String({ maxLength: 32, description: "The member set's batch progress: current batch index + 1 / batches run, and updated/matched machines" })),
    updated: Type.Optional(Type.Integer({ minimum: 0, description: 'Machines updated in the cluster' })),
    matched: Type.Optional(Type.Integer({ minimum: 0, description: 'Machines the set matches in the cluster' })),
    memberPaused: Type.Optional(
      Type.Boolean({ description: "True while the release's pause (spec.paused, the pipeline's field manager) is in the member set; false when a stopped release found the set no longer its own (written by a later release, or deleted) and left it alone" }),
    ),
    message: Type.String({ maxLength: 2048, default: '', description: 'Why the state is what it is, for people' }),
  },
  { additionalProperties: false },
);
export type ClusterStatus = Static<typeof ClusterStatus>;

export const TaskStatus = Type.Object(
  {
    type: StringEnum(StageTaskTypes, { description: 'TimedWait or Approval' }),
    state: StringEnum(TaskStates, { description: 'Pending (stage not finished yet), Waiting, or Done' }),
    readyAt: Type.Optional(Time({ description: 'When a TimedWait is over' })),
    approval: Type.Optional(Type.String({ maxLength: 253, description: 'The ReleaseApproval an Approval waits for' })),
    approvedBy: Type.Optional(Type.String({ maxLength: 253, description: 'Who the ReleaseApproval says approved' })),
    startTime: Type.Optional(Time({ description: 'When the task started waiting' })),
    endTime: Type.Optional(Time({ description: 'When the task was done' })),
  },
  { additionalProperties: false },
);
export type TaskStatus = Static<typeof TaskStatus>;

export const StageStatus = Type.Object(
  {
    name: Type.String({ maxLength: 63, description: 'The stage' }),
    state: StringEnum(StageStates, { description: 'Pending, Running, Waiting (after-stage tasks), Succeeded, Failed or Stopped' }),
    startTime: Type.Optional(Time({ description: 'When its first cluster was started' })),
    deadline: Type.Optional(Time({ description: 'startTime + the stage deadline: clusters not finished by then count as failed' })),
    finishedTime: Type.Optional(Time({ description: 'When every cluster was finished or failed (after-stage tasks count from here)' })),
    endTime: Type.Optional(Time({ description: 'When the stage succeeded, failed or stopped' })),
    failed: Type.Integer({ minimum: 0, default: 0, description: 'Clusters of the stage that failed' }),
    clusters: Type.Array(ClusterStatus, { default: [], maxItems: MAX_STAGE_CLUSTERS, description: 'Each cluster of the stage, in update order' }),
    tasks: Type.Array(TaskStatus, { default: [], maxItems: 8, description: 'The after-stage tasks' }),
    message: Type.String({ maxLength: 2048, default: '', description: 'Why the state is what it is, for people' }),
  },
  { additionalProperties: false },
);
export type StageStatus = Static<typeof StageStatus>;

export const HoldStatus = Type.Object(
  {
    state: StringEnum(['Pause', 'Stop'] as const, { description: 'The spec.state in force' }),
    by: Type.Optional(Type.String({ maxLength: 253, description: "spec.stateBy when it took effect" })),
    reason: Type.Optional(Type.String({ maxLength: 1024, description: 'spec.stateReason when it took effect' })),
    since: Time({ description: 'When the controller paused or stopped the release (a Pause turned Stop keeps it; status.endTime is when it stopped)' }),
  },
  { additionalProperties: false, description: 'The pause or stop in force: who, why, since when' },
);
export type HoldStatus = Static<typeof HoldStatus>;

export const ReleaseStatus = Type.Object(
  {
    phase: StringEnum(ReleasePhases, { description: 'Pending, Progressing, Waiting (after-stage task), Paused, Succeeded, Failed or Stopped (for display; conditions are the truth)' }),
    hold: Type.Optional(HoldStatus),
    observedGeneration: Type.Optional(Type.Integer({ minimum: 0, description: 'metadata.generation the status is for' })),
    startTime: Type.Optional(Time({ description: 'When the release started' })),
    endTime: Type.Optional(Time({ description: 'When it succeeded, failed or stopped' })),
    version: Type.Optional(Type.String({ maxLength: 128, pattern: VERSION_PATTERN, description: "The pinned template's version" })),
    currentStage: Type.Optional(Type.String({ maxLength: 63, description: 'The stage in progress' })),
    pipelineSnapshot: Type.Optional(
      Type.Object(
        { generation: Type.Integer({ minimum: 0, description: "The pipeline's metadata.generation when copied" }), stages: Stages },
        { additionalProperties: false, description: "The pipeline's stages as they were when the release started: later pipeline edits do not change a running release" },
      ),
    ),
    stages: Type.Array(StageStatus, { default: [], maxItems: MAX_STAGES, description: 'Each stage, in order' }),
    unassignedClusters: Type.Array(Type.String({ maxLength: 63 }), { default: [], maxItems: 200, description: 'Member clusters no stage selects: reported, not updated' }),
    message: Type.String({ maxLength: 2048, default: '', description: 'Why the phase is what it is, for people' }),
    conditions: Conditions({ default: [] }),
  },
  { additionalProperties: false, description: 'Where the release stands, written by the pipeline controller' },
);
export type ReleaseStatus = Static<typeof ReleaseStatus>;


export const Release = KubeObject('Release', ReleaseSpec, ReleaseStatus);
export type Release = Static<typeof Release>;

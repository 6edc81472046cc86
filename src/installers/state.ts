// The installers' own files under the state dir (journals, records, owned paths), declared once:
// these schemas are the TypeScript types and what every read checks (src/host/files.ts
// readStateFile), so a truncated or hand-edited file is set aside instead of being trusted.
import { Type, type Static } from '@sinclair/typebox';
import { MachineComponentSpec } from '../api/machine-component.ts';

/** A spec with its defaults applied, and what the engine derives from it. */
export const Target = Type.Object({
  spec: MachineComponentSpec,
  specHash: Type.String(),
  generation: Type.Integer({ minimum: 0 }),
  /** Manifest file it came from (standalone) or the object name. */
  origin: Type.String(),
});
export type Target = Static<typeof Target>;

/**
 * Something on the host a step may change, recorded before it runs (src/installers/undo.ts) so a
 * failed run can put it back: a file, symlink or versioned directory; a unit file (stopped before
 * it is removed, daemon-reload after); a package (removed again if it was not installed before).
 */
export const Touch = Type.Union([
  Type.Object({ kind: Type.Literal('path'), path: Type.String() }),
  Type.Object({ kind: Type.Literal('unit'), name: Type.String(), path: Type.String() }),
  Type.Object({ kind: Type.Literal('package'), source: Type.Union([Type.Literal('deb'), Type.Literal('rpm')]), name: Type.String() }),
]);
export type Touch = Static<typeof Touch>;

export const Prior = Type.Union([
  Type.Object({ type: Type.Literal('absent'), createdDirs: Type.Array(Type.String()) }),
  Type.Object({ type: Type.Literal('file'), backup: Type.String(), mode: Type.Integer(), uid: Type.Integer(), gid: Type.Integer() }),
  Type.Object({ type: Type.Literal('symlink'), target: Type.String() }),
  /** A directory or special file: left as it is (never one this agent writes over whole). */
  Type.Object({ type: Type.Literal('other') }),
  /** A package: the version installed before, if any. */
  Type.Object({ type: Type.Literal('package'), version: Type.Optional(Type.String()) }),
]);
export type Prior = Static<typeof Prior>;

export const UndoRecord = Type.Object({ touch: Touch, prior: Prior, done: Type.Optional(Type.Boolean()) });
export type UndoRecord = Static<typeof UndoRecord>;

const Pending = Type.Object({ reload: Type.Boolean(), restart: Type.Boolean(), postInstall: Type.Boolean() });

export const JournalStep = Type.Object({ id: Type.String(), state: Type.Union([Type.Literal('started'), Type.Literal('done')]), at: Type.String() });
export type JournalStep = Static<typeof JournalStep>;

export const JournalData = Type.Object({
  version: Type.Literal(1),
  component: Type.String(),
  /** apply: converging to `target`; rollback: converging back to `target` after `failure`; remove: taking `target` (the last installed spec) off the node. */
  mode: Type.Union([Type.Literal('apply'), Type.Literal('rollback'), Type.Literal('remove')]),
  target: Target,
  /** The spec that was installed and healthy before this run (what a rollback restores). */
  lastGood: Type.Optional(Target),
  /** rollback mode: the spec that failed and why. */
  failed: Type.Optional(Type.Object({ specHash: Type.String(), version: Type.String(), error: Type.String() })),
  pending: Pending,
  /** How what this run touched was before it (apply mode records, rollback replays them). */
  undo: Type.Optional(Type.Array(UndoRecord)),
  steps: Type.Array(JournalStep),
  startedAt: Type.String(),
  pid: Type.Integer(),
});
export type JournalData = Static<typeof JournalData>;

/** The agent's own memory of a component, beyond what status shows. */
export const ComponentRecord = Type.Object({
  /** Last spec installed and verified healthy: what a rollback restores. */
  lastGood: Type.Optional(Target),
  /** A spec that failed and was rolled back: not retried until it changes (or --retry-failed). */
  failed: Type.Optional(Type.Object({ specHash: Type.String(), version: Type.String(), at: Type.String(), error: Type.String() })),
});
export type ComponentRecord = Static<typeof ComponentRecord>;

/**
 * Version directories this agent created for a component: the only ones it trusts as installed or
 * prunes; and `created`, the files, links and unit files that did not exist before it wrote them:
 * the only ones a removal deletes (a file it took over stays).
 */
export const OwnedPaths = Type.Object({ version: Type.Literal(1), paths: Type.Array(Type.String()), created: Type.Optional(Type.Array(Type.String())) });
export type OwnedPaths = Static<typeof OwnedPaths>;

import type { MachineComponentSpec } from '../../api/machine-component.ts';
import type { InstallContext, Step } from '../types.ts';

export interface SourceDefinition {
  /** The steps that put the version on disk and make it the active one (fetch, install, activate). */
  steps(ctx: InstallContext, spec: MachineComponentSpec): Step[];
  /** Housekeeping after a verified install: drop versions and artifacts beyond `keep`, never those in `protect`. */
  prune?(ctx: InstallContext, spec: MachineComponentSpec, keep: number, protect: { versions: string[]; sha256: string[] }): Promise<void>;
  /** Package sources: what a failed first install uses to remove the package it installed. */
  packages?: {
    installed(ctx: InstallContext, name: string): Promise<string | undefined>;
    remove(ctx: InstallContext, name: string): Promise<void>;
  };
}

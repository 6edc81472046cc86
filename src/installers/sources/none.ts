import type { SourceDefinition } from './types.ts';

/** Nothing to install: a component made only of files and a unit (or an existing unit). */
export const none: SourceDefinition = {
  steps: () => [],
};

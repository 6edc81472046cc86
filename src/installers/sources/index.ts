import type { SourceType } from '../../api/machine-component.ts';
import { binary } from './binary.ts';
import { deb } from './deb.ts';
import { none } from './none.ts';
import { rpm } from './rpm.ts';
import { tarball } from './tarball.ts';
import type { SourceDefinition } from './types.ts';

/** One file per source type; `source.type` in the spec names the entry. */
export const sources = { deb, rpm, tarball, binary, none } as const satisfies Record<SourceType, SourceDefinition>;

import type { RemedyAction as ActionName } from '../../api/node-remedier.ts';
import type { RemedyAction } from '../types.ts';
import { cleanDisk } from './clean-disk.ts';
import { cordon } from './cordon.ts';
import { drain } from './drain.ts';
import { dropCaches } from './drop-caches.ts';
import { reboot } from './reboot.ts';
import { restartKubelet } from './restart-kubelet.ts';
import { restartRuntime } from './restart-runtime.ts';
import { restartUnit } from './restart-unit.ts';
import { taint } from './taint.ts';
import { uncordon } from './uncordon.ts';

/**
 * Every remedy action, keyed by the custom resources' action enum (RemedyActions): the type
 * checker refuses a missing or an extra action, and a test keeps the folder in step.
 */
export const actions = {
  'restart-unit': restartUnit,
  'restart-runtime': restartRuntime,
  'restart-kubelet': restartKubelet,
  'clean-disk': cleanDisk,
  'drop-caches': dropCaches,
  cordon,
  taint,
  drain,
  uncordon,
  reboot,
} as const satisfies Record<ActionName, RemedyAction>;

export function findAction(name: string): RemedyAction | undefined {
  return Object.hasOwn(actions, name) ? actions[name as ActionName] : undefined;
}

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

/** Every remedy action by name; a test keeps this in step with the folder. */
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
} as const satisfies Record<string, RemedyAction>;

export type ActionName = keyof typeof actions;

export function findAction(name: string): RemedyAction | undefined {
  return Object.hasOwn(actions, name) ? actions[name as ActionName] : undefined;
}

import type { DetectorDefinition } from './engine/types.ts';
import { fpga } from './fpga.ts';
import { gpuNvidia } from './gpu-nvidia.ts';
import { kubelet } from './kubelet.ts';
import { containerRuntime } from './container-runtime.ts';
import { kernel } from './kernel.ts';
import { clock } from './clock.ts';
import { network } from './network.ts';
import { pressure } from './pressure.ts';
import { storage } from './storage.ts';
import { systemd } from './systemd.ts';

// One line per built-in detector; a test keeps this list and the folder's files in step.
export const detectors = {
  'container-runtime': containerRuntime,
  kernel,
  clock,
  network,
  pressure,
  storage,
  systemd,
  kubelet,
  'gpu-nvidia': gpuNvidia,
  fpga,
} as const satisfies Record<string, DetectorDefinition>;

export type DetectorName = keyof typeof detectors;

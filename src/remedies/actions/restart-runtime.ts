import { restartAction } from './restart-unit.ts';

// Pods lose their runtime (or the kubelet re-syncs every pod) for the length of the restart.
export const restartRuntime = restartAction('restart-runtime', 'Restart the container runtime (params.unit, default containerd)', 'containerd', 'disruptive');

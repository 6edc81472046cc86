import { restartAction } from './restart-unit.ts';

// Pods lose their runtime (or the kubelet re-syncs every pod) for the length of the restart.
export const restartKubelet = restartAction('restart-kubelet', 'Restart kubelet', 'kubelet', 'disruptive');

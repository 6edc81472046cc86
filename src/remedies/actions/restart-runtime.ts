import { restartAction } from './restart-unit.ts';

export const restartRuntime = restartAction('restart-runtime', 'Restart the container runtime (params.unit, default containerd)', 'containerd');

import { restartAction } from './restart-unit.ts';

export const restartKubelet = restartAction('restart-kubelet', 'Restart kubelet', 'kubelet');

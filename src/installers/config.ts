import { Type, type StaticDecode } from '@sinclair/typebox';
import { Duration } from '../util/duration-schema.ts';

/** `installers:` in agent.yaml. */
export const InstallersConfig = Type.Object(
  {
    manifestDir: Type.String({ default: '/etc/kubenode/components', pattern: '^/', description: 'Host directory of MachineComponent YAML files (standalone mode)' }),
    cacheDir: Type.String({ default: '', pattern: '^(/.*)?$', description: 'Host directory for downloaded artifacts; empty: STATEDIR/installers/cache' }),
    keepVersions: Type.Integer({ minimum: 1, maximum: 20, default: 3, description: 'Installed versions (and cached artifacts) kept per component for rollback' }),
    maxDownloadBytes: Type.Integer({ minimum: 1, default: 2 * 1024 * 1024 * 1024, description: 'Largest artifact accepted, unless the spec says source.maxBytes' }),
    maxUnpackedBytes: Type.Integer({ minimum: 1, default: 8 * 1024 * 1024 * 1024, description: 'Largest total size a tarball may unpack to' }),
    downloadAttempts: Type.Integer({ minimum: 1, maximum: 20, default: 5, description: 'Attempts per download (each resumes where the last stopped)' }),
    downloadBackoff: Duration({ default: '1s', min: '10ms', max: '1h', description: 'First retry delay; doubles each attempt, with jitter, up to 30s' }),
    downloadIdleTimeout: Duration({ default: '30s', description: 'Abort a download that receives nothing for this long' }),
    downloadTimeout: Duration({ default: '1h', max: '24h', description: 'Give up on a download (all its attempts) that has not finished after this long, however steadily bytes arrive' }),
    maxArchiveEntries: Type.Integer({ minimum: 1, maximum: 10_000_000, default: 100_000, description: 'Most entries a tarball may hold' }),
    lockTimeout: Duration({ default: '60s', min: '100ms', description: 'How long apply waits for another agent holding the install lock' }),
    commandTimeout: Duration({ default: '5m', description: 'Deadline of one package manager or systemctl command' }),
    rpmDbPath: Type.String({ default: '', pattern: '^(/.*)?$', description: "rpm --dbpath; empty: rpm's default (/var/lib/rpm under a --root tree)" }),
    reconcileDebounce: Duration({ default: '2s', min: '10ms', max: '1h', description: 'Quiet time after a manifest change before the daemon reconciles' }),
    selfUpgradeTimeout: Duration({ default: '5m', min: '10s', max: '1h', description: "How long a new version of the agent itself has to report healthy (its /healthz ok and, in a cluster, its Lease renewed) before the previous version is restored" }),
    reconcileInterval: Duration({ default: '10m', description: 'Periodic reconcile even without manifest changes (drift repair)' }),
  },
  { additionalProperties: false, default: {} },
);
export type InstallersConfig = StaticDecode<typeof InstallersConfig>;

import { Type, type Static } from '@sinclair/typebox';

const DURATION_PATTERN = '^(0|([0-9]+(\\.[0-9]+)?(ms|s|m|h))+)$';

/** `installers:` in agent.yaml. */
export const InstallersConfig = Type.Object(
  {
    manifestDir: Type.String({ default: '/etc/kubenode/components', pattern: '^/', description: 'Host directory of MachineComponent YAML files (standalone mode)' }),
    cacheDir: Type.String({ default: '', pattern: '^(/.*)?$', description: 'Host directory for downloaded artifacts; empty: STATEDIR/installers/cache' }),
    keepVersions: Type.Integer({ minimum: 1, maximum: 20, default: 3, description: 'Installed versions (and cached artifacts) kept per component for rollback' }),
    maxDownloadBytes: Type.Integer({ minimum: 1, default: 2 * 1024 * 1024 * 1024, description: 'Largest artifact accepted, unless the spec says source.maxBytes' }),
    maxUnpackedBytes: Type.Integer({ minimum: 1, default: 8 * 1024 * 1024 * 1024, description: 'Largest total size a tarball may unpack to' }),
    downloadAttempts: Type.Integer({ minimum: 1, maximum: 20, default: 5, description: 'Attempts per download (each resumes where the last stopped)' }),
    downloadBackoff: Type.String({ pattern: DURATION_PATTERN, default: '1s', description: 'First retry delay; doubles each attempt, with jitter, up to 30s' }),
    downloadIdleTimeout: Type.String({ pattern: DURATION_PATTERN, default: '30s', description: 'Abort a download that receives nothing for this long' }),
    downloadTimeout: Type.String({ pattern: DURATION_PATTERN, default: '1h', description: 'Give up on a download (all its attempts) that has not finished after this long, however steadily bytes arrive' }),
    maxArchiveEntries: Type.Integer({ minimum: 1, maximum: 10_000_000, default: 100_000, description: 'Most entries a tarball may hold' }),
    lockTimeout: Type.String({ pattern: DURATION_PATTERN, default: '60s', description: 'How long apply waits for another agent holding the install lock' }),
    commandTimeout: Type.String({ pattern: DURATION_PATTERN, default: '5m', description: 'Deadline of one package manager or systemctl command' }),
    rpmDbPath: Type.String({ default: '', pattern: '^(/.*)?$', description: "rpm --dbpath; empty: rpm's default (/var/lib/rpm under a --root tree)" }),
    reconcileDebounce: Type.String({ pattern: DURATION_PATTERN, default: '2s', description: 'Quiet time after a manifest change before the daemon reconciles' }),
    reconcileInterval: Type.String({ pattern: DURATION_PATTERN, default: '10m', description: 'Periodic reconcile even without manifest changes (drift repair)' }),
  },
  { additionalProperties: false, default: {} },
);
export type InstallersConfig = Static<typeof InstallersConfig>;

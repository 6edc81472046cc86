import { Type, type StaticDecode } from '@sinclair/typebox';
import { RemedyRule } from '../api/node-remedier.ts';
import { Duration, type DurationOptions } from '../util/duration-schema.ts';

const Dur = (def: string, description: string, bounds: Pick<DurationOptions, 'min' | 'max'> = {}) => Duration({ default: def, description, ...bounds });

/** `remedies:` in agent.yaml. Rules use the NodeRemedier rule shape, so a rule moves between the two unchanged. */
export const RemediesConfig = Type.Object(
  {
    enabled: Type.Boolean({ default: false, description: 'Run the remedy engine in the daemon' }),
    dryRun: Type.Boolean({ default: false, description: 'Record what would be done, do nothing' }),
    interval: Dur('10s', 'How often the engine re-evaluates hold times, verifications and cool-downs'),
    rules: Type.Array(RemedyRule, { default: [], description: 'Standalone rules (in a cluster, NodeRemedier objects add to these)' }),
    rulesResync: Dur('1m', 'How often NodeRemedier objects are re-read'),
    commandTimeout: Dur('2m', 'Deadline of one systemctl, crictl or journalctl command'),
    drainTimeout: Dur('5m', 'Deadline of a drain; on expiry the node is uncordoned'),
    rebootTimeout: Dur('15m', 'A requested reboot that has not happened by then is failed and undone'),
    denyBackoff: Dur('30s', 'First retry after a gate denial; doubles (with jitter) up to denyBackoffMax', { min: '100ms' }),
    denyBackoffMax: Dur('10m', 'Longest wait between retries of a denied remedy', { min: '100ms' }),
    journalMaxSize: Type.String({ pattern: '^[0-9]+[KMGT]?$', default: '500M', description: 'clean-disk: journalctl --vacuum-size' }),
    cleanPaths: Type.Array(
      Type.Object({ path: Type.String({ pattern: '^/.+' }), olderThan: Duration({ min: '1m', max: '8760h', description: 'Files older than this are removed' }) }, { additionalProperties: false }),
      { default: [], description: 'clean-disk: host directories whose files older than olderThan are removed' },
    ),
  },
  { additionalProperties: false, default: {} },
);
export type RemediesConfig = StaticDecode<typeof RemediesConfig>;

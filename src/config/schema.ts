import { Type, type StaticDecode, type TObject, type TProperties } from '@sinclair/typebox';
import type { DetectorDefinition } from '../detectors/engine/types.ts';
import { detectors } from '../detectors/index.ts';
import { InstallersConfig } from '../installers/config.ts';
import { RemediesConfig } from '../remedies/config.ts';
import { RiskConfig } from '../risk/config.ts';
import { Duration } from '../util/duration-schema.ts';
import { Re2Pattern } from '../util/re2-schema.ts';
import { LISTEN_PATTERN } from './listen.ts';

const RecoveryPattern = Type.Object(
  {
    condition: Type.String({ minLength: 1, description: 'Condition type this pattern clears' }),
    pattern: Re2Pattern({ minLength: 1, description: 'RE2-syntax regular expression, as NPD rules use' }),
  },
  { additionalProperties: false },
);

const Monitors = Type.Object(
  {
    systemLog: Type.Array(Type.String({ minLength: 1 }), {
      // The kernel detector raises every reason of NPD's kernel-monitor.json and readonly-monitor.json
      // under the same names; running both would report each fault twice.
      default: [],
      description: 'NPD system-log-monitor files (builtin:kernel-monitor.json and builtin:readonly-monitor.json are embedded)',
    }),
    customPlugin: Type.Array(Type.String({ minLength: 1 }), {
      default: [],
      description: 'NPD custom-plugin-monitor files',
    }),
    pluginWorkingDir: Type.String({
      default: '/',
      pattern: '^/',
      description: "Host directory that relative plugin paths resolve against (NPD's working directory)",
    }),
    conditionExpiry: Type.Record(Type.String(), Duration({ max: '168h' }), {
      default: {},
      description: 'Condition type -> how long a log-derived True condition holds without a new match',
    }),
    recoveryPatterns: Type.Array(RecoveryPattern, {
      default: [],
      description: 'Log lines that clear a log-derived condition',
    }),
  },
  { additionalProperties: false, default: {} },
);

function detectorSchemas(): TObject {
  const props: TProperties = {};
  for (const [name, def] of Object.entries(detectors as Record<string, DetectorDefinition>)) {
    props[name] = Type.Composite(
      [
        Type.Object({
          enabled: Type.Boolean({ default: def.defaults.enabled }),
          interval: Duration({ description: 'Time between probes in the daemon', default: def.defaults.interval }),
          timeout: Duration({ description: 'Deadline of one probe', default: def.defaults.timeout, max: '1h' }),
        }),
        def.configSchema,
      ],
      { additionalProperties: false, default: {}, description: def.description },
    );
  }
  return Type.Object(props, { additionalProperties: false, default: {} });
}

export const AgentConfig = Type.Object(
  {
    nodeName: Type.String({ default: '', description: 'Node name; empty means the host name' }),
    cluster: Type.Object(
      {
        kubeconfig: Type.String({
          default: '',
          pattern: '^(/.*)?$',
          description: 'Host path of the kubeconfig `run` reports with and `join` writes (/etc/kubenode/kubeconfig after a join); empty: standalone unless --kubeconfig',
        }),
      },
      { additionalProperties: false, default: {} },
    ),
    stateDir: Type.String({ default: '/var/lib/kubenode', pattern: '^/', description: 'Host directory for agent state' }),
    listen: Type.String({
      default: '127.0.0.1:9746',
      pattern: LISTEN_PATTERN,
      description: 'Address of the metrics and health endpoint',
    }),
    logLevel: Type.Union(
      [Type.Literal('trace'), Type.Literal('debug'), Type.Literal('info'), Type.Literal('warn'), Type.Literal('error')],
      { default: 'info', description: 'Least severe log level written: trace, debug, info, warn or error' },
    ),
    check: Type.Object(
      { timeout: Duration({ description: 'Deadline of the whole `check` command', default: '30s', max: '1h' }) },
      { additionalProperties: false, default: {} },
    ),
    detection: Type.Object(
      {
        maxConcurrent: Type.Integer({ minimum: 1, maximum: 64, default: 4, description: 'Detectors probing at once' }),
        silencedReasons: Type.Array(Type.String({ minLength: 1 }), {
          default: [],
          description: 'Reasons to ignore everywhere: their events are dropped and their conditions published False',
        }),
        recoveryHold: Duration({ description: 'How long a True condition must be reported clear before it is published False (0 disables)', default: '1m', min: '0' }),
      },
      { additionalProperties: false, default: {} },
    ),
    monitors: Monitors,
    detectors: detectorSchemas(),
    installers: InstallersConfig,
    remedies: RemediesConfig,
    risk: RiskConfig,
  },
  { additionalProperties: false },
);

/** The configuration as the agent uses it: durations decoded to milliseconds. */
export type AgentConfig = StaticDecode<typeof AgentConfig>;

/** The detectors' slices, which the composition root hands to buildInstances. */
export type DetectorsConfig = AgentConfig['detectors'];
export type MonitorsConfig = AgentConfig['monitors'];

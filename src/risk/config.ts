import { Type, type StaticDecode } from '@sinclair/typebox';
import { Duration } from '../util/duration-schema.ts';

/**
 * `risk:` in agent.yaml: the one risk gate that remedies, installer restarts and `apply` by hand
 * all ask. In a cluster the RiskPolicy objects selecting the node are asked too.
 */
export const RiskConfig = Type.Object(
  {
    local: Type.Object(
      {
        maxDisruptive: Type.Integer({ minimum: 0, maximum: 1000, default: 3, description: 'Disruptive actions (remedies, installer restarts, by hand or by the daemon) per window on this node' }),
        window: Duration({ default: '1h', max: '168h', description: 'Sliding window of the local budget' }),
      },
      { additionalProperties: false, default: {}, description: 'The node-local budget, kept in STATEDIR/risk/budget.json' },
    ),
    webhook: Type.Object(
      {
        url: Type.String({ default: '', pattern: '^(https://.+)?$', description: 'HTTPS endpoint asked before each disruptive action; empty: none' }),
        timeout: Duration({ default: '5s', max: '1m', description: 'Deadline of one webhook call' }),
        caFile: Type.String({ default: '', pattern: '^(/.*)?$', description: 'Host path of the CA bundle for the webhook; empty: system roots' }),
        failOpen: Type.Boolean({ default: false, description: 'Allow when the webhook does not answer properly (default: deny)' }),
      },
      { additionalProperties: false, default: {} },
    ),
  },
  { additionalProperties: false, default: {} },
);
export type RiskConfig = StaticDecode<typeof RiskConfig>;

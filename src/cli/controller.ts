import type { Re2Regex } from '../util/re2.ts';
import { Command } from 'commander';
import { UsageError } from '../errors.ts';

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error'];

interface ControllerFlags {
  kubeconfig?: string;
  inCluster?: boolean;
  leaderElect: string;
  leaderElectionNamespace: string;
  leaderElectLeaseDuration: string;
  leaderElectRenewDeadline: string;
  leaderElectRetryPeriod: string;
  listen: string;
  workers: string;
  logLevel: string;
  csrImportNodes?: string;
  remedyOperationRetention: string;
  pipelines?: boolean;
  pipelineProbeInterval: string;
  importNodeSelector?: string;
}

export function controllerCommand(exitWith: (code: number) => never): Command {
  return new Command('controller')
    .description('run the fleet controller: MachineComponentSet rollouts in batches with health gates; /metrics, /healthz, /readyz on --listen')
    .option('--kubeconfig <file>', 'talk to the cluster with this kubeconfig')
    .option('--in-cluster', "talk to the cluster with the pod's service account")
    .option('--leader-elect <bool>', 'take part in leader election (one active replica); false runs as the only writer', 'true')
    .option('--leader-election-namespace <ns>', 'namespace of the leader Lease and of the ControllerRevisions', 'kubenode-system')
    .option('--leader-elect-lease-duration <d>', 'how long a Lease is valid without renewal', '15s')
    .option('--leader-elect-renew-deadline <d>', 'how long the leader keeps trying to renew before it stops leading', '10s')
    .option('--leader-elect-retry-period <d>', 'time between tries', '2s')
    .option('--listen <addr>', 'metrics and health address', '127.0.0.1:9747')
    .option('--workers <n>', 'MachineComponentSets reconciled in parallel', '4')
    .option('--log-level <level>', 'trace, debug, info, warn or error', 'info')
    .option('--pipelines', 'also run the release pipeline controller: Releases in this (management) cluster written into member clusters from their kubeconfig Secrets; off so a member cluster never runs it')
    .option('--pipeline-probe-interval <d>', 'a member cluster of a running stage that sent no watch event for this long answers /readyz (how soon a stopped member apiserver is found Unknown)', '10s')
    .option('--remedy-operation-retention <d>', 'finished RemedyOperations (agents\' and central) are deleted this long after they ended; at least 168h, the longest window that counts them', '336h')
    .option('--csr-import-nodes <regex>', "approve agents' first certificates for node names matching this (anchored) RE without an importing Machine")
    .option('--import-node-selector <selector>', 'import policy: create a Machine for every Node matching this label selector (kubectl -l syntax), which approves its agent\'s first certificate')
    .action(async (flags: ControllerFlags) => {
      if (!LOG_LEVELS.includes(flags.logLevel)) throw new UsageError(`--log-level: expected one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(flags.logLevel)}`);
      if (flags.kubeconfig !== undefined && flags.inCluster === true) throw new UsageError('--kubeconfig and --in-cluster exclude each other');
      if (flags.kubeconfig === undefined && flags.inCluster !== true) throw new UsageError('give --kubeconfig FILE or --in-cluster');
      if (flags.leaderElect !== 'true' && flags.leaderElect !== 'false') throw new UsageError(`--leader-elect: expected true or false, got ${JSON.stringify(flags.leaderElect)}`);
      const [{ decodeFlag }, { Duration }] = await Promise.all([import('../config/decode.ts'), import('../util/duration-schema.ts')]);
      const leaderTiming = Duration({ min: '100ms', max: '10m' });
      const durationFlag = (flag: string, text: string): number => decodeFlag(flag, leaderTiming, text);
      const workers = Number(flags.workers);
      if (!Number.isInteger(workers) || workers < 1 || workers > 64) throw new UsageError(`--workers: expected an integer 1..64, got ${JSON.stringify(flags.workers)}`);
      const leaseDurationMs = durationFlag('--leader-elect-lease-duration', flags.leaderElectLeaseDuration);
      const renewDeadlineMs = durationFlag('--leader-elect-renew-deadline', flags.leaderElectRenewDeadline);
      const retryPeriodMs = durationFlag('--leader-elect-retry-period', flags.leaderElectRetryPeriod);
      // client-go's rules: the leader must give up before its lease can expire, and retry within that.
      if (renewDeadlineMs >= leaseDurationMs) throw new UsageError(`--leader-elect-renew-deadline (${flags.leaderElectRenewDeadline}) must be shorter than --leader-elect-lease-duration (${flags.leaderElectLeaseDuration})`);
      if (retryPeriodMs >= renewDeadlineMs) throw new UsageError(`--leader-elect-retry-period (${flags.leaderElectRetryPeriod}) must be shorter than --leader-elect-renew-deadline (${flags.leaderElectRenewDeadline})`);
      let csrImportNodes: Re2Regex | undefined;
      if (flags.csrImportNodes !== undefined) {
        // Node names come from agents' certificate requests: the pattern runs in linear time, as every configured one does.
        const { compileRe2 } = await import('../util/re2.ts');
        try {
          csrImportNodes = compileRe2(`^(?:${flags.csrImportNodes})$`);
        } catch (err) {
          throw new UsageError(`--csr-import-nodes: not an RE2 regular expression: ${err instanceof Error ? err.message : String(err)}`);
        }
      }
      const remedyOperationRetentionMs = decodeFlag('--remedy-operation-retention', Duration({ min: '168h', max: '8760h' }), flags.remedyOperationRetention);
      const probeIntervalMs = decodeFlag('--pipeline-probe-interval', Duration({ min: '100ms', max: '10m' }), flags.pipelineProbeInterval);
      const { parseNodeSelector } = await import('../controller/machines/import.ts');
      const importNodeSelector = flags.importNodeSelector === undefined ? undefined : parseNodeSelector(flags.importNodeSelector);
      const options = {
        ...(flags.pipelines === true ? { pipelines: { probeIntervalMs } } : {}),
        remedyOperationRetentionMs,
        ...(csrImportNodes === undefined ? {} : { csrImportNodes }),
        ...(importNodeSelector === undefined ? {} : { importNodeSelector }),
        ...(flags.kubeconfig === undefined ? {} : { kubeconfig: flags.kubeconfig }),
        ...(flags.inCluster === true ? { inCluster: true } : {}),
        leaderElect: flags.leaderElect === 'true',
        namespace: flags.leaderElectionNamespace,
        listen: flags.listen,
        workers,
        leaseDurationMs,
        renewDeadlineMs,
        retryPeriodMs,
      };
      const [{ Controller }, { createLogger }] = await Promise.all([import('../controller/index.ts'), import('../log.ts')]);
      const log = createLogger(flags.logLevel as 'info');
      const controller = new Controller(options, log);
      // The first signal stops; later ones find the stop under way.
      let stopping: Promise<void> | undefined;
      const stop = (signal: string): void => {
        if (stopping !== undefined) return;
        log.info({ signal }, 'Stopping');
        stopping = controller.stop();
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
      await controller.start();
      if ((await controller.ended()) === 'lost') {
        await controller.stop();
        // The supervisor (systemd, the Deployment) starts a fresh candidate, as client-go controllers exit.
        exitWith(1);
      }
      await stopping;
      // Exit here rather than when the event loop drains: Node closes its signal handles while it
      // tears down, and a repeated SIGTERM in that window killed a cleanly stopped process (143).
      exitWith(0);
    });
}

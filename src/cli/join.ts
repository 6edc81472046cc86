import { Command } from 'commander';
import { UsageError } from '../errors.ts';
import { addHostOptions, type CommonOptions } from './common.ts';

interface JoinFlags extends CommonOptions {
  server?: string;
  token?: string;
  caCertHash: string[];
  kubeconfig?: string;
  timeout: string;
}

const EXIT_REFUSED = 1;

export function joinCommand(exitWith: (code: number) => never): Command {
  const cmd = new Command('join')
    .description("join the cluster with a bootstrap token: verify the cluster's CA and cluster-info, get this node's certificate, write its kubeconfig")
    .requiredOption('--server <url>', 'the apiserver, https://HOST:PORT')
    .requiredOption('--token <id.secret>', 'bootstrap token (kubeadm token create)')
    .option('--ca-cert-hash <sha256:hex>', "pin for the cluster CA's public key (repeatable)", (v: string, prev: string[]) => [...prev, v], [])
    .option('--node-name <name>', 'the Node and Machine this agent is (default: nodeName in the config, else the host name)')
    .option('--kubeconfig <file>', 'host path to write (default: cluster.kubeconfig in the config, else /etc/kubenode/kubeconfig)')
    .option('--timeout <duration>', 'how long to wait for the certificate to be approved and signed', '5m');
  addHostOptions(cmd);
  return cmd.action(async (flags: JoinFlags) => {
    const [{ decodeFlag }, { Duration }] = await Promise.all([import('../config/decode.ts'), import('../util/duration-schema.ts')]);
    const timeoutMs = decodeFlag('--timeout', Duration({ min: '1s', max: '24h' }), flags.timeout);
    const [{ bootstrap }, { join, JoinRefusedError }, { DEFAULT_KUBECONFIG }] = await Promise.all([
      import('../bootstrap.ts'),
      import('../join/join.ts'),
      import('../join/identity.ts'),
    ]);
    const s = await bootstrap(flags, { fallback: 'info', fd: 2 });
    const kubeconfig = flags.kubeconfig ?? (s.config.cluster.kubeconfig === '' ? DEFAULT_KUBECONFIG : s.config.cluster.kubeconfig);
    if (!kubeconfig.startsWith('/')) throw new UsageError(`--kubeconfig: expected an absolute host path, got ${JSON.stringify(kubeconfig)}`);
    const log = s.log;
    try {
      const r = await join({
        server: flags.server as string,
        token: flags.token as string,
        caCertHashes: flags.caCertHash,
        nodeName: s.nodeName,
        kubeconfig,
        timeoutMs,
        host: s.host,
        log,
      });
      process.stdout.write(`Joined as ${r.user}: ${r.kubeconfig} written (certificate ${r.credential}, valid until ${new Date(r.notAfter).toISOString()}).\n`);
    } catch (err) {
      if (!(err instanceof JoinRefusedError)) throw err;
      process.stderr.write(`kubenode-agent join: ${err.message}\n`);
      exitWith(EXIT_REFUSED);
    }
  });
}

import { Command } from 'commander';
import { addHostOptions, type CommonOptions } from './common.ts';

interface SchemaNode {
  description?: string;
  properties?: Record<string, SchemaNode>;
}

export function configCommand(): Command {
  const cmd = new Command('config').description('show or validate the agent configuration');
  cmd
    .command('defaults')
    .description("print the built-in defaults as agent.yaml, each field's description as a comment")
    .addHelpText('after', '\nExample:\n  kubenode-agent config defaults > /etc/kubenode/agent.yaml')
    .action(async () => {
      const [{ Document, isMap, isScalar }, { defaultConfigDocument }, { AgentConfig }] = await Promise.all([import('yaml'), import('../config/load.ts'), import('../config/schema.ts')]);
      const doc = new Document(defaultConfigDocument());
      const annotate = (node: unknown, schema: SchemaNode | undefined): void => {
        if (!isMap(node) || schema?.properties === undefined) return;
        for (const pair of node.items) {
          const key = isScalar(pair.key) ? String(pair.key.value) : '';
          const sub = schema.properties[key];
          if (sub?.description !== undefined && isScalar(pair.key)) pair.key.commentBefore = ` ${sub.description}`;
          annotate(pair.value, sub);
        }
      };
      annotate(doc.contents, AgentConfig as SchemaNode);
      process.stdout.write(doc.toString({ lineWidth: 0 }));
    });
  const validate = new Command('validate')
    .description('load agent.yaml and every monitor file it names, as run would; exit 64 with the first problem')
    .addHelpText('after', '\nExamples:\n  kubenode-agent config validate\n  kubenode-agent config validate --config ./agent.yaml')
    .action(async (options: CommonOptions) => {
      const [{ bootstrap }, { buildInstances }, { isLoopback, parseListen }] = await Promise.all([
        import('../bootstrap.ts'),
        import('../detectors/engine/instances.ts'),
        import('../config/listen.ts'),
      ]);
      const { host, config, configSource, monitors } = await bootstrap(options, { fallback: 'warn', fd: 2 });
      const instances = await buildInstances(host, { detectors: config.detectors, monitors: config.monitors }, monitors);
      if (!isLoopback(parseListen(config.listen).host)) {
        process.stderr.write(`kubenode-agent: warning: ${configSource}: listen: ${config.listen} is not a loopback address; /metrics and /healthz will be reachable from the network\n`);
      }
      process.stdout.write(`${configSource}: ok (${instances.length} detectors: ${instances.map((i) => i.name).join(', ')})\n`);
    });
  cmd.addCommand(addHostOptions(validate));
  return cmd;
}

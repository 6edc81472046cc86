import { Command } from 'commander';
import { addHostOptions, type CommonOptions } from './common.ts';

export function configCommand(): Command {
  const cmd = new Command('config').description('show or validate the agent configuration');
  cmd
    .command('defaults')
    .description('print the built-in defaults as agent.yaml')
    .action(async () => {
      const [{ stringify }, { defaultConfig }] = await Promise.all([import('yaml'), import('../config/load.ts')]);
      process.stdout.write(stringify(defaultConfig()));
    });
  const validate = new Command('validate')
    .description('load agent.yaml and every monitor file it names; exit 64 with the first problem')
    .action(async (options: CommonOptions) => {
      const [{ setup }, { buildInstances }] = await Promise.all([import('./setup.ts'), import('../detectors/engine/instances.ts')]);
      const { host, config, configSource, monitors } = await setup(options);
      const instances = await buildInstances(host, config, monitors);
      process.stdout.write(`${configSource}: ok (${instances.length} detectors: ${instances.map((i) => i.name).join(', ')})\n`);
    });
  cmd.addCommand(addHostOptions(validate));
  return cmd;
}

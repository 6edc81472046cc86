import { Command, Option } from 'commander';
import { UsageError } from '../errors.ts';

interface Described {
  name: string;
  description: string;
  options: { long: string; description: string; values: readonly string[] }[];
}

/** Every command people run (subcommands as "rollout status"; hidden ones, such as self-upgrade, left out), with its options, read from the program itself. */
function commandsOf(program: Command, prefix = ''): Described[] {
  const visible = new Set(program.createHelp().visibleCommands(program));
  return program.commands.filter((cmd) => visible.has(cmd)).flatMap((cmd) => {
    const name = `${prefix}${cmd.name()}`;
    const options = (cmd.options as readonly Option[])
      .filter((o) => o.long !== undefined)
      .map((o) => ({ long: (o.long as string).replace(/^--/, ''), description: o.description, values: o.argChoices ?? [] }));
    return [{ name, description: cmd.description(), options }, ...commandsOf(cmd, `${name} `)];
  });
}

const quote = (s: string): string => `'${s.replaceAll("'", "'\\''")}'`;

function bash(bin: string, cmds: Described[]): string {
  const fn = `_${bin.replace(/[^A-Za-z0-9]/g, '_')}`;
  const top = cmds.filter((c) => !c.name.includes(' ')).map((c) => c.name);
  const cases = cmds.map((c) => `    ${quote(c.name)}) opts=${quote(c.options.map((o) => `--${o.long}`).join(' '))}; subs=${quote(cmds.filter((s) => s.name.startsWith(`${c.name} `) && !s.name.slice(c.name.length + 1).includes(' ')).map((s) => s.name.slice(c.name.length + 1)).join(' '))} ;;`);
  return `# ${bin} completion for bash (and zsh with bashcompinit)
${fn}() {
  local cur path="" word opts="" subs=${quote(top.join(' '))} i
  cur="\${COMP_WORDS[COMP_CWORD]}"
  for ((i = 1; i < COMP_CWORD; i++)); do
    word="\${COMP_WORDS[i]}"
    [[ "$word" == -* ]] && continue
    if [[ " $subs " == *" $word "* ]]; then
      path="\${path:+$path }$word"
      case "$path" in
${cases.join('\n')}
      esac
    fi
  done
  if [[ "$cur" == -* ]]; then COMPREPLY=($(compgen -W "$opts --help" -- "$cur")); else COMPREPLY=($(compgen -W "$subs" -- "$cur")); fi
}
complete -o default -F ${fn} ${bin}
`;
}

function zsh(bin: string, cmds: Described[]): string {
  return `#compdef ${bin}
autoload -U +X bashcompinit && bashcompinit
${bash(bin, cmds).split('\n').slice(1).join('\n')}`;
}

function fish(bin: string, cmds: Described[]): string {
  const lines = [`# ${bin} completion for fish`, `complete -c ${bin} -f`];
  for (const c of cmds) {
    const words = c.name.split(' ');
    const parent = words.slice(0, -1);
    const condition = parent.length === 0 ? '__fish_use_subcommand' : `__fish_seen_subcommand_from ${parent.at(-1) as string}`;
    lines.push(`complete -c ${bin} -n ${quote(condition)} -a ${quote(words.at(-1) as string)} -d ${quote(c.description)}`);
    for (const o of c.options) {
      const values = o.values.length > 0 ? ` -x -a ${quote(o.values.join(' '))}` : '';
      lines.push(`complete -c ${bin} -n ${quote(`__fish_seen_subcommand_from ${words.at(-1) as string}`)} -l ${o.long} -d ${quote(o.description)}${values}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

const SHELLS = { bash, zsh, fish } as const;

export function completionCommand(program: () => Command): Command {
  return new Command('completion')
    .description('print a shell completion script for bash, zsh or fish')
    .argument('<shell>', Object.keys(SHELLS).join(', '))
    .addHelpText(
      'after',
      `
Examples:
  kubenode-agent completion bash > /etc/bash_completion.d/kubenode-agent
  kubenode-agent completion zsh > "\${fpath[1]}/_kubenode-agent"
  kubenode-agent completion fish > ~/.config/fish/completions/kubenode-agent.fish`,
    )
    .action((shell: string) => {
      const render = SHELLS[shell as keyof typeof SHELLS] as ((bin: string, cmds: Described[]) => string) | undefined;
      if (render === undefined) throw new UsageError(`completion: expected one of ${Object.keys(SHELLS).join(', ')}, got ${JSON.stringify(shell)}`);
      const p = program();
      process.stdout.write(render(p.name().replace(/ /g, '-'), commandsOf(p)));
    });
}

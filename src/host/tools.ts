import { createHost, type ExecOptions, type ExecResult, type Host } from './host.ts';

let machine: Host | undefined;

/**
 * Runs one of the machine's own tools that act on a root given as an argument (`dpkg --root`,
 * `rpm --root`, `systemctl --root`): under `--root` the sandbox has no such tools, and these are
 * the ones that know how to act on a directory tree without touching the running system. Callers
 * add the root argument themselves (host.root) whenever host.root is not '/'.
 */
export function execRootAware(host: Host, argv: readonly string[], options: ExecOptions): Promise<ExecResult> {
  if (host.root === '/') return host.exec(argv, options);
  machine ??= createHost({ clock: host.clock });
  return machine.exec(argv, options);
}

/** True when the host is a directory tree rather than the running machine. */
export function isSandbox(host: Host): boolean {
  return host.root !== '/';
}

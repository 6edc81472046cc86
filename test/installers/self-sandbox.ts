// A sandbox root for the agent upgrading itself: a real `kubenode-agent` deb or rpm of the agent's own
// bundle at a chosen version (or the same bundle as one executable, or as a tarball), and scripted stand-ins for the two systemd commands this machine cannot
// run for real (its PID 1 is not systemd): `systemctl` starts and restarts the sandbox's agent as a
// service (restarted when it exits, as Restart=always does) and `systemd-run` starts a transient unit
// in its own session, outside the caller's process group (as a unit is outside the agent's cgroup),
// restarted on failure when asked to. Both only act on processes they started, named in run/units.
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { BUNDLE, buildBundle, KUBE_CHUNK } from '../../scripts/build.ts';
import { REPO } from '../helpers/cli.ts';
import { makeSandbox, makeTar, tempDir } from './helpers.ts';

const SYSTEMCTL = `#!/bin/sh
# systemctl stand-in (test/installers/self-sandbox.ts): --root calls go to the real systemctl, which
# acts on the tree only; start/stop/restart/is-active act on the sandbox's own processes.
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
U="$ROOT/run/units"; mkdir -p "$U"
printf '%s\\n' "$*" >> "$ROOT/var/log/systemctl.calls"
case " $* " in *" --root "*|*" --root="*) exec /usr/bin/systemctl "$@" ;; esac
alive() { [ -s "$U/$1.pid" ] && kill -0 "$(cat "$U/$1.pid")" 2>/dev/null; }
stop() {
  alive "$1" || return 0
  pid=$(cat "$U/$1.pid")
  # The whole process group: the supervising loop and the agent it runs (dash's kill takes -PGID, not -- -PGID).
  kill -TERM -$pid 2>/dev/null
  i=0; while kill -0 -$pid 2>/dev/null && [ $i -lt 150 ]; do sleep 0.1; i=$((i+1)); done
  kill -KILL -$pid 2>/dev/null
  rm -f "$U/$1.pid"
}
start() {
  [ "$1" = kubenode-agent.service ] || return 0
  alive "$1" && return 0
  rm -f "$U/$1.pid"
  # As systemd starts a service: a clean environment, a session of its own (the caller's process
  # group and exec tag do not reach it), running before this returns.
  env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin setsid -f sh -c '
    echo $$ > "$1"
    ROOT=$2
    while :; do
      crash=$(cat "$ROOT/run/agent-crash-after" 2>/dev/null); rm -f "$ROOT/run/agent-crash-after"
      env \${crash:+KUBENODE_TEST_CRASH_AFTER_STEP=$crash} "$ROOT/usr/bin/kubenode-agent" run --root "$ROOT" >> "$ROOT/var/log/kubenode-agent.log" 2>&1
      echo "exit $?" >> "$ROOT/var/log/kubenode-agent.exits"
      sleep 1
    done' sh "$U/$1.pid" "$ROOT" </dev/null >/dev/null 2>&1
  i=0; while [ ! -s "$U/$1.pid" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
}
cmd=$1; shift
case "$cmd" in
  start) start "$1" ;;
  stop) stop "$1" ;;
  restart|try-restart) stop "$1"; start "$1" ;;
  is-active) if alive "$1"; then echo active; else echo inactive; exit 3; fi ;;
esac
exit 0
`;

const SYSTEMD_RUN = `#!/bin/sh
# systemd-run stand-in (test/installers/self-sandbox.ts): the command runs in a session of its own
# with a clean environment; --property=Restart=on-failure starts it again when it fails.
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
U="$ROOT/run/units"; mkdir -p "$U"
printf '%s\\n' "$*" >> "$ROOT/var/log/systemd-run.calls"
unit=""; restart=no
while [ $# -gt 0 ]; do
  case "$1" in
    --unit=*) unit=\${1#--unit=} ;;
    --property=Restart=on-failure) restart=yes ;;
    --) shift; break ;;
    -*) ;;
    *) break ;;
  esac
  shift
done
[ -n "$unit" ] || { echo "systemd-run stand-in: --unit= is required" >&2; exit 2; }
if [ -s "$U/$unit.pid" ] && kill -0 "$(cat "$U/$unit.pid")" 2>/dev/null; then
  echo "Failed to start transient service unit: Unit $unit already exists." >&2; exit 1
fi
crash=$(cat "$ROOT/run/unit-crash-after" 2>/dev/null); rm -f "$ROOT/run/unit-crash-after"
rm -f "$U/$unit.pid"
env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin setsid -f sh -c '
  echo $$ > "$1"
  log=$2; restart=$3; crash=$4; shift 4
  while :; do
    env \${crash:+KUBENODE_TEST_CRASH_AFTER_STEP=$crash} "$@" >> "$log" 2>&1
    rc=$?
    echo "exit $rc" >> "$log.exits"
    [ $rc = 0 ] && exit 0
    [ "$restart" = yes ] || exit $rc
    crash=
    sleep 1
  done' sh "$U/$unit.pid" "$ROOT/var/log/$unit.log" "$restart" "$crash" "$@" </dev/null >/dev/null 2>&1
i=0; while [ ! -s "$U/$unit.pid" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
`;

export type PackageType = 'deb' | 'rpm';
/** How the agent gets onto the node: its deb or rpm, one executable (binary), or a tarball. */
export type AgentSource = PackageType | 'binary' | 'tarball';

const bundles = new Map<string, string>();

/** The agent's own bundle (and the Kubernetes client next to it) with its version stamped as a release build stamps it; the folder holding both. */
export async function agentBundle(version: string): Promise<string> {
  const have = bundles.get(version);
  if (have !== undefined) return have;
  const out = tempDir('bundle');
  await buildBundle(out, { absWorkingDir: REPO, define: { __KUBENODE_VERSION__: JSON.stringify(version) } });
  bundles.set(version, out);
  return out;
}

/** /usr/bin/kubenode-agent: the pinned node running the packaged bundle; a broken build fails to start. */
function wrapper(broken: boolean): string {
  return `#!/bin/sh
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
${broken ? 'if [ "$1" = run ]; then echo "kubenode-agent: this build cannot start (test: a broken release)" >&2; exit 1; fi\n' : ''}exec "${process.execPath}" "$ROOT/usr/lib/kubenode-agent/kubenode-agent.cjs" "$@"
`;
}

const BROKEN = 'echo "kubenode-agent: this build cannot start (test: a broken release)" >&2; exit 1';

/** The bundle file of the agent at `version` (agentBundle's folder holds it and the Kubernetes client). */
export async function agentBundleFile(version: string): Promise<string> {
  return path.join(await agentBundle(version), BUNDLE);
}

/**
 * The agent as one executable, as a binary source installs it: the bundle behind a #! line naming
 * the pinned node (the release's single executable is node and the bundle in one file too). A broken
 * build is a script that answers --version and cannot start. Standalone only: the release carries
 * the Kubernetes client inside as an asset, this one file has no room for it (the cluster test
 * uses the tarball).
 */
export async function agentBinary(version: string, options: { broken?: boolean } = {}): Promise<Buffer> {
  if (options.broken === true) return Buffer.from(`#!/bin/sh\nif [ "$1" = run ]; then ${BROKEN}; fi\necho ${version}\n`);
  return Buffer.from(`#!${process.execPath}\n${readFileSync(await agentBundleFile(version), 'utf8')}`);
}

/**
 * The agent as a tarball: kubenode-agent-VERSION/{bin/kubenode-agent (a wrapper), lib/ (the bundle
 * and the Kubernetes client)}. runFlags go after `run` (a release with a setting baked in).
 */
export async function agentTarball(version: string, options: { broken?: boolean; runFlags?: string } = {}): Promise<Buffer> {
  const top = `kubenode-agent-${version}`;
  const lib = '"$(dirname "$(readlink -f "$0")")/../lib/kubenode-agent.cjs"';
  const flags = options.runFlags === undefined ? '' : `if [ "$1" = run ]; then shift; exec "${process.execPath}" ${lib} run ${options.runFlags} "$@"; fi\n`;
  const bin = `#!/bin/sh\n${options.broken === true ? `if [ "$1" = run ]; then ${BROKEN}; fi\n` : ''}${flags}exec "${process.execPath}" ${lib} "$@"\n`;
  const dir = await agentBundle(version);
  return makeTar([
    { path: `${top}/`, type: 'Directory' },
    { path: `${top}/bin/`, type: 'Directory' },
    { path: `${top}/lib/`, type: 'Directory' },
    { path: `${top}/bin/kubenode-agent`, mode: 0o755, content: bin },
    { path: `${top}/lib/${BUNDLE}`, mode: 0o644, content: readFileSync(path.join(dir, BUNDLE), 'utf8') },
    { path: `${top}/lib/${KUBE_CHUNK}`, mode: 0o644, content: readFileSync(path.join(dir, KUBE_CHUNK), 'utf8') },
  ]);
}

/** The agent at `version` in the form `source` installs. */
export function agentArtifact(source: AgentSource, version: string, options: { broken?: boolean } = {}): Promise<Buffer> {
  if (source === 'binary') return agentBinary(version, options);
  if (source === 'tarball') return agentTarball(version, options);
  return agentPackage(source, version, options);
}

/** A kubenode-agent package (deb or rpm, built with dpkg-deb or rpmbuild) holding the agent at `version`. */
export async function agentPackage(type: PackageType, version: string, options: { broken?: boolean } = {}): Promise<Buffer> {
  const bundle = await agentBundle(version);
  const dir = tempDir(`self-${type}`);
  const files: [string, string, number][] = [
    ['usr/bin/kubenode-agent', wrapper(options.broken === true), 0o755],
    ['usr/lib/kubenode-agent/kubenode-agent.cjs', readFileSync(path.join(bundle, BUNDLE), 'utf8'), 0o644],
    [`usr/lib/kubenode-agent/${KUBE_CHUNK}`, readFileSync(path.join(bundle, KUBE_CHUNK), 'utf8'), 0o644],
    ['usr/lib/systemd/system/kubenode-agent.service', readFileSync(path.join(REPO, 'packaging/kubenode-agent.service'), 'utf8'), 0o644],
  ];
  if (type === 'deb') {
    for (const [file, content, mode] of files) {
      mkdirSync(path.dirname(path.join(dir, 'pkg', file)), { recursive: true });
      writeFileSync(path.join(dir, 'pkg', file), content);
      chmodSync(path.join(dir, 'pkg', file), mode);
    }
    mkdirSync(path.join(dir, 'pkg/DEBIAN'));
    writeFileSync(path.join(dir, 'pkg/DEBIAN/control'), `Package: kubenode-agent\nVersion: ${version}-1\nArchitecture: all\nMaintainer: kubenode tests <tests@example.invalid>\nDescription: kubenode-agent built for the self-upgrade tests\n`);
    execFileSync('dpkg-deb', ['-Zgzip', '-z1', '--build', '--root-owner-group', path.join(dir, 'pkg'), path.join(dir, 'agent.deb')], { stdio: 'ignore' });
    return readFileSync(path.join(dir, 'agent.deb'));
  }
  for (const d of ['SPECS', 'BUILD', 'RPMS', 'SOURCES', 'SRPMS', 'BUILDROOT']) mkdirSync(path.join(dir, d));
  const install = files.map(([file, , mode], i) => {
    writeFileSync(path.join(dir, 'SOURCES', `f${i}`), files[i]?.[1] as string);
    return `install -D -m ${mode.toString(8)} %{SOURCE${i}} %{buildroot}/${file}`;
  });
  writeFileSync(
    path.join(dir, 'SPECS/agent.spec'),
    [
      'Name: kubenode-agent',
      `Version: ${version}`,
      'Release: 1',
      'Summary: kubenode-agent built for the self-upgrade tests',
      'License: Apache-2.0',
      'BuildArch: noarch',
      'AutoReqProv: no',
      ...files.map((_, i) => `Source${i}: f${i}`),
      '%define __os_install_post %{nil}',
      '%define _binary_payload w1.gzdio',
      '%description',
      'test',
      '%install',
      ...install,
      '%files',
      ...files.map(([file]) => `/${file}`),
      '',
    ].join('\n'),
  );
  execFileSync('rpmbuild', ['--quiet', '--define', `_topdir ${dir}`, '--define', '_build_id_links none', '-bb', path.join(dir, 'SPECS/agent.spec')], { stdio: 'ignore' });
  const rpms = path.join(dir, 'RPMS/noarch');
  return readFileSync(path.join(rpms, readdirSync(rpms)[0] as string));
}

export interface SelfSandbox {
  root: string;
  /** Installs a package file directly, as bootstrap does before the agent runs (deb, rpm). */
  bootstrapInstall(file: string): void;
  /** What dpkg or rpm has installed (VERSION-RELEASE), or, for a binary or tarball, where DIR/current points. */
  installedVersion(): string | undefined;
  systemctl(...args: string[]): void;
  /** Lines of a log under var/log. */
  log(name: string): string[];
  /** The JSON lines of a log under var/log (the agent's pino lines; anything else skipped). */
  jsonLog(name: string): Record<string, unknown>[];
  /** The power goes: every process the stand-ins started is killed at once, and /run is emptied (a tmpfs). */
  powerLoss(): void;
  /**
   * The next boot, as systemd would run it for these units: kubenode-agent.service started, and
   * every other unit linked in /etc/systemd/system/multi-user.target.wants run by its ExecStart=
   * in a session of its own (restarted on failure, through the systemd-run stand-in).
   */
  boot(): void;
}

/** The words of an ExecStart= line: "quoted" words with \\ escapes, %% and $$ unescaped. */
export function execStartWords(line: string): string[] {
  const words: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (const m of line.matchAll(re)) words.push((m[1] === undefined ? (m[2] as string) : m[1].replace(/\\(.)/g, '$1')).replace(/%%/g, '%').replace(/\$\$/g, '$'));
  return words;
}

export function makeSelfSandbox(type: AgentSource, config: Record<string, unknown>): SelfSandbox {
  const root = makeSandbox({ systemctl: false });
  writeFileSync(path.join(root, 'usr/bin/systemctl'), SYSTEMCTL);
  writeFileSync(path.join(root, 'usr/bin/systemd-run'), SYSTEMD_RUN);
  chmodSync(path.join(root, 'usr/bin/systemctl'), 0o755);
  chmodSync(path.join(root, 'usr/bin/systemd-run'), 0o755);
  mkdirSync(path.join(root, 'etc/kubenode/components'), { recursive: true });
  writeFileSync(path.join(root, 'etc/kubenode/agent.yaml'), `${JSON.stringify(config)}\n`);
  const dpkgArgs = [`--root=${root}`, `--admindir=${root}/var/lib/dpkg`, `--log=${root}/var/log/dpkg.log`];
  const rpmArgs = ['--root', root, '--dbpath', '/var/lib/rpm'];
  if (type === 'deb') {
    for (const d of ['var/lib/dpkg/info', 'var/lib/dpkg/updates']) mkdirSync(path.join(root, d), { recursive: true });
    writeFileSync(path.join(root, 'var/lib/dpkg/status'), '');
  } else if (type === 'rpm') {
    execFileSync('rpm', [...rpmArgs, '--initdb'], { stdio: 'ignore' });
  } else {
    // No package brings the unit: the node's image has it, as it has the agent's config.
    mkdirSync(path.join(root, 'usr/lib/systemd/system'), { recursive: true });
    writeFileSync(path.join(root, 'usr/lib/systemd/system/kubenode-agent.service'), readFileSync(path.join(REPO, 'packaging/kubenode-agent.service'), 'utf8'));
  }
  return {
    root,
    bootstrapInstall(file) {
      if (type === 'deb') execFileSync('dpkg', [...dpkgArgs, '-i', file], { stdio: 'ignore' });
      else if (type === 'rpm') execFileSync('rpm', [...rpmArgs, '-U', file], { stdio: 'ignore' });
      else throw new Error(`a ${type} agent is installed the first time by kubenode-agent apply, not by hand`);
    },
    installedVersion() {
      if (type === 'binary' || type === 'tarball') {
        try {
          return readlinkSync(path.join(root, 'opt/kubenode/kubenode-agent/current'));
        } catch {
          return undefined;
        }
      }
      try {
        if (type === 'deb') {
          const [v, ...status] = execFileSync('dpkg-query', [`--admindir=${root}/var/lib/dpkg`, '-W', '-f', '${Version} ${Status}', 'kubenode-agent'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim().split(' ');
          // A half-installed or half-configured package is not installed.
          return status.join(' ') === 'install ok installed' ? v : `${v} (${status.join(' ')})`;
        }
        return execFileSync('rpm', [...rpmArgs, '-q', '--qf', '%{VERSION}-%{RELEASE}', 'kubenode-agent'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
      } catch {
        return undefined;
      }
    },
    systemctl(...args) {
      execFileSync(path.join(root, 'usr/bin/systemctl'), args, { stdio: 'ignore' });
    },
    log(name) {
      const file = path.join(root, 'var/log', name);
      return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter((l) => l !== '') : [];
    },
    jsonLog(name) {
      return this.log(name).flatMap((l) => {
        try {
          return [JSON.parse(l) as Record<string, unknown>];
        } catch {
          return [];
        }
      });
    },
    powerLoss() {
      stopSandboxUnits(root);
      rmSync(path.join(root, 'run'), { recursive: true, force: true });
      mkdirSync(path.join(root, 'run'));
    },
    boot() {
      execFileSync(path.join(root, 'usr/bin/systemctl'), ['start', 'kubenode-agent.service'], { stdio: 'ignore' });
      const wants = path.join(root, 'etc/systemd/system/multi-user.target.wants');
      for (const name of existsSync(wants) ? readdirSync(wants) : []) {
        if (name === 'kubenode-agent.service') continue;
        // The link names the unit by its host path.
        const unit = readFileSync(path.join(root, readlinkSync(path.join(wants, name))), 'utf8');
        const exec = /^ExecStart=(.*)$/m.exec(unit)?.[1];
        if (exec === undefined) throw new Error(`${name}: no ExecStart=`);
        execFileSync(path.join(root, 'usr/bin/systemd-run'), [`--unit=${name}`, '--property=Restart=on-failure', '--', ...execStartWords(exec)], { stdio: 'ignore' });
      }
    },
  };
}

/** Stops what the stand-ins started in this sandbox: each process group named in run/units. */
export function stopSandboxUnits(root: string): void {
  const dir = path.join(root, 'run/units');
  if (!existsSync(dir)) return;
  for (const name of readdirSync(dir)) {
    const pid = Number(readFileSync(path.join(dir, name), 'utf8').trim());
    if (!Number.isInteger(pid) || pid <= 1) continue;
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

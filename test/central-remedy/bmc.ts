// A real BMC per simulated machine: one OpenIPMI ipmi_sim (Debian package openipmi) with one
// management controller per machine, each on its own UDP port of 127.0.0.1 with its own
// chassis-control script arguments. The script (ipmi_sim's external power control: called as
// `<script> <device> get|set <parm> [<value>]`) keeps each machine's power state in a file and
// appends every call to a log the tests read: that log is what the BMC saw.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createSocket } from 'node:dgram';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface BmcSim {
  dir: string;
  port(machine: string): number;
  /** Every chassis-control call, in order: what ipmi_sim was asked to do. */
  log(): { at: number; machine: string; op: string; parm: string; value?: string }[];
  /** Stops answering (kills ipmi_sim): a BMC that is down. */
  stop(): Promise<void>;
}

export const BMC_USER = 'admin';
// At most 16 bytes: the IPMI 1.5 limit ipmi_sim keeps.
export const BMC_PASSWORD = 'kn-bmc-secret';

/** A UDP port of 127.0.0.1 nothing listens on: a BMC that is down. */
export async function unusedUdpPort(): Promise<number> {
  return (await freeUdpPorts(1))[0] as number;
}

async function freeUdpPorts(n: number): Promise<number[]> {
  const sockets = await Promise.all(
    Array.from({ length: n }, () => new Promise<ReturnType<typeof createSocket>>((resolve) => {
      const s = createSocket('udp4');
      s.bind(0, '127.0.0.1', () => resolve(s));
    })),
  );
  const ports = sockets.map((s) => s.address().port);
  await Promise.all(sockets.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  return ports;
}

export async function startBmcSim(machines: readonly string[]): Promise<BmcSim> {
  const dir = mkdtempSync(join(tmpdir(), 'kubenode-ipmi-sim-'));
  mkdirSync(join(dir, 'state'));
  mkdirSync(join(dir, 'power'));
  const script = join(dir, 'chassis-control');
  const logFile = join(dir, 'chassis.log');
  writeFileSync(logFile, '');
  writeFileSync(
    script,
    `#!/bin/sh
# ipmi_sim external chassis control: <device> get <parm>... | <device> set <parm> <value>...
dev=$1; op=$2; shift 2
state="${join(dir, 'power')}/$dev"
echo "$(date +%s%3N) $dev $op $*" >> "${logFile}"
case $op in
  get) for p in "$@"; do case $p in power) echo "power:$(cat "$state" 2>/dev/null || echo 1)";; boot) echo "boot:default";; *) echo "Invalid parameter: $p"; exit 1;; esac; done;;
  set) while [ $# -ge 2 ]; do [ "$1" = power ] && echo "$2" > "$state"; shift 2; done;;
  *) exit 1;;
esac
`,
  );
  chmodSync(script, 0o755);
  const ports = await freeUdpPorts(machines.length);
  const portOf = new Map(machines.map((m, i) => [m, ports[i] as number]));
  const lan = ['name "kubenode-test"'];
  const cmds = ['mc_setbmc 0x20'];
  machines.forEach((m, i) => {
    const mc = `0x${(0x20 + 2 * i).toString(16)}`;
    lan.push(
      `set_working_mc ${mc}`,
      '  startlan 1',
      `    addr 127.0.0.1 ${portOf.get(m)}`,
      '    priv_limit admin',
      '    allowed_auths_admin none md2 md5 straight',
      `    guid ${(i + 1).toString(16).padStart(32, '0')}`,
      '  endlan',
      `  chassis_control "${script} ${m}"`,
      '  user 1 true "" "" user 10 none md2 md5 straight',
      `  user 2 true "${BMC_USER}" "${BMC_PASSWORD}" admin 10 none md2 md5 straight`,
    );
    cmds.push(`mc_add ${mc} 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr`, `mc_enable ${mc}`);
  });
  writeFileSync(join(dir, 'lan.conf'), `${lan.join('\n')}\n`);
  writeFileSync(join(dir, 'cmds.emu'), `${cmds.join('\n')}\n`);
  const child: ChildProcess = spawn('ipmi_sim', ['-c', join(dir, 'lan.conf'), '-f', join(dir, 'cmds.emu'), '-s', join(dir, 'state'), '-n'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // Ready once every port answers as bound (a bind of ours fails).
  for (let i = 0; ; i++) {
    const bound = await Promise.all(ports.map((p) => new Promise<boolean>((resolve) => {
      const s = createSocket('udp4');
      s.once('error', () => resolve(true));
      s.bind(p, '127.0.0.1', () => s.close(() => resolve(false)));
    })));
    if (bound.every(Boolean)) break;
    if (child.exitCode !== null || i > 100) throw new Error(`ipmi_sim did not start: ${stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    dir,
    port: (m) => portOf.get(m) as number,
    log: () =>
      readFileSync(logFile, 'utf8')
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => {
          const [at, machine, op, parm, value] = l.split(' ');
          return { at: Number(at), machine: machine as string, op: op as string, parm: parm ?? '', ...(value === undefined ? {} : { value }) };
        }),
    stop: async () => {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
    },
  };
}

export function removeSim(sim: BmcSim): void {
  rmSync(sim.dir, { recursive: true, force: true });
}

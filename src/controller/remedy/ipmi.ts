// The out-of-band power cycle: `ipmitool chassis power cycle` against the Machine's BMC, run
// through the Host's command runner. The password goes in a file only this process can read (-f),
// never on the command line, where every local user could read it in /proc; standard input will
// not do, as ipmitool opens the file by name and a spawned child's stdin is a socket.
import type { Bmc } from '../../api/machine.ts';
import { AgentError, execFailure } from '../../errors.ts';
import type { ExecResult, Host } from '../../host/host.ts';
import { withPrivateFile } from '../../host/private-file.ts';

export interface BmcCredentials {
  username: string;
  password: string;
}

export interface IpmiOptions {
  /** Deadline of the whole ipmitool run. */
  timeoutMs: number;
  signal?: AbortSignal;
}

/** host and port of spec.bmc.address ("bmc-1", "10.0.0.5:6230", "[fd00::5]:623"). */
export function bmcEndpoint(address: string): { host: string; port: number } {
  const m = /^(\[([^\]]+)\]|[^:]+)(?::(\d+))?$/.exec(address);
  if (m === null) throw new RangeError(`spec.bmc.address: expected host, host:port or [ipv6]:port, got ${JSON.stringify(address)}`);
  const port = m[3] === undefined ? 623 : Number(m[3]);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new RangeError(`spec.bmc.address: port must be 1..65535, got ${m[3] ?? ''}`);
  return { host: m[2] ?? (m[1] as string), port };
}

/** Power cycles the machine; resolves with what ipmitool said, throws with a reason a person can act on. */
export async function powerCycle(host: Host, bmc: Bmc, credentials: BmcCredentials, options: IpmiOptions): Promise<string> {
  const { host: address, port } = bmcEndpoint(bmc.address);
  return withPrivateFile(`${credentials.password}\n`, async (file) => {
    const argv = [
      'ipmitool',
      '-I', bmc.interface,
      ...(bmc.interface === 'lanplus' ? ['-C', String(bmc.cipherSuite)] : []),
      '-H', address,
      '-p', String(port),
      '-U', credentials.username,
      '-f', file,
      // Two tries of 3 s each: a BMC that does not answer fails the step in seconds, not minutes.
      '-R', '2',
      '-N', '3',
      'chassis', 'power', 'cycle',
    ];
    return interpret(bmc, await host.exec(argv, { timeoutMs: options.timeoutMs, maxOutputBytes: 64 * 1024, overflow: 'truncate', ...(options.signal === undefined ? {} : { signal: options.signal }) }), options.timeoutMs);
  });
}

function interpret(bmc: Bmc, r: ExecResult, timeoutMs: number): string {
  const said = `${r.stdout}\n${r.stderr}`.trim().replace(/\s+/g, ' ').slice(0, 400);
  if (r.notFound) throw new IpmiError('ipmitool is not installed on the controller host (Debian/Ubuntu: apt install ipmitool; RHEL: dnf install ipmitool)');
  if (r.timedOut) throw new IpmiError(`BMC ${bmc.address} did not answer within ${Math.round(timeoutMs / 1000)} s`);
  const failed = execFailure(r);
  if (failed !== undefined) {
    const why = /RMCP\+ session|LAN session|Authentication|unauthorized|password/i.test(said) ? ' (wrong credentials, or the BMC does not answer)' : '';
    throw new IpmiError(`ipmitool chassis power cycle on BMC ${bmc.address} failed${why}: ${failed.message}`);
  }
  return said;
}

export class IpmiError extends AgentError {
  constructor(message: string) {
    super('EXEC', message);
  }
}

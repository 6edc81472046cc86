// The command line as users meet it: flags, usage errors, exit codes, shells, logs.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, fstatSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { parseDocument } from 'yaml';
import { defaultConfigDocument, parseConfigText } from '../../src/config/load.ts';
import { detectors } from '../../src/detectors/index.ts';
import { AGENT, REPO, runAgent } from '../helpers/cli.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kubenode-cli-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** A host tree with the embedded kernel monitor only, and an agent.yaml in it; returns the paths. */
function host(extraConfig = ''): { root: string; config: string } {
  const root = mkdtempSync(path.join(tmp, 'root-'));
  const put = (p: string, text: string): void => {
    spawnSync('mkdir', ['-p', path.dirname(path.join(root, p))]);
    writeFileSync(path.join(root, p), text);
  };
  put('/proc/uptime', '100.00 100.00\n');
  put('/proc/sys/kernel/random/boot_id', 'boot-1\n');
  put('/proc/sys/kernel/hostname', 'node-cli\n');
  put('/dev/kmsg', '6,1,1000,-;Linux version 6.1.0\n4,2,2000,-;EXT4-fs (dm-4): Remounting filesystem read-only\n');
  const config = path.join(root, 'agent.yaml');
  writeFileSync(
    config,
    ['listen: 127.0.0.1:0', 'monitors:', '  systemLog: [builtin:kernel-monitor.json, builtin:readonly-monitor.json]', 'detectors:', ...Object.keys(detectors).map((n) => `  ${n}: { enabled: false }`), extraConfig, ''].join('\n'),
  );
  return { root, config };
}

/** One line on stderr, no stack, the given code. */
function oneLine(r: { code: number | null; stderr: string }, code: number, pattern: RegExp): void {
  assert.equal(r.code, code, r.stderr);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line, got:\n${r.stderr}`);
  assert.match(lines[0] as string, /^kubenode-agent: /);
  assert.match(lines[0] as string, pattern);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
}

test('--version and -V print the version', async () => {
  const { version } = JSON.parse((await runAgent(['version', '--json'])).stdout) as { version: string };
  assert.match(version, /^\d+\.\d+\.\d+/);
  for (const flag of ['--version', '-V']) {
    const r = await runAgent([flag]);
    assert.equal(r.code, 0);
    assert.equal(r.stdout, `${version}\n`);
  }
});

const usage: [string, string[], RegExp][] = [
  ['a misspelt --log-level', ['run', '--log-level', 'loud'], /--log-level.*'loud' is invalid\. Allowed choices are trace, debug, info, warn, error/],
  ['a bad --log-format', ['check', '--log-format', 'xml'], /--log-format.*'xml' is invalid/],
  ['--listen that is no address', ['run', '--listen', 'everywhere'], /^kubenode-agent: --listen: expected an address like 127\.0\.0\.1:9746 or \[::1\]:9746, got "everywhere"$/],
  ['--listen on port 99999', ['run', '--listen', '127.0.0.1:99999'], /^kubenode-agent: --listen: port 99999 is out of range/],
  ['an unknown option', ['check', '--colour'], /unknown option '--colour'/],
  ['an unknown command', ['chekc'], /unknown command 'chekc'/],
  ['a --timeout of 0s', ['check', '--timeout', '0s'], /^kubenode-agent: --timeout: expected a duration like 30s, 5m, 1h30m, between 1s and 1h, got "0s"$/],
  ['a shell we do not know', ['completion', 'tcsh'], /^kubenode-agent: completion: expected one of bash, zsh, fish, got "tcsh"$/],
];
for (const [name, args, pattern] of usage) {
  test(`usage error exits 64 with one line: ${name}`, async () => oneLine(await runAgent(args), 64, pattern));
}

test('a port in use is one clear line and exit 69', async () => {
  const taken = createServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  try {
    const { root, config } = host();
    const port = (taken.address() as AddressInfo).port;
    const r = await runAgent(['run', '--root', root, '--config', config, '--listen', `127.0.0.1:${port}`, '--log-level', 'error']);
    oneLine(r, 69, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: the address is already in use`));
  } finally {
    taken.close();
  }
});

test('bad input and a bad environment: one line naming the file and the cause, never exit 70', async () => {
  const laughs = path.join(tmp, 'laughs.yaml');
  writeFileSync(laughs, ['a: &a [x, x, x, x, x, x, x, x, x, x]', ...'bcdefgh'.split('').map((c, i) => `${c}: &${c} [${Array(10).fill(`*${'abcdefgh'[i]}`).join(', ')}]`), ''].join('\n'));
  oneLine(await runAgent(['config', 'validate', '--config', laughs]), 64, /laughs\.yaml: invalid YAML: Excessive alias count/);
  const badYaml = path.join(tmp, 'bad.yaml');
  writeFileSync(badYaml, 'check:\n  timeout: [30s\n');
  oneLine(await runAgent(['config', 'validate', '--config', badYaml]), 64, /bad\.yaml: invalid YAML: .* at line \d+, column \d+/);
  const zero = path.join(tmp, 'zero.yaml');
  writeFileSync(zero, 'detectors:\n  kernel:\n    interval: 0s\n');
  oneLine(await runAgent(['config', 'validate', '--config', zero]), 64, /zero\.yaml: detectors\.kernel\.interval: expected a duration like 30s, 5m, 1h30m, between 1s and 24h, got "0s"$/);
  // The state directory is a file: the host refuses to make it, EX_IOERR.
  const { root, config } = host();
  writeFileSync(path.join(root, 'state'), 'not a directory');
  writeFileSync(config, `${readFileSync(config, 'utf8')}stateDir: /state/kubenode\n`);
  const r = await runAgent(['run', '--root', root, '--config', config, '--log-level', 'error']);
  oneLine(r, 74, /ENOTDIR|EEXIST|not a directory/);
});

test('config validate warns when listen is not loopback, and refuses what run would refuse', async () => {
  const wide = path.join(tmp, 'wide.yaml');
  writeFileSync(wide, 'listen: 0.0.0.0:9746\n');
  const r = await runAgent(['config', 'validate', '--config', wide]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /^kubenode-agent: warning: .*wide\.yaml: listen: 0\.0\.0\.0:9746 is not a loopback address/);
  const port = path.join(tmp, 'port.yaml');
  writeFileSync(port, 'listen: 127.0.0.1:99999\n');
  oneLine(await runAgent(['config', 'validate', '--config', port]), 64, /port\.yaml: listen: port 99999 is out of range/);
});

test('config defaults: every described field carries its description as a comment, and the output reads back as the defaults', async () => {
  const r = await runAgent(['config', 'defaults']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^# Address of the metrics and health endpoint\nlisten: 127\.0\.0\.1:9746$/m);
  assert.match(r.stdout, /^ {2}# Deadline of the whole `check` command\n {2}timeout: 30s$/m);
  assert.match(r.stdout, /^# Least severe log level written/m);
  assert.deepEqual(parseConfigText('defaults.yaml', r.stdout), parseConfigText('empty.yaml', '{}'));
  assert.deepEqual(parseDocument(r.stdout).toJS(), defaultConfigDocument());
});

test('completion: bash is valid shell and offers the commands; zsh and fish name them too', async () => {
  const bash = await runAgent(['completion', 'bash']);
  assert.equal(bash.code, 0);
  const file = path.join(tmp, 'c.bash');
  writeFileSync(file, bash.stdout);
  assert.equal(spawnSync('bash', ['-n', file]).status, 0);
  const words = spawnSync('bash', ['-c', `source ${file}; COMP_WORDS=(kubenode-agent ch); COMP_CWORD=1; _kubenode_agent; echo "\${COMPREPLY[@]}"`], { encoding: 'utf8' });
  assert.equal(words.stdout.trim(), 'check');
  const opts = spawnSync('bash', ['-c', `source ${file}; COMP_WORDS=(kubenode-agent plan --det); COMP_CWORD=2; _kubenode_agent; echo "\${COMPREPLY[@]}"`], { encoding: 'utf8' });
  assert.equal(opts.stdout.trim(), '--detailed-exitcode');
  for (const shell of ['zsh', 'fish']) {
    const r = await runAgent(['completion', shell]);
    assert.equal(r.code, 0);
    for (const cmd of ['check', 'run', 'apply', 'plan', 'remedy', 'completion']) assert.match(r.stdout, new RegExp(`\\b${cmd}\\b`));
  }
});

test('every command has examples in its --help', async () => {
  for (const cmd of ['check', 'run', 'plan', 'apply', 'status', 'remedy', 'completion', 'config defaults', 'config validate']) {
    const r = await runAgent([...cmd.split(' '), '--help']);
    assert.equal(r.code, 0, cmd);
    assert.match(r.stdout, /\nExamples?:\n {2}kubenode-agent /, cmd);
  }
});

/** Runs the daemon until it has started, with stdout into a file, then stops it; returns the log lines. */
async function daemonLog(args: string[], env: Record<string, string> = {}, stdoutFile?: string): Promise<string[]> {
  const { root, config } = host();
  const out = stdoutFile ?? path.join(tmp, `out-${Math.random()}.log`);
  const fd = openSync(out, 'w');
  const child = spawn(process.execPath, [AGENT, 'run', '--root', root, '--config', config, ...args], { cwd: REPO, stdio: ['ignore', fd, 'pipe'], env: { ...process.env, ...env } });
  closeSync(fd);
  const until = Date.now() + 60_000;
  while (!readFileSync(out, 'utf8').includes('Agent started') || !readFileSync(out, 'utf8').includes('ReadonlyFilesystem')) {
    if (Date.now() > until) throw new Error(`no start: ${readFileSync(out, 'utf8')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill('SIGTERM');
  await new Promise((resolve) => child.on('exit', resolve));
  return readFileSync(out, 'utf8').trimEnd().split('\n');
}

test('logs: every line of a daemon run is one JSON object with no key twice (strict parse)', async () => {
  const lines = await daemonLog(['--log-level', 'debug', '--log-format', 'json']);
  assert.ok(lines.length > 3);
  for (const line of lines) {
    const doc = parseDocument(line, { schema: 'json', uniqueKeys: true, strict: true });
    assert.deepEqual(doc.errors.map((e) => e.message), [], line);
    assert.equal(typeof doc.toJS(), 'object', line);
  }
});

test('logs: on journald, each line carries the syslog priority of its level', async () => {
  const out = path.join(tmp, 'journal.log');
  writeFileSync(out, '');
  const st = fstatSync(openSync(out, 'r'));
  const lines = await daemonLog(['--log-format', 'json'], { JOURNAL_STREAM: `${st.dev}:${st.ino}` }, out);
  for (const line of lines) {
    const m = /^<(\d)>(\{.*\})$/.exec(line);
    assert.ok(m !== null, line);
    const level = (JSON.parse(m[2] as string) as { level: string }).level;
    assert.equal(Number(m[1]), { trace: 7, debug: 7, info: 6, warn: 4, error: 3 }[level], line);
  }
  assert.ok(lines.some((l) => l.startsWith('<4>')), 'the read-only remount is a warning: journalctl -p warning shows it');
});

test('logs: --log-format text writes a line a person reads', async () => {
  const lines = await daemonLog(['--log-format', 'text']);
  assert.ok(lines.some((l) => /^\d{4}-\d\d-\d\dT\S+Z INFO {2}Agent started node=node-cli /.test(l)), lines.join('\n'));
  assert.ok(lines.every((l) => !l.startsWith('{')));
});

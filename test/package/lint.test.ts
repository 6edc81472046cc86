// The packages against the tools distributions judge them with: lintian (Debian) and rpmlint
// (Debian's build of it, default configuration plus packaging/rpmlint.toml) report no error; every
// warning left is one listed here with its reason (README, "Package checks"), so a new one fails.
// Also: the changelog names this version, the man page renders without warnings and covers every
// command, and the third-party notices cover Node.js and every bundled npm package.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { parse } from 'yaml';
import { SEA_ARCHES } from '../../scripts/build-sea.ts';
import { packageName, packageVersion } from '../../scripts/package.ts';
import { REPO } from '../helpers/cli.ts';
import { artifact, exec, seaBinary, type Result } from './artifacts.ts';

const version = packageVersion();

function ok(r: Result, what: string): string {
  assert.equal(r.code, 0, `${what} failed:\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

const LINTIAN_WARNINGS: Record<string, string> = {
  'initial-upload-closes-no-bugs': "meant for uploads to Debian's archive (an ITP bug); this package is distributed by its authors",
  'hardening-no-pie': "Node.js's official Linux builds are not position-independent; the executable is that build",
  'maintainer-script-calls-systemctl': 'the scripts are shared with the rpm and must work under dpkg --root, where deb-systemd-helper cannot; they do what it does',
  'non-standard-dir-perm': '/var/lib/kubenode (step journal, permits) is root-only on purpose',
  'non-standard-file-perm': 'agent.yaml (0640) may name webhook credentials',
  'unknown-field': 'nfpm writes a License field into the control file',
  'uses-dpkg-database-directly': "the deb installer reads var/lib/dpkg/status under --root to check a package's state without running dpkg",
};

const RPMLINT_WARNINGS: Record<string, string> = {
  'only-non-binary-in-usr-lib': 'systemd units belong in /usr/lib/systemd/system',
  'no-url-tag': 'the project has no public home page yet',
  'manpage-not-compressed': "Debian's rpmlint default expects bz2; rpm distributions compress man pages with gzip",
  'invalid-license': "Apache-2.0 is the SPDX identifier Fedora requires; this rpmlint's default list predates SPDX",
  'dangerous-command-in-%postun': 'rm runs only for a deb purge, of the state directory the package created',
};

function tags(output: string, severity: string): string[] {
  return [...output.matchAll(new RegExp(`^${severity}: kubenode-agent(?:\\.\\S+)?: (\\S+)`, 'gm'))].map((m) => m[1]!);
}

for (const arch of SEA_ARCHES) {
  test(`lintian: no error in the ${arch} deb, only the documented warnings`, () => {
    // lintian reads the whole 120 MB executable (strings, ELF checks): minutes on a loaded 2-core machine.
    const r = exec('lintian', ['--no-cfg', '--allow-root', '--show-overrides', artifact(packageName('deb', arch), 'npm run package')], {}, 600_000);
    assert.ok(r.code === 0 || r.code === 1 || r.code === 2, r.stderr);
    const out = r.stdout + r.stderr;
    assert.deepEqual(tags(out, 'E'), [], out);
    for (const w of tags(out, 'W')) assert.ok(w in LINTIAN_WARNINGS, `undocumented lintian warning ${w}:\n${out}`);
    // The overrides shipped (libraries Node links statically) are used, so they are still needed.
    const overridden = tags(out, 'O');
    assert.ok(overridden.length > 0 && overridden.every((t) => t === 'embedded-library'), out);
  });

  test(`rpmlint: no error in the ${arch} rpm, only the documented warnings`, () => {
    const r = exec('rpmlint', ['-c', join(REPO, 'packaging', 'rpmlint.toml'), artifact(packageName('rpm', arch), 'npm run package')]);
    const out = r.stdout + r.stderr;
    assert.match(out, /\b0 errors\b/, out);
    assert.equal(r.code, 0, out);
    const warnings = [...out.matchAll(/^kubenode-agent\.\S+: W: (\S+)/gm)].map((m) => m[1]!);
    for (const w of warnings) assert.ok(w in RPMLINT_WARNINGS, `undocumented rpmlint warning ${w}:\n${out}`);
  });
}

test("the changelog's newest entry is this version", () => {
  const entries = parse(readFileSync(join(REPO, 'packaging', 'changelog.yml'), 'utf8')) as { semver: string }[];
  assert.equal(entries[0]?.semver, `${version}-1`);
  const changes = ok(exec('rpm', ['-qp', '--changelog', artifact(packageName('rpm', 'x64'), 'npm run package')]), 'rpm --changelog');
  assert.match(changes, new RegExp(`> - ${version.replaceAll('.', '\\.')}-1\\n`));
});

describe('documents in the deb', () => {
  let root: string;
  before(() => {
    root = mkdtempSync(join(tmpdir(), 'kubenode-deb-docs-'));
    ok(exec('dpkg-deb', ['-x', artifact(packageName('deb', 'x64'), 'npm run package'), root]), 'dpkg-deb -x');
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  test('the man page renders without warnings and has a section for every command the CLI lists', () => {
    const page = join(root, 'usr/share/man/man1/kubenode-agent.1.gz');
    const r = exec('man', ['--warnings', '-l', page], { MANWIDTH: '100' });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    const help = ok(exec(seaBinary('x64'), ['--help'], { COLUMNS: '80' }), '--help');
    const commands = [...help.slice(help.indexOf('Commands:')).matchAll(/^ {2}(\w[\w-]*)/gm)].map((m) => m[1]!).filter((c) => c !== 'help');
    assert.ok(commands.length >= 5, help);
    const roff = gunzipSync(readFileSync(page)).toString();
    for (const c of commands) assert.match(roff, new RegExp(`^\\.SS "kubenode\\\\-agent ${c.replaceAll('-', '\\\\-')}\\b`, 'm'), c);
  });

  test('THIRD-PARTY-NOTICES has the licence of Node.js and of every production npm package', () => {
    const notices = gunzipSync(readFileSync(join(root, 'usr/share/doc/kubenode-agent/THIRD-PARTY-NOTICES.gz'))).toString();
    assert.match(notices, /^Node\.js \d+\.\d+\.\d+$/m);
    assert.match(notices, /Copyright Node\.js contributors/);
    const lock = JSON.parse(readFileSync(join(REPO, 'package-lock.json'), 'utf8')) as { packages: Record<string, { version: string; dev?: boolean }> };
    const prod = Object.entries(lock.packages).filter(([p, v]) => p.startsWith('node_modules/') && v.dev !== true && !p.includes('node-linux-'));
    assert.ok(prod.length > 20);
    for (const [path, v] of prod) {
      const name = path.slice(path.lastIndexOf('node_modules/') + 13);
      assert.ok(notices.includes(`\n${name} ${v.version} (`), `${name} ${v.version} missing`);
    }
    const copyright = readFileSync(join(root, 'usr/share/doc/kubenode-agent/copyright'), 'utf8');
    assert.match(copyright, /^License: Apache-2\.0$/m);
  });
});

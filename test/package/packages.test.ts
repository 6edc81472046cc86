// The deb and rpm of each arch hold the right files, scripts and dependencies; the amd64 deb
// installs, upgrades, removes and purges in a scratch root with `dpkg --root`, and its unit passes
// `systemd-analyze verify`. Nothing here acts on the machine the tests run on: the maintainer
// scripts run chrootless with DPKG_ROOT set, where they only use `systemctl --root`.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { binaryName, SEA_ARCHES } from '../../scripts/build-sea.ts';
import { packageName, packageVersion } from '../../scripts/package.ts';
import { REPO } from '../helpers/cli.ts';
import { artifact, exec, seaBinary, type Result } from './artifacts.ts';

const version = packageVersion();
const UNIT = 'kubenode-agent.service';
const CONTROLLER_UNIT = 'kubenode-controller.service';
const ENABLED_LINK = `etc/systemd/system/multi-user.target.wants/${UNIT}`;
const CONTROLLER_ENABLED_LINK = `etc/systemd/system/multi-user.target.wants/${CONTROLLER_UNIT}`;
// kubectl finds plugins by name on PATH: `kubectl kubenode …` runs this link to the binary.
const PLUGIN_LINK = '/usr/bin/kubectl-kubenode';
const scriptText = (name: string) => readFileSync(join(REPO, 'packaging', 'scripts', name), 'utf8');
const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

function ok(r: Result, what: string): string {
  assert.equal(r.code, 0, `${what} failed:\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

// 'drwxr-x---' → 0o750
const permissionBits = (mode: string) => parseInt(mode.slice(1).replace(/[^-]/g, '1').replace(/-/g, '0'), 2);

const debArch = { x64: 'amd64', arm64: 'arm64' } as const;
const rpmArch = { x64: 'x86_64', arm64: 'aarch64' } as const;

// What both formats must install: path → permissions (dirs end in /).
const PAYLOAD = {
  '/etc/kubenode/': 'drwxr-xr-x',
  '/etc/kubenode/agent.yaml': '-rw-r-----',
  '/usr/bin/kubenode-agent': '-rwxr-xr-x',
  [`/usr/lib/systemd/system/${UNIT}`]: '-rw-r--r--',
  [`/usr/lib/systemd/system/${CONTROLLER_UNIT}`]: '-rw-r--r--',
  '/var/lib/kubenode/': 'drwx------',
  '/usr/share/man/man1/kubenode-agent.1.gz': '-rw-r--r--',
};
// Each format's place for licences and documents.
const DEB_DOCS = {
  '/usr/share/doc/kubenode-agent/copyright': '-rw-r--r--',
  '/usr/share/doc/kubenode-agent/changelog.Debian.gz': '-rw-r--r--',
  '/usr/share/doc/kubenode-agent/THIRD-PARTY-NOTICES.gz': '-rw-r--r--',
  '/usr/share/doc/kubenode-agent/README.md.gz': '-rw-r--r--',
  '/usr/share/lintian/overrides/kubenode-agent': '-rw-r--r--',
};
const RPM_DOCS = {
  '/usr/share/licenses/kubenode-agent/LICENSE': '-rw-r--r--',
  '/usr/share/licenses/kubenode-agent/THIRD-PARTY-NOTICES': '-rw-r--r--',
  '/usr/share/doc/kubenode-agent/README.md': '-rw-r--r--',
};
const LINKS = [[PLUGIN_LINK, 'kubenode-agent'], ['/usr/share/man/man1/kubectl-kubenode.1.gz', 'kubenode-agent.1.gz']];

for (const arch of SEA_ARCHES) {
  describe(`deb ${debArch[arch]}`, () => {
    const deb = () => artifact(packageName('deb', arch), 'npm run package');

    test('dpkg-deb -I: name, version, arch, dependencies, conffile, maintainer scripts', () => {
      const field = (name: string) => ok(exec('dpkg-deb', ['-f', deb(), name]), 'dpkg-deb -f').trim();
      assert.equal(field('Package'), 'kubenode-agent');
      assert.equal(field('Version'), `${version}-1`);
      assert.equal(field('Architecture'), debArch[arch]);
      assert.equal(field('Depends'), 'libc6 (>= 2.28), libstdc++6 (>= 5), libgcc-s1 | libgcc1, libatomic1');
      const info = ok(exec('dpkg-deb', ['-I', deb()]), 'dpkg-deb -I');
      for (const member of ['conffiles', 'postinst', 'prerm', 'postrm']) assert.match(info, new RegExp(`\\b${member}\\b`));
      assert.equal(ok(exec('dpkg-deb', ['-I', deb(), 'conffiles']), 'conffiles').trim(), '/etc/kubenode/agent.yaml');
      for (const [member, file] of [['postinst', 'postinstall.sh'], ['prerm', 'preremove.sh'], ['postrm', 'postremove.sh']] as const) {
        assert.equal(ok(exec('dpkg-deb', ['-I', deb(), member]), member), scriptText(file), member);
      }
    });

    test('dpkg-deb -c: the files, owned by root, with their modes', () => {
      const listing = ok(exec('dpkg-deb', ['-c', deb()]), 'dpkg-deb -c');
      const links = new Map<string, string>();
      const entries = new Map(listing.trim().split('\n').map((line) => {
        const [mode, owner, , , , path, arrow, target] = line.split(/\s+/);
        // nfpm writes the changelog it generates with numeric ids, the rest with names.
        assert.ok(owner === 'root/root' || owner === '0/0', line);
        if (arrow === '->') links.set(path!.replace(/^\./, ''), target!);
        return [path!.replace(/^\./, ''), mode!];
      }));
      const expected = { ...PAYLOAD, ...DEB_DOCS };
      for (const [path, mode] of Object.entries(expected)) assert.equal(entries.get(path), mode, path);
      assert.deepEqual([...links].sort(), [...LINKS].sort());
      const files = [...entries].filter(([path, mode]) => !mode.startsWith('d') && !links.has(path)).map(([path]) => path).sort();
      assert.deepEqual(files, Object.keys(expected).filter((p) => !p.endsWith('/')).sort());
    });

    test('ships the built binary unchanged', () => {
      const r = exec('sh', ['-c', 'dpkg-deb --fsys-tarfile "$1" | tar -xO ./usr/bin/kubenode-agent | sha256sum', 'sh', deb()]);
      assert.equal(ok(r, 'extract').split(' ')[0], sha256(seaBinary(arch)));
    });
  });

  describe(`rpm ${rpmArch[arch]}`, () => {
    const rpm = () => artifact(packageName('rpm', arch), 'npm run package');
    const query = (...args: string[]) => ok(exec('rpm', ['-qp', ...args, rpm()]), `rpm -qp ${args.join(' ')}`);

    test('rpm -qpil --scripts: name, arch, files and the three scriptlets', () => {
      const out = query('-il', '--scripts');
      assert.match(out, /^Name\s+: kubenode-agent$/m);
      assert.match(out, new RegExp(`^Version\\s+: ${version.replaceAll('.', '\\.')}$`, 'm'));
      assert.match(out, new RegExp(`^Architecture: ${rpmArch[arch]}$`, 'm'));
      for (const path of Object.keys(PAYLOAD)) assert.match(out, new RegExp(`^${path.replace(/\/$/, '')}$`, 'm'));
      for (const scriptlet of ['postinstall', 'preuninstall', 'postuninstall']) assert.match(out, new RegExp(`^${scriptlet} scriptlet \\(using /bin/sh\\):$`, 'm'));
    });

    test('scriptlets are the shared maintainer scripts', () => {
      assert.equal(query('--qf', '%{POSTIN}'), scriptText('postinstall.sh'));
      assert.equal(query('--qf', '%{PREUN}'), scriptText('preremove.sh'));
      assert.equal(query('--qf', '%{POSTUN}'), scriptText('postremove.sh'));
    });

    test('requires glibc >= 2.28, libstdc++, libgcc and libatomic', () => {
      assert.deepEqual(query('--requires').trim().split('\n').sort(), ['glibc >= 2.28', 'libatomic', 'libgcc', 'libstdc++']);
    });

    test('agent.yaml is %config(noreplace); modes, owner and the binary digest', () => {
      const rows = query('--qf', '[%{FILENAMES}|%{FILEFLAGS:fflags}|%{FILEMODES:perms}|%{FILEUSERNAME}|%{FILEDIGESTS}\n]');
      const files = new Map(rows.trim().split('\n').map((row) => {
        const [path, flags, mode, user, digest] = row.split('|');
        assert.equal(user, 'root', path);
        return [path!, { flags, mode, digest }];
      }));
      for (const [path, mode] of Object.entries({ ...PAYLOAD, ...RPM_DOCS })) assert.equal(files.get(path.replace(/\/$/, ''))?.mode, mode, path);
      assert.equal(files.get('/etc/kubenode/agent.yaml')?.flags, 'cn');
      assert.equal(files.get('/usr/share/licenses/kubenode-agent/LICENSE')?.flags, 'l');
      assert.equal(files.get('/usr/share/man/man1/kubenode-agent.1.gz')?.flags, 'd');
      // A symlink's own permissions mean nothing on Linux (nfpm leaves them 0 in the rpm).
      assert.match(files.get(PLUGIN_LINK)?.mode ?? '', /^l/);
      assert.match(query('--qf', '[%{FILENAMES} %{FILELINKTOS}\n]'), new RegExp(`^${PLUGIN_LINK} kubenode-agent$`, 'm'));
      assert.equal(query('--qf', '%{FILEDIGESTALGO}'), '8'); // SHA-256
      assert.equal(files.get('/usr/bin/kubenode-agent')?.digest, sha256(seaBinary(arch)));
    });
  });
}

test('declared minimum glibc and libstdc++ cover the symbol versions the binaries use', () => {
  for (const arch of SEA_ARCHES) {
    const objdump = arch === 'x64' ? 'objdump' : 'aarch64-linux-gnu-objdump';
    const symbols = ok(exec(objdump, ['-T', seaBinary(arch)]), objdump);
    const newest = (prefix: string) =>
      [...symbols.matchAll(new RegExp(`\\b${prefix}_([0-9.]+)\\b`, 'g'))]
        .map((m) => m[1]!.split('.').map(Number))
        .sort((a, b) => a.reduce((d, x, i) => d || x - (b[i] ?? 0), 0) || a.length - b.length)
        .at(-1)!
        .join('.');
    assert.equal(newest('GLIBC'), '2.28', `${binaryName(arch)} (packages declare glibc >= 2.28)`);
    // GLIBCXX_3.4.21 is GCC 5's libstdc++, what `libstdc++6 (>= 5)` promises.
    assert.equal(newest('GLIBCXX'), '3.4.21', `${binaryName(arch)} (packages declare libstdc++6 >= 5)`);
  }
});

// Every shared library the binaries load comes from a package they depend on (Node 26 added
// libatomic.so.1: a node without it could not start the agent at all).
test('every shared library the binaries need is a declared dependency', () => {
  const escape = (name: string) => name.replace(/[+.]/g, '\\$&');
  const provider: Record<string, { deb: string; rpm: string }> = {
    'libc.so.6': { deb: 'libc6', rpm: 'glibc' },
    'libdl.so.2': { deb: 'libc6', rpm: 'glibc' },
    'libm.so.6': { deb: 'libc6', rpm: 'glibc' },
    'libpthread.so.0': { deb: 'libc6', rpm: 'glibc' },
    'ld-linux-x86-64.so.2': { deb: 'libc6', rpm: 'glibc' },
    'ld-linux-aarch64.so.1': { deb: 'libc6', rpm: 'glibc' },
    'libstdc++.so.6': { deb: 'libstdc++6', rpm: 'libstdc++' },
    'libgcc_s.so.1': { deb: 'libgcc-s1', rpm: 'libgcc' },
    'libatomic.so.1': { deb: 'libatomic1', rpm: 'libatomic' },
  };
  for (const arch of SEA_ARCHES) {
    const readelf = arch === 'x64' ? 'readelf' : 'aarch64-linux-gnu-readelf';
    const needed = [...ok(exec(readelf, ['-d', seaBinary(arch)]), readelf).matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]!);
    assert.ok(needed.length > 0, `${binaryName(arch)} has NEEDED entries`);
    const depends = ok(exec('dpkg-deb', ['-f', artifact(packageName('deb', arch), 'npm run package'), 'Depends']), 'dpkg-deb -f').trim();
    const requires = ok(exec('rpm', ['-qp', '--requires', artifact(packageName('rpm', arch), 'npm run package')]), 'rpm -qp');
    for (const lib of needed) {
      const p = provider[lib];
      assert.ok(p !== undefined, `${binaryName(arch)} needs ${lib}, which no declared dependency provides`);
      assert.match(depends, new RegExp(`(^|[ ,|])${escape(p.deb)}(?=[ ,(|]|$)`), `deb Depends lacks ${p.deb} for ${lib}`);
      assert.match(requires, new RegExp(`^${escape(p.rpm)}(?=[ ]|$)`, 'm'), `rpm Requires lacks ${p.rpm} for ${lib}`);
    }
  }
});

describe('amd64 deb in a scratch root (dpkg --root)', () => {
  let root: string;
  const dpkg = (...args: string[]) => exec('dpkg', [`--root=${root}`, '--force-script-chrootless', ...args]);
  const at = (path: string) => join(root, path);

  before(() => {
    root = mkdtempSync(join(tmpdir(), 'kubenode-dpkg-root-'));
    const admin = at('var/lib/dpkg');
    for (const dir of ['info', 'updates', 'triggers']) mkdirSync(join(admin, dir), { recursive: true });
    // This machine's own records of the libraries the package depends on, so dpkg checks the
    // Depends line for real instead of being told to ignore it.
    writeFileSync(join(admin, 'status'), ok(exec('dpkg-query', ['-s', 'libc6', 'libstdc++6', 'libgcc-s1', 'libatomic1']), 'dpkg-query'));
    writeFileSync(join(admin, 'available'), '');
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  test('installs with its dependencies satisfied, enabled but not started', () => {
    ok(dpkg('-i', artifact(packageName('deb', 'x64'), 'npm run package')), 'dpkg -i');
    for (const [path, mode] of Object.entries(PAYLOAD)) {
      const st = statSync(at(path));
      assert.equal(st.mode & 0o777, permissionBits(mode), path);
    }
    assert.equal(sha256(at('usr/bin/kubenode-agent')), sha256(seaBinary('x64')));
    assert.equal(readlinkSync(at(ENABLED_LINK)), `/usr/lib/systemd/system/${UNIT}`);
    // The controller is for control-plane hosts: installed, not enabled.
    assert.equal(lstatSync(at(CONTROLLER_ENABLED_LINK), { throwIfNoEntry: false }), undefined);
    assert.equal(readlinkSync(at(PLUGIN_LINK)), 'kubenode-agent');
    assert.match(ok(exec('dpkg-query', [`--admindir=${at('var/lib/dpkg')}`, '-W', '-f', '${Status}', 'kubenode-agent']), 'dpkg-query'), /install ok installed/);
  });

  test('the installed binary runs and accepts the shipped agent.yaml', () => {
    assert.match(ok(exec(at('usr/bin/kubenode-agent'), ['version']), 'version'), new RegExp(`^kubenode-agent ${version.replaceAll('.', '\\.')} `));
    ok(exec(at('usr/bin/kubenode-agent'), ['config', 'validate', '--root', root]), 'config validate');
  });

  test('the installed binary answers as the kubectl plugin', () => {
    assert.match(ok(exec(at(PLUGIN_LINK), ['version']), 'kubectl-kubenode version'), new RegExp(`^kubenode-agent ${version.replaceAll('.', '\\.')} `));
  });

  test('both units pass systemd-analyze verify', () => {
    // verify resolves the unit's dependencies (multi-user.target …) inside --root.
    const units = at('usr/lib/systemd/system');
    cpSync('/usr/lib/systemd/system', units, { recursive: true, filter: (src) => !src.endsWith(`/${UNIT}`) && !src.endsWith(`/${CONTROLLER_UNIT}`) });
    // ExecReload runs /bin/sh, which every node has (Essential in Debian, in RHEL's base).
    mkdirSync(at('bin'), { recursive: true });
    cpSync(realpathSync('/bin/sh'), at('bin/sh'));
    // Documentation=man:kubenode-agent(1) is checked with man(1), which is told where the root's pages are.
    const r = exec('systemd-analyze', ['verify', `--root=${root}`, UNIT, CONTROLLER_UNIT], { MANPATH: at('usr/share/man') });
    assert.equal(r.code, 0, r.stderr);
    // systemd < 254 (Debian 12 has 252) does not know the restart backoff keys and says so; any
    // other message is a real problem.
    const other = r.stderr.split('\n').filter((l) => l !== '' && !/Unknown key '(RestartSteps|RestartMaxDelaySec)'/.test(l));
    assert.deepEqual(other, []);
  });

  test('an upgrade keeps an edited agent.yaml, the state and a disabled service', () => {
    writeFileSync(at('etc/kubenode/agent.yaml'), 'logLevel: debug\n');
    writeFileSync(at('var/lib/kubenode/journal'), 'step 1\n');
    rmSync(at(ENABLED_LINK)); // the administrator disabled the service
    ok(dpkg('-i', artifact(packageName('deb', 'x64'), 'npm run package')), 'dpkg -i (again)');
    assert.equal(readFileSync(at('etc/kubenode/agent.yaml'), 'utf8'), 'logLevel: debug\n');
    assert.equal(readFileSync(at('var/lib/kubenode/journal'), 'utf8'), 'step 1\n');
    assert.equal(lstatSync(at(ENABLED_LINK), { throwIfNoEntry: false }), undefined, 'upgrade re-enabled a disabled service');
  });

  test('remove disables both services and keeps config and state; purge deletes them', () => {
    ok(exec('systemctl', [`--root=${root}`, 'enable', UNIT, CONTROLLER_UNIT]), 'systemctl --root enable');
    ok(dpkg('-r', 'kubenode-agent'), 'dpkg -r');
    assert.equal(lstatSync(at(CONTROLLER_ENABLED_LINK), { throwIfNoEntry: false }), undefined);
    assert.equal(lstatSync(at(PLUGIN_LINK), { throwIfNoEntry: false }), undefined);
    assert.equal(existsSync(at('usr/bin/kubenode-agent')), false);
    assert.equal(existsSync(at(`usr/lib/systemd/system/${UNIT}`)), false);
    assert.equal(lstatSync(at(ENABLED_LINK), { throwIfNoEntry: false }), undefined);
    assert.equal(readFileSync(at('etc/kubenode/agent.yaml'), 'utf8'), 'logLevel: debug\n');
    assert.equal(readFileSync(at('var/lib/kubenode/journal'), 'utf8'), 'step 1\n');

    ok(dpkg('-P', 'kubenode-agent'), 'dpkg -P');
    assert.equal(existsSync(at('etc/kubenode')), false);
    assert.equal(existsSync(at('var/lib/kubenode')), false);
  });
});

// The rpm runs the same scripts with rpm's arguments; rpm --root would chroot into a root that has
// no shell, so they run here directly, with DPKG_ROOT keeping them inside a scratch root.
describe('maintainer scripts under rpm arguments', () => {
  let root: string;
  const script = (name: string, ...args: string[]) =>
    ok(exec('sh', [join(REPO, 'packaging', 'scripts', name), ...args], { DPKG_ROOT: root }), `${name} ${args.join(' ')}`);
  // lstat: the link points at /usr/lib/… as seen from inside the root, not from here.
  const enabled = () => lstatSync(join(root, ENABLED_LINK), { throwIfNoEntry: false }) !== undefined;

  before(() => {
    root = mkdtempSync(join(tmpdir(), 'kubenode-rpm-scripts-'));
    mkdirSync(join(root, 'usr/lib/systemd/system'), { recursive: true });
    cpSync(join(REPO, 'packaging', UNIT), join(root, 'usr/lib/systemd/system', UNIT));
    mkdirSync(join(root, 'var/lib/kubenode'), { recursive: true });
    writeFileSync(join(root, 'var/lib/kubenode/journal'), 'step 1\n');
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  test('%post 1 (install) enables', () => {
    script('postinstall.sh', '1');
    assert.equal(enabled(), true);
  });
  test('%preun 1 and %postun 1 (upgrade) leave it enabled', () => {
    script('preremove.sh', '1');
    script('postremove.sh', '1');
    assert.equal(enabled(), true);
  });
  test('%post 2 (upgrade) does not re-enable a disabled service', () => {
    rmSync(join(root, ENABLED_LINK));
    script('postinstall.sh', '2');
    assert.equal(enabled(), false);
  });
  test('%preun 0 (erase) disables; %postun 0 keeps the state', () => {
    script('postinstall.sh', '1');
    script('preremove.sh', '0');
    assert.equal(enabled(), false);
    script('postremove.sh', '0');
    assert.equal(readFileSync(join(root, 'var/lib/kubenode/journal'), 'utf8'), 'step 1\n');
  });
});

import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { readLocalDir, readLocalFile } from '../../src/host/local-dir.ts';
import { loadManifestDir, parseManifestText } from '../../src/installers/manifests.ts';
import { checkEntry } from '../../src/host/archive.ts';
import { versionMatches } from '../../src/installers/health.ts';
import { installLinks } from '../../src/installers/systemd.ts';
import { dpkgInstalledVersion } from '../../src/installers/sources/deb.ts';
import { tempDir } from './helpers.ts';

const SHA = 'a'.repeat(64);
const good = (spec: string): string => `apiVersion: kubenode.io/v1alpha1
kind: MachineComponent
metadata:
  name: x
spec:
${spec
  .trim()
  .split('\n')
  .map((l) => `  ${l}`)
  .join('\n')}
`;

const base = `component: demo\nversion: 1.2.3\nsource:\n  type: tarball\n  url: https://example.com/demo.tgz\n  sha256: ${SHA}`;

describe('manifest validation', () => {
  it('accepts a complete spec and fills defaults', () => {
    const [t] = parseManifestText('m.yaml', good(`${base}\nfiles:\n  - path: /etc/demo.conf\n    content: "x"\nunit:\n  name: demo.service\nhealthCheck:\n  http:\n    url: http://127.0.0.1:9100/metrics`));
    assert.equal(t?.spec.files[0]?.mode, '0644');
    assert.equal(t?.spec.unit?.enabled, true);
    assert.equal(t?.spec.healthCheck?.http?.expectStatus, 200);
    assert.equal(t?.spec.disruptive, false);
    assert.match(t?.specHash ?? '', /^[a-f0-9]{64}$/);
  });

  const bad: [string, string, RegExp][] = [
    ['unknown source type', base.replace('type: tarball', 'type: snap'), /m\.yaml: spec\.source\.type: expected one of deb, rpm, tarball, binary, none, got "snap"/],
    ['sha256 not hex', base.replace(SHA, 'ABC'), /spec\.source\.sha256: expected string matching \^\[a-f0-9\]\{64\}\$, got "ABC"/],
    ['url scheme', base.replace('https://example.com/demo.tgz', 'ftp://example.com/x'), /spec\.source\.url: expected string matching/],
    ['missing sha256', base.replace(`\n  sha256: ${SHA}`, ''), /spec\.source\.sha256: required for source\.type tarball/],
    ['deb without package', base.replace('type: tarball', 'type: deb'), /spec\.source\.package: required for source\.type deb/],
    ['bad version', base.replace('1.2.3', 'latest'), /spec\.version: expected string matching/],
    ['shell string instead of argv', `${base}\nhooks:\n  preInstall:\n    - "systemctl stop x && rm -rf /"`, /spec\.hooks\.preInstall\[0\]: expected an array \(commands are argv arrays, never shell strings\), got "systemctl stop x && rm -rf \/"/],
    ['empty argv', `${base}\nhealthCheck:\n  exec:\n    argv: []`, /spec\.healthCheck\.exec\.argv: expected an array of at least 1 item/],
    ['content and template', `${base}\nfiles:\n  - path: /etc/x\n    content: a\n    template: b`, /spec\.files\[0\]: exactly one of content and template/],
    ['dot-dot path', `${base}\nfiles:\n  - path: /etc/../root/.ssh/authorized_keys\n    content: a`, /spec\.files\[0\]\.path: must not contain \. or \.\. segments/],
    ['relative path', `${base}\nfiles:\n  - path: etc/x\n    content: a`, /spec\.files\[0\]\.path: expected string matching/],
    ['bad mode', `${base}\nfiles:\n  - path: /etc/x\n    content: a\n    mode: "0999"`, /spec\.files\[0\]\.mode: expected string matching/],
    ['unknown field', `${base}\nrestartPolicy: always`, /spec\.restartPolicy: unknown field/],
    ['unit name', `${base}\nunit:\n  name: "demo; rm -rf /"`, /spec\.unit\.name: expected string matching/],
    ['unitActive without a unit', `${base}\nhealthCheck:\n  unitActive: true`, /spec\.healthCheck\.unitActive: needs spec\.unit/],
    ['a versionProbe regex RE2 cannot run (lookahead)', `${base}\nversionProbe:\n  argv: [demo, --version]\n  regex: 'v(?=\\d)(\\S+)'`, /spec\.versionProbe\.regex: expected an RE2 regular expression/],
    ['a versionProbe regex with a JS-only backreference', `${base}\nversionProbe:\n  argv: [demo, --version]\n  regex: '(\\d)\\1'`, /m\.yaml: spec\.versionProbe\.regex: expected an RE2 regular expression/],
    ['hooks on source.type none', `component: demo\nversion: 1.2.3\nsource:\n  type: none\nhooks:\n  postInstall:\n    - [/usr/bin/true]`, /spec\.hooks: source\.type none installs nothing/],
  ];
  for (const [name, spec, error] of bad) {
    it(`refuses ${name}`, () => assert.throws(() => parseManifestText('m.yaml', good(spec)), error));
  }

  it('accepts a versionProbe regex in RE2 syntax that JavaScript lacks or limits', () => {
    for (const regex of ['(?P<v>\\S+)', 'v(\\d{64})', '(?i)version (\\S+)']) {
      const [t] = parseManifestText('m.yaml', good(`${base}\nversionProbe:\n  argv: [demo, --version]\n  regex: '${regex}'`));
      assert.equal(t?.spec.versionProbe?.regex, regex);
    }
  });

  it('refuses a wrong apiVersion or kind', () => {
    assert.throws(() => parseManifestText('m.yaml', good(base).replace('kubenode.io/v1alpha1', 'kubenode.io/v1')), /m\.yaml: apiVersion: expected kubenode\.io\/v1alpha1, got "kubenode\.io\/v1"/);
    assert.throws(() => parseManifestText('m.yaml', good(base).replace('kind: MachineComponent', 'kind: Machine')), /m\.yaml: kind: expected MachineComponent/);
  });

  it('names the document of a multi-document file', () => {
    const text = `${good(base)}---\n${good(base.replace('component: demo', 'component: other').replace('1.2.3', 'x'))}`;
    assert.throws(() => parseManifestText('m.yaml', text), /m\.yaml \(document 2\): spec\.version/);
  });

  it('loads a directory: a bad file is refused, the others load; duplicates across files are refused', async () => {
    const dir = tempDir('manifests');
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'a.yaml'), `${good(base)}---\n${good(base.replace('component: demo', 'component: two'))}`);
    writeFileSync(path.join(dir, 'b.yaml'), good(base.replace('type: tarball', 'type: nope').replace('component: demo', 'component: three')));
    writeFileSync(path.join(dir, 'c.yml'), good(base));
    writeFileSync(path.join(dir, 'd.yaml'), 'spec: [unclosed');
    writeFileSync(path.join(dir, 'notes.txt'), 'ignored');
    const loaded = await loadManifestDir({ list: readLocalDir, read: readLocalFile }, dir);
    assert.deepEqual(loaded.targets.map((t) => t.spec.component), ['demo', 'two']);
    assert.equal(loaded.errors.length, 3);
    assert.match(loaded.errors[0]?.message ?? '', /b\.yaml: spec\.source\.type: expected one of/);
    assert.match(loaded.errors[1]?.message ?? '', /c\.yml: spec\.component: demo is already declared in .*a\.yaml/);
    assert.match(loaded.errors[2]?.message ?? '', /d\.yaml: invalid YAML/);
  });

  it('a file that declares nothing (truncated mid-write, or only comments) is refused, so nothing it declared reads as undeclared', async () => {
    const dir = tempDir('manifests');
    writeFileSync(path.join(dir, 'a.yaml'), good(base));
    writeFileSync(path.join(dir, 'b.yaml'), '');
    writeFileSync(path.join(dir, 'c.yaml'), '# kubelet\n---\n');
    const loaded = await loadManifestDir({ list: readLocalDir, read: readLocalFile }, dir);
    assert.deepEqual(loaded.targets.map((t) => t.spec.component), ['demo']);
    assert.deepEqual(
      loaded.errors.map((e) => e.message.replace(dir, 'DIR')),
      ['DIR/b.yaml: declares no MachineComponent (read as a file still being written); to remove what it declared, delete the file', 'DIR/c.yaml: declares no MachineComponent (read as a file still being written); to remove what it declared, delete the file'],
    );
  });
});

describe('pure helpers', () => {
  it('versionMatches: package revisions, v prefix, epochs', () => {
    const table: [string, string, boolean][] = [
      ['1.2.3', '1.2.3', true],
      ['1.2.3', '1.2.3-1', true],
      ['1.2.3', 'v1.2.3', true],
      ['1.2.3', '2:1.2.3-4.el9', true],
      ['1.2.3-1', '1.2.3-10', false],
      ['1.2', '1.2.3', false],
      ['1.2.3', '1.2.30', false],
    ];
    for (const [want, got, ok] of table) assert.equal(versionMatches(want, got), ok, `${want} vs ${got}`);
  });

  it('installLinks reads [Install] as systemctl enable does', () => {
    assert.deepEqual(installLinks('a.service', '[Unit]\nWantedBy=ignored.target\n[Install]\nWantedBy=multi-user.target graphical.target\nRequiredBy=b.service\nAlias=c.service\n'), [
      '/etc/systemd/system/multi-user.target.wants/a.service',
      '/etc/systemd/system/graphical.target.wants/a.service',
      '/etc/systemd/system/b.service.requires/a.service',
      '/etc/systemd/system/c.service',
    ]);
    assert.deepEqual(installLinks('a.service', '[Service]\nExecStart=/bin/true\n'), []);
  });

  it('dpkgInstalledVersion ignores removed packages', () => {
    const status = 'Package: a\nStatus: deinstall ok config-files\nVersion: 1\n\nPackage: b\nStatus: install ok installed\nVersion: 2.0-1\n';
    assert.equal(dpkgInstalledVersion(status, 'a'), undefined);
    assert.equal(dpkgInstalledVersion(status, 'b'), '2.0-1');
  });

  it('checkEntry strips components and keeps in-archive links', () => {
    assert.deepEqual(checkEntry({ path: 'demo-1/bin/x', type: 'File', size: 3 }, 1), { path: 'bin/x', type: 'File', size: 3 });
    assert.equal(checkEntry({ path: 'demo-1/', type: 'Directory', size: 0 }, 1), undefined);
    assert.deepEqual(checkEntry({ path: 'a/lib/x.so', type: 'SymbolicLink', size: 0, linkpath: '../lib64/x.so' }, 0)?.linkpath, '../lib64/x.so');
    assert.throws(() => checkEntry({ path: 'a/x', type: 'SymbolicLink', size: 0, linkpath: '../../x' }, 0), /points outside the archive/);
  });
});

// MachineComponent (kubenode.io/v1alpha1): one component on one machine at one version.
// These TypeBox schemas are the TypeScript types, the manifest validator and, later, the CRD's
// openAPIV3Schema; they stay within Kubernetes structural-schema features: no anyOf/oneOf/const,
// enums as `type: string` + `enum`, RE2-compatible patterns, cross-field rules as CEL in
// x-kubernetes-validations (the agent checks the same rules in code: src/installers/manifests.ts).
import { Type, type Static } from '@sinclair/typebox';
import { API_VERSION, COMPONENT_NAME_PATTERN, ComponentPhases, NODE_NAME_PATTERN, SHA256_PATTERN, StringEnum, VERSION_PATTERN } from './common.ts';

export const KIND = 'MachineComponent';

export const URL_PATTERN = '^(https?://[^\\s/?#@]+(/[^\\s]*)?|file:///[^\\s]*)$';
export const HTTP_URL_PATTERN = '^https?://[^\\s/?#@]+(/[^\\s]*)?$';
export const ABS_PATH_PATTERN = '^/[^\\x00]*$';
/** A path segment is never `..` or `.` (checked in code and by CEL, RE2 has no lookahead). */
const NO_DOT_SEGMENTS = "!self.matches('(^|/)\\\\.\\\\.?(/|$)')";
export const UNIT_NAME_PATTERN = '^[A-Za-z0-9:_.@\\\\-]+\\.(service|socket|timer|path|mount|target)$';
export const FILE_MODE_PATTERN = '^0?[0-7]{3,4}$';
/** user[:group] as names or numbers. */
export const OWNER_PATTERN = '^([a-z_][a-z0-9_-]{0,31}|[0-9]{1,10})(:([a-z_][a-z0-9_-]{0,31}|[0-9]{1,10}))?$';

export const SourceTypes = ['deb', 'rpm', 'tarball', 'binary', 'none'] as const;
export type SourceType = (typeof SourceTypes)[number];

/** argv array, never a shell string. */
export const Argv = Type.Array(Type.String({ minLength: 1, maxLength: 4096 }), {
  minItems: 1,
  maxItems: 64,
  description: 'Command as an argv array (no shell): argv[0] is an absolute path or a name found in the host bin directories',
});

const RelPath = Type.String({
  minLength: 1,
  maxLength: 1024,
  pattern: '^[^/\\x00][^\\x00]*$',
  description: 'Path relative to the install directory',
  'x-kubernetes-validations': [{ rule: NO_DOT_SEGMENTS, message: 'must not contain . or .. segments' }],
});

const AbsPath = (description: string) =>
  Type.String({
    minLength: 2,
    maxLength: 1024,
    pattern: ABS_PATH_PATTERN,
    description,
    'x-kubernetes-validations': [{ rule: NO_DOT_SEGMENTS, message: 'must not contain . or .. segments' }],
  });

export const ComponentSource = Type.Object(
  {
    type: StringEnum(SourceTypes, { description: 'How the component is delivered' }),
    url: Type.Optional(Type.String({ maxLength: 2048, pattern: URL_PATTERN, description: 'Artifact URL: https, http or file:/// (a host path)' })),
    sha256: Type.Optional(Type.String({ pattern: SHA256_PATTERN, description: 'SHA-256 of the artifact, lower-case hex; required with url' })),
    package: Type.Optional(
      Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9][A-Za-z0-9+._-]*$', description: 'Package name (deb, rpm)' }),
    ),
    binaryName: Type.Optional(
      Type.String({ minLength: 1, maxLength: 255, pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$', description: 'File name of a binary source inside the version directory (default: the component name)' }),
    ),
    stripComponents: Type.Optional(Type.Integer({ minimum: 0, maximum: 8, description: 'Leading path segments removed from tarball entries' })),
    maxBytes: Type.Optional(Type.Integer({ minimum: 1, maximum: 16 * 1024 * 1024 * 1024, description: 'Refuse a download larger than this (default: installers.maxDownloadBytes)' })),
  },
  {
    additionalProperties: false,
    'x-kubernetes-validations': [
      { rule: "self.type == 'none' || (has(self.url) && has(self.sha256))", message: 'url and sha256 are required unless type is none' },
      { rule: "self.type != 'none' || (!has(self.url) && !has(self.sha256))", message: 'type none takes no url or sha256' },
      { rule: "!(self.type == 'deb' || self.type == 'rpm') || has(self.package)", message: 'package is required for deb and rpm' },
    ],
    description: 'Where the component comes from: a package, a tarball or a binary at a URL with its sha256, or none (files and a unit only)',
  },
);

export const ComponentLink = Type.Object(
  {
    path: AbsPath('Host path of the symlink, e.g. /usr/local/bin/node_exporter'),
    target: RelPath,
  },
  { additionalProperties: false },
);

export const ComponentInstall = Type.Object(
  {
    dir: Type.Optional(AbsPath('Where versions are kept (DIR/VERSION) and DIR/current points (default /opt/kubenode/COMPONENT)')),
    links: Type.Array(ComponentLink, { default: [], maxItems: 32, description: 'Stable symlinks into DIR/current' }),
  },
  { additionalProperties: false, default: {}, description: 'Where tarball and binary sources are unpacked, and the links into them' },
);

export const ComponentFile = Type.Object(
  {
    path: AbsPath('Host path of the file'),
    content: Type.Optional(Type.String({ maxLength: 1024 * 1024, description: 'Literal content' })),
    template: Type.Optional(
      Type.String({ maxLength: 1024 * 1024, description: 'Content with {{nodeName}}, {{arch}}, {{component}}, {{version}}, {{installDir}} replaced' }),
    ),
    mode: Type.String({ pattern: FILE_MODE_PATTERN, default: '0644', description: 'Octal permission bits' }),
    owner: Type.Optional(Type.String({ pattern: OWNER_PATTERN, description: 'user[:group], names resolved in the host /etc/passwd and /etc/group' })),
    restartOnChange: Type.Boolean({ default: true, description: "Restart the component's unit when this file changes" }),
  },
  {
    additionalProperties: false,
    'x-kubernetes-validations': [{ rule: 'has(self.content) != has(self.template)', message: 'exactly one of content and template' }],
  },
);

export const ComponentUnit = Type.Object(
  {
    name: Type.String({ pattern: UNIT_NAME_PATTERN, maxLength: 255, description: 'systemd unit name' }),
    content: Type.Optional(Type.String({ maxLength: 256 * 1024, description: 'Unit file written to /etc/systemd/system/NAME; absent: an existing unit' })),
    enabled: Type.Boolean({ default: true, description: 'Enable the unit so that it starts at boot' }),
    restartOnChange: Type.Boolean({ default: true, description: 'Restart when the unit, binary or a restartOnChange file changed' }),
  },
  { additionalProperties: false, description: 'The systemd unit that runs the component' },
);

export const HealthCheck = Type.Object(
  {
    exec: Type.Optional(Type.Object({ argv: Argv }, { additionalProperties: false, description: 'Healthy when this command exits 0' })),
    http: Type.Optional(
      Type.Object(
        {
          url: Type.String({ maxLength: 2048, pattern: HTTP_URL_PATTERN, description: 'http or https URL to GET' }),
          expectStatus: Type.Integer({ minimum: 100, maximum: 599, default: 200, description: 'HTTP status that means healthy' }),
        },
        { additionalProperties: false, description: 'Healthy when a GET of url answers expectStatus' },
      ),
    ),
    unitActive: Type.Boolean({ default: false, description: "The component's unit must be active" }),
    timeoutSeconds: Type.Integer({ minimum: 1, maximum: 600, default: 10, description: 'Deadline of one attempt' }),
    retries: Type.Integer({ minimum: 0, maximum: 100, default: 3, description: 'Attempts after the first failure' }),
    intervalSeconds: Type.Number({ minimum: 0, maximum: 600, default: 2, description: 'Pause between attempts' }),
  },
  { additionalProperties: false, description: 'How the agent decides the component works after an install; failing it rolls back to the last healthy version' },
);

export const VersionProbe = Type.Object(
  {
    argv: Argv,
    regex: Type.String({ minLength: 1, maxLength: 512, description: 'RE2 regular expression (matched in linear time; no lookaround or backreferences); its first capture group (or the whole match) is the version' }),
    timeoutSeconds: Type.Integer({ minimum: 1, maximum: 600, default: 10, description: 'Deadline of the command' }),
  },
  { additionalProperties: false, description: 'A command whose output names the installed version; it must match spec.version' },
);

export const ComponentHooks = Type.Object(
  {
    preInstall: Type.Array(Argv, { default: [], maxItems: 16, description: 'Commands run, in order, before a new version is installed' }),
    postInstall: Type.Array(Argv, { default: [], maxItems: 16, description: 'Commands run, in order, after a new version is installed' }),
    timeoutSeconds: Type.Integer({ minimum: 1, maximum: 3600, default: 60, description: 'Deadline of each hook command' }),
  },
  { additionalProperties: false, default: {}, description: 'Commands around an install; each is an argv array, never a shell string' },
);

export const MachineComponentSpec = Type.Object(
  {
    component: Type.String({ minLength: 1, maxLength: 63, pattern: COMPONENT_NAME_PATTERN, description: 'Component name, unique on a machine' }),
    machine: Type.Optional(
      Type.String({
        minLength: 64,
        maxLength: 253,
        pattern: NODE_NAME_PATTERN,
        description:
          "The Machine (= Node) this is for, set by the controller when the name is too long for a label value (over 63 characters) and the kubenode.io/machine label holds a shortened form of it; that node's agent alone may write the status",
      }),
    ),
    version: Type.String({ minLength: 1, maxLength: 128, pattern: VERSION_PATTERN, description: 'Version to install, e.g. 1.8.2, v1.30.1, 1.7.13-1' }),
    disruptive: Type.Boolean({ default: false, description: 'Restarting it disturbs workloads (kubelet, container runtime): asks the risk gate first' }),
    source: ComponentSource,
    install: ComponentInstall,
    files: Type.Array(ComponentFile, { default: [], maxItems: 64, description: 'Files the agent writes and keeps as declared' }),
    unit: Type.Optional(ComponentUnit),
    healthCheck: Type.Optional(HealthCheck),
    versionProbe: Type.Optional(VersionProbe),
    hooks: ComponentHooks,
    removalPolicy: Type.Optional(
      StringEnum(['Uninstall', 'Orphan'] as const, {
        default: 'Uninstall',
        description:
          'When the component is no longer declared (its MachineComponent deleted, or dropped from the manifest directory): Uninstall stops and disables its unit and removes its files, links, version directories and package; Orphan leaves it installed and stops managing it',
      }),
    ),
  },
  {
    additionalProperties: false,
    description: 'One component at one version: its source, files, systemd unit, health check and version probe',
    'x-kubernetes-validations': [
      {
        rule: "self.source.type != 'none' || !has(self.hooks) || ((!has(self.hooks.preInstall) || size(self.hooks.preInstall) == 0) && (!has(self.hooks.postInstall) || size(self.hooks.postInstall) == 0))",
        message: 'source.type none installs nothing, so preInstall and postInstall hooks would never run',
      },
    ],
  },
);
export type MachineComponentSpec = Static<typeof MachineComponentSpec>;
export type ComponentFile = Static<typeof ComponentFile>;
export type HealthCheck = Static<typeof HealthCheck>;

export const MachineComponentMetadata = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 253, pattern: '^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$' }),
    generation: Type.Optional(Type.Integer({ minimum: 0 })),
    labels: Type.Optional(Type.Record(Type.String(), Type.String())),
    annotations: Type.Optional(Type.Record(Type.String(), Type.String())),
  },
  // Objects read back from an apiserver carry more metadata (uid, resourceVersion…).
  { additionalProperties: true },
);

export const ComponentCondition = Type.Object(
  {
    type: Type.String({ minLength: 1, maxLength: 316, description: 'Ready, or RiskGate while a disruptive step waits for a permit' }),
    status: StringEnum(['True', 'False', 'Unknown'] as const, { description: 'True, False or Unknown' }),
    reason: Type.String({ maxLength: 1024, description: 'Why, in CamelCase: Installed, Installing, RolledBack, CheckFailed, Denied…' }),
    message: Type.String({ maxLength: 32768, description: 'Why, for people' }),
    lastTransitionTime: Type.String({ format: 'date-time', description: 'When status or reason last changed' }),
  },
  { additionalProperties: false },
);

export const ComponentHistoryEntry = Type.Object(
  {
    version: Type.String({ description: 'Version the run converged to, or tried to' }),
    specHash: Type.String({ description: 'Hash of the spec the run acted on' }),
    result: StringEnum(['Installed', 'Failed', 'RolledBack'] as const, { description: 'Installed, Failed (nothing earlier to go back to) or RolledBack' }),
    at: Type.String({ format: 'date-time', description: 'When the run ended' }),
    message: Type.String({ description: 'What the run did, or why it failed' }),
  },
  { additionalProperties: false },
);

export const MachineComponentStatus = Type.Object(
  {
    phase: StringEnum(ComponentPhases, { description: 'Pending, Installing, Installed, Failed or RollingBack' }),
    installedVersion: Type.Optional(Type.String({ description: 'Version on the node now (from the version probe when there is one)' })),
    observedGeneration: Type.Integer({ minimum: 0, description: 'metadata.generation last installed' }),
    attemptedGeneration: Type.Optional(
      Type.Integer({ minimum: 0, description: 'metadata.generation of the spec the last run acted on, whatever its outcome (Installed, Failed, rolled back or held); a Failed phase with attemptedGeneration equal to metadata.generation is the failure of this spec' }),
    ),
    configHash: Type.Optional(Type.String({ description: 'Hash of the rendered files and unit: what a restart depends on besides the binary' })),
    specHash: Type.Optional(Type.String({ description: 'Hash of the whole spec last acted on' })),
    conditions: Type.Array(ComponentCondition, { default: [], description: 'Ready and RiskGate conditions' }),
    lastError: Type.Optional(Type.String({ description: 'Why the last run failed or was deferred' })),
    history: Type.Array(ComponentHistoryEntry, { default: [], maxItems: 10, description: 'The last 10 runs that changed something, newest first' }),
    updatedAt: Type.Optional(Type.String({ format: 'date-time', description: 'When the phase last changed' })),
  },
  { additionalProperties: false, description: "What the node's agent did with the spec; written only by that agent" },
);
export type MachineComponentStatus = Static<typeof MachineComponentStatus>;
export type ComponentCondition = Static<typeof ComponentCondition>;

export const MachineComponent = Type.Object(
  {
    apiVersion: StringEnum([API_VERSION] as const),
    kind: StringEnum([KIND] as const),
    metadata: MachineComponentMetadata,
    spec: MachineComponentSpec,
    status: Type.Optional(MachineComponentStatus),
  },
  { additionalProperties: false },
);
export type MachineComponent = Static<typeof MachineComponent>;

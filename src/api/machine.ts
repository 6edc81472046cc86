// Machine (kubenode.io/v1alpha1): one node. Its name is the Node's name; the spec says what the
// agent keeps on the Node (labels, taints) and which components the node runs; the status is what
// the agent found on the machine.
import { Type, type Static } from '@sinclair/typebox';
import { COMPONENT_NAME_PATTERN, Conditions, Duration, KubeObject, Labels, QUALIFIED_NAME_PATTERN, StringEnum, Time } from './common.ts';

export const KIND = 'Machine';

export const TaintEffects = ['NoSchedule', 'PreferNoSchedule', 'NoExecute'] as const;

export const Taint = Type.Object(
  {
    key: Type.String({ minLength: 1, maxLength: 316, pattern: QUALIFIED_NAME_PATTERN, description: 'Taint key, a qualified name' }),
    value: Type.Optional(Type.String({ maxLength: 63, pattern: '^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$', description: 'Taint value, at most 63 characters' })),
    effect: StringEnum(TaintEffects, { description: 'NoSchedule, PreferNoSchedule or NoExecute' }),
  },
  { additionalProperties: false },
);
export type Taint = Static<typeof Taint>;

export const BmcInterfaces = ['lanplus', 'lan'] as const;

/** The machine's baseboard management controller, for the controller's out-of-band power cycle (IPMI over the network). */
export const Bmc = Type.Object(
  {
    address: Type.String({
      minLength: 1,
      maxLength: 261,
      pattern: '^([A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?|\\[[0-9A-Fa-f:.]+\\])(:[0-9]{1,5})?$',
      description: 'Host name or IP address of the BMC, with an optional UDP port (default 623); IPv6 in brackets, e.g. [fd00::5]:623',
    }),
    credentialsSecret: Type.Object(
      {
        name: Type.String({ minLength: 1, maxLength: 253, pattern: '^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$', description: 'Secret name' }),
        namespace: Type.String({ minLength: 1, maxLength: 63, pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', default: 'kubenode-system', description: 'Secret namespace (the controller needs get on Secrets there)' }),
      },
      { additionalProperties: false, description: 'Secret with the keys username and password' },
    ),
    interface: StringEnum(BmcInterfaces, { default: 'lanplus', description: 'ipmitool interface: lanplus (IPMI 2.0 RMCP+) or lan (IPMI 1.5)' }),
    cipherSuite: Type.Integer({ minimum: 0, maximum: 17, default: 3, description: 'RMCP+ cipher suite for lanplus (3: HMAC-SHA1, AES-128; 17: HMAC-SHA256, AES-128)' }),
  },
  { additionalProperties: false, description: "The machine's BMC, reached by the controller with ipmitool for the power-cycle remedy" },
);
export type Bmc = Static<typeof Bmc>;

export const MachineSpec = Type.Object(
  {
    labels: Labels({ default: {}, description: 'Labels the agent keeps on the Node (adds and corrects; never removes labels it did not set)' }),
    taints: Type.Array(Taint, {
      default: [],
      maxItems: 32,
      'x-kubernetes-list-type': 'map',
      'x-kubernetes-list-map-keys': ['key', 'effect'],
      description: 'Taints the agent keeps on the Node',
    }),
    components: Type.Array(Type.String({ minLength: 1, maxLength: 63, pattern: COMPONENT_NAME_PATTERN }), {
      default: [],
      maxItems: 128,
      'x-kubernetes-list-type': 'set',
      description: 'Components this machine should run; each is a MachineComponent labelled kubenode.io/machine=<this name>',
    }),
    paused: Type.Boolean({ default: false, description: 'Maintenance: the agent reports but installs and repairs nothing' }),
    bmc: Type.Optional(Bmc),
    nodeStartupTimeout: Duration({
      default: '10m',
      description: "How long after the Machine's creation the Node may take to first become Ready before the controller sets NodeReady=False, reason NodeStartupTimeout",
    }),
    deleteNode: Type.Boolean({ default: false, description: 'When the Machine is deleted: delete its Node too, once it is drained and its components are uninstalled' }),
    deletionTimeout: Duration({
      default: '20m',
      description: "How long, from the Machine's deletion, drain and uninstall may take before the controller reports them stalled (condition reason DrainTimeout or RemovalTimeout, a Warning Event); it keeps waiting until annotation kubenode.io/force-delete=true says to go on",
    }),
  },
  { additionalProperties: false, description: 'What the agent keeps on this node: Node labels and taints, and the components it runs' },
);
export type MachineSpec = Static<typeof MachineSpec>;

export const MachinePhases = ['Pending', 'Reconciling', 'Ready', 'Degraded', 'Paused', 'Failed'] as const;
export type MachinePhase = (typeof MachinePhases)[number];

/** Where the controller has the machine in its life; for display, the conditions are the truth. */
export const LifecyclePhases = ['Pending', 'Importing', 'WaitingForNode', 'InstallingComponents', 'Running', 'Deleting'] as const;
export type LifecyclePhase = (typeof LifecyclePhases)[number];

/** Condition types the controller writes; the agent's are the Node's problem conditions. */
export const LifecycleConditions = ['NodeRegistered', 'NodeReady', 'ComponentsReady', 'Ready', 'AgentCertificateValid'] as const;

/** Condition types the controller writes while a Machine is being deleted. */
export const DeletionConditions = ['Drained', 'ComponentsRemoved'] as const;

/**
 * Written by the central remedies: True while the Machine is marked for replacement (annotation
 * kubenode.io/replace) because its agent stayed unreachable through every central step; False
 * once a person removes the annotation. Cluster API's remediation, an inventory system or a
 * person selects on it.
 */
export const REPLACEMENT_CONDITION = 'ReplacementRequested';

/** GOARCH names, as the Node's kubernetes.io/arch label has them. */
export const Architectures = ['amd64', 'arm64', 'arm', 'ppc64le', 's390x', 'riscv64', 'loong64'] as const;

const PCI_ADDRESS_PATTERN = '^[0-9a-fA-F]{4,8}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\\.[0-7]$';

export const GpuDevice = Type.Object(
  {
    vendor: Type.String({ maxLength: 128, description: 'Vendor, e.g. NVIDIA' }),
    model: Type.String({ maxLength: 256, description: 'Model name as the driver reports it, e.g. H100 80GB HBM3' }),
    busId: Type.Optional(Type.String({ pattern: PCI_ADDRESS_PATTERN, description: 'PCI address, e.g. 0000:3b:00.0' })),
    uuid: Type.Optional(Type.String({ maxLength: 128, description: 'Device UUID (nvidia-smi: GPU-…)' })),
    memoryBytes: Type.Optional(Type.Integer({ minimum: 0, description: 'Device memory in bytes' })),
    driverVersion: Type.Optional(Type.String({ maxLength: 64, description: 'Version of the loaded driver' })),
  },
  { additionalProperties: false },
);
export type GpuDevice = Static<typeof GpuDevice>;

export const FpgaDevice = Type.Object(
  {
    vendor: Type.String({ maxLength: 128, description: 'Vendor, e.g. Xilinx' }),
    model: Type.String({ maxLength: 256, description: 'Card or shell model as the tool reports it' }),
    busId: Type.Optional(Type.String({ pattern: PCI_ADDRESS_PATTERN, description: 'PCI address, e.g. 0000:af:00.0' })),
  },
  { additionalProperties: false },
);
export type FpgaDevice = Static<typeof FpgaDevice>;

export const NodeFacts = Type.Object(
  {
    kernelVersion: Type.String({ maxLength: 256, description: 'Running kernel release (uname -r)' }),
    osImage: Type.String({ maxLength: 256, description: 'PRETTY_NAME from os-release' }),
    osId: Type.Optional(Type.String({ maxLength: 64, description: 'ID from os-release, e.g. ubuntu, rhel' })),
    osVersion: Type.Optional(Type.String({ maxLength: 64, description: 'VERSION_ID from os-release' })),
    architecture: StringEnum(Architectures, { description: 'CPU architecture as GOARCH names it (amd64, arm64…)' }),
    cpus: Type.Integer({ minimum: 1, maximum: 65536, description: 'Online CPUs' }),
    memoryBytes: Type.Integer({ minimum: 0, description: 'Total memory (MemTotal) in bytes' }),
    bootId: Type.Optional(Type.String({ maxLength: 64, description: 'Kernel boot ID; changes on every boot' })),
    machineId: Type.Optional(Type.String({ maxLength: 64, description: '/etc/machine-id' })),
  },
  { additionalProperties: false, description: 'Facts the agent read on the node' },
);
export type NodeFacts = Static<typeof NodeFacts>;

export const MachineComponentSummary = Type.Object(
  {
    name: Type.String({ maxLength: 63, description: 'Component name' }),
    version: Type.Optional(Type.String({ maxLength: 128, description: 'Installed version' })),
    phase: Type.String({ maxLength: 32, description: "Phase of the component's MachineComponent" }),
  },
  { additionalProperties: false },
);

export const MachineStatus = Type.Object(
  {
    phase: Type.Optional(StringEnum(MachinePhases, { description: 'Written by the agent: Pending, Reconciling, Ready, Degraded (a problem condition is True), Paused or Failed; absent until the agent first reports' })),
    observedGeneration: Type.Optional(Type.Integer({ minimum: 0, description: 'metadata.generation the agent last acted on' })),
    agentVersion: Type.Optional(Type.String({ maxLength: 64, description: 'Version of the kubenode-agent on the node' })),
    node: Type.Optional(NodeFacts),
    gpus: Type.Array(GpuDevice, { default: [], maxItems: 64, description: 'GPUs found on the node' }),
    fpgas: Type.Array(FpgaDevice, { default: [], maxItems: 64, description: 'FPGA cards found on the node' }),
    components: Type.Array(MachineComponentSummary, {
      default: [],
      maxItems: 128,
      'x-kubernetes-list-type': 'map',
      'x-kubernetes-list-map-keys': ['name'],
      description: "The node's components, one entry per MachineComponent",
    }),
    conditions: Conditions({ default: [] }),
    lastHeartbeatTime: Type.Optional(Time({ description: 'When the agent last wrote this status' })),
    lifecycle: Type.Optional(
      StringEnum(LifecyclePhases, {
        description: 'Written by the controller, for display: Pending (no Node yet), Importing (Node labels and taints being applied), WaitingForNode (Node not Ready), InstallingComponents, Running, or Deleting',
      }),
    ),
    importedTime: Type.Optional(Time({ description: 'Written by the controller: when the machine was first Ready; the importing taint stays on the Node until then' })),
    agentCertificateExpiry: Type.Optional(Time({ description: "Written by the controller: when the newest client certificate issued to this machine's agent expires (from the signed CertificateSigningRequest)" })),
  },
  {
    additionalProperties: false,
    description: "What the agent found on the node (phase, facts, the Node's problem conditions), and the controller's lifecycle: lifecycle, importedTime and the NodeRegistered, NodeReady, ComponentsReady and Ready conditions, and the central remedies' ReplacementRequested condition, each writer under its own field manager",
  },
);
export type MachineStatus = Static<typeof MachineStatus>;

export const Machine = KubeObject(KIND, MachineSpec, MachineStatus);
export type Machine = Static<typeof Machine>;

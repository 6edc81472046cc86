import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { appendFileSync, cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import {
  createKernelDetector,
  KERNEL_RULES,
  KernelLogState,
  kernelConfigSchema,
  matchKernelMessage,
  parsePstoreDmesg,
  resolveKernelSettings,
  type Generation,
  type KernelConfig,
  type TimedRecord,
} from '../../src/detectors/kernel.ts';
import pino from 'pino';
import { isKernelRecord, KernelLog, parseKmsgLines } from '../../src/detectors/engine/kmsg.ts';
import { createHost } from '../../src/host/host.ts';
import type { DetectorResult } from '../../src/types.ts';
import { FakeClock } from '../helpers/fake-clock.ts';
import { lineCutFromChunk, retainedBy } from '../helpers/heap.ts';
import { AGENT, FIXTURES, runAgent } from '../helpers/cli.ts';
import { detectors } from '../../src/detectors/index.ts';
import { decodeSection } from '../../src/config/decode.ts';
import { compileRe2 } from '../../src/util/re2.ts';

// Real kernel lines (text exactly as published; the source of each is in
// test/fixtures/hosts/kernel-*/SOURCE.md or named here). kernel: the version the reporter gave,
// or the generation the format belongs to when the report does not say.
interface Sample {
  rule: string;
  generation?: Generation;
  line: string;
  source: string;
}

const SAMPLES: Sample[] = [
  { rule: 'hung-task', generation: '3.10', source: 'elastic/logstash#3727 (2.6.32-504.el6)', line: 'INFO: task jbd2/vda1-8:404 blocked for more than 120 seconds.' },
  { rule: 'hung-task', generation: '4.x', source: 'sonic-net/sonic-buildimage#4822 (4.19.67)', line: 'INFO: task kworker/2:1:5747 blocked for more than 120 seconds.' },
  { rule: 'hung-task', generation: '5.x', source: 'GoogleCloudPlatform/compute-image-packages#905 (5.10.46)', line: 'INFO: task jbd2/sda1-8:161 blocked for more than 120 seconds.' },
  { rule: 'hung-task', generation: '6.x', source: 'sophgo/linux-riscv#92 (6.1.61)', line: 'INFO: task iou-sqp-533883:533890 blocked for more than 123 seconds.' },
  { rule: 'soft-lockup', generation: '3.10', source: 'aslab.com kb 189 (RHEL/CentOS 5-6 era, events/0 kthread)', line: 'BUG: soft lockup - CPU#0 stuck for 10s! [events/0:50]' },
  { rule: 'soft-lockup', generation: '4.x', source: 'juejin.cn/post/6982745566954389541 ("NMI watchdog:" prefix of 4.0-4.14 and RHEL 7.4+)', line: 'NMI watchdog: BUG: soft lockup - CPU#8 stuck for 28s! [xsoftdd/12:0]' },
  { rule: 'soft-lockup', generation: '5.x', source: 'sonic-net/sonic-buildimage#17358 (5.10.140)', line: 'watchdog: BUG: soft lockup - CPU#2 stuck for 23s! [kworker/2:1:25629]' },
  { rule: 'hard-lockup', generation: '4.x', source: 'SUSE KB 000020516 (SLES 15, 4.12)', line: 'NMI watchdog: Watchdog detected hard LOCKUP on cpu 10' },
  { rule: 'rcu-stall', generation: '3.10', source: 'luigirizzo/netmap#564 (3.10 el)', line: 'INFO: rcu_sched self-detected stall on CPU { 15}  (t=60001 jiffies g=58762545 c=58762544 q=196897)' },
  { rule: 'rcu-stall', generation: '4.x', source: 'apritzel/pine64#5 (4.4.0-rc8)', line: 'INFO: rcu_sched detected stalls on CPUs/tasks:' },
  { rule: 'rcu-stall', generation: '5.x', source: 'skiffos/SkiffOS#147 (5.10.27)', line: 'rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:' },
  { rule: 'rcu-stall', generation: '6.x', source: 'amazonlinux/amazon-linux-2023#1037 (6.12.55)', line: 'rcu: INFO: rcu_sched detected stalls on CPUs/tasks:' },
  { rule: 'rcu-stall', generation: '6.x', source: 'lkrg-org/lkrg#189 (mainline 2022)', line: 'rcu: INFO: rcu_preempt detected expedited stalls on CPUs/tasks: { 0-... } 6 jiffies s: 85 root: 0x1/.' },
  { rule: 'oops-null-old', generation: '4.x', source: 'docker/for-mac#87 (4.4.15-moby)', line: 'BUG: unable to handle kernel paging request at ffff88007bd671c0' },
  { rule: 'oops-null', generation: '5.x', source: 'openzfs/zfs#13430 (5.17.4)', line: 'BUG: kernel NULL pointer dereference, address: 000000000000000b' },
  { rule: 'oops-null', generation: '6.x', source: 'sonic-net/sonic-buildimage#22166 (6.1.94)', line: 'BUG: kernel NULL pointer dereference, address: 00000000000002d0' },
  { rule: 'gpf', generation: '5.x', source: 'NVIDIA/k8s-device-plugin#941 (5.8+ wording)', line: 'general protection fault, probably for non-canonical address 0x25b5f6bb1a24827e: 0000 [#1] SMP NOPTI' },
  { rule: 'arm-die', generation: '3.10', source: 'raspberrypi/linux#499 (3.13.5)', line: 'Internal error: Oops - bad mode: 0 [#4] PREEMPT ARM' },
  { rule: 'arm-die', generation: '5.x', source: 'derf/feh#574 (5.4.79)', line: 'Internal error: Oops: 17 [#2] ARM' },
  { rule: 'arm-die', generation: '5.x', source: 'LKML, qed_probe / kernel BUG at mm/vmalloc.c:2355 (5.4.0-77-generic, arm64)', line: 'Internal error: Oops - BUG: 0 [#1] SMP' },
  { rule: 'arm-die', generation: '5.x', source: 'LKML "[PATCH 1/1] arm64: kexec: no need to do irq_chip->irq_mask if it already masked", 2020-08-04 (i.MX8QM)', line: 'Internal error: synchronous external abort: 96000210 [#1] PREEMPT SMP' },
  { rule: 'arm-die', generation: '6.x', source: 'LKML "[PATCH] gpiolib: fix OOB access in quirk callbacks", 2022-09-16 (6.0.0-rc5-next, arm64)', line: 'Internal error: SP/PC alignment exception: 8a000000 [#1] SMP' },
  { rule: 'arm-die', generation: '6.x', source: 'linux-btrfs, kernel BUG at fs/btrfs/extent_io.c:1444 (6.12.0-rc7, arm64 64-bit ESR)', line: 'Internal error: Oops - BUG: 00000000f2000800 [#1] SMP' },
  { rule: 'x86-die', generation: '6.x', source: 'LKML ext4 patch, kernel BUG at fs/ext4/inline.c:240 (6.15.0-rc2)', line: 'Oops: invalid opcode: 0000 [#1] SMP NOPTI' },
  { rule: 'divide-error', generation: '6.x', source: 'xen-devel, Xen PVH dom0 amd_smn_init (linux-next, "Oops: " prefix)', line: 'Oops: divide error: 0000 [#1] SMP NOPTI' },
  { rule: 'netdev-watchdog', generation: '3.10', source: 'Ubuntu forums "Ubuntu 10.10 eth0 (atl1c): transmit queue 0 timed out AR8131", 2012 (2.6.35-32-generic)', line: 'NETDEV WATCHDOG: eth0 (atl1c): transmit queue 0 timed out' },
  { rule: 'netdev-watchdog', generation: '5.x', source: 'LKML "[RFC PATCH] ARM: dts: exynos: partial revert …", 2020-07-03 (5.8.0-rc3, smsc95xx)', line: 'NETDEV WATCHDOG: eth0 (smsc95xx): transmit queue 0 timed out' },
  { rule: 'netdev-watchdog', generation: '6.x', source: 'netdev "Re: r8169 link up but no traffic, and watchdog error", 2023-09-25', line: 'NETDEV WATCHDOG: enp3s0 (r8169): transmit queue 0 timed out 5368 ms' },
  { rule: 'netdev-watchdog-cpu', generation: '6.x', source: 'LKML "Re: vhost_iotlb_miss tight loop lockup", 2025-09-11 (6.12.y guest)', line: 'virtio_net virtio0 eth0: NETDEV WATCHDOG: CPU: 1: transmit queue 0 timed out 5500 ms' },
  { rule: 'kernel-warning', generation: '3.10', source: 'Ubuntu forums (as netdev-watchdog, 2.6.35-32-generic)', line: 'WARNING: at /build/buildd/linux-2.6.35/net/sched/sch_generic.c:258 dev_watchdog+0x1fd/0x210()' },
  { rule: 'kernel-warning', generation: '3.10', source: 'stable backport of lockdep commit 017210d1 (3.18.0-next-20141216)', line: 'WARNING: CPU: 0 PID: 1 at kernel/locking/lockdep.c:2744 lockdep_trace_alloc+0xec/0x118()' },
  { rule: 'kernel-warning', generation: '5.x', source: 'LKML "[RFC PATCH] ARM: dts: exynos: partial revert …", 2020-07-03 (5.8.0-rc3)', line: 'WARNING: CPU: 0 PID: 0 at net/sched/sch_generic.c:443 dev_watchdog+0x3ac/0x3e0' },
  { rule: 'kernel-warning', generation: '5.x', source: 'LKML sched/topology report (5.14.0-268.el9.aarch64)', line: 'WARNING: CPU: 0 PID: 1 at kernel/sched/topology.c:2271 build_sched_domains+0x284/0x910' },
  { rule: 'kernel-warning', generation: '6.x', source: 'LKML Google juniper /firmware address-cells patch (6.12.0)', line: 'WARNING: CPU: 0 PID: 1 at drivers/of/base.c:106 of_bus_n_addr_cells+0x90/0xf0' },
  { rule: 'oom-kill-summary', generation: '5.x', source: 'leptonai/gpud#70 (4.19+ format)', line: 'oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=cri-containerd-ec9ee26695deb4cc72bc665efff1cf3a03fdfb12f1303e02fe9252985e084a95.scope,mems_allowed=0-1,oom_memcg=/lxc.payload....-lxc/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podeded8c65_6e8e_4c6e_a889_3e427565c740.slice,task_memcg=/lxc.payload.ny2g2r5hh3-lxc/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podeded8c65_6e8e_4c6e_a889_3e427565c740.slice/cri-containerd-ec9ee26695deb4cc72bc665efff1cf3a03fdfb12f1303e02fe9252985e084a95.scope,task=pt_main_thread,pid=461754,uid=0' },
  { rule: 'oom-task-in', generation: '3.10', source: 'istio/istio#42734 (CentOS 7 node)', line: 'Task in /kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0330b2c1_a15b_4cdd_b5e5_72d4a90bee82.slice/docker-b27201334a41cd0749d053b18378d7ea65617b8e26277197ea25c974da1a5a8a.scope killed as a result of limit of /kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0330b2c1_a15b_4cdd_b5e5_72d4a90bee82.slice/docker-b27201334a41cd0749d053b18378d7ea65617b8e26277197ea25c974da1a5a8a.scope' },
  { rule: 'oom-task-in', generation: '4.x', source: 'linux-test-project/ltp#1080', line: 'Task in /13 killed as a result of limit of /13' },
  { rule: 'divide-error', generation: '4.x', source: 'coreos/bugs#1240 (4.3.6-coreos)', line: 'divide error: 0000 [#1] SMP' },
  { rule: 'divide-error', generation: '5.x', source: 'openzfs/zfs#11382 (5.9.14)', line: 'divide error: 0000 [#1] PREEMPT SMP NOPTI' },
  { rule: 'divide-error', generation: '6.x', source: 'thesofproject/linux#3953 (6.1.0-rc6)', line: 'divide error: 0000 [#1] PREEMPT SMP NOPTI' },
  { rule: 'cper-corrected', generation: '6.x', source: 'prometheus/node_exporter#3511 (Proxmox)', line: '{35}[Hardware Error]: event severity: corrected' },
  { rule: 'cper-recoverable', source: 'kubernetes/node-problem-detector#846', line: '{3}[Hardware Error]: event severity: recoverable' },
  { rule: 'cper-fatal', source: 'yangxiaohua2009/custom-kernel#6 (BERT record of a previous boot)', line: '[Hardware Error]: event severity: fatal' },
  { rule: 'ext4-warning', source: 'heidsoft/cloud-bigdata-book#43', line: 'EXT4-fs warning (device vdb): __ext4_read_dirblock:902: error reading directory block (ino 27787265, block 0)' },
  { rule: 'oom-select', generation: '3.10', source: 'kubernetes/kubernetes#56891 (3.10.0-327)', line: 'Memory cgroup out of memory: Kill process 24572 (java) score 0 or sacrifice child' },
  { rule: 'oom-select', generation: '4.x', source: 'genular/pandora#49 (shmem-rss era)', line: 'Out of memory: Kill process 27438 (R) score 31 or sacrifice child' },
  { rule: 'oom-killed', generation: '3.10', source: 'kubernetes/kubernetes#56891 (3.10.0-327)', line: 'Killed process 28438 (java) total-vm:20255636kB, anon-rss:466160kB, file-rss:13684kB' },
  { rule: 'oom-killed', generation: '3.10', source: 'redis/redis#2174 (2.6.32 alios6)', line: 'Killed process 21578, UID 503, (redis-server) total-vm:9100804kB, anon-rss:9066596kB, file-rss:64kB' },
  { rule: 'oom-killed', generation: '4.x', source: 'genular/pandora#49', line: 'Killed process 27438 (R) total-vm:38349780kB, anon-rss:1041924kB, file-rss:4kB, shmem-rss:0kB' },
  { rule: 'oom-killed', generation: '4.x', source: 'linux-test-project/ltp#1080', line: 'Killed process 42453 (memcg_test_1), UID 0, total-vm:7296kB, anon-rss:96kB, file-rss:164kB, shmem-rss:0kB' },
  { rule: 'oom-killed', generation: '5.x', source: 'reportportal/kubernetes#203 (5.4.0-77)', line: 'Memory cgroup out of memory: Killed process 63214 (uwsgi) total-vm:3149468kB, anon-rss:164992kB, file-rss:52176kB, shmem-rss:92kB, UID:0 pgtables:1372kB oom_score_adj:986' },
  { rule: 'oom-killed', generation: '6.x', source: 'inducer/relate#1383 (6.16.9)', line: 'Out of memory: Killed process 3581527 (uwsgi) total-vm:517892kB, anon-rss:263092kB, file-rss:29128kB, shmem-rss:0kB, UID:33 pgtables:740kB oom_score_adj:0' },
  { rule: 'unregister-netdevice', generation: '5.x', source: 'OpenVPN/ovpn-net-next#6 (Ubuntu 20.04)', line: 'unregister_netdevice: waiting for tun11 to become free. Usage count = 1' },
  { rule: 'unregister-netdevice', source: 'kubernetes/kubernetes#64743 (GKE)', line: 'unregister_netdevice: waiting for eth0 to become free. Usage count = 1' },
  { rule: 'ext4-remount-ro', generation: '5.x', source: 'WSL2 note (see kernel-ext4-readonly/SOURCE.md)', line: 'EXT4-fs (sdb): Remounting filesystem read-only' },
  { rule: 'btrfs-forced-ro', generation: '5.x', source: 'btrfs/linux#761 (5.11.0-1020-aws)', line: 'BTRFS info (device nvme2n1): forced readonly' },
  { rule: 'btrfs-forced-ro', generation: '6.x', source: 'coreos/rpm-ostree#4457 ("state E" device flags, 6.x)', line: 'BTRFS info (device sda3: state E): forced readonly' },
  { rule: 'xfs-shutdown', generation: '4.x', source: 'coreos/bugs#1396 (CoreOS 2016)', line: 'XFS (xvdb): Log I/O Error Detected.  Shutting down filesystem' },
  { rule: 'xfs-shutdown', source: 'kubernetes/node-problem-detector#845', line: 'XFS (dm-4): I/O Error Detected. Shutting down filesystem' },
  { rule: 'xfs-shutdown', generation: '6.x', source: 'siderolabs/talos#8733 (Talos 1.7)', line: 'XFS (sdb6): Filesystem has been shut down due to log error (0x2).' },
  { rule: 'ext4-error', generation: '5.x', source: 'sonic-net/sonic-buildimage#23146 (5.10)', line: 'EXT4-fs error (device loop1): ext4_check_bdev_write_error:217: comm rs:main Q:Reg: Error while async write back metadata' },
  { rule: 'ext4-warning', source: 'heidsoft/cloud-bigdata-book#43', line: 'EXT4-fs warning (device vdb): __ext4_read_dirblock:902: error reading directory block (ino 27787265, block 0)' },
  { rule: 'xfs-error', generation: '3.10', source: 'mattshma/docs#10 (2.6.32-358.el6)', line: 'XFS: Internal error XFS_WANT_CORRUPTED_RETURN at line 342 of file fs/xfs/xfs_alloc.c.  Caller 0xffffffffa01e76c2' },
  { rule: 'xfs-error', generation: '5.x', source: 'coreos/fedora-coreos-tracker#784 (FCOS 33)', line: 'XFS (vda4): metadata I/O error in "xfs_dquot_disk_read+0x14a/0x220 [xfs]" at daddr 0x1478 len 8 error 74' },
  { rule: 'btrfs-error', generation: '5.x', source: 'btrfs/linux#761 (5.11)', line: 'BTRFS: error (device nvme2n1) in __btrfs_update_delayed_inode:1075: errno=-5 IO failure' },
  { rule: 'buffer-io-error', generation: '3.10', source: 'GitHub file (find_string id 57053752811)', line: 'Buffer I/O error on device sr0, logical block 0' },
  { rule: 'buffer-io-error', generation: '5.x', source: 'khadas/u-boot#44 (5.10)', line: 'Buffer I/O error on dev mmcblk2, logical block 0, async page read' },
  { rule: 'buffer-io-error', generation: '6.x', source: 'oxidecomputer/crucible#1844', line: 'Buffer I/O error on device nvme0n1p1, logical block 1066386' },
  { rule: 'block-io-error', generation: '3.10', source: 'GitHub file (find_string id 57053752811)', line: 'end_request: I/O error, dev sr0, sector 0' },
  { rule: 'block-io-error', generation: '4.x', source: 'Requiem4Eternity/Appstream#107 (print_req_error, 4.19)', line: 'print_req_error: I/O error, dev sdc, sector 1098288304 flags 0' },
  { rule: 'block-io-error', generation: '5.x', source: 'khadas/u-boot#44 (5.10)', line: 'blk_update_request: I/O error, dev mmcblk2, sector 0 op 0x0:(READ) flags 0x0 phys_seg 1 prio class 0' },
  { rule: 'block-io-error', generation: '6.x', source: 'oxidecomputer/crucible#1844 (5.18+ wording)', line: 'I/O error, dev nvme0n1, sector 131209936 op 0x0:(READ) flags 0x80700 phys_seg 25 prio class 0' },
  { rule: 'block-io-error', generation: '6.x', source: 'Drive-Trust-Alliance/sedutil#507', line: 'critical medium error, dev nvme0n1, sector 0 op 0x0:(READ) flags 0x0 phys_seg 1 prio class 2' },
  { rule: 'nvme-timeout', generation: '4.x', source: 'linux-nvme/nvme-cli#151 (4.8.8)', line: 'nvme nvme2: I/O 0 QID 0 timeout, reset controller' },
  { rule: 'nvme-timeout', generation: '5.x', source: 'linux-surface/linux-surface#733 (5.16)', line: 'nvme nvme0: I/O 12 QID 5 timeout, aborting' },
  { rule: 'nvme-timeout', source: 'Cosmos-OpenSSD/OCSSD-plus#5', line: 'nvme nvme0: I/O 111 QID 1 timeout, disable controller' },
  { rule: 'nvme-reset', generation: '4.x', source: 'linux-nvme/nvme-cli#151 (4.8.8)', line: 'nvme nvme2: Removing after probe failure status: -19' },
  { rule: 'nvme-reset', generation: '6.x', source: 'raspberrypi/linux#6661 (2025)', line: 'nvme nvme0: controller is down; will reset: CSTS=0xffffffff, PCI_STATUS=0x10' },
  { rule: 'edac-ce-read', generation: '4.x', source: 'grondo/edac-utils#10', line: 'EDAC MC0: 1 CE memory read error on CPU_SrcID#0_Ha#0_Chan#2_DIMM#0 (channel:2 slot:0 page:0x849923 offset:0x380 grain:32 syndrome:0x0 -  area:DRAM err_code:0001:0092 socket:0 ha:0 channel_mask:4 rank:0)' },
  { rule: 'edac-ce', generation: '4.x', source: 'radiasoft/devops#134', line: 'EDAC MC1: 1 CE memory scrubbing error on CPU_SrcID#1_Ha#0_Chan#0_DIMM#0 (channel:0 slot:0 page:0xee30a0 offset:0x0 grain:32 syndrome:0x0 -  area:DRAM err_code:0008:00c2 socket:1 ha:0 channel_mask:1 rank:0)' },
  { rule: 'edac-ce', source: 'openstreetmap/operations#300', line: 'EDAC MC0: 4 CE error on CPU#0Channel#2_DIMM#0 (channel:2 slot:0 page:0x0 offset:0x0 grain:8 syndrome:0x0)' },
  { rule: 'mce-logged', generation: '4.x', source: 'grondo/edac-utils#10', line: 'mce: [Hardware Error]: Machine check events logged' },
  { rule: 'nic-link-down', generation: '4.x', source: 'ntop/PF_RING#293', line: 'ixgbe 0000:08:00.0 eth11: NIC Link is Down' },
  { rule: 'conntrack-full', generation: '3.10', source: 'kubernetes/kubernetes#71261 (CentOS 7.2, 3.10)', line: 'nf_conntrack: table full, dropping packet' },
  { rule: 'conntrack-full', generation: '4.x', source: 'kubernetes-retired/kube-aws#476', line: 'nf_conntrack: nf_conntrack: table full, dropping packet' },
  { rule: 'thermal-throttle', generation: '4.x', source: 'erpalma/throttled#31 (4.17.2)', line: 'CPU2: Core temperature above threshold, cpu clock throttled (total events = 8)' },
  { rule: 'thermal-throttle', generation: '5.x', source: 'clearlinux/clr-power-tweaks#15 (5.4.18)', line: 'mce: CPU6: Package temperature above threshold, cpu clock throttled (total events = 150)' },
];

// Real lines that look alike but are no problem (or a different one).
const NEAR_MISSES: { line: string; source: string; expect: string | undefined }[] = [
  { line: 'EXT4-fs (nvme0n1p5): re-mounted. Opts: errors=remount-ro. Quota mode: none.', source: 'hamonikr/hamonikr-system#13', expect: undefined },
  { line: 'EXT4-fs (sdb): mounted filesystem with ordered data mode. Opts: discard,errors=remount-ro,data=ordered', source: 'WSL2 note', expect: undefined },
  { line: 'bond0: link status down for interface enp1s0f0, disabling it in 200 ms', source: 'coreos/bugs#2508', expect: undefined },
  { line: 'oom_reaper: reaped process 63214 (uwsgi), now anon-rss:0kB, file-rss:0kB, shmem-rss:92kB', source: 'reportportal/kubernetes#203', expect: undefined },
  { line: 'nvme nvme0: Abort status: 0x0', source: 'linux-surface/linux-surface#733', expect: undefined },
  { line: 'CPU1: Core temperature/speed normal', source: 'erpalma/throttled#103', expect: undefined },
  { line: 'ixgbe 0000:08:00.0 eth11: NIC Link is Up 10 Gbps, Flow Control: RX', source: 'ntop/PF_RING#293', expect: undefined },
  { line: 'XFS (dm-5): Ending clean mount', source: 'dm-vdo/kvdo#25', expect: undefined },
  { line: 'XFS (dm-7): metadata I/O error: block 0x280000010 ("xlog_bread_noalign") error 5 numblks 8', source: 'dm-vdo/kvdo#25', expect: 'xfs-error' },
  { line: 'EDAC sbridge MC0: HANDLING MCE MEMORY ERROR', source: 'grondo/edac-utils#10', expect: undefined },
  { line: 'Memory cgroup out of memory: Kill process 24572 (java) score 0 or sacrifice child', source: 'kubernetes/kubernetes#56891', expect: 'oom-select' },
  { line: '"echo 0 > /proc/sys/kernel/hung_task_timeout_secs" disables this message.', source: 'sonic-net/sonic-buildimage#4822', expect: undefined },
  { line: 'nvme nvme0: 4/0/0 default/read/poll queues', source: 'raspberrypi/linux#6661', expect: undefined },
  { line: 'virtio_net virtio0 eth0: TX timeout on queue: 0, sq: output.0, vq: 0x1, name: output.0, 7560000 usecs ago', source: 'LKML "Re: vhost_iotlb_miss tight loop lockup", 2025-09-11', expect: undefined },
  { line: 'WARNING: possible circular locking dependency detected', source: 'kernel/locking/lockdep.c print_circular_bug_header(), the text as printed', expect: undefined },
  { line: 'blk_update_request: operation not supported error, dev nvme0n1, sector 0 op 0x0:(READ) flags 0x0 phys_seg 1 prio class 0', source: 'spdk/spdk#1456', expect: undefined },
];

test('every rule compiles, has a prefilter literal its pattern needs, and a real line for each generation it claims', () => {
  const ids = new Set<string>();
  for (const rule of KERNEL_RULES) {
    assert.ok(!ids.has(rule.id), `duplicate rule id ${rule.id}`);
    ids.add(rule.id);
    assert.ok(rule.literals.length > 0, `${rule.id}: a literal prefilter`);
    // The detector compiles its rules as built in, without re2js's verdict: this is that verdict.
    assert.doesNotThrow(() => compileRe2(rule.pattern), rule.id);
    for (const generation of rule.generations) {
      assert.ok(SAMPLES.some((s) => s.rule === rule.id && s.generation === generation), `${rule.id}: no captured ${generation} line`);
    }
  }
  for (const s of SAMPLES) assert.ok(ids.has(s.rule), `sample names unknown rule ${s.rule}`);
});

for (const s of SAMPLES) {
  test(`${s.rule} matches ${s.generation ?? 'an'} line from ${s.source}`, () => {
    const m = matchKernelMessage(s.line);
    assert.equal(m?.rule.id, s.rule, s.line);
    const rule = KERNEL_RULES.find((r) => r.id === s.rule);
    assert.ok(rule?.literals.some((l) => s.line.includes(l)), 'the prefilter literal is in the line');
  });
}

for (const n of NEAR_MISSES) {
  test(`near miss (${n.source}): ${n.line.slice(0, 60)}`, () => {
    assert.equal(matchKernelMessage(n.line)?.rule.id, n.expect);
  });
}

test('named groups pick out the victim, the memcg, the device and the interface', () => {
  assert.deepEqual(matchKernelMessage('Killed process 21578, UID 503, (redis-server) total-vm:9100804kB, anon-rss:9066596kB, file-rss:64kB')?.groups, { pid: '21578', comm: 'redis-server' });
  const summary = matchKernelMessage(SAMPLES.find((s) => s.rule === 'oom-kill-summary')?.line as string)?.groups;
  assert.equal(summary?.pid, '461754');
  assert.equal(summary?.constraint, 'CONSTRAINT_MEMCG');
  assert.match(summary?.memcg ?? '', /cri-containerd-ec9ee.*\.scope$/);
  assert.equal(matchKernelMessage('ixgbe 0000:08:00.0 eth11: NIC Link is Down')?.groups.ifname, 'eth11');
  assert.equal(matchKernelMessage('I/O error, dev nvme0n1, sector 131209936 op 0x0:(READ) flags 0x80700 phys_seg 25 prio class 0')?.groups.dev, 'nvme0n1');
});

test('only kernel records count: userspace writes to /dev/kmsg have facility 1 or more', async () => {
  const lines = [
    '3,1,1000000,-;Out of memory: Killed process 3581527 (uwsgi) total-vm:517892kB, anon-rss:263092kB, file-rss:29128kB, shmem-rss:0kB, UID:33 pgtables:740kB oom_score_adj:0 ',
    '11,2,2000000,-;Out of memory: Killed process 3581527 (uwsgi) total-vm:517892kB, anon-rss:263092kB, file-rss:29128kB, shmem-rss:0kB, UID:33 pgtables:740kB oom_score_adj:0',
    ' SUBSYSTEM=block',
  ];
  const records = parseKmsgLines(lines);
  assert.deepEqual(records.map(isKernelRecord), [true, false]);
  const root = mkdtempSync(path.join(tmpdir(), 'kernel-facility-'));
  try {
    mkdirSync(path.join(root, 'proc'));
    writeFileSync(path.join(root, 'proc', 'uptime'), '10.00 10.00\n');
    const clock = new FakeClock(1_000_000);
    const host = createHost({ root, clock });
    writeFileSync(path.join(root, 'kmsg'), `${lines.join('\n')}\n`);
    const log = await KernelLog.open(host, '/kmsg');
    const batch = await log.read(true);
    assert.equal(await log.read(true), undefined);
    await log.close();
    // The user-space record is gone, and the kernel one is trimmed as NPD trims it.
    assert.deepEqual(batch, [{ seq: 1, priority: 3, timestamp: 1_000_000 - 9000, message: records[0]?.message.trim() }]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('a record read by two kernel logs opened together, and again by one opened later, has one timestamp (boot time estimated once per host)', async () => {
  const root = mkdtempSync(path.join(tmpdir(), 'kernel-boot-'));
  try {
    mkdirSync(path.join(root, 'proc'));
    writeFileSync(path.join(root, 'proc', 'uptime'), '10.00 10.00\n');
    writeFileSync(path.join(root, 'kmsg'), '3,1,1000000,-;Out of memory: Killed process 3581527 (uwsgi) total-vm:517892kB, anon-rss:263092kB, file-rss:29128kB, shmem-rss:0kB, UID:33 pgtables:740kB oom_score_adj:0\n');
    // Every look at the clock finds it a second later, as a loaded node's would between two readers.
    const clock = new FakeClock(1_000_000);
    let ticks = 0;
    const host = createHost({ root, clock: { now: () => clock.now() + (ticks += 1000), sleep: (ms, signal) => clock.sleep(ms, signal) } });
    const readOnce = async (): Promise<number | undefined> => {
      const log = await KernelLog.open(host, '/kmsg');
      try {
        return (await log.read(true))?.[0]?.timestamp;
      } finally {
        await log.close();
      }
    };
    // Two monitors at start, then one a reload restarted.
    const together = await Promise.all([readOnce(), readOnce()]);
    const later = await readOnce();
    assert.ok(together[0] !== undefined);
    assert.deepEqual([...together, later], [together[0], together[0], together[0]]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------- state machine

const NOW = Date.UTC(2026, 0, 1);
/** The settings as agent.yaml would write them (durations as text), decoded. */
function config(overrides: Record<string, unknown> = {}): KernelConfig {
  return decodeSection('test', kernelConfigSchema, overrides);
}
function state(overrides: Record<string, unknown> = {}): KernelLogState {
  return new KernelLogState(resolveKernelSettings(config(overrides)), [], NOW);
}

const at = (secondsAgo: number, message: string): TimedRecord => ({ timestamp: NOW - secondsAgo * 1000, message });
const HUNG = (n: number): string => `INFO: task kworker/2:1:${5747 + n} blocked for more than 120 seconds.`;
const deadlock = (s: KernelLogState) => s.conditions.find((c) => c.type === 'KernelDeadlock');

test('KernelDeadlock needs deadlockHungTasks reports within deadlockWindow; each report is a TaskHung event', () => {
  const s = state({ deadlockHungTasks: 3, deadlockWindow: '10m' });
  let events = s.process([at(1500, HUNG(0)), at(60, HUNG(1)), at(50, HUNG(2))], NOW - 300_000, NOW);
  assert.equal(deadlock(s)?.status, 'False', 'the first report is 25 minutes older than the others: only 2 in the window');
  assert.deepEqual(events.map((e) => e.reason), ['TaskHung', 'TaskHung'], 'the old one is outside the lookback: no event');
  events = s.process([at(40, HUNG(3))], NOW - 300_000, NOW);
  assert.equal(deadlock(s)?.status, 'True');
  assert.equal(deadlock(s)?.reason, 'TooManyHungTasks');
  assert.deepEqual(events.map((e) => [e.reason, e.severity]), [['TooManyHungTasks', 'warn'], ['TaskHung', 'warn']]);
});

test('one hung container runtime task is a deadlock at once (NPD DockerHung)', () => {
  const s = state();
  s.process([at(30, 'INFO: task docker:12345 blocked for more than 120 seconds.')], NOW - 300_000, NOW);
  assert.deepEqual([deadlock(s)?.status, deadlock(s)?.reason], ['True', 'DockerHung']);
  const c = state();
  c.process([at(30, 'INFO: task containerd:812 blocked for more than 120 seconds.')], NOW - 300_000, NOW);
  assert.equal(deadlock(c)?.reason, 'ContainerRuntimeHung');
  const off = state({ deadlockTasks: [] });
  off.process([at(30, 'INFO: task docker:12345 blocked for more than 120 seconds.')], NOW - 300_000, NOW);
  assert.equal(deadlock(off)?.status, 'False');
});

test('conditions come from the whole boot; events only from the lookback', () => {
  const s = state();
  const events = s.process([at(7200, 'EXT4-fs (sdb): Remounting filesystem read-only'), at(7100, 'nf_conntrack: table full, dropping packet')], NOW - 300_000, NOW);
  const ro = s.conditions.find((c) => c.type === 'ReadonlyFilesystem');
  assert.deepEqual([ro?.status, ro?.reason], ['True', 'FilesystemIsReadOnly']);
  assert.deepEqual(events.map((e) => e.reason), [], 'a condition that turned two hours ago is no new event, and the old conntrack line is out of the lookback');
});

test('conditionExpiry bounds how long a condition holds, and how old a record may set it', () => {
  const s = state({ conditionExpiry: { ReadonlyFilesystem: '1h' } });
  s.process([at(7200, 'EXT4-fs (sdb): Remounting filesystem read-only')], NOW - 300_000, NOW);
  assert.equal(s.conditions.find((c) => c.type === 'ReadonlyFilesystem')?.status, 'False', 'older than its expiry');
  s.process([at(60, 'EXT4-fs (sdb): Remounting filesystem read-only')], NOW - 300_000, NOW);
  assert.equal(s.conditions.find((c) => c.type === 'ReadonlyFilesystem')?.status, 'True');
  assert.deepEqual(s.expire(NOW + 30 * 60_000), []);
  const cleared = s.expire(NOW + 60 * 60_000);
  assert.deepEqual(cleared.map((e) => [e.reason, e.severity]), [['FilesystemIsNotReadOnly', 'info']]);
  assert.equal(s.conditions.find((c) => c.type === 'ReadonlyFilesystem')?.status, 'False');
});

test('a restart keeps a True condition and its transition time (ctx.previous)', () => {
  const previous = [{ type: 'XfsShutdown', status: 'True' as const, reason: 'XfsHasShutdown', message: 'XFS (sdb6): Filesystem has been shut down due to log error (0x2).', transitionTime: NOW - 3_600_000 }];
  const s = new KernelLogState(resolveKernelSettings(config()), previous, NOW);
  const events = s.process([at(3600, 'XFS (sdb6): Filesystem has been shut down due to log error (0x2).')], NOW - 300_000, NOW);
  assert.deepEqual(events, []);
  assert.equal(s.conditions.find((c) => c.type === 'XfsShutdown')?.transitionTime, NOW - 3_600_000);
});

test('a silenced reason (ctx.silenced) raises neither an event nor a condition', () => {
  const s = new KernelLogState(resolveKernelSettings(config(), new Set(['OOMKilling', 'FilesystemIsReadOnly'])), [], NOW);
  const events = s.process(
    [at(10, 'Out of memory: Killed process 3581527 (uwsgi) total-vm:517892kB, anon-rss:263092kB, file-rss:29128kB, shmem-rss:0kB, UID:33 pgtables:740kB oom_score_adj:0'), at(10, 'EXT4-fs (sdb): Remounting filesystem read-only')],
    NOW - 300_000,
    NOW,
  );
  assert.deepEqual(events, []);
  assert.equal(s.conditions.find((c) => c.type === 'ReadonlyFilesystem')?.status, 'False');
});

test('thresholds: fewer than count in the window are info, the count-th is a warning (per interface)', () => {
  const s = state({ linkFlapCount: 3, linkFlapWindow: '10m' });
  const down = (ifname: string) => `ixgbe 0000:08:00.0 ${ifname}: NIC Link is Down`;
  const events = s.process([at(250, down('eth11')), at(200, down('eth11')), at(190, down('eth10')), at(150, down('eth11'))], NOW - 300_000, NOW);
  assert.deepEqual(events.map((e) => e.severity), ['info', 'info', 'info', 'warn']);
  assert.match(events[3]?.message ?? '', /^3 times within 600s; last: .*eth11/);
  const t = state({ thresholds: { ConntrackTableFull: { count: 2, window: '1m' } } });
  const ct = t.process([at(200, 'nf_conntrack: table full, dropping packet'), at(100, 'nf_conntrack: table full, dropping packet'), at(95, 'nf_conntrack: table full, dropping packet')], NOW - 300_000, NOW);
  assert.deepEqual(ct.map((e) => e.severity), ['info', 'info', 'warn']);
});

test('I/O errors of ignored devices (optical, loop) are dropped', () => {
  const s = state();
  assert.deepEqual(s.process([at(10, 'end_request: I/O error, dev sr0, sector 0'), at(10, 'Buffer I/O error on device sr0, logical block 0')], NOW - 300_000, NOW), []);
  const events = s.process([at(10, 'blk_update_request: I/O error, dev mmcblk2, sector 0 op 0x0:(READ) flags 0x0 phys_seg 1 prio class 0')], NOW - 300_000, NOW);
  assert.deepEqual(events.map((e) => e.reason), ['BlockIOError']);
});

test('OOM: the victim is named with its memory cgroup when the kernel printed one', () => {
  // 3.10/4.x: "Task in … killed as a result of limit of …" precedes the victim line (linux-test-project/ltp#1080).
  const old = state();
  const e1 = old.process(
    [
      at(20, 'Task in /13 killed as a result of limit of /13'),
      at(20, 'Memory cgroup out of memory: Kill process 42453 (memcg_test_1) score 0 or sacrifice child'),
      at(20, 'Killed process 42453 (memcg_test_1), UID 0, total-vm:7296kB, anon-rss:96kB, file-rss:164kB, shmem-rss:0kB'),
    ],
    NOW - 300_000,
    NOW,
  );
  assert.equal(e1.length, 1);
  assert.match(e1[0]?.message ?? '', /^OOM killer \(memory cgroup limit\) killed memcg_test_1 \(pid 42453\) in cgroup \/13: Killed process 42453/);
  // 6.x global OOM, no cgroup line.
  const e2 = state().process([at(20, 'Out of memory: Killed process 3581527 (uwsgi) total-vm:517892kB, anon-rss:263092kB, file-rss:29128kB, shmem-rss:0kB, UID:33 pgtables:740kB oom_score_adj:0')], NOW - 300_000, NOW);
  assert.match(e2[0]?.message ?? '', /^OOM killer \(system out of memory\) killed uwsgi \(pid 3581527\): Out of memory/);
  // The oom-kill: summary line alone raises nothing.
  assert.deepEqual(state().process([at(20, SAMPLES.find((s) => s.rule === 'oom-kill-summary')?.line as string)], NOW - 300_000, NOW), []);
});

test('pstore: a Panic dump names the panic line; other dump reasons and parts are not panics', () => {
  const dump = parsePstoreDmesg('Panic#2 Part1\n<0>[ 5300.229390] watchdog: BUG: soft lockup - CPU#2 stuck for 23s! [kworker/2:1:25629]\n<0>[ 5300.237965] Kernel panic - not syncing: softlockup: hung tasks\n');
  assert.deepEqual(dump, { kind: 'Panic', count: 2, part: 1, summary: 'Kernel panic - not syncing: softlockup: hung tasks' });
  assert.equal(parsePstoreDmesg('Panic#1 Part5\n')?.part, 5);
  assert.equal(parsePstoreDmesg('Restart#1 Part1\n'), undefined);
  assert.equal(parsePstoreDmesg(''), undefined);
});

// ---------------------------------------------------------------- the built agent on fixture hosts

interface Expect {
  status: 'ok' | 'problem' | 'unknown';
  conditions?: Record<string, string>;
  events?: string[];
}

const SCENARIOS: Record<string, Expect> = {
  'kernel-healthy': { status: 'ok', events: [] },
  'kernel-hung-task-deadlock': { status: 'problem', conditions: { KernelDeadlock: 'TooManyHungTasks' }, events: ['TaskHung', 'TaskHung', 'TooManyHungTasks', 'TaskHung', 'TaskHung', 'TaskHung'] },
  'kernel-hung-task-6.x': { status: 'problem', conditions: { KernelDeadlock: 'KernelHasNoDeadlock' }, events: ['TaskHung'] },
  'kernel-soft-lockup-5.x': { status: 'problem', events: ['SoftLockup'] },
  'kernel-soft-lockup-old': { status: 'problem', events: ['SoftLockup'] },
  'kernel-rcu-stall': { status: 'problem', events: ['RCUStall', 'RCUStall'] },
  'kernel-oom-3.10': { status: 'problem', events: ['OOMKilling'] },
  'kernel-oom-4.x': { status: 'problem', events: ['OOMKilling'] },
  'kernel-oom-5.x': { status: 'problem', events: ['OOMKilling'] },
  'kernel-oom-6.x': { status: 'problem', events: ['OOMKilling'] },
  'kernel-ext4-readonly': { status: 'problem', conditions: { ReadonlyFilesystem: 'FilesystemIsReadOnly' }, events: [] },
  'kernel-nvme-timeout': { status: 'problem', events: ['NVMeTimeout', 'NVMeControllerReset', 'NVMeControllerReset', 'NVMeControllerReset'] },
  'kernel-mce': { status: 'problem', events: ['MemoryReadError'] },
  'kernel-network': { status: 'problem', events: ['UnregisterNetDevice', 'ConntrackTableFull', 'ConntrackTableFull', 'NICLinkFlapping'] },
  'kernel-pstore-panic': { status: 'problem', events: ['PreviousBootPanic'] },
  'kernel-out-of-lookback': { status: 'ok', conditions: { KernelDeadlock: 'KernelHasNoDeadlock' }, events: [] },
  'kernel-near-misses': { status: 'ok', events: [] },
};

for (const [fixture, want] of Object.entries(SCENARIOS)) {
  test(`check --root ${fixture}`, async () => {
    const r = await runAgent(['check', '--json', '--root', path.join(FIXTURES, 'hosts', fixture), '--only', 'kernel']);
    assert.equal(r.code, { ok: 0, problem: 1, unknown: 2 }[want.status], r.stderr);
    const result = (JSON.parse(r.stdout) as { results: { detector: string; status: string; conditions: { type: string; reason: string }[]; events: { reason: string }[] }[] }).results[0];
    assert.equal(result?.detector, 'kernel');
    assert.equal(result?.status, want.status);
    for (const [type, reason] of Object.entries(want.conditions ?? {})) assert.equal(result?.conditions.find((c) => c.type === type)?.reason, reason, type);
    if (want.events !== undefined) assert.deepEqual(result?.events.map((e) => e.reason), want.events);
  });
}

test('check on the ext4 fixture names the filesystem error events (older than the lookback) only through the condition', async () => {
  const r = await runAgent(['check', '--json', '--root', path.join(FIXTURES, 'hosts', 'kernel-ext4-readonly'), '--only', 'kernel']);
  const result = (JSON.parse(r.stdout) as { results: { conditions: { type: string; message: string }[] }[] }).results[0];
  assert.equal(result?.conditions.find((c) => c.type === 'ReadonlyFilesystem')?.message, 'EXT4-fs (sdb): Remounting filesystem read-only');
});

test('a host without /dev/kmsg is unknown, never a problem', async () => {
  const root = mkdtempSync(path.join(tmpdir(), 'kernel-nokmsg-'));
  try {
    const r = await runAgent(['check', '--json', '--root', root, '--only', 'kernel']);
    assert.equal(r.code, 2, r.stderr);
    const result = (JSON.parse(r.stdout) as { results: { status: string; error?: string }[] }).results[0];
    assert.equal(result?.status, 'unknown');
    assert.match(result?.error ?? '', /\/dev\/kmsg does not exist/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------- the daemon's follow mode

test('watch follows appended records and raises each new problem once', async () => {
  const root = mkdtempSync(path.join(tmpdir(), 'kernel-watch-'));
  try {
    cpSync(path.join(FIXTURES, 'hosts', 'kernel-healthy'), root, { recursive: true });
    writeFileSync(path.join(root, 'proc', 'uptime'), '86400.00 1654321.00\n');
    const clock = new FakeClock(NOW);
    const host = createHost({ root, clock });
    const detector = createKernelDetector(config(), { host, log: pino({ level: 'silent' }), nodeName: 'n', mode: 'run', previous: [], silenced: new Set() });
    const results: DetectorResult[] = [];
    const controller = new AbortController();
    const done = detector.watch?.((r) => results.push(r), controller.signal);
    // Waits (bounded) for the follower's file reads to finish; no assertion depends on timing.
    const settle = async (): Promise<void> => {
      for (let i = 0; i < 50; i++) await new Promise((r) => setTimeout(r, 5));
    };
    await settle();
    assert.equal(results.length, 1, 'the first read is emitted');
    assert.deepEqual(results[0]?.events, []);
    appendFileSync(path.join(root, 'dev', 'kmsg'), '2,2000,86399000000,-;EXT4-fs (sdb): Remounting filesystem read-only\n');
    await clock.advance(250);
    await settle();
    assert.equal(results.length, 2);
    assert.deepEqual(results[1]?.events.map((e) => e.reason), ['FilesystemIsReadOnly']);
    assert.equal(results[1]?.conditions.find((c) => c.type === 'ReadonlyFilesystem')?.status, 'True');
    await clock.advance(250);
    await settle();
    assert.equal(results.length, 2, 'nothing new, nothing emitted');
    controller.abort();
    await done;
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('watch: a True condition with a conditionExpiry clears when it expires, with no new record to wake the follower', async (t) => {
  const root = mkdtempSync(path.join(tmpdir(), 'kernel-watch-'));
  try {
    cpSync(path.join(FIXTURES, 'hosts', 'kernel-healthy'), root, { recursive: true });
    writeFileSync(path.join(root, 'proc', 'uptime'), '86400.00 1654321.00\n');
    const clock = new FakeClock(NOW);
    const host = createHost({ root, clock });
    const detector = createKernelDetector(config({ conditionExpiry: { ReadonlyFilesystem: '1m' } }), { host, log: pino({ level: 'silent' }), nodeName: 'n', mode: 'run', previous: [], silenced: new Set() });
    const results: DetectorResult[] = [];
    const controller = new AbortController();
    const done = detector.watch?.((r) => results.push(r), controller.signal);
    t.after(() => controller.abort());
    const settle = async (): Promise<void> => {
      for (let i = 0; i < 50; i++) await new Promise((r) => setTimeout(r, 5));
    };
    const readonly = (): string | undefined => results.at(-1)?.conditions.find((c) => c.type === 'ReadonlyFilesystem')?.status;
    await settle();
    appendFileSync(path.join(root, 'dev', 'kmsg'), '2,2000,86399000000,-;EXT4-fs (sdb): Remounting filesystem read-only\n');
    for (let i = 0; i < 40 && readonly() !== 'True'; i++) await settle();
    assert.equal(readonly(), 'True');
    // The fake clock moves only the expiry's timer: the file's own re-check is 30 s of real time away.
    await clock.advance(30_000);
    await settle();
    assert.equal(readonly(), 'True', 'cleared before its expiry');
    await clock.advance(30_000);
    await settle();
    assert.equal(readonly(), 'False');
    assert.deepEqual(results.at(-1)?.events.map((e) => e.reason), ['FilesystemIsNotReadOnly']);
    controller.abort();
    await done;
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('the daemon publishes what the start-up lookback found, as check does, on the same fixture', async () => {
  const fixture = path.join(FIXTURES, 'hosts', 'kernel-hung-task-deadlock');
  // check
  const r = await runAgent(['check', '--json', '--root', fixture, '--only', 'kernel']);
  const checked = (JSON.parse(r.stdout) as { results: { conditions: { type: string; status: string; reason: string }[] }[] }).results[0];
  const deadlock = checked?.conditions.find((c) => c.type === 'KernelDeadlock');
  assert.deepEqual([deadlock?.status, deadlock?.reason], ['True', 'TooManyHungTasks']);

  // the detector's first result in the daemon
  const host = createHost({ root: fixture });
  const ctx = { host, log: pino({ level: 'silent' }), nodeName: 'n', mode: 'run' as const, previous: [], silenced: new Set<string>() };
  const controller = new AbortController();
  let first: DetectorResult | undefined;
  await createKernelDetector(config(), ctx).watch?.((result) => {
    first ??= result;
    controller.abort();
  }, controller.signal);
  const watched = first?.conditions.find((c) => c.type === 'KernelDeadlock');
  assert.deepEqual([watched?.status, watched?.reason], ['True', 'TooManyHungTasks']);

  // the daemon itself, on a copy of the same fixture
  const root = mkdtempSync(path.join(tmpdir(), 'kernel-run-'));
  cpSync(fixture, root, { recursive: true });
  writeFileSync(path.join(root, 'agent.yaml'), ['listen: 127.0.0.1:0', 'monitors: { systemLog: [], customPlugin: [] }', 'detectors:', ...Object.keys(detectors).map((d) => `  ${d}: { enabled: ${d === 'kernel'} }`), ''].join('\n'));
  const child = spawn(process.execPath, [AGENT, 'run', '--root', root, '--config', path.join(root, 'agent.yaml')], { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    const published = await new Promise<Record<string, unknown>>((resolve, reject) => {
      let buffered = '';
      const timer = setTimeout(() => reject(new Error(`no KernelDeadlock condition logged: ${buffered}`)), 30_000);
      child.stdout.on('data', (d: Buffer) => {
        buffered += d.toString();
        for (const line of buffered.split('\n')) {
          if (!line.startsWith('{')) continue;
          const entry = JSON.parse(line) as Record<string, unknown>;
          if (entry.msg === 'Condition' && entry.type === 'KernelDeadlock') {
            clearTimeout(timer);
            resolve(entry);
          }
        }
      });
    });
    assert.deepEqual([published.status, published.reason], ['True', 'TooManyHungTasks']);
  } finally {
    child.kill('SIGKILL');
    rmSync(root, { recursive: true, force: true });
  }
});

test("an event's message and what a match keeps (OOM context) do not hold the read chunk the record was cut from", () => {
  const s = state();
  // 200 chunks of 256 KiB: 51 MiB if each match kept its chunk alive.
  const { bytes, result } = retainedBy(() =>
    Array.from({ length: 200 }, (_, i) =>
      s.process(
        [
          at(10, lineCutFromChunk(`oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/kubepods/pod${i},task_memcg=/kubepods/pod${i}/c,task=uwsgi,pid=${3000 + i},uid=33`)),
          at(10, lineCutFromChunk(`Memory cgroup out of memory: Killed process ${3000 + i} (uwsgi) total-vm:517892kB, anon-rss:263092kB, file-rss:29128kB, shmem-rss:0kB, UID:33 pgtables:740kB oom_score_adj:0`)),
        ],
        NOW - 300_000,
        NOW,
      ),
    ).flat(),
  );
  assert.equal((result as unknown[]).length, 200);
  assert.ok(bytes < 8 * 1024 * 1024, `200 OOM kills retain ${(bytes / 1048576).toFixed(1)} MiB`);
});

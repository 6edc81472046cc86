// The test harness's API: a real apiserver (+ etcd, + kube-controller-manager on request), the
// real kubectl, a real Prometheus. See test/apiserver/README.md.
export { startCluster, testClusterBinary } from './cluster.ts';
export type { ApiResponse, Cluster, ClusterOptions, ReadyInfo, RequestOptions } from './cluster.ts';
export { controllerManagerBinary, kubectlPath } from './binaries.ts';
export { DEFAULT_CONTROLLERS } from './controller-manager.ts';
export type { ControllerManager, ControllerManagerOptions } from './controller-manager.ts';
export { kubectl } from './kubectl.ts';
export type { KubectlOptions, KubectlResult } from './kubectl.ts';
export { startPrometheus } from './prometheus.ts';
export type { Prometheus, PrometheusOptions, PromSample } from './prometheus.ts';
export { BOOTSTRAP_APISERVER_ARGS, BOOTSTRAP_CONTROLLERS, KUBENODE_BOOTSTRAP_GROUP, caCertHash, createBootstrapToken, publishClusterInfo, waitForClusterInfoSignature } from './bootstrap.ts';
export type { BootstrapToken, BootstrapTokenOptions } from './bootstrap.ts';

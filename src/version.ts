// Stamped by esbuild's `define` at build time; running from source says "dev".
declare const __KUBENODE_VERSION__: string | undefined;
declare const __KUBENODE_COMMIT__: string | undefined;

export const version: string = typeof __KUBENODE_VERSION__ === 'string' ? __KUBENODE_VERSION__ : '0.0.0-dev';
export const commit: string = typeof __KUBENODE_COMMIT__ === 'string' ? __KUBENODE_COMMIT__ : 'unknown';

/**
 * A metric label value from one of the agent's and controller's own names for an outcome or a
 * part (`rolled-back`, `not-found`, `node-conditions`): label values are snake_case in every
 * series, whatever spelling the CLI and the resources' status use.
 */
export const labelValue = (name: string): string => name.replaceAll('-', '_');

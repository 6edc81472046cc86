import { AgentError } from '../errors.ts';

/** The cluster refused us, or is not who it must be (wrong CA, bad signature, denied CSR): exit 1, nothing written. */
export class JoinRefusedError extends AgentError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('KUBE', message, options);
  }
}

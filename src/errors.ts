export type AgentErrorCode = 'CONFIG' | 'USAGE' | 'EXEC' | 'TIMEOUT' | 'HOST' | 'DETECTOR' | 'KUBE';

export class AgentError extends Error {
  readonly code: AgentErrorCode;
  constructor(code: AgentErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** A configuration problem: names the file, the field path inside it and what was expected. */
export class ConfigError extends AgentError {
  readonly file: string;
  readonly field: string;
  constructor(file: string, field: string, message: string, options?: { cause?: unknown }) {
    super('CONFIG', `${file}: ${field === '' ? '' : `${field}: `}${message}`, options);
    this.file = file;
    this.field = field;
  }
}

export class UsageError extends AgentError {
  constructor(message: string) {
    super('USAGE', message);
  }
}

export class TimeoutError extends AgentError {
  constructor(message: string) {
    super('TIMEOUT', message);
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

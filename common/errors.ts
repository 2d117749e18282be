/**
 * One error class per failure, each with a stable `code` (the undici model):
 * callers branch on `code`, humans read `message`.
 */
export class PosternError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A command-line flag or environment variable is missing or malformed. */
export class ConfigError extends PosternError {
  constructor(message: string) {
    super('POSTERN_CONFIG', message);
  }
}

/** A SPIFFE ID that does not have the form spiffe://<trust-domain>/ns/<ns>/sa/<sa>. */
export class InvalidSpiffeIdError extends PosternError {
  constructor(value: string, why: string) {
    super('POSTERN_INVALID_SPIFFE_ID', `invalid SPIFFE ID ${JSON.stringify(value)}: ${why}`);
  }
}

/** A certificate signing request was malformed or asked for an identity its credential does not prove. */
export class CsrRejectedError extends PosternError {
  constructor(message: string) {
    super('POSTERN_CSR_REJECTED', message);
  }
}

/** A bootstrap token or SVID did not authenticate the caller. */
export class AuthenticationError extends PosternError {
  constructor(message: string) {
    super('POSTERN_UNAUTHENTICATED', message);
  }
}

/** The control plane could not be reached or answered with an error. */
export class ControlPlaneError extends PosternError {
  /** The HTTP status the control plane answered with; undefined when it could not be reached. */
  readonly status: number | undefined;
  constructor(message: string, options?: ErrorOptions & { status?: number }) {
    super('POSTERN_CONTROL_PLANE', message, options);
    this.status = options?.status;
  }
}

/** The caller is authenticated but may not do this (403). */
export class ForbiddenError extends PosternError {
  constructor(message: string) {
    super('POSTERN_FORBIDDEN', message);
  }
}

/** Something the answer depends on (the Kubernetes API, say) cannot answer now: retry (503). */
export class UnavailableError extends PosternError {
  constructor(message: string) {
    super('POSTERN_UNAVAILABLE', message);
  }
}

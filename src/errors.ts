/**
 * The error hierarchy. Every error carries a stable `code` so that callers and the CLI can tell
 * failures apart without parsing messages; messages name the file, tensor, key or option at fault.
 */
export class SmashError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A file (ONNX, safetensors, config JSON) that is malformed or does not fit what we build. */
export class ModelFormatError extends SmashError {
  readonly file?: string;
  readonly tensor?: string;
  constructor(code: string, message: string, where: { file?: string; tensor?: string; cause?: unknown } = {}) {
    const parts = [message];
    if (where.tensor) parts.push(`tensor '${where.tensor}'`);
    if (where.file) parts.push(`in ${where.file}`);
    super(code, parts.join(' — '), { cause: where.cause });
    this.file = where.file;
    this.tensor = where.tensor;
  }
}

/** A bad option or configuration value; names the key and, where known, the allowed values. */
export class ConfigError extends SmashError {
  readonly key?: string;
  constructor(code: string, message: string, key?: string) {
    super(code, message);
    this.key = key;
  }
}

/** Two things that cannot be combined, and why. */
export class CompatibilityError extends SmashError {}

/** onnxruntime refused or failed; carries its message. */
export class RuntimeFailure extends SmashError {}

/** Thrown when an AbortSignal fires. */
export class AbortError extends SmashError {
  constructor(message = 'aborted') {
    super('ABORTED', message);
  }
}

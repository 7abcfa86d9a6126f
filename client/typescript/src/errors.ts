// Typed access to the google.rpc details the router attaches to a failed call.
import { Code, ConnectError } from "@connectrpc/connect";

import {
  BadRequestSchema,
  ErrorInfoSchema,
  RetryInfoSchema,
  type BadRequest,
  type ErrorInfo,
  type RetryInfo,
} from "./gen/google/rpc/error_details_pb.js";

export { Code, ConnectError };

/** A failed call's status and its decoded details (undefined where the status has none). */
export interface ErrorDetails {
  code: Code;
  /** The router's message, which names the field at fault. */
  message: string;
  badRequest?: BadRequest;
  errorInfo?: ErrorInfo;
  retryInfo?: RetryInfo;
  /** Each rejected field's path mapped to what is wrong with it. */
  fieldViolations: Map<string, string>;
  /** RetryInfo's delay in milliseconds, when the router suggests one. */
  retryDelayMs?: number;
}

/** Decodes any error a call threw (a ConnectError, or anything else as Code.Unknown). */
export function errorDetails(error: unknown): ErrorDetails {
  const connectError = ConnectError.from(error);
  const details: ErrorDetails = {
    code: connectError.code,
    message: connectError.rawMessage,
    fieldViolations: new Map(),
  };
  const [badRequest] = connectError.findDetails(BadRequestSchema);
  const [errorInfo] = connectError.findDetails(ErrorInfoSchema);
  const [retryInfo] = connectError.findDetails(RetryInfoSchema);
  if (badRequest !== undefined) {
    details.badRequest = badRequest;
    for (const violation of badRequest.fieldViolations) {
      details.fieldViolations.set(violation.field, violation.description);
    }
  }
  if (errorInfo !== undefined) {
    details.errorInfo = errorInfo;
  }
  if (retryInfo !== undefined) {
    details.retryInfo = retryInfo;
    const delay = retryInfo.retryDelay;
    if (delay !== undefined) {
      details.retryDelayMs = Number(delay.seconds) * 1000 + delay.nanos / 1e6;
    }
  }
  return details;
}

// modelrouter's TypeScript client: the generated protobuf-es types and service, Connect's
// gRPC transport, and a small layer (connect options, stream accumulator, error details).
export * from "./gen/modelrouter/v1/modelrouter_pb.js";
export {
  ModelRouterClient,
  accumulate,
  assistant,
  system,
  user,
  type AccumulateOptions,
  type ConnectOptions,
  type GenerateRequestInit,
  type GenerateStreamRequestInit,
  type Reply,
} from "./client.js";
export { Code, ConnectError, errorDetails, type ErrorDetails } from "./errors.js";

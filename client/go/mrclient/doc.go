// Package mrclient is a small hand-written layer over the generated modelrouter gRPC code
// (package modelrouterv1): dialing with TLS and API-key options, a stream accumulator that
// turns a GenerateStream into one reply, and typed access to the google.rpc error details
// the router attaches to every failed call (BadRequest, ErrorInfo, RetryInfo).
//
// The generated client stays reachable (Client.API) for anything this layer does not wrap.
package mrclient

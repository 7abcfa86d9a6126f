package mrclient

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	modelrouterv1 "github.com/modelrouter/modelrouter/client/go/modelrouter/v1"
)

// Client holds one connection to a router.
type Client struct {
	// API is the generated client, for calls this layer does not wrap.
	API  modelrouterv1.ModelRouterServiceClient
	conn *grpc.ClientConn
}

type options struct {
	tls      *tls.Config
	apiKey   string
	dialOpts []grpc.DialOption
}

// Option configures Dial.
type Option func(*options)

// WithTLS connects over TLS with this configuration (nil: the system roots). Without it the
// connection is plaintext, which is what a router on the same host serves.
func WithTLS(config *tls.Config) Option {
	return func(o *options) {
		if config == nil {
			config = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		o.tls = config
	}
}

// WithAPIKey sends `authorization: Bearer KEY` on every call (a router with `[auth]` keys
// checks it). Over plaintext only to a loopback address: Dial refuses to send a key
// unencrypted across a network, so any other target needs WithTLS.
func WithAPIKey(key string) Option {
	return func(o *options) { o.apiKey = key }
}

// WithDialOptions passes extra grpc.DialOptions through (interceptors, keepalive, ...).
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(o *options) { o.dialOpts = append(o.dialOpts, opts...) }
}

// ErrKeyWithoutTLS is returned by Dial when an API key would cross a network in plaintext.
var ErrKeyWithoutTLS = errors.New("mrclient: WithAPIKey to a non-loopback address needs WithTLS (refusing to send a key in plaintext)")

// Dial connects to target ("host:port"). The connection is lazy: the first call dials.
func Dial(target string, opts ...Option) (*Client, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	dialOpts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if o.tls != nil {
		dialOpts[0] = grpc.WithTransportCredentials(credentials.NewTLS(o.tls))
	}
	if o.apiKey != "" {
		loopback := isLoopback(target)
		if o.tls == nil && !loopback {
			return nil, ErrKeyWithoutTLS
		}
		dialOpts = append(dialOpts, grpc.WithPerRPCCredentials(bearer{key: o.apiKey, plaintextOK: loopback}))
	}
	dialOpts = append(dialOpts, o.dialOpts...)
	conn, err := grpc.NewClient(target, dialOpts...)
	if err != nil {
		return nil, err
	}
	return &Client{API: modelrouterv1.NewModelRouterServiceClient(conn), conn: conn}, nil
}

// Close closes the connection; calls in flight fail with CANCELED.
func (c *Client) Close() error { return c.conn.Close() }

// bearer is per-RPC credentials; grpc-go sends them over plaintext only when they say so.
type bearer struct {
	key         string
	plaintextOK bool
}

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.key}, nil
}

func (b bearer) RequireTransportSecurity() bool { return !b.plaintextOK }

// isLoopback reports whether target ("host:port", optionally with a dns:/// or unix
// scheme) stays on this machine.
func isLoopback(target string) bool {
	if strings.HasPrefix(target, "unix:") {
		return true
	}
	target = strings.TrimPrefix(target, "dns:///")
	host, _, err := net.SplitHostPort(target)
	if err != nil {
		host = target
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// WithCallMetadata returns ctx carrying extra request metadata (key, value pairs).
func WithCallMetadata(ctx context.Context, kv ...string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, kv...)
}

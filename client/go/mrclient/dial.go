package mrclient

import (
	"context"
	"crypto/tls"
	"errors"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	modelrouterv1 "github.com/modelrouter/modelrouter/client/go/modelrouter/v1"
)

// Client holds one connection to a router.
type Client struct {
	// API is the generated client, for calls this layer does not wrap.
	API  modelrouterv1.ModelRouterClient
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

// WithAPIKey sends `authorization: Bearer KEY` on every call, for a router behind a gateway
// that checks keys. It needs WithTLS: Dial refuses to send a key in plaintext.
func WithAPIKey(key string) Option {
	return func(o *options) { o.apiKey = key }
}

// WithDialOptions passes extra grpc.DialOptions through (interceptors, keepalive, ...).
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(o *options) { o.dialOpts = append(o.dialOpts, opts...) }
}

// ErrKeyWithoutTLS is returned by Dial when an API key would travel in plaintext.
var ErrKeyWithoutTLS = errors.New("mrclient: WithAPIKey needs WithTLS (refusing to send a key in plaintext)")

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
		if o.tls == nil {
			return nil, ErrKeyWithoutTLS
		}
		dialOpts = append(dialOpts, grpc.WithPerRPCCredentials(bearer(o.apiKey)))
	}
	dialOpts = append(dialOpts, o.dialOpts...)
	conn, err := grpc.NewClient(target, dialOpts...)
	if err != nil {
		return nil, err
	}
	return &Client{API: modelrouterv1.NewModelRouterClient(conn), conn: conn}, nil
}

// Close closes the connection; calls in flight fail with CANCELED.
func (c *Client) Close() error { return c.conn.Close() }

// bearer is per-RPC credentials that grpc-go only sends over a secure transport.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return true }

// WithCallMetadata returns ctx carrying extra request metadata (key, value pairs).
func WithCallMetadata(ctx context.Context, kv ...string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, kv...)
}

package mrclient

import (
	"context"
	"errors"
	"io"
	"strings"

	modelrouterv1 "github.com/modelrouter/modelrouter/client/go/modelrouter/v1"
)

// Reply is a streamed answer put together: the text as the caller saw it, plus the start,
// every resume (a mid-stream switch to another model) and the finish event.
type Reply struct {
	Text     string
	Thinking string
	Start    *modelrouterv1.StreamStart
	Resumes  []*modelrouterv1.StreamResume
	// Finish is nil when the stream was stopped before its end.
	Finish *modelrouterv1.StreamFinish
}

// Model is the model that finished the answer (or, before the finish, the one answering).
func (r *Reply) Model() string {
	switch {
	case r.Finish != nil:
		return r.Finish.GetModel()
	case len(r.Resumes) > 0:
		return r.Resumes[len(r.Resumes)-1].GetModel()
	default:
		return r.Start.GetModel()
	}
}

// EventFunc sees every event as it arrives. Returning an error stops the stream: the RPC is
// cancelled (the router closes the provider request) and Stream returns that error with
// the reply so far. Return ErrStop to stop without it counting as a failure.
type EventFunc func(*modelrouterv1.GenerateStreamResponse) error

// ErrStop, returned by an EventFunc, stops the stream; Stream then returns a nil error.
var ErrStop = errors.New("mrclient: stream stopped by the caller")

// StopAfterChars is an EventFunc that stops the stream once the answer text reaches n
// characters (n <= 0: never).
func StopAfterChars(n int) EventFunc {
	seen := 0
	return func(event *modelrouterv1.GenerateStreamResponse) error {
		seen += len(event.GetDelta().GetText())
		if n > 0 && seen >= n {
			return ErrStop
		}
		return nil
	}
}

// Stream calls GenerateStream and accumulates the events into a Reply. Each event goes to
// every onEvent function in order, until one returns an error (which stops the stream).
// Cancelling ctx cancels the call as well.
func (c *Client) Stream(ctx context.Context, req *modelrouterv1.GenerateStreamRequest, onEvent ...EventFunc) (*Reply, error) {
	ctx, cancel := context.WithCancel(ctx)
	// Cancelling on every return also ends the RPC when the caller stops early.
	defer cancel()
	stream, err := c.API.GenerateStream(ctx, req)
	if err != nil {
		return nil, err
	}
	reply := &Reply{}
	var text, thinking strings.Builder
	defer func() {
		reply.Text, reply.Thinking = text.String(), thinking.String()
	}()
	for {
		event, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return reply, nil
		}
		if err != nil {
			return reply, err
		}
		switch e := event.GetEvent().(type) {
		case *modelrouterv1.GenerateStreamResponse_Start:
			reply.Start = e.Start
		case *modelrouterv1.GenerateStreamResponse_Delta:
			text.WriteString(e.Delta.GetText())
		case *modelrouterv1.GenerateStreamResponse_ThinkingDelta:
			thinking.WriteString(e.ThinkingDelta.GetText())
		case *modelrouterv1.GenerateStreamResponse_Resume:
			reply.Resumes = append(reply.Resumes, e.Resume)
		case *modelrouterv1.GenerateStreamResponse_Finish:
			reply.Finish = e.Finish
		}
		for _, f := range onEvent {
			if f == nil {
				continue
			}
			if err := f(event); err != nil {
				cancel()
				if errors.Is(err, ErrStop) {
					return reply, nil
				}
				return reply, err
			}
		}
	}
}

package mrclient_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	modelrouterv1 "github.com/modelrouter/modelrouter/client/go/modelrouter/v1"
	"github.com/modelrouter/modelrouter/client/go/mrclient"
)

func dial(t *testing.T) *mrclient.Client {
	t.Helper()
	client, err := mrclient.Dial(live.Target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	return client
}

// testContext bounds each test so a hang fails instead of blocking the suite.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestUnaryGenerate(t *testing.T) {
	client, ctx := dial(t), testContext(t)
	reply, err := client.API.Generate(ctx, &modelrouterv1.GenerateRequest{
		Messages:        []*modelrouterv1.Message{mrclient.System("Be brief."), mrclient.User("Name three primes.")},
		Model:           "gpt-4o-mini",
		MaxOutputTokens: 64,
	})
	if err != nil {
		t.Fatal(err)
	}
	if reply.GetText() == "" || reply.GetModel() != "gpt-4o-mini-2024-07-18" {
		t.Fatalf("unexpected reply: model %q text %q", reply.GetModel(), reply.GetText())
	}
	if reply.GetUsage().GetOutputTokens() <= 0 || len(reply.GetAttempts()) == 0 {
		t.Fatalf("reply without usage or attempts: %v", reply)
	}
}

func TestStreamAccumulates(t *testing.T) {
	client, ctx := dial(t), testContext(t)
	// Paced, so that tokens arrive one by one: the router joins those that arrive together.
	emulator(t, "behavior", map[string]any{
		"model":    "claude-3-7-sonnet-20250219",
		"behavior": map[string]any{"tokens_per_second": 200},
		"enqueue":  true,
	}, nil)
	var deltas []string
	reply, err := client.Stream(ctx, &modelrouterv1.GenerateStreamRequest{
		Messages: []*modelrouterv1.Message{mrclient.User("Explain backoff with jitter.")},
		Model:    "claude-3-7-sonnet",
	}, func(event *modelrouterv1.GenerateStreamResponse) error {
		if d := event.GetDelta(); d != nil {
			deltas = append(deltas, d.GetText())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if reply.Start == nil || reply.Finish == nil {
		t.Fatalf("stream without start or finish: %+v", reply)
	}
	if len(deltas) < 2 {
		t.Fatalf("want several deltas, got %d", len(deltas))
	}
	joined := ""
	for _, d := range deltas {
		joined += d
	}
	if reply.Text != joined || reply.Model() != "claude-3-7-sonnet-20250219" {
		t.Fatalf("accumulated %q (model %q), deltas joined %q", reply.Text, reply.Model(), joined)
	}
	if reply.Finish.GetUsage().GetOutputTokens() <= 0 {
		t.Fatalf("finish without usage: %v", reply.Finish)
	}
}

func TestCancelAfterFirstDeltaClosesUpstream(t *testing.T) {
	client, ctx := dial(t), testContext(t)
	emulator(t, "reset", map[string]any{}, nil)
	// The model sends one token, then stalls for an hour: only a cancel can end the stream.
	emulator(t, "behavior", map[string]any{
		"model":    "gpt-4o-mini-2024-07-18",
		"behavior": map[string]any{"output_tokens": 50, "stall_after_tokens": 1},
		"enqueue":  true,
	}, nil)
	deltas := 0
	reply, err := client.Stream(ctx, &modelrouterv1.GenerateStreamRequest{
		Messages:        []*modelrouterv1.Message{mrclient.User("Count to fifty.")},
		Model:           "gpt-4o-mini",
		DisableFallback: true,
	}, func(event *modelrouterv1.GenerateStreamResponse) error {
		if event.GetDelta() != nil {
			deltas++
			return mrclient.ErrStop
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if deltas != 1 || reply.Finish != nil || reply.Text == "" {
		t.Fatalf("want exactly one delta and no finish, got %d deltas, reply %+v", deltas, reply)
	}
	records := waitForDisconnects(t, ctx, 1)
	if records[0]["model"] != "gpt-4o-mini-2024-07-18" {
		t.Fatalf("disconnect recorded for another model: %v", records[0])
	}
}

func TestBadRequestNamesTheField(t *testing.T) {
	client, ctx := dial(t), testContext(t)
	_, err := client.API.Generate(ctx, &modelrouterv1.GenerateRequest{
		Messages:        []*modelrouterv1.Message{mrclient.User("hi")},
		Model:           "gpt-4o-mini",
		MaxOutputTokens: -1,
	})
	details, ok := mrclient.Details(err)
	if !ok || details.Code != codes.InvalidArgument {
		t.Fatalf("want INVALID_ARGUMENT, got %v", err)
	}
	violations := details.FieldViolations()
	if _, found := violations["max_output_tokens"]; !found {
		t.Fatalf("no violation for max_output_tokens in %v (status %q)", violations, details.Message)
	}
	if details.ErrorInfo == nil || details.ErrorInfo.GetReason() == "" {
		t.Fatalf("no ErrorInfo reason: %+v", details)
	}
}

func TestUnknownModelIsNotFound(t *testing.T) {
	client, ctx := dial(t), testContext(t)
	_, err := client.API.Generate(ctx, &modelrouterv1.GenerateRequest{
		Messages: []*modelrouterv1.Message{mrclient.User("hi")},
		Model:    "no-such-model",
	})
	details, ok := mrclient.Details(err)
	if !ok || details.Code != codes.NotFound || details.ErrorInfo == nil {
		t.Fatalf("want NOT_FOUND with ErrorInfo, got %v / %+v", err, details)
	}
	if _, ok := mrclient.Details(nil); ok {
		t.Fatal("Details(nil) reported a status")
	}
}

func TestConversationRoundTrip(t *testing.T) {
	client, ctx := dial(t), testContext(t)
	created, err := client.API.CreateConversation(ctx, &modelrouterv1.CreateConversationRequest{
		Messages: []*modelrouterv1.Message{mrclient.System("You are terse.")},
		Metadata: map[string]string{"agent": "go-test"},
	})
	if err != nil {
		t.Fatal(err)
	}
	conversation := created.GetConversation()
	reply, err := client.API.Generate(ctx, &modelrouterv1.GenerateRequest{
		Messages:       []*modelrouterv1.Message{mrclient.User("Remember the number 7.")},
		Model:          "gpt-4o-mini",
		ConversationId: conversation.GetId(),
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := client.API.GetConversation(ctx, &modelrouterv1.GetConversationRequest{Id: conversation.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	stored := got.GetConversation()
	messages := stored.GetMessages()
	if len(messages) != 3 {
		t.Fatalf("want system, user and assistant stored, got %d: %v", len(messages), messages)
	}
	if messages[1].GetMessage().GetContent() != "Remember the number 7." ||
		messages[2].GetMessage().GetRole() != modelrouterv1.Role_ROLE_ASSISTANT ||
		messages[2].GetMessage().GetContent() != reply.GetText() {
		t.Fatalf("stored turn does not match the reply: %v", messages)
	}
	if stored.GetMetadata()["agent"] != "go-test" {
		t.Fatalf("metadata lost: %v", stored.GetMetadata())
	}
	if _, err := client.API.DeleteConversation(ctx, &modelrouterv1.DeleteConversationRequest{Id: conversation.GetId()}); err != nil {
		t.Fatal(err)
	}
	_, err = client.API.GetConversation(ctx, &modelrouterv1.GetConversationRequest{Id: conversation.GetId()})
	if details, _ := mrclient.Details(err); details.Code != codes.NotFound {
		t.Fatalf("deleted conversation: want NOT_FOUND, got %v", err)
	}
}

func TestAPIKeyInPlaintextOnlyToLoopback(t *testing.T) {
	if _, err := mrclient.Dial("router.example:50051", mrclient.WithAPIKey("k")); !errors.Is(err, mrclient.ErrKeyWithoutTLS) {
		t.Fatalf("want ErrKeyWithoutTLS, got %v", err)
	}
	// To a loopback router the key goes in plaintext, and calls still work.
	client, err := mrclient.Dial(live.Target, mrclient.WithAPIKey("k"))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if _, err := client.API.ListModels(testContext(t), &modelrouterv1.ListModelsRequest{}); err != nil {
		t.Fatal(err)
	}
}

// example-agent is a tiny agent over modelrouter, in four steps (the same four examples as
// docs/go.md): a unary call, a stream it stops early, a bad request's error details, and a
// server-side conversation.
//
//	cd client/go && go run ./cmd/example-agent -target 127.0.0.1:50051
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	modelrouterv1 "github.com/modelrouter/modelrouter/client/go/modelrouter/v1"
	"github.com/modelrouter/modelrouter/client/go/mrclient"
)

func main() {
	target := flag.String("target", "127.0.0.1:50051", "router address")
	// 40, below the emulator's whole answer (about 140 characters), so the stream step
	// really cancels mid-answer when run against `make run`.
	maxChars := flag.Int("max-chars", 40, "stop streaming after this many characters")
	flag.Parse()
	if err := run(os.Stdout, *target, *maxChars); err != nil {
		fmt.Fprintln(os.Stderr, "example-agent:", err)
		os.Exit(1)
	}
}

func run(out io.Writer, target string, maxChars int) error {
	client, err := mrclient.Dial(target)
	if err != nil {
		return err
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, step := range []func(context.Context, *mrclient.Client, io.Writer, int) error{
		unary, streamAndStop, errorDetails, conversation,
	} {
		if err := step(ctx, client, out, maxChars); err != nil {
			return err
		}
	}
	return nil
}

func unary(ctx context.Context, client *mrclient.Client, out io.Writer, _ int) error {
	reply, err := client.API.Generate(ctx, &modelrouterv1.GenerateRequest{
		Messages:        []*modelrouterv1.Message{mrclient.System("Be brief."), mrclient.User("Name three primes.")},
		Task:            modelrouterv1.Task_TASK_CHAT,
		MaxOutputTokens: 64,
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(out, reply.GetText())
	fmt.Fprintln(out, reply.GetModel(), reply.GetUsage().GetOutputTokens(), reply.GetUsage().GetCostUsd())
	return nil
}

func streamAndStop(ctx context.Context, client *mrclient.Client, out io.Writer, maxChars int) error {
	// Returning mrclient.ErrStop cancels the call; the router closes the provider request.
	reply, err := client.Stream(ctx, &modelrouterv1.GenerateStreamRequest{
		Messages: []*modelrouterv1.Message{mrclient.User("Write a long essay on retries.")},
		Task:     modelrouterv1.Task_TASK_CHAT,
	}, func(event *modelrouterv1.GenerateStreamResponse) error {
		if event.GetStart() != nil {
			fmt.Fprintln(out, "answering:", event.GetStart().GetModel())
		}
		fmt.Fprint(out, event.GetDelta().GetText())
		return nil
	}, mrclient.StopAfterChars(maxChars))
	if err != nil {
		return err
	}
	if reply.Finish == nil {
		fmt.Fprintf(out, "\nstopped after %d characters\n", len(reply.Text))
	} else {
		fmt.Fprintf(out, "\nfinished: %d tokens\n", reply.Finish.GetUsage().GetOutputTokens())
	}
	return nil
}

func errorDetails(ctx context.Context, client *mrclient.Client, out io.Writer, _ int) error {
	_, err := client.API.Generate(ctx, &modelrouterv1.GenerateRequest{
		Messages:        []*modelrouterv1.Message{mrclient.User("hi")},
		Model:           "gpt-4o-mini",
		MaxOutputTokens: -1,
	})
	details, ok := mrclient.Details(err)
	if !ok {
		return fmt.Errorf("expected a status error, got %v", err)
	}
	fmt.Fprintln(out, details.Code, details.ErrorInfo.GetReason())
	for field, problem := range details.FieldViolations() {
		fmt.Fprintf(out, "%s: %s\n", field, problem)
	}
	return nil
}

func conversation(ctx context.Context, client *mrclient.Client, out io.Writer, _ int) error {
	created, err := client.API.CreateConversation(ctx, &modelrouterv1.CreateConversationRequest{
		Messages: []*modelrouterv1.Message{mrclient.System("You are terse.")},
	})
	if err != nil {
		return err
	}
	id := created.GetConversation().GetId()
	for _, turn := range []string{"Remember the number 7.", "Which number?"} {
		reply, err := client.API.Generate(ctx, &modelrouterv1.GenerateRequest{
			Messages:       []*modelrouterv1.Message{mrclient.User(turn)},
			ConversationId: id,
		})
		if err != nil {
			return err
		}
		fmt.Fprintln(out, reply.GetText())
	}
	stored, err := client.API.GetConversation(ctx, &modelrouterv1.GetConversationRequest{Id: id})
	if err != nil {
		return err
	}
	for _, item := range stored.GetConversation().GetMessages() {
		fmt.Fprintln(out, item.GetSeq(), item.GetMessage().GetRole(), item.GetMessage().GetContent())
	}
	_, err = client.API.DeleteConversation(ctx, &modelrouterv1.DeleteConversationRequest{Id: id})
	return err
}

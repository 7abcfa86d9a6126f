package mrclient

import modelrouterv1 "github.com/modelrouter/modelrouter/client/go/modelrouter/v1"

// System is a system message.
func System(text string) *modelrouterv1.Message {
	return &modelrouterv1.Message{Role: modelrouterv1.Role_ROLE_SYSTEM, Content: text}
}

// User is a user message.
func User(text string) *modelrouterv1.Message {
	return &modelrouterv1.Message{Role: modelrouterv1.Role_ROLE_USER, Content: text}
}

// Assistant is an assistant message (earlier turns the caller keeps itself).
func Assistant(text string) *modelrouterv1.Message {
	return &modelrouterv1.Message{Role: modelrouterv1.Role_ROLE_ASSISTANT, Content: text}
}

package content_test

import (
	"testing"

	"github.com/switchboard-chat/switchboard/content"
)

func textMessage() *content.Message {
	return content.Markdown("Hi everyone, we just shipped release 2.0. __Good  work__!").
		WithSender("mimi://example.com/u/alice-smith").WithRoom("mimi://example.com/r/engineering_team")
}

func BenchmarkEncodeText(b *testing.B) {
	m := textMessage()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Encode(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeText(b *testing.B) {
	enc, err := textMessage().Encode()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := content.Decode(enc); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMessageID(b *testing.B) {
	enc, err := textMessage().Encode()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := content.MessageID("mimi://example.com/u/alice-smith", "mimi://example.com/r/engineering_team", enc); err != nil {
			b.Fatal(err)
		}
	}
}

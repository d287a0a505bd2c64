package content_test

import (
	"fmt"

	"github.com/switchboard-chat/switchboard/content"
)

func Example() {
	alice, room := "mimi://green.example/u/alice", "mimi://green.example/r/lobby"

	// Alice sends a Markdown message mentioning Bob.
	post := content.Markdown("Shipped! Thanks " + content.MentionLink("@Bob", "mimi://blue.example/u/bob")).
		WithSender(alice).WithRoom(room)
	wire, id, err := post.EncodeWithID(alice, room)
	if err != nil {
		panic(err)
	}

	// Bob receives the bytes, computes the same ID, and reacts to it.
	got, err := content.Decode(wire)
	if err != nil {
		panic(err)
	}
	rid, _ := content.MessageID(alice, room, wire)
	fmt.Println(got.Kind(), got.Mentions(), rid == id)

	like := content.Reaction(rid, "🎉")
	fmt.Println(like.Kind(), like.Reactions(), *like.InReplyTo == id)
	// Output:
	// text [mimi://blue.example/u/bob] true
	// reaction [🎉] true
}

package client

import (
	"errors"
	"maps"
	"testing"
)

func TestLookupRequest(t *testing.T) {
	for _, c := range []struct {
		query string
		want  map[string]string
	}{
		{"bob", map[string]string{"handle": "bob"}},
		{"  Bob ", map[string]string{"handle": "Bob"}},
		{"bob@Blue.Example", map[string]string{"handle": "bob", "domain": "blue.example"}},
		{"bob.smith", map[string]string{"handle": "bob.smith"}},
		{"12345", map[string]string{"handle": "12345"}},
		{"555-0100", map[string]string{"handle": "555-0100"}},
		{"+41446681800", map[string]string{"phone": "+41446681800"}},
		{"+1 202-456-1111", map[string]string{"phone": "+1 202-456-1111"}},
		{"+1 (202) 456 1111", map[string]string{"phone": "+1 (202) 456 1111"}},
		{"+44 20/7946.0018", map[string]string{"phone": "+44 20/7946.0018"}},
		{"0041 44 668 18 00", map[string]string{"phone": "+41 44 668 18 00"}},
		{"0041446681800", map[string]string{"phone": "+41446681800"}},
		{"tel:+41-44-668-18-00", map[string]string{"phone": "+41-44-668-18-00"}},
		{"TEL:+41446681800;ext=12", map[string]string{"phone": "+41446681800"}},
		// Without its country code it is still a phone number: the
		// provider says what is wrong with it.
		{"(202) 456 1111", map[string]string{"phone": "(202) 456 1111"}},
	} {
		got, err := lookupRequest(c.query)
		if err != nil || !maps.Equal(got, c.want) {
			t.Errorf("lookupRequest(%q) = %v, %v; want %v", c.query, got, err, c.want)
		}
	}
	for _, q := range []string{"", "   ", "bob@", "@blue.example"} {
		if got, err := lookupRequest(q); !errors.Is(err, ErrBadRequest) {
			t.Errorf("lookupRequest(%q) = %v, %v; want ErrBadRequest", q, got, err)
		}
	}
}

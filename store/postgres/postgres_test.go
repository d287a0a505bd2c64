package postgres

import (
	"context"
	"testing"

	"github.com/switchboard-chat/switchboard/store"
	"github.com/switchboard-chat/switchboard/store/storetest"
)

func TestConformance(t *testing.T) {
	dsns := map[string]string{}
	storetest.RunWithReopen(t, func(t *testing.T, dir string) store.Store {
		// dir keys the scenario's schema, so reopening finds the data.
		dsn, ok := dsns[dir]
		if !ok {
			dsn = TestDSN(t)
			dsns[dir] = dsn
		}
		s, err := Open(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

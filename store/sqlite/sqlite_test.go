package sqlite

import (
	"path/filepath"
	"testing"

	"github.com/switchboard-chat/switchboard/store"
	"github.com/switchboard-chat/switchboard/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.RunWithReopen(t, func(t *testing.T, dir string) store.Store {
		s, err := Open(filepath.Join(dir, "switchboard.db"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

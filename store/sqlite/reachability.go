package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/switchboard-chat/switchboard/store"
)

// Reachability returns the user's third-party reachability. One statement
// reads the mode and the list together, so a concurrent SetReachability is
// seen whole or not at all.
func (s *Store) Reachability(ctx context.Context, userID int64) (store.Reachability, error) {
	db, err := s.reader()
	if err != nil {
		return store.Reachability{}, err
	}
	rows, err := db.QueryContext(ctx, `SELECT u.reachability, r.domain FROM users u
		LEFT JOIN user_reachable r ON r.user_id = u.id WHERE u.id = ? ORDER BY r.domain`, userID)
	if err != nil {
		return store.Reachability{}, mapErr(err)
	}
	defer rows.Close()
	var out store.Reachability
	found := false
	for rows.Next() {
		var domain sql.NullString
		if err := rows.Scan(&out.Mode, &domain); err != nil {
			return store.Reachability{}, mapErr(err)
		}
		found = true
		if domain.Valid && out.Mode == store.ReachSome {
			out.Partners = append(out.Partners, domain.String)
		}
	}
	if err := rows.Err(); err != nil {
		return store.Reachability{}, mapErr(err)
	}
	if !found {
		return store.Reachability{}, fmt.Errorf("sqlite: reachability: %w", store.ErrNotFound)
	}
	return out, nil
}

// SetReachability replaces the user's mode and partner list in one
// transaction.
func (s *Store) SetReachability(ctx context.Context, userID int64, mode store.ReachMode, partners []string) error {
	if !mode.Valid() {
		return fmt.Errorf("sqlite: set reachability: unknown mode %q", mode)
	}
	err := s.w.do(ctx, func(tx *wtx) error {
		if err := mustAffect(tx.exec(`UPDATE users SET reachability = ? WHERE id = ?`, string(mode), userID)); err != nil {
			return err
		}
		if _, err := tx.exec(`DELETE FROM user_reachable WHERE user_id = ?`, userID); err != nil {
			return err
		}
		if mode != store.ReachSome {
			return nil
		}
		for _, d := range partners {
			if _, err := tx.exec(`INSERT OR IGNORE INTO user_reachable (user_id, domain) VALUES (?, ?)`, userID, d); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: set reachability: %w", err)
	}
	return nil
}

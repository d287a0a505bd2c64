package inbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/switchboard-chat/switchboard/client"
)

// Contacts. A customer who writes from several providers is one person:
// the conversations whose customers carry the same verified phone number
// (certified by their provider in their credential) share a contact.
// Nothing else joins contacts: a name or an unverified number could be
// anyone's. Unlink gives a conversation a contact of its own for good.

// verifiedPhone is a customer's verified phone number, read from their
// provider-certified credential in the room (client.MemberPhone); "" if
// the credential carries none.
func (d *Desk) verifiedPhone(room client.RoomID, customer string) string {
	phone, err := d.m.Client().MemberPhone(room, customer)
	if err != nil {
		d.log.Warn("reading a customer's verified phone", "room", room, "customer", customer, "err", err)
		return ""
	}
	return phone
}

// contactName is what a new contact is called: the customer's handle.
func contactName(customer string) string {
	if i := strings.LastIndexByte(customer, '@'); i >= 0 {
		return customer[:i]
	}
	return customer
}

// contactFor finds the contact of a verified phone number, or makes one.
func contactFor(ctx context.Context, tx *sql.Tx, customer, phone string) (int64, error) {
	if phone != "" {
		var id int64
		err := tx.QueryRowContext(ctx, `SELECT id FROM contacts WHERE phone = ? AND separate = 0 ORDER BY id LIMIT 1`, phone).Scan(&id)
		if err == nil {
			return id, nil
		} else if !errors.Is(err, sql.ErrNoRows) {
			return 0, err
		}
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO contacts (name, phone) VALUES (?, ?)`, contactName(customer), phone)
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}

// relink joins a conversation to the contact of its customer's verified
// phone number once it is known, unless it was unlinked.
func (d *Desk) relink(ctx context.Context, r row) error {
	if r.unlinked {
		return nil
	}
	c, err := d.contact(ctx, r.contact)
	if err != nil || c.Phone != "" {
		return err
	}
	phone := d.verifiedPhone(r.room, r.customer)
	if phone == "" {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.tx(ctx, func(tx *sql.Tx) error {
		var id int64
		err := tx.QueryRowContext(ctx, `SELECT id FROM contacts WHERE phone = ? AND separate = 0 ORDER BY id LIMIT 1`, phone).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			_, err = tx.ExecContext(ctx, `UPDATE contacts SET phone = ? WHERE id = ?`, phone, r.contact)
			return err
		} else if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE conversations SET contact = ? WHERE id = ?`, id, r.id); err != nil {
			return err
		}
		return dropOrphan(ctx, tx, r.contact)
	})
}

// dropOrphan deletes a contact no conversation has any more.
func dropOrphan(ctx context.Context, tx *sql.Tx, contact int64) error {
	_, err := tx.ExecContext(ctx, `DELETE FROM contacts WHERE id = ? AND NOT EXISTS
		(SELECT 1 FROM conversations WHERE contact = ?)`, contact, contact)
	return err
}

func (d *Desk) contact(ctx context.Context, id int64) (Contact, error) {
	c := Contact{ID: id}
	err := d.db.QueryRowContext(ctx, `SELECT name, phone FROM contacts WHERE id = ?`, id).Scan(&c.Name, &c.Phone)
	if err != nil {
		return c, notFound(err, fmt.Sprintf("contact %d", id))
	}
	c.Addresses, err = d.strings(ctx, `SELECT DISTINCT customer FROM conversations WHERE contact = ? ORDER BY customer`, id)
	return c, err
}

// Unlink gives a conversation a contact of its own (with the same name
// and phone number), which no later conversation joins. Audited.
func (d *Desk) Unlink(ctx context.Context, id int64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	err := d.tx(ctx, func(tx *sql.Tx) error {
		r, err := loadRow(ctx, tx, id)
		if err != nil {
			return err
		}
		var name, phone string
		if err := tx.QueryRowContext(ctx, `SELECT name, phone FROM contacts WHERE id = ?`, r.contact).Scan(&name, &phone); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO contacts (name, phone, separate) VALUES (?, ?, 1)`, name, phone)
		if err != nil {
			return err
		}
		own, _ := res.LastInsertId()
		if _, err := tx.ExecContext(ctx, `UPDATE conversations SET contact = ?, unlinked = 1 WHERE id = ?`, own, id); err != nil {
			return err
		}
		if err := dropOrphan(ctx, tx, r.contact); err != nil {
			return err
		}
		return audit(ctx, tx, id, d.now(), "system", "unlinked", "a contact of its own")
	})
	if err != nil {
		return err
	}
	d.publish(Event{Kind: "conversation", Conversation: id})
	return nil
}

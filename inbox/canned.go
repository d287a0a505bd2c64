package inbox

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Canned responses: an agent types "/code" in a reply and it becomes the
// text. A code is 1 to 32 of a-z 0-9 _ -; it is recognised at the start
// of the reply or after a space, up to the next character that cannot
// be in a code. Unknown codes stay as typed.

var codeRE = regexp.MustCompile(`^[a-z0-9_-]{1,32}$`)

func isCodeByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// maxCanned bounds a canned text.
const maxCanned = 4000

// Canned lists the canned responses by code.
func (d *Desk) Canned(ctx context.Context) ([]Canned, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT code, text FROM canned ORDER BY code`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Canned
	for rows.Next() {
		var c Canned
		if err := rows.Scan(&c.Code, &c.Text); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// SetCanned sets the text of a code; an empty text deletes it.
func (d *Desk) SetCanned(ctx context.Context, code, text string) error {
	code = strings.TrimPrefix(code, "/")
	if !codeRE.MatchString(code) {
		return fmt.Errorf("%w: a code is 1 to 32 of a-z 0-9 _ -", ErrInvalid)
	}
	if len(text) > maxCanned || !utf8.ValidString(text) {
		return fmt.Errorf("%w: a canned text has at most %d bytes of UTF-8", ErrInvalid, maxCanned)
	}
	var err error
	if strings.TrimSpace(text) == "" {
		_, err = d.db.ExecContext(ctx, `DELETE FROM canned WHERE code = ?`, code)
	} else {
		_, err = d.db.ExecContext(ctx, `INSERT INTO canned (code, text) VALUES (?, ?)
			ON CONFLICT (code) DO UPDATE SET text = excluded.text`, code, text)
	}
	return err
}

// Expand replaces the "/code" tokens of a reply by their canned texts.
func (d *Desk) Expand(ctx context.Context, text string) (string, error) {
	if !strings.Contains(text, "/") {
		return text, nil
	}
	all, err := d.Canned(ctx)
	if err != nil {
		return "", err
	}
	texts := make(map[string]string, len(all))
	for _, c := range all {
		texts[c.Code] = c.Text
	}
	return expand(text, texts), nil
}

// expand replaces known codes; a canned text is not expanded again.
func expand(text string, texts map[string]string) string {
	var b strings.Builder
	for i := 0; i < len(text); {
		r, size := utf8.DecodeRuneInString(text[i:])
		atStart := i == 0
		if !atStart {
			prev, _ := utf8.DecodeLastRuneInString(text[:i])
			atStart = unicode.IsSpace(prev)
		}
		if r == '/' && atStart {
			j := i + 1
			for j < len(text) && isCodeByte(text[j]) {
				j++
			}
			if t, ok := texts[text[i+1:j]]; ok && j > i+1 {
				b.WriteString(t)
				i = j
				continue
			}
		}
		b.WriteString(text[i : i+size])
		i += size
	}
	return b.String()
}

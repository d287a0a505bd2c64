package bus

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
)

// What travels on the wake-up subjects. Device wake-ups are a JSON array
// of device IDs (readable with any NATS client when debugging); outbox
// announcements carry the destination's domain as plain text; a device
// notice is the device ID and the provider's notice, opaque here. All are
// hints from replicas of the same provider, yet a replica still checks
// them, so a stray publisher on the subject cannot make it misbehave.

// maxWakeDevices bounds one wake-up; a message with more recipients is
// split into several.
const maxWakeDevices = 4096

// maxDomainLen is the longest domain name DNS allows.
const maxDomainLen = 253

func encodeDevices(devices []int64) []byte {
	data, _ := json.Marshal(devices)
	return data
}

// decodeDevices reads a device wake-up: a non-empty JSON array of at most
// maxWakeDevices positive device IDs.
func decodeDevices(data []byte) ([]int64, error) {
	var ds []int64
	if err := json.Unmarshal(data, &ds); err != nil {
		return nil, fmt.Errorf("bus: device wake-up is not a JSON array of integers: %w", err)
	}
	if len(ds) == 0 || len(ds) > maxWakeDevices {
		return nil, fmt.Errorf("bus: device wake-up names %d devices (1 to %d)", len(ds), maxWakeDevices)
	}
	for _, d := range ds {
		if d <= 0 {
			return nil, fmt.Errorf("bus: device wake-up names device %d (IDs are positive)", d)
		}
	}
	return ds, nil
}

// MaxNotice bounds a device notice. The provider's notices are small JSON
// objects; the bound keeps a stray publisher from making replicas hold
// large messages.
const MaxNotice = 4096

// A notice travels as the device ID in 8 bytes, big-endian, then the
// notice itself, which the bus does not read.
func encodeNotice(device int64, notice []byte) ([]byte, error) {
	if device <= 0 {
		return nil, fmt.Errorf("bus: notice for device %d (IDs are positive)", device)
	}
	if len(notice) == 0 || len(notice) > MaxNotice {
		return nil, fmt.Errorf("bus: notice of %d bytes (1 to %d)", len(notice), MaxNotice)
	}
	data := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(notice)), uint64(device))
	return append(data, notice...), nil
}

// decodeNotice reads a notice: a positive device ID and 1 to MaxNotice
// bytes of notice.
func decodeNotice(data []byte) (int64, []byte, error) {
	if len(data) < 9 {
		return 0, nil, fmt.Errorf("bus: notice of %d bytes is too short", len(data))
	}
	device := int64(binary.BigEndian.Uint64(data)) // #nosec G115 -- the bits of the device ID the sender wrote
	notice := data[8:]
	if device <= 0 {
		return 0, nil, fmt.Errorf("bus: notice for device %d (IDs are positive)", device)
	}
	if len(notice) > MaxNotice {
		return 0, nil, fmt.Errorf("bus: notice of %d bytes (at most %d)", len(notice), MaxNotice)
	}
	return device, notice, nil
}

// decodeDest reads an outbox announcement: a domain name.
func decodeDest(data []byte) (string, error) {
	if err := checkDomain(string(data)); err != nil {
		return "", fmt.Errorf("bus: outbox announcement: %w", err)
	}
	return string(data), nil
}

// maxRoomLen bounds a room ID on the wire; IDs are far shorter.
const maxRoomLen = 256

// decodeRoom reads a room wake-up: a room ID.
func decodeRoom(data []byte) (string, error) {
	if err := checkRoom(string(data)); err != nil {
		return "", fmt.Errorf("bus: room wake-up: %w", err)
	}
	return string(data), nil
}

// checkRoom accepts a room ID: 1 to maxRoomLen printable ASCII characters
// without spaces. The receiver only wakes waiters by it, so it needs no
// more than to be a plausible ID.
func checkRoom(r string) error {
	if r == "" || len(r) > maxRoomLen {
		return fmt.Errorf("room ID must have 1 to %d characters", maxRoomLen)
	}
	for i := 0; i < len(r); i++ {
		if r[i] <= ' ' || r[i] >= 0x7f {
			return fmt.Errorf("room ID has the byte %#x", r[i])
		}
	}
	return nil
}

// checkDomain accepts what can be a provider's domain (an optional port
// included, as tests run providers on 127.0.0.1:PORT): letters, digits,
// '-', '.' and ':', no empty label. The domain also becomes NATS subject
// tokens, where '*', '>' and spaces would change the meaning.
func checkDomain(d string) error {
	if d == "" || len(d) > maxDomainLen {
		return fmt.Errorf("domain must have 1 to %d characters", maxDomainLen)
	}
	prev := byte('.')
	for i := 0; i < len(d); i++ {
		c := d[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == ':':
		case c == '.':
			if prev == '.' {
				return errors.New("domain has an empty label")
			}
		default:
			return fmt.Errorf("domain has the character %q", c)
		}
		prev = c
	}
	if prev == '.' {
		return errors.New("domain ends with a dot")
	}
	return nil
}

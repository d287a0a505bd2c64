package content

import (
	"encoding/binary"
	"errors"
	"math"
	"unicode/utf8"
)

// CBOR major types.
const (
	majUint   = 0
	majNeg    = 1
	majBytes  = 2
	majText   = 3
	majArray  = 4
	majMap    = 5
	majTag    = 6
	majSimple = 7
)

var errShort = errors.New("truncated CBOR item")

// readHead reads the head of the CBOR item at the start of b: its major
// type, additional information and argument, and the head's length. It
// refuses indefinite lengths and the reserved additional information
// values. For major type 7 with additional information 25 to 27 the
// argument is the float's bits.
func readHead(b []byte) (major, ai byte, arg uint64, n int, err error) {
	if len(b) == 0 {
		return 0, 0, 0, 0, errShort
	}
	major, ai = b[0]>>5, b[0]&0x1f
	switch {
	case ai < 24:
		return major, ai, uint64(ai), 1, nil
	case ai <= 27:
		size := 1 << (ai - 24)
		if len(b) < 1+size {
			return 0, 0, 0, 0, errShort
		}
		for _, c := range b[1 : 1+size] {
			arg = arg<<8 | uint64(c)
		}
		return major, ai, arg, 1 + size, nil
	case ai == 31:
		return 0, 0, 0, 0, errors.New("indefinite-length CBOR item")
	}
	return 0, 0, 0, 0, errors.New("reserved CBOR additional information")
}

// Limits on extension values from the draft's data model restrictions.
const (
	// maxExtDepth: maps, arrays and tags nest at most 4 levels deep,
	// counting the extensions map itself as level 1.
	maxExtDepth = 4
	// maxSafeInt: integer map keys must be exact as a double.
	maxSafeInt = 1<<53 - 1
)

// checkItem walks one CBOR data item at the start of b, at container depth
// depth (the level a container found here would have), and returns its
// length. It checks what the draft asks of extension values beyond
// well-formedness: nesting depth, map key types (integers, text or byte
// strings only), integer keys within ±(2^53-1), no duplicate keys, valid
// UTF-8, and the half-width quiet NaN as the only NaN.
func checkItem(b []byte, depth int) (int, error) {
	major, ai, arg, n, err := readHead(b)
	if err != nil {
		return 0, err
	}
	switch major {
	case majUint, majNeg:
		return n, nil
	case majBytes, majText:
		if arg > uint64(len(b)-n) { // #nosec G115 -- n is at most len(b)
			return 0, errShort
		}
		end := n + int(arg) // #nosec G115 -- arg is at most len(b)-n, checked above
		if major == majText && !utf8.Valid(b[n:end]) {
			return 0, errors.New("text string is not valid UTF-8")
		}
		return end, nil
	case majArray, majMap, majTag:
		if depth > maxExtDepth {
			return 0, errors.New("extension value nested more than 4 levels deep")
		}
		if major == majTag {
			m, err := checkItem(b[n:], depth+1)
			return n + m, err
		}
		if arg > uint64(len(b)-n) { // #nosec G115 -- n is at most len(b); every item takes at least one octet
			return 0, errShort
		}
		off := n
		var seen map[string]bool
		if major == majMap {
			seen = make(map[string]bool, arg)
		}
		for i := uint64(0); i < arg; i++ {
			if major == majMap {
				k, m, err := checkKey(b[off:])
				if err != nil {
					return 0, err
				}
				if seen[k] {
					return 0, errors.New("duplicate map key")
				}
				seen[k] = true
				off += m
			}
			m, err := checkItem(b[off:], depth+1)
			if err != nil {
				return 0, err
			}
			off += m
		}
		return off, nil
	default: // majSimple
		switch ai {
		case 25:
			if isNaN16(uint16(arg)) && arg != 0x7e00 { // #nosec G115 -- ai 25 carries 16 bits
				return 0, errors.New("NaN other than the half-width quiet NaN")
			}
		case 26:
			if math.IsNaN(float64(math.Float32frombits(uint32(arg)))) { // #nosec G115 -- ai 26 carries 32 bits
				return 0, errors.New("NaN other than the half-width quiet NaN")
			}
		case 27:
			if math.IsNaN(math.Float64frombits(arg)) {
				return 0, errors.New("NaN other than the half-width quiet NaN")
			}
		}
		return n, nil
	}
}

func isNaN16(h uint16) bool { return h&0x7c00 == 0x7c00 && h&0x03ff != 0 }

// checkKey checks a map key inside an extension value and returns a string
// that is equal for equal keys, whatever their encoded form.
func checkKey(b []byte) (string, int, error) {
	major, _, arg, n, err := readHead(b)
	if err != nil {
		return "", 0, err
	}
	switch major {
	case majUint, majNeg:
		if arg > maxSafeInt-uint64(major) {
			return "", 0, errors.New("integer map key beyond ±(2^53-1)")
		}
		return string(binary.BigEndian.AppendUint64([]byte{'0' + major}, arg)), n, nil
	case majBytes, majText:
		m, err := checkItem(b, 0)
		if err != nil {
			return "", 0, err
		}
		return string('0'+major) + string(b[n:m]), m, nil
	}
	return "", 0, errors.New("map key is not an integer, text string or byte string")
}

// deterministic reports whether the CBOR item at the start of b (already
// checked by checkItem) is in RFC 8949 §4.2.1 deterministic encoding as far
// as heads and maps go: every integer, length and tag number in its
// shortest form, and map keys in bytewise order of their encodings. It
// returns the item's length. Floats are not checked for their shortest
// form (the draft discourages them).
func deterministic(b []byte) (int, bool) {
	major, ai, arg, n, err := readHead(b)
	if err != nil {
		return 0, false
	}
	if major != majSimple {
		var short byte
		switch {
		case arg < 24:
			short = byte(arg)
		case arg <= 0xff:
			short = 24
		case arg <= 0xffff:
			short = 25
		case arg <= 0xffffffff:
			short = 26
		default:
			short = 27
		}
		if ai != short {
			return 0, false
		}
	} else if ai == 24 && arg < 32 {
		return 0, false
	}
	switch major {
	case majBytes, majText:
		if arg > uint64(len(b)-n) { // #nosec G115 -- n is at most len(b)
			return 0, false
		}
		return n + int(arg), true // #nosec G115 -- arg is at most len(b)-n, checked above
	case majTag:
		m, ok := deterministic(b[n:])
		return n + m, ok
	case majArray, majMap:
		if arg > uint64(len(b)-n) { // #nosec G115 -- n is at most len(b)
			return 0, false
		}
		off := n
		var prev []byte
		for i := uint64(0); i < arg; i++ {
			if major == majMap {
				m, ok := deterministic(b[off:])
				if !ok {
					return 0, false
				}
				key := b[off : off+m]
				if prev != nil && string(prev) >= string(key) {
					return 0, false
				}
				prev = key
				off += m
			}
			m, ok := deterministic(b[off:])
			if !ok {
				return 0, false
			}
			off += m
		}
		return off, true
	}
	return n, true
}

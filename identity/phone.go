package identity

import (
	"fmt"
	"strings"
)

// A device certificate may carry its user's phone number as a third
// subjectAltName URI, tel:+E164 (RFC 3966's global-number form with no
// visual separators and no parameters). The provider puts it there only
// when it verified the number and the user chose to be discoverable by it,
// so a peer that trusts the provider learns a number the provider vouches
// for, and one it could otherwise have found out by looking it up.
//
// A tel URI is not a domain claim: it has no host, so the CA's URI name
// constraints (which bind mimi:// URIs to the provider's own domain) do not
// speak about it, and any trusted provider may vouch for any number. That
// is the point: one customer verified by two providers is the same person
// to a business that trusts both. What binds the claim is the rest of the
// certificate: the number is vouched for by the CA of the domain that the
// certificate's device and user URIs name, and by nobody else.

// telScheme prefixes a phone URI.
const telScheme = "tel:"

// maxPhoneDigits is E.164's limit on the digits of a number, country code
// included.
const maxPhoneDigits = 15

// PhoneURI returns the tel URI a device certificate carries for an E.164
// number such as "+15555550123". It does not validate the number; use
// ParsePhoneURI on untrusted text.
func PhoneURI(e164 string) string { return telScheme + e164 }

// ParsePhoneURI parses the tel URI of a device certificate and returns the
// number in E.164 form ("+" then 2 to 15 digits, the first not 0). Only
// that canonical form is accepted, so a number has one spelling and two
// certificates vouch for the same number exactly when the strings are
// equal; anything else (separators, parameters, a local number, a missing
// "+") is refused with an error wrapping ErrNames.
func ParsePhoneURI(s string) (string, error) {
	if reason := checkPhoneURI(s); reason != "" {
		return "", newError(ErrNames, nil, "phone URI %s: %s", quote(s), reason)
	}
	return s[len(telScheme):], nil
}

// CheckPhone reports whether e164 is a number IssueDeviceWithPhone accepts.
func CheckPhone(e164 string) error {
	if reason := checkE164(e164); reason != "" {
		return newError(ErrCA, nil, "phone number %s: %s", quote(e164), reason)
	}
	return nil
}

func checkPhoneURI(s string) string {
	num, ok := strings.CutPrefix(s, telScheme)
	if !ok {
		return `not a tel: URI`
	}
	return checkE164(num)
}

func checkE164(num string) string {
	digits, ok := strings.CutPrefix(num, "+")
	if !ok {
		return `the number must start with "+" and the country code`
	}
	if len(digits) < 2 || len(digits) > maxPhoneDigits {
		return fmt.Sprintf("want 2 to %d digits after the \"+\"", maxPhoneDigits)
	}
	if digits[0] == '0' {
		return "a country code does not start with 0"
	}
	for i := 0; i < len(digits); i++ {
		if c := digits[i]; c < '0' || c > '9' {
			return fmt.Sprintf("has character %s; an E.164 number is digits only", quoteByte(c))
		}
	}
	return ""
}

package federation

import (
	"github.com/switchboard-chat/switchboard/mls"
)

// POST /identifierQuery/{domain}: a provider asks another for the internal
// URIs of its users matching a search (a handle, a phone number, ...). It
// goes directly to the target provider, never through a hub.

// SearchIdentifierType says what a QueryElement searches.
type SearchIdentifierType uint8

// The search identifier types (0 is reserved).
const (
	SearchHandle       SearchIdentifierType = 1
	SearchNick         SearchIdentifierType = 2
	SearchEmail        SearchIdentifierType = 3
	SearchPhone        SearchIdentifierType = 4
	SearchPartialName  SearchIdentifierType = 5
	SearchWholeProfile SearchIdentifierType = 6
	SearchOIDCStdClaim SearchIdentifierType = 7
	SearchVCardField   SearchIdentifierType = 8
)

var searchIdentifierTypeNames = []string{"reserved", "handle", "nick", "email", "phone",
	"partialName", "wholeProfile", "oidcStdClaim", "vcardField"}

func (t SearchIdentifierType) known() bool { return t >= SearchHandle && t <= SearchVCardField }

// String returns the draft's name for the value.
func (t SearchIdentifierType) String() string {
	return enumString("SearchIdentifierType", searchIdentifierTypeNames, uint8(t))
}

// QueryElement is one condition of an IdentifierRequest.
type QueryElement struct {
	SearchType SearchIdentifierType
	// Field is the OIDC claim name (SearchOIDCStdClaim) or the vCard
	// property name (SearchVCardField): the draft's claimName and
	// propertyName, one field since at most one of them is present.
	Field string
	// SearchValue is UTF-8 text.
	SearchValue string
}

func (q *QueryElement) hasField() bool {
	return q.SearchType == SearchOIDCStdClaim || q.SearchType == SearchVCardField
}

// MarshalMLS writes the element.
func (q *QueryElement) MarshalMLS(w *mls.Writer) {
	w.U8(uint8(q.SearchType))
	if q.hasField() {
		w.Opaque([]byte(q.Field))
	}
	w.Opaque([]byte(q.SearchValue))
}

// UnmarshalMLS reads an element.
func (q *QueryElement) UnmarshalMLS(r *mls.Reader) {
	*q = QueryElement{}
	q.SearchType = readEnum[SearchIdentifierType](r)
	if q.hasField() {
		q.Field = string(r.Opaque())
	}
	q.SearchValue = readString(r, "searchValue")
}

// IdentifierRequest is the body of an identifierQuery request. All its
// elements must match (AND).
type IdentifierRequest struct {
	QueryElements       []QueryElement
	IDRequestExtensions AppDataDictionary
}

// MarshalMLS writes the request.
func (q *IdentifierRequest) MarshalMLS(w *mls.Writer) {
	w.Vector(func(w *mls.Writer) {
		for i := range q.QueryElements {
			q.QueryElements[i].MarshalMLS(w)
		}
	})
	q.IDRequestExtensions.MarshalMLS(w)
}

// UnmarshalMLS reads a request.
func (q *IdentifierRequest) UnmarshalMLS(r *mls.Reader) {
	*q = IdentifierRequest{}
	r.Each(func(r *mls.Reader) {
		var e QueryElement
		e.UnmarshalMLS(r)
		q.QueryElements = append(q.QueryElements, e)
	})
	q.IDRequestExtensions.UnmarshalMLS(r)
}

// IdentifierQueryCode is the outcome of an identifier query.
type IdentifierQueryCode uint8

// The identifier query codes.
const (
	IdentifierSuccess          IdentifierQueryCode = 0
	IdentifierNotFound         IdentifierQueryCode = 1
	IdentifierAmbiguous        IdentifierQueryCode = 2
	IdentifierForbidden        IdentifierQueryCode = 3
	IdentifierUnsupportedField IdentifierQueryCode = 4
)

var identifierQueryCodeNames = []string{"success", "notFound", "ambiguous", "forbidden", "unsupportedField"}

func (c IdentifierQueryCode) known() bool { return int(c) < len(identifierQueryCodeNames) }

// String returns the draft's name for the value.
func (c IdentifierQueryCode) String() string {
	return enumString("IdentifierQueryCode", identifierQueryCodeNames, uint8(c))
}

// FieldSource says which vocabulary names a ProfileField.
type FieldSource uint8

// The field sources, numbered like the matching SearchIdentifierTypes
// (0 is reserved).
const (
	FieldOIDCStdClaim FieldSource = 7
	FieldVCardField   FieldSource = 8
)

func (s FieldSource) known() bool { return s == FieldOIDCStdClaim || s == FieldVCardField }

// String returns the draft's name for the value.
func (s FieldSource) String() string {
	return enumString("FieldSource", []string{7: "oidcStdClaim", 8: "vcardField"}, uint8(s))
}

// ProfileField is one field of a found user's profile.
type ProfileField struct {
	FieldSource FieldSource
	FieldName   string // UTF-8 (the draft's string)
	FieldValue  []byte
}

// MarshalMLS writes the field.
func (f *ProfileField) MarshalMLS(w *mls.Writer) {
	w.U8(uint8(f.FieldSource))
	w.Opaque([]byte(f.FieldName))
	w.Opaque(f.FieldValue)
}

// UnmarshalMLS reads a field.
func (f *ProfileField) UnmarshalMLS(r *mls.Reader) {
	f.FieldSource = readEnum[FieldSource](r)
	f.FieldName = readString(r, "fieldName")
	f.FieldValue = readBytes(r)
}

// UserProfile is one user an identifier query found.
type UserProfile struct {
	StableURI IdentifierURI
	Fields    []ProfileField
}

// MarshalMLS writes the profile.
func (p *UserProfile) MarshalMLS(w *mls.Writer) {
	p.StableURI.MarshalMLS(w)
	w.Vector(func(w *mls.Writer) {
		for i := range p.Fields {
			p.Fields[i].MarshalMLS(w)
		}
	})
}

// UnmarshalMLS reads a profile.
func (p *UserProfile) UnmarshalMLS(r *mls.Reader) {
	*p = UserProfile{}
	p.StableURI.UnmarshalMLS(r)
	r.Each(func(r *mls.Reader) {
		var f ProfileField
		f.UnmarshalMLS(r)
		p.Fields = append(p.Fields, f)
	})
}

// IdentifierResponse answers an IdentifierRequest.
type IdentifierResponse struct {
	ResponseCode         IdentifierQueryCode
	URIs                 []IdentifierURI
	FoundProfiles        []UserProfile
	IDResponseExtensions AppDataDictionary
}

// MarshalMLS writes the response.
func (q *IdentifierResponse) MarshalMLS(w *mls.Writer) {
	w.U8(uint8(q.ResponseCode))
	w.Vector(func(w *mls.Writer) {
		for _, u := range q.URIs {
			u.MarshalMLS(w)
		}
	})
	w.Vector(func(w *mls.Writer) {
		for i := range q.FoundProfiles {
			q.FoundProfiles[i].MarshalMLS(w)
		}
	})
	q.IDResponseExtensions.MarshalMLS(w)
}

// UnmarshalMLS reads a response.
func (q *IdentifierResponse) UnmarshalMLS(r *mls.Reader) {
	*q = IdentifierResponse{}
	q.ResponseCode = readEnum[IdentifierQueryCode](r)
	r.Each(func(r *mls.Reader) {
		var u IdentifierURI
		u.UnmarshalMLS(r)
		q.URIs = append(q.URIs, u)
	})
	r.Each(func(r *mls.Reader) {
		var p UserProfile
		p.UnmarshalMLS(r)
		q.FoundProfiles = append(q.FoundProfiles, p)
	})
	q.IDResponseExtensions.UnmarshalMLS(r)
}

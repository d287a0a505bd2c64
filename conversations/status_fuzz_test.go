package conversations

import "testing"

// FuzzStatusReport decodes arbitrary bytes as a delivered/read report, as
// a hostile room member could send them: no panic, and whatever decodes
// encodes and decodes again to the same report.
func FuzzStatusReport(f *testing.F) {
	good, _ := statusEnc.Marshal(statusReport{Timestamp: 1, Statuses: []messageStatus{{ID: make([]byte, 32), Status: 1}}})
	f.Add(good)
	f.Add([]byte{0xa0})
	f.Add([]byte{0x9f, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		var r statusReport
		if statusDec.Unmarshal(data, &r) != nil {
			return
		}
		again, err := statusEnc.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var r2 statusReport
		if err := statusDec.Unmarshal(again, &r2); err != nil || len(r2.Statuses) != len(r.Statuses) {
			t.Fatalf("a decoded report does not round-trip: %v", err)
		}
	})
}

package main

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// FuzzServeConfig reads whatever an operator could write in serve's
// configuration file, over the defaults, and checks it as `serve --check`
// does before touching any file. Never a panic; a configuration that
// passes the check writes back to JSON that reads again to the same
// configuration; and the provider gets the durations and limits the file
// says, never a negative or wrapped-around one (a huge number of days is
// refused, not turned into a short retention).
func FuzzServeConfig(f *testing.F) {
	full := defaultServeConfig()
	full.Listen, full.Domain, full.Store = "0.0.0.0:8443", "green.example", "postgres://db/switchboard"
	full.TLSCert, full.TLSKey = "tls.pem", "tls-key.pem"
	full.FederationListen, full.TrustFile, full.FederationURL = "0.0.0.0:8444", "trust.json", "https://fed.green.example/mimi"
	full.Bus, full.BusLeaseTTLSeconds = "nats://127.0.0.1:4222,nats://10.0.0.2:4222", 10
	full.RetentionDays, full.AttachmentRetentionDays, full.MaxBodyBytes = 30, 7, 1<<20
	full.RateLimits.User = &rateLimitConfig{EveryMS: 100, Burst: 20}
	full.RateLimits.Partner = &rateLimitConfig{Off: true}
	b, err := json.Marshal(full)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	for _, s := range []string{
		`{}`,
		`{"listen":"127.0.0.1:9000","domain":"blue.example","data_dir":"/var/lib/switchboard"}`,
		`{"listen":"0.0.0.0:80"}`,
		`{"tls_self_signed":true,"listen":":443"}`,
		`{"queue_retention_days":9223372036854775807}`,
		`{"attachment_retention_days":106751991167300}`,
		`{"rate_limits":{"user":{"every_ms":9223372036854775807,"burst":1}}}`,
		`{"rate_limits":{"room":{"off":true,"burst":3}}}`,
		`{"bus_lease_ttl_seconds":5}`,
		`{"bus":"nats://127.0.0.1:4222","bus_lease_ttl_seconds":9223372036854775807}`,
		`{"federation_listen":"127.0.0.1:8444"}`,
		`{"lisen":"typo"}`,
		`{} {}`,
		`{} }`,
		`{"domain":"a.example"}]`,
		`[]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg := defaultServeConfig()
		if decodeServeConfig(data, &cfg) != nil || cfg.check() != nil {
			return
		}
		out, err := json.Marshal(cfg)
		if err != nil {
			t.Fatalf("an accepted configuration does not encode: %v", err)
		}
		again := defaultServeConfig()
		if err := decodeServeConfig(out, &again); err != nil || !reflect.DeepEqual(again, cfg) {
			t.Fatalf("round trip: %+v, then %+v (%v)", cfg, again, err)
		}
		p := cfg.providerConfig()
		day := 24 * time.Hour
		if cfg.RetentionDays > 0 && p.QueueRetention/day != time.Duration(cfg.RetentionDays) {
			t.Fatalf("queue_retention_days %d became %v", cfg.RetentionDays, p.QueueRetention)
		}
		if p.AttachmentRetention/day != time.Duration(cfg.AttachmentRetentionDays) {
			t.Fatalf("attachment_retention_days %d became %v", cfg.AttachmentRetentionDays, p.AttachmentRetention)
		}
		if ttl := time.Duration(cfg.BusLeaseTTLSeconds) * time.Second; ttl/time.Second != time.Duration(cfg.BusLeaseTTLSeconds) {
			t.Fatalf("bus_lease_ttl_seconds %d became %v", cfg.BusLeaseTTLSeconds, ttl)
		}
		for name, l := range map[string]*rateLimitConfig{"user": cfg.RateLimits.User, "room": cfg.RateLimits.Room,
			"partner": cfg.RateLimits.Partner, "discovery_user": cfg.RateLimits.DiscoveryUser, "discovery_partner": cfg.RateLimits.DiscoveryPartner} {
			if l == nil || l.Off {
				continue
			}
			if every := l.limit().Every; every/time.Millisecond != time.Duration(l.EveryMS) {
				t.Fatalf("rate_limits.%s.every_ms %d became %v", name, l.EveryMS, every)
			}
		}
	})
}

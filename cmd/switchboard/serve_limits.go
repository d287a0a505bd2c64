package main

import (
	"fmt"
	"time"

	"github.com/switchboard-chat/switchboard/provider"
)

// rateLimitsConfig is the "rate_limits" object of serve's configuration
// (docs/ratelimits.md): one entry per limit, each optional; a missing
// entry or field keeps the provider's default.
type rateLimitsConfig struct {
	User             *rateLimitConfig `json:"user"`
	Room             *rateLimitConfig `json:"room"`
	Partner          *rateLimitConfig `json:"partner"`
	DiscoveryUser    *rateLimitConfig `json:"discovery_user"`
	DiscoveryPartner *rateLimitConfig `json:"discovery_partner"`
}

// rateLimitConfig is one token bucket: burst requests at once, then one
// every every_ms milliseconds. Off switches the limit off (a load test, a
// provider behind a limiter of its own); it then takes no other field.
type rateLimitConfig struct {
	EveryMS int64 `json:"every_ms"`
	Burst   int   `json:"burst"`
	Off     bool  `json:"off"`
}

// each calls f with every configured limit and its name in the file.
func (c *rateLimitsConfig) each(f func(name string, l *rateLimitConfig) error) error {
	for _, e := range []struct {
		name string
		l    *rateLimitConfig
	}{{"user", c.User}, {"room", c.Room}, {"partner", c.Partner}, {"discovery_user", c.DiscoveryUser}, {"discovery_partner", c.DiscoveryPartner}} {
		if e.l == nil {
			continue
		}
		if err := f(e.name, e.l); err != nil {
			return err
		}
	}
	return nil
}

// maxEveryMS bounds every_ms: a token a day is slower than any limit needs.
const maxEveryMS = 24 * 60 * 60 * 1000

func (c *rateLimitsConfig) check() error {
	return c.each(func(name string, l *rateLimitConfig) error {
		switch {
		case l.Off && (l.EveryMS != 0 || l.Burst != 0):
			return fmt.Errorf("rate_limits.%s: off takes no every_ms or burst", name)
		case l.EveryMS < 0 || l.Burst < 0:
			return fmt.Errorf("rate_limits.%s: every_ms and burst must not be negative (\"off\": true switches the limit off)", name)
		case l.EveryMS > maxEveryMS:
			// A larger one would wrap around as a time.Duration.
			return fmt.Errorf("rate_limits.%s: every_ms must be at most %d (a day)", name, maxEveryMS)
		}
		return nil
	})
}

// limit is the provider's form: zero fields take the default, and off is
// a negative Every.
func (l *rateLimitConfig) limit() provider.RateLimit {
	if l == nil {
		return provider.RateLimit{}
	}
	if l.Off {
		return provider.RateLimit{Every: -1, Burst: -1}
	}
	return provider.RateLimit{Every: time.Duration(l.EveryMS) * time.Millisecond, Burst: l.Burst}
}

// apply sets the configured limits in the provider's configuration.
func (c *rateLimitsConfig) apply(p *provider.Config) {
	p.UserMessageLimit = c.User.limit()
	p.RoomLimit = c.Room.limit()
	p.PartnerLimit = c.Partner.limit()
	p.UserDiscoveryLimit = c.DiscoveryUser.limit()
	p.PartnerDiscoveryLimit = c.DiscoveryPartner.limit()
}

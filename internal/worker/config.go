package worker

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// micro's rules (nats.go micro/service.go): a service name is letters,
// digits, dashes and underscores; a queue group has no space, and '>' only
// at its end; a version is semver.
var (
	serviceNameRE = regexp.MustCompile(`^[A-Za-z0-9\-_]+$`)
	queueGroupRE  = regexp.MustCompile(`^[^ >]*[>]?$`)
	semverRE      = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$`)
)

// ValidateServiceName checks a micro service name as micro.AddService will:
// letters, digits, dashes and underscores, at least one.
func ValidateServiceName(name string) error {
	if !serviceNameRE.MatchString(name) {
		return fmt.Errorf("%q: a micro service name is letters, digits, '-' and '_' only", name)
	}
	return nil
}

// ValidateQueueGroup checks a queue group as micro will: no spaces or tabs,
// and '>' only as its last character.
func ValidateQueueGroup(group string) error {
	if group == "" || strings.ContainsAny(group, "\t\r\n") || !queueGroupRE.MatchString(group) {
		return fmt.Errorf("%q: a queue group is not empty, has no spaces, and '>' only at its end", group)
	}
	return nil
}

// validateVersion checks Version (set at build time) as micro will.
func validateVersion(v string) error {
	if !semverRE.MatchString(microVersion(v)) {
		return fmt.Errorf("worker: Version %q is not a semantic version (1.2.3, v1.2.3-rc.1), as micro requires", v)
	}
	return nil
}

// withDefaults fills the fields left zero and checks the rest: a value that
// is wrong is an error, never replaced by a default.
func (c *Config) withDefaults() error {
	var errs []string
	bad := func(field, format string, args ...any) {
		errs = append(errs, "Config."+field+" "+fmt.Sprintf(format, args...))
	}
	if c.ID == "" {
		bad("ID", "is required")
	}
	c.ServiceName = cmpOr(c.ServiceName, ServiceNameDefault)
	if err := ValidateServiceName(c.ServiceName); err != nil {
		bad("ServiceName", "%v", err)
	}
	c.QueueGroup = cmpOr(c.QueueGroup, QueueGroupDefault)
	if err := ValidateQueueGroup(c.QueueGroup); err != nil {
		bad("QueueGroup", "%v", err)
	}
	for _, f := range []struct {
		name string
		v    *int
		def  int
	}{
		{"MaxConcurrent", &c.MaxConcurrent, MaxConcurrentDefault},
		{"StateConcurrent", &c.StateConcurrent, StateConcurrentDefault},
		{"MaintConcurrent", &c.MaintConcurrent, MaintConcurrentDefault},
		{"HealthConcurrent", &c.HealthConcurrent, HealthConcurrentDefault},
		{"MaxQueued", &c.MaxQueued, MaxQueuedDefault},
		{"MaxQueuedBytes", &c.MaxQueuedBytes, MaxQueuedBytesDefault},
		{"MaxRequestBytes", &c.MaxRequestBytes, MaxRequestBytesDefault},
	} {
		switch {
		case *f.v < 0:
			bad(f.name, "must not be negative (0 is the default, %d), got %d", f.def, *f.v)
		case *f.v == 0:
			*f.v = f.def
		}
	}
	for _, f := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"MaxTimeout", &c.MaxTimeout, MaxTimeoutDefault},
		{"DrainTimeout", &c.DrainTimeout, DrainTimeoutDefault},
		{"StreamCreditTimeout", &c.StreamCreditTimeout, StreamCreditTimeoutDefault},
	} {
		switch {
		case *f.v < 0:
			bad(f.name, "must not be negative (0 is the default, %s), got %s", f.def, *f.v)
		case *f.v == 0:
			*f.v = f.def
		}
	}
	switch {
	case c.DefaultTimeout < 0:
		bad("DefaultTimeout", "must not be negative (0 is the default, %s), got %s", DefaultTimeoutDefault, c.DefaultTimeout)
	case c.DefaultTimeout == 0:
		c.DefaultTimeout = min(DefaultTimeoutDefault, c.MaxTimeout)
	case c.DefaultTimeout > c.MaxTimeout:
		bad("DefaultTimeout", "%s is above MaxTimeout, %s", c.DefaultTimeout, c.MaxTimeout)
	}
	if len(c.TrustedReplyPrefixes) == 0 {
		c.TrustedReplyPrefixes = append([]string(nil), TrustedReplyPrefixesDefault...)
	}
	for _, p := range c.TrustedReplyPrefixes {
		if err := c.Subjects.ValidateReplyPrefix(p); err != nil {
			bad("TrustedReplyPrefixes", "%v", err)
		}
	}
	if len(errs) > 0 {
		return errors.New("worker: " + strings.Join(errs, "; "))
	}
	return nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

package config

import (
	"cmp"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/jeeves-avionics/dbworker/internal/subjects"
)

// Client holds what every dbworker program needs to reach NATS and to log:
// the worker and the publisher embed it.
type Client struct {
	NATSURL       string `envconfig:"NATS_URL" desc:"NATS server URL(s), comma separated"`
	NATSUser      string `envconfig:"NATS_USER" desc:"NATS user"`
	NATSPassword  string `envconfig:"NATS_PASSWORD" desc:"NATS password (never logged)"`
	NATSCredsFile string `envconfig:"NATS_CREDS" desc:"NATS credentials file"`
	SubjectPrefix string `envconfig:"SUBJECT_PREFIX" desc:"prefix of every subject, e.g. prod."`
	LogLevel      string `envconfig:"LOG_LEVEL" desc:"trace, debug, info, warn or error"`
	LogFormat     string `envconfig:"LOG_FORMAT" desc:"json or console"`

	// NATSInboxPrefix is where this program's answers come back: a broker
	// that gives each user an inbox of its own (the shipped nats-server.conf)
	// needs that user's, such as _INBOX_worker. Defaults to nats.go's _INBOX.
	NATSInboxPrefix string `envconfig:"NATS_INBOX_PREFIX" desc:"prefix of this connection's reply inboxes; the shipped nats-server.conf gives user U the prefix _INBOX_U"`
}

func (c *Client) validate(bad func(name, format string, args ...any)) {
	if c.NATSURL == "" {
		bad("NATS_URL", "must not be empty")
	}
	for _, u := range strings.Split(c.NATSURL, ",") {
		if err := checkNATSURL(strings.TrimSpace(u)); err != nil {
			bad("NATS_URL", "%v", err)
			break
		}
	}
	if _, err := subjects.New(c.SubjectPrefix); err != nil {
		bad("SUBJECT_PREFIX", "%v", err)
	}
	if err := subjects.ValidateInboxPrefix(c.NATSInboxPrefix); err != nil {
		bad("NATS_INBOX_PREFIX", "%v", err)
	}
	if _, err := zerolog.ParseLevel(strings.ToLower(c.LogLevel)); err != nil || c.LogLevel == "" {
		bad("LOG_LEVEL", "must be trace, debug, info, warn or error, got %q", c.LogLevel)
	}
	if c.LogFormat != "json" && c.LogFormat != "console" {
		bad("LOG_FORMAT", "must be json or console, got %q", c.LogFormat)
	}
}

// checkNATSURL checks one server URL of NATS_URL as nats.go will read it:
// host:port, or a URL with scheme nats, tls, ws or wss and a host.
func checkNATSURL(s string) error {
	if s == "" {
		return nil // "a,,b": nats.go skips empty entries
	}
	if !strings.Contains(s, "://") {
		s = "nats://" + s // nats.go's default scheme
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("must be URLs such as nats://host:4222, got an unparsable one (%v)", redactURLError(err))
	}
	switch u.Scheme {
	case "nats", "tls", "ws", "wss":
	default:
		return fmt.Errorf("scheme must be nats://, tls://, ws:// or wss://, got %q", u.Scheme+"://")
	}
	if u.Hostname() == "" {
		return fmt.Errorf("must name a host, such as nats://127.0.0.1:4222, got %q", RedactURL(s))
	}
	return nil
}

// Subjects returns the subject names under SUBJECT_PREFIX (validated).
func (c *Client) Subjects() subjects.Subjects {
	s, _ := subjects.New(c.SubjectPrefix)
	return s
}

// Logger returns a logger on stderr as LOG_LEVEL and LOG_FORMAT say.
func (c *Client) Logger() zerolog.Logger {
	level, _ := zerolog.ParseLevel(strings.ToLower(c.LogLevel))
	var l zerolog.Logger
	if c.LogFormat == "console" {
		l = zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: time.TimeOnly})
	} else {
		l = zerolog.New(os.Stderr)
	}
	return l.Level(level).With().Timestamp().Logger()
}

// ConnectNATS connects to url (NATS_URL unless another is given) as name,
// reconnecting forever and logging disconnections.
func (c *Client) ConnectNATS(name, url string, log zerolog.Logger) (*nats.Conn, error) {
	if url == "" {
		url = c.NATSURL
	}
	opts := []nats.Option{
		nats.Name(name),
		nats.CustomInboxPrefix(cmp.Or(c.NATSInboxPrefix, subjects.InboxPrefixDefault)),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn().Err(err).Msg("nats disconnected")
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info().Str("server", nc.ConnectedServerId()).Msg("nats reconnected")
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			ev := log.Error().Err(err)
			if sub != nil {
				ev = ev.Str("subject", sub.Subject)
			}
			ev.Msg("nats async error")
		}),
	}
	if c.NATSUser != "" {
		opts = append(opts, nats.UserInfo(c.NATSUser, c.NATSPassword))
	}
	if c.NATSCredsFile != "" {
		opts = append(opts, nats.UserCredentials(c.NATSCredsFile))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to nats %s: %w", RedactURL(url), err)
	}
	return nc, nil
}

// Streams holds the JetStream settings workers and publishers must agree on.
type Streams struct {
	JSReplicas           Replicas `envconfig:"JS_REPLICAS" desc:"replicas of DB_JOBS, DB_STATS and DB_VACUUM when this process creates them: auto (min(3, cluster size)) or 1 to 5"`
	JSUpdateStreams      bool     `envconfig:"JS_UPDATE_STREAMS" desc:"apply JS_REPLICAS (unless auto) and the limits below to streams that exist with other values; false: leave them, warn and export the difference"`
	ResultsMaxAge        Seconds  `envconfig:"RESULTS_MAX_AGE" desc:"how long DB_STATS and DB_VACUUM keep results"`
	ResultsMaxPerSubject int64    `envconfig:"RESULTS_MAX_PER_SUBJECT" desc:"results kept per table in DB_STATS and DB_VACUUM"`
	JobsDuplicateWindow  Seconds  `envconfig:"JOBS_DUPLICATE_WINDOW" desc:"DB_JOBS Nats-Msg-Id duplicate window"`
}

func (s *Streams) validate(bad func(name, format string, args ...any)) {
	if s.ResultsMaxAge.D() <= 0 {
		bad("RESULTS_MAX_AGE", "must be positive, got %s", s.ResultsMaxAge.D())
	}
	if s.ResultsMaxPerSubject < 1 {
		bad("RESULTS_MAX_PER_SUBJECT", "must be at least 1, got %d", s.ResultsMaxPerSubject)
	}
	if s.JobsDuplicateWindow.D() <= 0 {
		bad("JOBS_DUPLICATE_WINDOW", "must be positive, got %s", s.JobsDuplicateWindow.D())
	}
}

// Publisher is the publisher's configuration.
type Publisher struct {
	Client
	Streams
	SchedulesFile string `envconfig:"SCHEDULES_FILE" desc:"the schedules the daemon publishes"`
}

// LoadPublisher reads the publisher's configuration from the environment.
func LoadPublisher() (*Publisher, error) {
	p := PublisherDefaults()
	if err := process(&p); err != nil {
		return nil, err
	}
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...)))
	}
	p.Client.validate(bad)
	p.Streams.validate(bad)
	if err := joinLine(errs); err != nil {
		return nil, err
	}
	return &p, nil
}

// Package deploytest holds the tests of the files that ship for deployment
// (nats-server.conf, docker-compose.yml): each is loaded by the real parser
// of the tool that reads it and exercised with real services.
package deploytest

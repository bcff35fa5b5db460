package config

import (
	"strconv"

	"github.com/jeeves-avionics/dbworker/internal/maintenance"
)

// Replicas is JS_REPLICAS: "auto" (maintenance.ReplicasAuto, 0) or a number
// of replicas from 1 to maintenance.ReplicasMax.
type Replicas int

// Decode implements envconfig.Decoder.
func (r *Replicas) Decode(v string) error {
	if v == "auto" {
		*r = maintenance.ReplicasAuto
		return nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maintenance.ReplicasMax {
		return notReplicasError{}
	}
	*r = Replicas(n)
	return nil
}

// String writes r as the variable holds it.
func (r Replicas) String() string {
	if r == maintenance.ReplicasAuto {
		return "auto"
	}
	return strconv.Itoa(int(r))
}

// notReplicasError is the error of a value that is not a Replicas.
type notReplicasError struct{}

func (notReplicasError) Error() string { return "neither auto nor a number of replicas" }
func (notReplicasError) Accepts() string {
	return "auto or 1 to " + strconv.Itoa(maintenance.ReplicasMax)
}

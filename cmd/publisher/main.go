// Command publisher schedules maintenance jobs (db.stats, db.vacuum) onto the
// DB_JOBS JetStream work queue and offers one-shot commands for people.
//
// It is not built yet: the maintenance issue fills it. Until then it says so
// and exits non-zero, rather than pretend to schedule anything.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "publisher: not implemented yet; maintenance scheduling arrives with db.stats/db.vacuum")
	os.Exit(2)
}

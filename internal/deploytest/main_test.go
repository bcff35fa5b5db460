package deploytest

import (
	"testing"

	"github.com/jeeves-avionics/dbworker/internal/testenv"
)

func TestMain(m *testing.M) { testenv.VerifyNoLeaks(m) }

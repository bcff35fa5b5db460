package deploytest

import (
	"bufio"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// TestDockerignore: the build context leaves out secrets (.env) and build
// output (bin/, about 100 MB), but keeps .env.example.
func TestDockerignore(t *testing.T) {
	f, err := os.Open("../../.dockerignore")
	require.NoError(t, err, ".dockerignore exists")
	defer f.Close()
	var rules []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" && !strings.HasPrefix(line, "#") {
			rules = append(rules, line)
		}
	}
	require.NoError(t, sc.Err())
	require.Contains(t, rules, ".env")
	require.Contains(t, rules, "bin/")
	require.Contains(t, rules, "!.env.example")
}

// TestDockerfileBuildsWhatItShips: the image builds only the binaries it
// copies, not cmd/bench.
func TestDockerfileBuildsWhatItShips(t *testing.T) {
	b, err := os.ReadFile("../../Dockerfile")
	require.NoError(t, err)
	var build string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "RUN ") && strings.Contains(line, "go build") {
			build = line
		}
	}
	require.NotEmpty(t, build, "a go build step")
	require.NotContains(t, build, "./cmd/...", "no wildcard: it would build cmd/bench")
	require.NotContains(t, build, "bench")
	require.Contains(t, build, "./cmd/worker")
	require.Contains(t, build, "./cmd/publisher")
}

// TestComposeHasNoProjectName: Compose v1 (1.29) refuses a top-level name.
func TestComposeHasNoProjectName(t *testing.T) {
	b, err := os.ReadFile("../../docker-compose.yml")
	require.NoError(t, err)
	var top map[string]any
	require.NoError(t, yaml.Unmarshal(b, &top))
	require.NotContains(t, top, "name")
}

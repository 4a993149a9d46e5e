package cli_test

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/internal/cli"
)

func TestFlagSet_CommandLineBeatsEnvironmentBeatsDefault(t *testing.T) {
	t.Setenv("X_LISTEN", ":9999")
	t.Setenv("X_RATE", "2.5")
	fs := cli.NewFlagSet("x", io.Discard)
	var (
		listen string
		rate   float64
		burst  int
		grace  time.Duration
	)
	fs.StringVar(&listen, "listen", "X_LISTEN", ":8080", "address")
	fs.Float64Var(&rate, "rate", "X_RATE", 100, "rate")
	fs.IntVar(&burst, "burst", "X_BURST", 1000, "burst")
	fs.DurationVar(&grace, "grace", "X_GRACE", time.Second, "grace")
	require.NoError(t, fs.Parse([]string{"--rate", "7"}))
	assert.Equal(t, ":9999", listen, "environment over default")
	assert.Equal(t, 7.0, rate, "command line over environment")
	assert.Equal(t, 1000, burst, "default when neither is set")
	assert.Equal(t, time.Second, grace)
}

func TestFlagSet_RejectsUnparsableEnvironmentNamingTheVariable(t *testing.T) {
	t.Setenv("X_BURST", "lots")
	fs := cli.NewFlagSet("x", io.Discard)
	var burst int
	fs.IntVar(&burst, "burst", "X_BURST", 1000, "burst")
	require.ErrorContains(t, fs.Parse(nil), "X_BURST")
}

func TestFlagSet_RejectsStrayArguments(t *testing.T) {
	fs := cli.NewFlagSet("x", io.Discard)
	require.ErrorContains(t, fs.Parse([]string{"extra"}), "unexpected arguments: extra")
}

func TestFlagSet_HelpNamesEachVariable(t *testing.T) {
	var out bytes.Buffer
	fs := cli.NewFlagSet("x", &out)
	var insecure bool
	fs.BoolVar(&insecure, "insecure", "X_INSECURE", false, "allow http")
	fs.PrintDefaults()
	assert.Contains(t, out.String(), "allow http (env X_INSECURE)")
}

func TestNewLogger_RejectsUnknownLevelAndFormat(t *testing.T) {
	_, err := cli.NewLogger(io.Discard, "loud", "json", "x")
	require.Error(t, err)
	_, err = cli.NewLogger(io.Discard, "info", "xml", "x")
	require.Error(t, err)
	log, err := cli.NewLogger(io.Discard, "info", "console", "x")
	require.NoError(t, err)
	log.Info().Msg("works")
}

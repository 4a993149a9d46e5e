// Package cli holds what both programs' main packages share: flags that fall
// back to environment variables, and the logger set-up. It knows nothing of
// the agent or the central.
package cli

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// FlagSet is a flag.FlagSet whose flags each have an environment variable:
// the command line wins, then the environment, then the default. --help
// lists every flag with its variable.
type FlagSet struct {
	*flag.FlagSet
	env    map[string]string // flag name → environment variable
	errors []error
}

// NewFlagSet returns a FlagSet that reports errors instead of exiting.
func NewFlagSet(name string, out io.Writer) *FlagSet {
	fs := &FlagSet{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError), env: map[string]string{}}
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage of %s:\n", name)
		fs.PrintDefaults()
	}
	return fs
}

func (fs *FlagSet) lookup(env string) (string, bool) {
	v, ok := os.LookupEnv(env)
	return v, ok && v != ""
}

func (fs *FlagSet) usage(name, env, usage string) string {
	fs.env[name] = env
	return fmt.Sprintf("%s (env %s)", usage, env)
}

// String defines a string flag backed by env.
func (fs *FlagSet) String(name, env, def, usage string) *string {
	if v, ok := fs.lookup(env); ok {
		def = v
	}
	return fs.FlagSet.String(name, def, fs.usage(name, env, usage))
}

// Int defines an int flag backed by env.
func (fs *FlagSet) Int(name, env string, def int, usage string) *int {
	if v, ok := fs.lookup(env); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			fs.errors = append(fs.errors, fmt.Errorf("%s=%q: not an integer", env, v))
		}
		def = n
	}
	return fs.FlagSet.Int(name, def, fs.usage(name, env, usage))
}

// Int64 defines an int64 flag backed by env.
func (fs *FlagSet) Int64(name, env string, def int64, usage string) *int64 {
	if v, ok := fs.lookup(env); ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			fs.errors = append(fs.errors, fmt.Errorf("%s=%q: not an integer", env, v))
		}
		def = n
	}
	return fs.FlagSet.Int64(name, def, fs.usage(name, env, usage))
}

// Float64 defines a float flag backed by env.
func (fs *FlagSet) Float64(name, env string, def float64, usage string) *float64 {
	if v, ok := fs.lookup(env); ok {
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			fs.errors = append(fs.errors, fmt.Errorf("%s=%q: not a number", env, v))
		}
		def = n
	}
	return fs.FlagSet.Float64(name, def, fs.usage(name, env, usage))
}

// Duration defines a duration flag backed by env.
func (fs *FlagSet) Duration(name, env string, def time.Duration, usage string) *time.Duration {
	if v, ok := fs.lookup(env); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			fs.errors = append(fs.errors, fmt.Errorf("%s=%q: not a duration", env, v))
		}
		def = d
	}
	return fs.FlagSet.Duration(name, def, fs.usage(name, env, usage))
}

// Bool defines a boolean flag backed by env.
func (fs *FlagSet) Bool(name, env string, def bool, usage string) *bool {
	if v, ok := fs.lookup(env); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			fs.errors = append(fs.errors, fmt.Errorf("%s=%q: not a boolean", env, v))
		}
		def = b
	}
	return fs.FlagSet.Bool(name, def, fs.usage(name, env, usage))
}

// Parse parses args and reports the first bad environment variable too.
func (fs *FlagSet) Parse(args []string) error {
	if err := fs.FlagSet.Parse(args); err != nil {
		return err
	}
	if len(fs.errors) > 0 {
		return fs.errors[0]
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	return nil
}

// Env returns the environment variable of a flag, for messages.
func (fs *FlagSet) Env(name string) string { return fs.env[name] }

// NewLogger returns a zerolog logger writing JSON, or human-readable lines
// when format is "console".
func NewLogger(out io.Writer, level, format, component string) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		return zerolog.Logger{}, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	switch format {
	case "json":
	case "console":
		out = zerolog.ConsoleWriter{Out: out, TimeFormat: "15:04:05.000"}
	default:
		return zerolog.Logger{}, fmt.Errorf("log format %q: want json or console", format)
	}
	// zerolog keeps the time format in a package variable; sub-second
	// timestamps are what an operator correlating requests needs.
	zerolog.TimeFieldFormat = time.RFC3339Nano
	return zerolog.New(out).Level(lvl).With().Timestamp().Str("component", component).Logger(), nil
}

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

// define binds p to the flag name, defaulting to env's value when set (a
// value parse refuses is reported by Parse, naming env), else to def. An
// empty env binds the flag alone.
func define[T any](fs *FlagSet, p *T, name, env string, def T, usage string,
	parse func(string) (T, error), what string, bind func(*T, string, T, string)) {
	if env == "" { // a flag of one invocation, e.g. a subcommand's argument
		bind(p, name, def, usage)
		return
	}
	if v, ok := os.LookupEnv(env); ok && v != "" {
		if x, err := parse(v); err != nil {
			fs.errors = append(fs.errors, fmt.Errorf("%s=%q: not %s", env, v, what))
		} else {
			def = x
		}
	}
	fs.env[name] = env
	bind(p, name, def, fmt.Sprintf("%s (env %s)", usage, env))
}

// StringVar defines a string flag backed by env.
func (fs *FlagSet) StringVar(p *string, name, env, def, usage string) {
	define(fs, p, name, env, def, usage, func(v string) (string, error) { return v, nil }, "a string", fs.FlagSet.StringVar)
}

// IntVar defines an int flag backed by env.
func (fs *FlagSet) IntVar(p *int, name, env string, def int, usage string) {
	define(fs, p, name, env, def, usage, strconv.Atoi, "an integer", fs.FlagSet.IntVar)
}

// Int64Var defines an int64 flag backed by env.
func (fs *FlagSet) Int64Var(p *int64, name, env string, def int64, usage string) {
	parse := func(v string) (int64, error) { return strconv.ParseInt(v, 10, 64) }
	define(fs, p, name, env, def, usage, parse, "an integer", fs.FlagSet.Int64Var)
}

// Float64Var defines a float flag backed by env.
func (fs *FlagSet) Float64Var(p *float64, name, env string, def float64, usage string) {
	parse := func(v string) (float64, error) { return strconv.ParseFloat(v, 64) }
	define(fs, p, name, env, def, usage, parse, "a number", fs.FlagSet.Float64Var)
}

// DurationVar defines a duration flag backed by env.
func (fs *FlagSet) DurationVar(p *time.Duration, name, env string, def time.Duration, usage string) {
	define(fs, p, name, env, def, usage, time.ParseDuration, "a duration", fs.FlagSet.DurationVar)
}

// BoolVar defines a boolean flag backed by env.
func (fs *FlagSet) BoolVar(p *bool, name, env string, def bool, usage string) {
	define(fs, p, name, env, def, usage, strconv.ParseBool, "a boolean", fs.FlagSet.BoolVar)
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

// Package flags is the command-line syntax Weir shares with Thanos Receive. Thanos parses its flags
// with kingpin (--flag=value, --flag value, --[no-]bool, repeatable flags); so does Weir, so that the
// arguments of a Thanos Receive StatefulSet start Weir unchanged.
//
// Each package registers the flags of its own config next to it (a RegisterFlags method taking a
// Registry) and checks them in its Validate, naming the flag at fault; cmd/weir only assembles them.
// This package adds the value kinds Thanos' flags take and kingpin lacks: Prometheus durations (1d,
// 2w) and binary sizes (512MiB).
package flags

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/alecthomas/units"
	"github.com/prometheus/common/model"
)

// Registry is where flags are registered: the `weir receive` command, or a test's own application.
// *kingpin.Application and *kingpin.CmdClause both are one.
type Registry interface {
	Flag(name, help string) *kingpin.FlagClause
}

// Duration registers a duration in Prometheus' notation (which knows days and weeks, as Thanos' flags
// do); *d holds the default.
func Duration(f *kingpin.FlagClause, d *time.Duration) {
	f.Default(model.Duration(*d).String()).SetValue((*durationValue)(d))
}

type durationValue time.Duration

func (d *durationValue) Set(s string) error {
	v, err := model.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = durationValue(v)
	return nil
}

func (d *durationValue) String() string { return model.Duration(*d).String() }

// Bytes registers a positive size with binary units (KiB, MiB, GiB); *n holds the default.
func Bytes(f *kingpin.FlagClause, n *int64) {
	f.Default(units.Base2Bytes(*n).String()).SetValue((*bytesValue)(n))
}

type bytesValue int64

func (b *bytesValue) Set(s string) error {
	v, err := units.ParseBase2Bytes(s)
	if err != nil {
		return err
	}
	if v <= 0 {
		return errors.New("must be positive")
	}
	*b = bytesValue(v)
	return nil
}

func (b *bytesValue) String() string { return units.Base2Bytes(*b).String() }

// Func registers a flag whose value set parses; def is its default, shown in --help and parsed like
// any other value (empty: none).
func Func(f *kingpin.FlagClause, def string, set func(string) error) {
	if def != "" {
		f = f.Default(def)
	}
	f.SetValue(funcValue{set: set, def: def})
}

type funcValue struct {
	set func(string) error
	def string
}

func (v funcValue) Set(s string) error { return v.set(s) }
func (v funcValue) String() string     { return v.def }

// Repeated registers a flag that may be given several times; set is called once per value.
func Repeated(f *kingpin.FlagClause, set func(string) error) {
	f.SetValue(repeatedValue{set})
}

type repeatedValue struct{ set func(string) error }

func (v repeatedValue) Set(s string) error { return v.set(s) }
func (v repeatedValue) String() string     { return "" }
func (v repeatedValue) IsCumulative() bool { return true }

// Named prefixes err with the flag it is about, as every start-up error should.
func Named(flag string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("--%s: %w", flag, err)
}

// BoolValues rewrites --name=true and --name=false, for the switches of app and its commands, into
// kingpin's --name and --no-name. Thanos accepts only the latter; earlier Weir releases (Go's flag
// package) the former, which deployments already pass. Any other value is left for kingpin to refuse.
func BoolValues(app *kingpin.Application, args []string) []string {
	return boolValues(flagKinds(app), args)
}

func boolValues(kinds map[string]flagKind, args []string) []string {
	out := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		name, value, ok := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if ok && strings.HasPrefix(a, "--") && kinds[name] == kindSwitch {
			if b, err := strconv.ParseBool(value); err == nil {
				if b {
					a = "--" + name
				} else {
					a = "--no-" + name
				}
			}
		}
		out = append(out, a)
	}
	return out
}

// LastWins drops all but the last occurrence of every flag of app that takes one value (kingpin
// refuses a repeated one): a flag given twice takes its last value, as with Go's flag package, which
// earlier Weir releases used, so that arguments appended to a chart's (extraArgs) override them.
// Repeatable flags keep every value.
func LastWins(app *kingpin.Application, args []string) []string {
	return lastWins(flagKinds(app), args)
}

func lastWins(kinds map[string]flagKind, args []string) []string {
	type occurrence struct{ start, n int } // args[start:start+n] is one occurrence
	var seen []struct {
		name string
		occurrence
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		if !strings.HasPrefix(a, "--") {
			continue
		}
		name, _, hasValue := strings.Cut(a[2:], "=")
		kind := kinds[name]
		if kind == kindUnknown {
			if n, ok := strings.CutPrefix(name, "no-"); ok && kinds[n] == kindSwitch {
				name, kind = n, kindSwitch
			}
		}
		switch kind {
		case kindSwitch:
			seen = append(seen, struct {
				name string
				occurrence
			}{name, occurrence{i, 1}})
		case kindValue:
			n := 1
			if !hasValue && i+1 < len(args) {
				n = 2
			}
			seen = append(seen, struct {
				name string
				occurrence
			}{name, occurrence{i, n}})
			i += n - 1
		}
	}
	last := map[string]int{}
	for k, o := range seen {
		last[o.name] = k
	}
	drop := map[int]bool{}
	for k, o := range seen {
		if last[o.name] != k {
			for j := range o.n {
				drop[o.start+j] = true
			}
		}
	}
	if len(drop) == 0 {
		return args
	}
	out := make([]string, 0, len(args)-len(drop))
	for i, a := range args {
		if !drop[i] {
			out = append(out, a)
		}
	}
	return out
}

type flagKind uint8

const (
	kindUnknown    flagKind = iota
	kindSwitch              // --[no-]name
	kindValue               // --name=value or --name value, once
	kindRepeatable          // --name=value, any number of times
)

func isCumulative(v kingpin.Value) bool {
	c, ok := v.(interface{ IsCumulative() bool })
	return ok && c.IsCumulative()
}

// flagKinds maps the long names of the flags of app and its commands to their kinds.
func flagKinds(app *kingpin.Application) map[string]flagKind {
	kinds := map[string]flagKind{}
	m := app.Model()
	add := func(g *kingpin.FlagGroupModel) {
		for _, f := range g.Flags {
			switch {
			case f.IsBoolFlag():
				kinds[f.Name] = kindSwitch
			case isCumulative(f.Value):
				kinds[f.Name] = kindRepeatable
			default:
				kinds[f.Name] = kindValue
			}
		}
	}
	add(m.FlagGroupModel)
	for _, c := range m.Commands {
		add(c.FlagGroupModel)
	}
	return kinds
}

// Parse parses args into app's flags and returns the selected command. Unlike kingpin's own Parse, a
// value that does not parse is reported with its flag's name (kingpin names only the value),
// --name=true|false is accepted for switches (BoolValues), and a flag given twice takes its last
// value (LastWins).
func Parse(app *kingpin.Application, args []string) (string, error) {
	kinds := flagKinds(app)
	args = lastWins(kinds, boolValues(kinds, args))
	cmd, err := app.Parse(args)
	if err == nil {
		return cmd, nil
	}
	// Find the flag whose value failed: parsing again without setting anything gives the flags and
	// their values in order, and the first whose value fails the same way is it.
	if ctx, cerr := app.ParseContext(args); cerr == nil {
		for _, e := range ctx.Elements {
			f, ok := e.Clause.(*kingpin.FlagClause)
			if !ok || e.Value == nil {
				continue
			}
			m := f.Model()
			if serr := m.Value.Set(*e.Value); serr != nil && serr.Error() == err.Error() {
				return "", fmt.Errorf("--%s: %w", m.Name, err)
			}
		}
	}
	return "", err
}

package flags

import (
	"testing"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/stretchr/testify/require"
)

type testFlags struct {
	d      time.Duration
	n      int64
	on     bool
	labels []string
}

func newApp(f *testFlags) *kingpin.Application {
	app := kingpin.New("test", "")
	app.Terminate(nil)
	f.d, f.n = time.Hour, 16<<20
	cmd := app.Command("run", "").Default()
	Duration(cmd.Flag("retention", ""), &f.d)
	Bytes(cmd.Flag("max-size", ""), &f.n)
	cmd.Flag("compress", "").Default("true").BoolVar(&f.on)
	Repeated(cmd.Flag("label", ""), func(s string) error { f.labels = append(f.labels, s); return nil })
	return app
}

func TestParseThanosSyntax(t *testing.T) {
	var f testFlags
	app := newApp(&f)
	_, err := Parse(app, nil)
	require.NoError(t, err)
	require.Equal(t, time.Hour, f.d, "the default")
	require.Equal(t, int64(16<<20), f.n)
	require.True(t, f.on)

	_, err = Parse(app, []string{"--retention", "2d", "--max-size=1GiB", "--no-compress", "--label=a", "--label", "b"})
	require.NoError(t, err)
	require.Equal(t, 48*time.Hour, f.d, "Prometheus durations know days")
	require.Equal(t, int64(1<<30), f.n)
	require.False(t, f.on)
	require.Equal(t, []string{"a", "b"}, f.labels)
}

// TestParseBoolValues: --switch=true|false, which Go's flag package took, still works.
func TestParseBoolValues(t *testing.T) {
	for _, tc := range []struct {
		arg  string
		want bool
	}{{"--compress=false", false}, {"--compress=true", true}, {"--compress=0", false}, {"--compress", true}, {"--no-compress", false}} {
		var f testFlags
		_, err := Parse(newApp(&f), []string{tc.arg})
		require.NoError(t, err, tc.arg)
		require.Equal(t, tc.want, f.on, tc.arg)
	}
	// Only switches are rewritten, and only a boolean value: the rest is kingpin's to refuse.
	require.Equal(t, []string{"--retention=false", "--compress=maybe", "--", "--compress=false"},
		BoolValues(newApp(&testFlags{}), []string{"--retention=false", "--compress=maybe", "--", "--compress=false"}))
}

// TestParseNamesTheFlag: a value that does not parse is reported with its flag (kingpin names only
// the value).
func TestParseNamesTheFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--retention=soon"}, `--retention: not a valid duration string: "soon"`},
		{[]string{"--max-size=0"}, "--max-size: must be positive"},
		{[]string{"--max-size=-1KiB"}, "--max-size: "},
		{[]string{"--label=a", "--max-size=lots"}, "--max-size: "},
		{[]string{"--compress=maybe"}, "unexpected maybe"},
		{[]string{"--nope"}, "unknown long flag '--nope'"},
	} {
		var f testFlags
		_, err := Parse(newApp(&f), tc.args)
		require.ErrorContains(t, err, tc.want, "%v", tc.args)
	}
}

// TestParseLastWins: a flag given twice takes its last value, in either syntax; repeatable flags
// keep every value.
func TestParseLastWins(t *testing.T) {
	var f testFlags
	_, err := Parse(newApp(&f), []string{"--retention=1d", "--label=a", "--no-compress", "--retention", "2d", "--label", "b", "--compress=true", "--max-size", "1KiB", "--max-size=2KiB"})
	require.NoError(t, err)
	require.Equal(t, 48*time.Hour, f.d)
	require.Equal(t, []string{"a", "b"}, f.labels)
	require.True(t, f.on)
	require.Equal(t, int64(2<<10), f.n)
	require.Equal(t, []string{"--a", "--retention=2", "x"}, LastWins(newApp(&testFlags{}), []string{"--a", "--retention=1", "--retention=2", "x"}))
}

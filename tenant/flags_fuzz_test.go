package tenant

import (
	"strconv"
	"testing"

	"github.com/prometheus/common/model"
)

// FuzzParseExternalLabel: --label name="value" is the one configuration syntax parsed by our own code (the
// objstore YAML goes to Thanos' client factory whole). Any input is refused with an error or gives a
// valid label name with a non-empty value, and the label printed back as name="value" parses to itself.
// Seed corpus: testdata/fuzz/FuzzParseExternalLabel.
func FuzzParseExternalLabel(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseExternalLabel(s)
		if err != nil {
			return
		}
		if !model.LegacyValidation.IsValidLabelName(l.Name) {
			t.Fatalf("accepted the label name %q", l.Name)
		}
		if l.Value == "" {
			t.Fatalf("accepted an empty value in %q", s)
		}
		back, err := ParseExternalLabel(l.Name + "=" + strconv.Quote(l.Value))
		if err != nil {
			t.Fatalf("the accepted label %s=%q does not parse back: %v", l.Name, l.Value, err)
		}
		if back != l {
			t.Fatalf("round trip changed %v into %v", l, back)
		}
	})
}

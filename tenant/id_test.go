package tenant

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestValidateID(t *testing.T) {
	for _, tc := range []struct {
		id string
		ok bool
	}{
		{"team-a", true},
		{"Team_A.prod-1", true},
		{"default-tenant", true},
		{strings.Repeat("a", MaxIDLength), true},
		{"", false},
		{".", false},
		{"..", false},
		{"../etc", false},
		{"a/b", false},
		{`a\b`, false},
		{"a b", false},
		{"tenant\x00", false},
		{"ténant", false},
		{strings.Repeat("a", MaxIDLength+1), false},
	} {
		err := ValidateID(tc.id)
		if tc.ok {
			require.NoError(t, err, "%q", tc.id)
			continue
		}
		require.Error(t, err, "%q", tc.id)
		require.True(t, errors.Is(err, ErrInvalidID), "%q: %v", tc.id, err)
	}
}

package tenant

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
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

// FuzzValidateID checks that every ID ValidateID accepts is a single, safe path element under the data
// directory, and that it never accepts what its rules forbid.
func FuzzValidateID(f *testing.F) {
	for _, seed := range []string{
		"team-a", "default-tenant", "Team_A.prod-1", "", ".", "..", "...", "../etc", "a/b", `a\b`, "a b",
		"tenant\x00", "ténant", "..a", "a..", strings.Repeat("a", MaxIDLength), strings.Repeat("a", MaxIDLength+1),
		"%2e%2e", "~root", "a\nb", "\u202e",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, id string) {
		err := ValidateID(id)
		if err != nil {
			require.ErrorIs(t, err, ErrInvalidID)
			return
		}
		require.NotEmpty(t, id)
		require.LessOrEqual(t, len(id), MaxIDLength)
		require.NotEqual(t, ".", id)
		require.NotEqual(t, "..", id)
		require.Equal(t, id, filepath.Base(id), "a valid ID is one path element")
		require.Equal(t, filepath.Join("/data", id), filepath.Clean("/data/"+id))
		for i := 0; i < len(id); i++ {
			require.True(t, isIDByte(id[i]), "byte %q", id[i])
		}
	})
}

func TestFromRequest(t *testing.T) {
	req := func(values ...string) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/api/v1/receive", nil)
		for _, v := range values {
			r.Header.Add(DefaultHeader, v)
		}
		return r
	}
	for _, tc := range []struct {
		name     string
		header   []string
		identity string // "": no identity (FromRequest)
		want     string
		wantErr  error
	}{
		{name: "no header", want: DefaultID},
		{name: "header", header: []string{"team-a"}, want: "team-a"},
		{name: "empty header", header: []string{""}, wantErr: ErrInvalidID},
		{name: "header twice", header: []string{"a", "b"}, wantErr: ErrInvalidID},
		{name: "traversal", header: []string{".."}, wantErr: ErrInvalidID},
		{name: "identity, no header", identity: "team-a", want: "team-a"},
		{name: "identity, same header", identity: "team-a", header: []string{"team-a"}, want: "team-a"},
		{name: "identity, other header", identity: "team-a", header: []string{"team-b"}, wantErr: ErrOtherTenant},
		{name: "identity, default tenant in header", identity: "team-a", header: []string{DefaultID}, wantErr: ErrOtherTenant},
		{name: "identity, invalid header", identity: "team-a", header: []string{"../x"}, wantErr: ErrInvalidID},
		{name: "invalid identity", identity: "a/b", wantErr: ErrInvalidID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got string
			var err error
			if tc.identity == "" {
				got, err = FromRequest(req(tc.header...), DefaultHeader, DefaultID)
			} else {
				got, err = FromRequestAs(req(tc.header...), DefaultHeader, tc.identity)
			}
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

package watch

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRefusals(t *testing.T) {
	var r Refusals
	require.NoError(t, r.Err())
	bad := errors.New("bad")
	require.True(t, r.Refused("content 1", bad), "a new failure")
	require.False(t, r.Refused("content 1", bad), "the same file again")
	require.ErrorIs(t, r.Err(), bad)
	require.True(t, r.Refused("content 2", bad), "another bad file")
	r.Loaded()
	require.NoError(t, r.Err())
	require.True(t, r.Refused("content 2", bad), "bad again after a good load: reported again")
}

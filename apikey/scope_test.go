package apikey

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestValidateScopes(t *testing.T) {
	for _, empty := range [][]string{nil, {}} {
		_, err := ValidateScopes(Server, empty)
		assert.ErrorIs(t, err, ErrScopesRequired, "no scopes never means full access: %#v", empty)
	}
	got, err := ValidateScopes(Server, []string{AllScopes})
	require.NoError(t, err)
	assert.Equal(t, []string{AllScopes}, got, "full access is the explicit scope")
	got, err = ValidateScopes(Server, []string{"invoices:read", "customers:write", "invoices:read"})
	require.NoError(t, err)
	assert.Equal(t, []string{"customers:write", "invoices:read"}, got, "sorted, no duplicates")
	got, err = ValidateScopes(Server, []string{"customers:read", "*"})
	require.NoError(t, err)
	assert.Equal(t, []string{AllScopes}, got)
	got, err = ValidateScopes(Client, nil)
	require.NoError(t, err)
	assert.Empty(t, got)

	for _, bad := range []string{"", "customers", "customers:delete", ":read", "Customers:read", "a b:read", "customers:write:x"} {
		_, err := ValidateScopes(Server, []string{bad})
		assert.ErrorIs(t, err, ErrInvalidScope, bad)
	}
	_, err = ValidateScopes(Client, []string{"customers:read"})
	assert.ErrorIs(t, err, ErrInvalidScope, "publishable keys carry no scopes")
	assert.ErrorIs(t, ValidateScope("*"), ErrInvalidScope, "a route requires a concrete scope")
	assert.NoError(t, ValidateScope("customers:read"))
}

func TestHasScope(t *testing.T) {
	tests := []struct {
		scopes   []string
		required string
		want     bool
	}{
		{[]string{AllScopes}, "customers:write", true},
		{[]string{"customers:write"}, "customers:write", true},
		{[]string{"customers:write"}, "customers:read", true},
		{[]string{"customers:read"}, "customers:write", false},
		{[]string{"customers:read"}, "customers:read", true},
		{[]string{"customers:write"}, "subscriptions:read", false},
		{[]string{"xcustomers:write"}, "customers:read", false},
		{[]string{"customers:writex"}, "customers:read", false},
		{nil, "customers:read", false},
		{nil, "", true},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, HasScope(tt.scopes, tt.required), "%v has %q", tt.scopes, tt.required)
	}
}

func TestValidateEnvironment(t *testing.T) {
	for _, ok := range []string{"production", "staging", "development", "eu-west_2", "a"} {
		assert.NoError(t, ValidateEnvironment(ok), ok)
	}
	for _, bad := range []string{"", "Production", "1prod", "prod env", "prod/x", "ä", "a23456789012345678901234567890123"} {
		assert.ErrorIs(t, ValidateEnvironment(bad), ErrInvalidEnvironment, bad)
	}
}

package apikey

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"
)

// Accounts are the embedding service's customers (tenants): each has its
// own environments, keys, allowed origins and members, and nothing of one
// account is visible to, or usable by, another. An account is named by the
// service's own customer id; environments come into being in an account
// when they are bootstrapped there.
const (
	// DefaultAccount is the account of single-tenant services, and of an
	// Actor whose Account is empty: a service with one set of environments
	// never has to name an account.
	DefaultAccount = "default"
	// AnyAccount, as an Actor's Account, is an operator acting across
	// accounts (the service's own back office, an operator CLI), said
	// explicitly: key ids are found in every account, and Accounts lists
	// them. Calls that name an environment still need a real account.
	AnyAccount = "*"
)

// MaxAccountLength bounds an account id, in bytes.
const MaxAccountLength = 64

// ValidateAccount checks an account id: 1 to 64 characters of
// [A-Za-z0-9._:@-], starting with a letter or a digit, as customer ids of
// most services are (UUIDs, "cus_123", "acme.io"). Errors wrap
// ErrInvalidAccount and never repeat the id.
func ValidateAccount(id string) error {
	if id == "" || len(id) > MaxAccountLength || !isAlnum(id[0]) {
		return fmt.Errorf("%w: want 1-%d characters of [A-Za-z0-9._:@-], starting with a letter or digit", ErrInvalidAccount, MaxAccountLength)
	}
	for i := 1; i < len(id); i++ {
		if c := id[i]; !isAlnum(c) && !strings.ContainsRune("._:@-", rune(c)) {
			return fmt.Errorf("%w: want 1-%d characters of [A-Za-z0-9._:@-], starting with a letter or digit", ErrInvalidAccount, MaxAccountLength)
		}
	}
	return nil
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// Limits of a key's owner and metadata, which travel with every request's
// Identity: small, bounded and never a secret.
const (
	MaxOwnerLength       = 128 // bytes
	MaxMetadataEntries   = 16
	MaxMetadataKeyLength = 40  // bytes, [a-z0-9_.-], starting with a letter
	MaxMetadataValueLen  = 256 // bytes of printable UTF-8
)

// ValidateOwner checks whom a key is issued to: empty (nobody named), or up
// to MaxOwnerLength bytes of printable UTF-8 that do not look like a key.
// Errors wrap ErrInvalidMetadata and never repeat the owner.
func ValidateOwner(owner string) error {
	if len(owner) > MaxOwnerLength {
		return fmt.Errorf("%w: owner longer than %d bytes", ErrInvalidMetadata, MaxOwnerLength)
	}
	return checkText("owner", owner)
}

// ValidateMetadata checks a key's metadata and returns a copy of it (nil
// when empty): at most MaxMetadataEntries entries, names of 1 to
// MaxMetadataKeyLength characters of [a-z0-9_.-] starting with a letter,
// values of at most MaxMetadataValueLen bytes of printable UTF-8. A value
// that holds something shaped like an API key is refused: metadata is
// shown to every role and travels with every request. Errors wrap
// ErrInvalidMetadata and never repeat the input.
func ValidateMetadata(md map[string]string) (map[string]string, error) {
	if len(md) == 0 {
		return nil, nil
	}
	if len(md) > MaxMetadataEntries {
		return nil, fmt.Errorf("%w: more than %d entries", ErrInvalidMetadata, MaxMetadataEntries)
	}
	for _, name := range slices.Sorted(maps.Keys(md)) {
		if !validMetadataName(name) {
			return nil, fmt.Errorf("%w: an entry name is not 1-%d characters of [a-z0-9_.-] starting with a letter", ErrInvalidMetadata, MaxMetadataKeyLength)
		}
		value := md[name]
		if len(value) > MaxMetadataValueLen {
			return nil, fmt.Errorf("%w: the value of %s is longer than %d bytes", ErrInvalidMetadata, name, MaxMetadataValueLen)
		}
		if err := checkText("the value of "+name, value); err != nil {
			return nil, err
		}
	}
	return maps.Clone(md), nil
}

func validMetadataName(name string) bool {
	if name == "" || len(name) > MaxMetadataKeyLength || name[0] < 'a' || name[0] > 'z' {
		return false
	}
	for i := 1; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// checkText refuses text that is not printable UTF-8 or that holds
// something shaped like a key (a key's secret must never be stored in
// clear, even by mistake).
func checkText(what, s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s is not UTF-8", ErrInvalidMetadata, what)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: %s holds a control character", ErrInvalidMetadata, what)
		}
	}
	if looksLikeKey(s) {
		return fmt.Errorf("%w: %s looks like an API key; never store a key in clear", ErrInvalidMetadata, what)
	}
	return nil
}

// looksLikeKey reports whether s holds a keystile key, or the secret part
// of one: an underscore followed by 40 or more base62 characters.
func looksLikeKey(s string) bool {
	if KeyRegexp.MatchString(s) {
		return true
	}
	run := -1 // base62 characters since the last '_', or -1 before any
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '_':
			run = 0
		case run >= 0 && isBase62[s[i]]:
			if run++; run >= 40 {
				return true
			}
		default:
			run = -1
		}
	}
	return false
}

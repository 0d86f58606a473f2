package apikey

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode"
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
	// them. Calls that name an environment still need a real account
	// (Manager.Import, an operator's act, names it in its request).
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

// MaxNameLength bounds a key's name, in bytes.
const MaxNameLength = 200

// ValidateName checks a key's name, a label for people: empty, or up to
// MaxNameLength bytes of printable UTF-8 (letters, marks, numbers,
// punctuation, symbols and spaces; no control, format or invisible
// character) that hold nothing from which a key could be rebuilt: no run
// of 40 or more characters of [0-9A-Za-z] with letters of both cases,
// unless it is a hexadecimal number. Owners and metadata values are checked
// the same way. Errors wrap ErrInvalidName and never repeat the name.
func ValidateName(name string) error {
	if len(name) > MaxNameLength {
		return fmt.Errorf("%w: name longer than %d bytes", ErrInvalidName, MaxNameLength)
	}
	return checkText(ErrInvalidName, "name", name)
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
// to MaxOwnerLength bytes of printable UTF-8 that hold no key (see
// ValidateName for what both refuse).
// Errors wrap ErrInvalidMetadata and never repeat the owner.
func ValidateOwner(owner string) error {
	if len(owner) > MaxOwnerLength {
		return fmt.Errorf("%w: owner longer than %d bytes", ErrInvalidMetadata, MaxOwnerLength)
	}
	return checkText(ErrInvalidMetadata, "owner", owner)
}

// ValidateMetadata checks a key's metadata and returns a copy of it (nil
// when empty): at most MaxMetadataEntries entries, names of 1 to
// MaxMetadataKeyLength characters of [a-z0-9_.-] starting with a letter,
// values of at most MaxMetadataValueLen bytes of printable UTF-8. A value
// that holds a key or its secret is refused (see ValidateName): metadata is
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
		if err := checkText(ErrInvalidMetadata, "the value of "+name, value); err != nil {
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

// checkText refuses, with err, text that is not printable UTF-8 (a
// control or format character, a line or paragraph separator, a private or
// unassigned code point) or that holds a key or its secret (see
// looksLikeKey). Errors name the field (what), never the text.
func checkText(err error, what, s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s is not UTF-8", err, what)
	}
	for _, r := range s {
		if !unicode.IsGraphic(r) {
			return fmt.Errorf("%w: %s holds a control or invisible character", err, what)
		}
	}
	if looksLikeKey(s) {
		return fmt.Errorf("%w: %s looks like it holds an API key or its secret; never store a key in clear", err, what)
	}
	return nil
}

// minSecretRun is the shortest run of [0-9A-Za-z] that looksLikeKey takes
// for a secret: SecretLength less 3, so that a secret cut short by a few
// characters, which a few thousand guesses complete, counts too.
const minSecretRun = SecretLength - 3

// looksLikeKey reports whether s holds a value from which a key could be
// rebuilt: a run of at least minSecretRun characters of [0-9A-Za-z],
// between any other characters, that has both upper- and lower-case
// letters and is not a hexadecimal number (with or without 0x). That is
// every secret this package generates, except about one in a billion (a
// secret with letters of one case only), whatever surrounds it: a full key,
// the secret and its checksum (which names the key id among the public
// prefixes), "api_secret=<secret>", "server-<id>:<secret>". Hex digests,
// UUIDs, URLs, e-mail addresses and words of one case are not refused; a
// secret cut into short pieces is not recognised.
func looksLikeKey(s string) bool {
	start := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && isBase62[s[i]] {
			continue
		}
		if i-start >= minSecretRun && secretLike(s[start:i]) {
			return true
		}
		start = i + 1
	}
	return false
}

// secretLike reports whether a run of [0-9A-Za-z] has letters of both
// cases and is not a hexadecimal number.
func secretLike(run string) bool {
	hex := strings.TrimPrefix(strings.TrimPrefix(run, "0x"), "0X")
	upper, lower, notHex := false, false, false
	for i := 0; i < len(run); i++ {
		c := run[i]
		upper = upper || 'A' <= c && c <= 'Z'
		lower = lower || 'a' <= c && c <= 'z'
	}
	for i := 0; i < len(hex); i++ {
		c := hex[i]
		notHex = notHex || !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F')
	}
	return upper && lower && notHex
}
